//! Rejoining a node whose Raft state is lost. Its old vote is gone, so it
//! must not vote again until the cluster has taken it out of the voters:
//! the leader removes it (keeping it as a learner), the node starts from an
//! empty log and copies the cluster's, and the leader makes it a voter
//! again once it has caught up — the membership-change way of etcd and
//! the openraft guide, never a node that forgot its vote counting twice.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use tokio::sync::watch;

use super::{NodeId, Raft};

/// On the leader: `node` leaves the voters and stays a learner. Elsewhere:
/// an error naming the leader.
pub async fn remove_voter(raft: &Raft, node: NodeId) -> Result<(), String> {
    let metrics = raft.metrics().borrow().clone();
    let voters: BTreeSet<NodeId> = metrics.membership_config.membership().voter_ids().collect();
    if !voters.contains(&node) {
        return Ok(());
    }
    if metrics.current_leader != Some(metrics.id) {
        return Err(match metrics.current_leader {
            Some(l) => format!("not the leader (node {l} is)"),
            None => "no leader is known here".into(),
        });
    }
    raft.change_membership(ChangeMembers::RemoveVoters([node].into()), true)
        .await
        .map(|_| ())
        .map_err(|e| format!("removing node {node} from the voters: {e}"))
}

/// On the leader, every second: a node the agreed configuration added
/// (`added`: its id and address, once a change of nodes was agreed)
/// becomes a learner, and a learner whose log has caught up with the
/// leader's becomes a voter (again) — with the Raft instance `current`
/// holds then: two-node mode starts another.
pub async fn promote_learners(current: watch::Receiver<Raft>, added: watch::Receiver<Vec<(NodeId, String)>>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let raft = current.borrow().clone();
        let metrics = raft.metrics().borrow().clone();
        if metrics.current_leader != Some(metrics.id) {
            continue;
        }
        let membership = metrics.membership_config.membership();
        let known: BTreeSet<NodeId> = membership.voter_ids().chain(membership.learner_ids()).collect();
        let missing: Vec<(NodeId, String)> =
            added.borrow().iter().filter(|(id, _)| !known.contains(id)).cloned().collect();
        for (id, addr) in missing {
            if let Err(e) = raft.add_learner(id, openraft::BasicNode::new(addr), false).await {
                tracing::warn!("baton: adding node {id} as a learner: {e}");
            }
        }
        let Some(replication) = &metrics.replication else { continue };
        let caught_up: BTreeSet<NodeId> = metrics
            .membership_config
            .membership()
            .learner_ids()
            .filter(|l| replication.get(l).copied().flatten().map(|id| id.index) >= metrics.last_log_index)
            .collect();
        if caught_up.is_empty() {
            continue;
        }
        if let Err(e) = raft.change_membership(ChangeMembers::AddVoterIds(caught_up.clone()), false).await {
            tracing::warn!("baton: making {caught_up:?} voters again: {e}");
        }
    }
}
