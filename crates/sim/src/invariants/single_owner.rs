//! docs/reference.md, "The safety property": no service set is ever running on two nodes at once. A
//! node counts as running a set from the moment any of its resources begins
//! to start until the last one has finished stopping (or the machine or the
//! guard killed it) — a stopping node still holds the address.

use baton_core::{NodeId, SetId, Topology};

use super::Violation;
use crate::world::World;

///
/// A set is its name: a slot a configuration change retired and the slot
/// that replaced it are the same set, so no two of them may be held at once
/// either, on two nodes or on one (ARCHITECTURE.md, "A configuration change").
pub fn check(topo: &Topology, world: &World, set: SetId, now_us: u64) -> Result<(), Violation> {
    let name = topo.set_name(set);
    let held: Vec<(SetId, NodeId)> = (0..topo.sets.len() as SetId)
        .filter(|&s| topo.set_name(s) == name)
        .flat_map(|s| world.holders(s).into_iter().map(move |n| (s, n)))
        .collect();
    if held.len() <= 1 {
        return Ok(());
    }
    let names: Vec<String> = held.iter().map(|&(s, n)| format!("{} (slot {s})", topo.node_name(n))).collect();
    Err(Violation {
        invariant: "single owner",
        at_us: now_us,
        detail: format!("set {name} runs on {} at once", names.join(" and ")),
    })
}
