//! Placement: where should each set run? A pure function of the topology,
//! the agreed state, the leader's view of which nodes are alive, and `now`;
//! its answer is the list of commands the leader proposes.
//!
//! The rules, in order: frozen, blocked and releasing sets (and every set in
//! maintenance mode) are left alone;
//! witnesses, offline, standby, fenced, excluded (vetoed or failed) and
//! silent nodes are never chosen; an operator's pin wins while its node is
//! eligible; an unowned set goes to the first eligible node of its
//! preference list (cascading over any number of nodes); an owned set stays
//! unless its owner became ineligible, or `failback = "auto"` and a more
//! preferred node has been up for `failback_delay`.
//!
//! Placement never moves a set away from an owner that has gone silent: that
//! owner may still be running it until the cluster evicts it, and eviction
//! (see `lease.rs`) is what makes it safe to choose again.

use baton_state::{ClusterState, Command, Phase};

use crate::time::Time;
use crate::topology::{Failback, NodeId, SetId, SetSpec, Topology};

/// What the leader knows of a node beyond the agreed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    pub alive: bool,
    pub alive_since: Time,
    /// Not heard yet, but still within the leader's boot grace: it may be
    /// starting right now.
    pub pending: bool,
}

pub fn plan(topo: &Topology, state: &ClusterState, live: &[Liveness], now: Time) -> Vec<Command> {
    assert_eq!(live.len(), topo.nodes.len());
    assert_eq!(state.sets.len(), topo.sets.len());
    (0..topo.sets.len()).filter_map(|i| place(topo, state, live, now, i as SetId)).collect()
}

fn eligible(topo: &Topology, state: &ClusterState, live: &[Liveness], set: SetId, node: NodeId) -> bool {
    !topo.nodes[usize::from(node)].witness
        && live[usize::from(node)].alive
        && !state.node(node).fenced
        && state.check_eligible(set, node).is_ok()
}

fn place(topo: &Topology, state: &ClusterState, live: &[Liveness], now: Time, set: SetId) -> Option<Command> {
    let rec = state.set(set);
    if state.is_frozen(set) || rec.blocked.is_some() || rec.phase != Phase::Stable {
        return None;
    }
    let spec = &topo.sets[usize::from(set)];
    // A set added by a configuration change waits for the sets retired at
    // or before it to stop: it may take over what one of them holds.
    if rec.owner.is_none() && state.retiring_before(set).is_some() {
        return None;
    }
    // Its owner may have left its preference order (a configuration
    // change; a retired set has none): then it moves, or stops.
    let ok = |n: NodeId| spec.nodes.contains(&n) && eligible(topo, state, live, set, n);
    let pin = rec.pin.filter(|&p| spec.nodes.contains(&p) && ok(p));
    let generation = rec.generation;
    match rec.owner {
        None => {
            // At cluster start, a more preferred node that may still be
            // booting is worth waiting for (one lease at most).
            let first = spec.nodes.iter().copied().find(|&n| ok(n) || live[usize::from(n)].pending);
            let node = pin.or(first.filter(|&n| ok(n)))?;
            Some(Command::Assign { set, node, generation })
        }
        Some(owner) => {
            if !live[usize::from(owner)].alive {
                return None;
            }
            let target = match pin {
                Some(p) => Some(p),
                None if ok(owner) => Some(failback_target(spec, owner, now, live, ok).unwrap_or(owner)),
                None => spec.nodes.iter().copied().find(|&n| n != owner && ok(n)),
            };
            if target == Some(owner) {
                return None;
            }
            Some(Command::Move { set, from: owner, to: target, generation, direct: false })
        }
    }
}

/// With `failback = "auto"`, the most preferred eligible node ahead of the
/// owner that has been up long enough.
fn failback_target(
    spec: &SetSpec,
    owner: NodeId,
    now: Time,
    live: &[Liveness],
    ok: impl Fn(NodeId) -> bool,
) -> Option<NodeId> {
    let Failback::Auto { delay } = spec.failback else { return None };
    spec.nodes
        .iter()
        .copied()
        .take_while(|&n| n != owner)
        .find(|&n| ok(n) && now.since(live[usize::from(n)].alive_since) >= delay)
}

/// The node `move SET` (without a node) sends a set to: the next eligible
/// node after the owner in the preference list, wrapping around.
pub fn next_preferred(topo: &Topology, state: &ClusterState, live: &[Liveness], set: SetId) -> Option<NodeId> {
    let spec = &topo.sets[usize::from(set)];
    let owner = state.set(set).owner;
    let start = owner.and_then(|o| spec.nodes.iter().position(|&n| n == o)).map_or(0, |p| p + 1);
    (0..spec.nodes.len())
        .map(|k| spec.nodes[(start + k) % spec.nodes.len()])
        .find(|&n| Some(n) != owner && eligible(topo, state, live, set, n))
}

#[cfg(test)]
mod tests;
