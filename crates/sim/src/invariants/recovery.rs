//! The mission: once faults heal, every set that has an eligible node runs
//! again, within a stated bound (`scenario::RECOVERY_BOUND_US` after the
//! heal). Checked at the end of the run: the agreed owner holds every
//! resource of the set and has reported it started.

use baton_core::{NodeId, SetId, Topology};
use baton_state::ClusterState;

use super::Violation;
use crate::world::World;

/// The nodes that may run `set` according to the agreed state.
pub fn eligible(topo: &Topology, state: &ClusterState, set: SetId) -> Vec<NodeId> {
    let spec = &topo.sets[usize::from(set)];
    spec.nodes
        .iter()
        .copied()
        .filter(|&n| !topo.nodes[usize::from(n)].witness && !state.node(n).fenced)
        .filter(|&n| state.check_eligible(set, n).is_ok())
        .collect()
}

pub fn check(topo: &Topology, state: &ClusterState, world: &World, set: SetId, now_us: u64) -> Result<(), Violation> {
    // A frozen set (or the cluster in maintenance) is left alone by design;
    // an operator's freeze may land after the heal (its request is proposed
    // until agreed). A set blocked by a failed stop on a node no fence
    // device covers stays stopped until a person looks (docs/reference.md, "Behaviour").
    let unfenceable = |s: SetId| state.set(s).blocked.is_some_and(|n| !topo.fenceable[usize::from(n)]);
    // A set added by a configuration change waits, like the set it may
    // take from, for a person to look at a block no device can lift.
    let unfenceable_block = unfenceable(set) || state.retiring_before(set).is_some_and(unfenceable);
    let fail = |why: String| Violation { invariant: "recovery after heal", at_us: now_us, detail: why };
    if state.is_frozen(set) || unfenceable_block {
        return Ok(());
    }
    // A set a configuration change retired is stopped everywhere.
    if state.retired(set) && (state.set(set).owner.is_some() || !world.holders(set).is_empty()) {
        return Err(fail(format!("set {} was retired (slot {set}) but still runs or is owned", topo.set_name(set))));
    }
    if eligible(topo, state, set).is_empty() {
        return Ok(());
    }
    let rec = state.set(set);
    let Some(owner) = rec.owner else {
        return Err(fail(format!("set {} has eligible nodes but no owner", topo.set_name(set))));
    };
    if !rec.running || !world.all_running(owner, set) {
        return Err(fail(format!(
            "set {} is not running on its owner {} (agreed running: {})",
            topo.set_name(set),
            topo.node_name(owner),
            rec.running
        )));
    }
    Ok(())
}
