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
    let unfenceable_block = state.set(set).blocked.is_some_and(|n| !topo.fenceable[usize::from(n)]);
    if eligible(topo, state, set).is_empty() || state.is_frozen(set) || unfenceable_block {
        return Ok(());
    }
    let rec = state.set(set);
    let fail = |why: String| Violation { invariant: "recovery after heal", at_us: now_us, detail: why };
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
