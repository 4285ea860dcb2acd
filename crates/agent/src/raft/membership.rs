//! Rejoining a node whose Raft state is lost. Its old vote is gone, so it
//! must not vote again until the cluster has taken it out of the voters:
//! the leader removes it (keeping it as a learner), the node starts from an
//! empty log and copies the cluster's, and the leader makes it a voter
//! again once it has caught up — the membership-change way of etcd and
//! the openraft guide, never a node that forgot its vote counting twice.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use openraft::ChangeMembers;
use tokio::sync::watch;

use super::net::{Peers, Rejoined, Reply, Request};
use super::{NodeId, Raft};
use crate::local::Slot;

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

/// On the leader, every second: once a change of nodes was agreed
/// (`slots`: the agreed node slots; Raft listens on `port`),
/// a node it added becomes a learner and one it removed leaves the voters
/// and learners; a learner whose log has caught up with the leader's
/// becomes a voter (again) — with the Raft instance `current` holds then:
/// two-node mode starts another.
pub async fn promote_learners(current: watch::Receiver<Raft>, slots: watch::Receiver<Vec<Slot>>, port: u16) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let raft = current.borrow().clone();
        let metrics = raft.metrics().borrow().clone();
        if metrics.current_leader != Some(metrics.id) {
            continue;
        }
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        // Only a slot the agreed configuration retired leaves: a list kept
        // from before a later change (an agent still replaying) names fewer
        // nodes, never a voter to remove.
        let slots = slots.borrow().clone();
        let retired: BTreeSet<NodeId> =
            slots.iter().enumerate().filter(|(_, s)| s.retired).map(|(i, _)| i as NodeId).collect();
        let live = slots.iter().enumerate().filter(|(_, s)| !s.retired);
        let members = live.filter_map(|(i, s)| Some((i as NodeId, SocketAddr::new(s.addresses.first()?.0, port))));
        for (id, addr) in members.filter(|(id, _)| !voters.contains(id) && !learners.contains(id)) {
            if let Err(e) = raft.add_learner(id, openraft::BasicNode::new(addr.to_string()), false).await {
                tracing::warn!("baton: adding node {id} as a learner: {e}");
            }
        }
        let gone: BTreeSet<NodeId> = voters.intersection(&retired).copied().collect();
        if !gone.is_empty() {
            if let Err(e) = raft.change_membership(ChangeMembers::RemoveVoters(gone.clone()), false).await {
                tracing::warn!("baton: removing {gone:?} from the voters: {e}");
            }
        }
        let gone: BTreeSet<NodeId> = learners.intersection(&retired).copied().collect();
        if !gone.is_empty() {
            if let Err(e) = raft.change_membership(ChangeMembers::RemoveNodes(gone.clone()), false).await {
                tracing::warn!("baton: removing learners {gone:?}: {e}");
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

/// `baton rejoin` (or a node added live, before its first start): asks
/// each peer in turn, for at most 30 s, to take node `me` of `config` out
/// of the voters — only the leader can; right after this node stopped the
/// others may still be electing one. Returns the leader's name and its
/// answer.
pub async fn ask_rejoin(config: &baton_config::Config, me: usize) -> Result<(String, Rejoined), String> {
    let peers = Peers::of(config)?;
    let name = &config.nodes[me].name;
    let mut answers = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        answers.clear();
        for peer in (0..config.nodes.len()).filter(|&p| p != me) {
            let peer_name = &config.nodes[peer].name;
            let req = Request::Rejoin { node: me as NodeId, name: Some(name.clone()) };
            match peers.call(peer as NodeId, &mut None, &req, Duration::from_secs(10)).await {
                Ok(Reply::Rejoin(Ok(rejoined))) => return Ok((peer_name.clone(), rejoined)),
                Ok(Reply::Rejoin(Err(e))) => answers.push(format!("{peer_name}: {e}")),
                Ok(_) => answers.push(format!("{peer_name}: an answer of the wrong kind")),
                Err(e) => answers.push(format!("{peer_name}: {e}")),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!(
        "no peer could take {name} out of the voters within 30 s (a leader with a majority is needed):\n  {}",
        answers.join("\n  ")
    ))
}

/// Keeps what the leader answered in `state_dir`: the first state's shape
/// the new store replays from, and the node slots the agent numbers nodes
/// by; then the mark that makes the next start copy the cluster's log.
pub fn keep_rejoined(state_dir: &std::path::Path, rejoined: Rejoined, leader: &str) -> Result<(), String> {
    use crate::shell::{GENESIS_FILE, REJOIN_MARK};
    std::fs::create_dir_all(state_dir).map_err(|e| format!("creating {}: {e}", state_dir.display()))?;
    let genesis = serde_json::to_vec(&rejoined.genesis).expect("serializes");
    let write = |file: &str, bytes: &[u8]| {
        let path = state_dir.join(file);
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    write(GENESIS_FILE, &genesis)?;
    if !rejoined.slots.is_empty() {
        let mut local = crate::local::Local::load(state_dir)?;
        local.slots = rejoined.slots;
        local.save(state_dir)?;
    }
    write(REJOIN_MARK, format!("removed from the voters by {leader}\n").as_bytes())
}
