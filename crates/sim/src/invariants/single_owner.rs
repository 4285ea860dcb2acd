//! docs/reference.md, "The safety property": no service set is ever running on two nodes at once. A
//! node counts as running a set from the moment any of its resources begins
//! to start until the last one has finished stopping (or the machine or the
//! guard killed it) — a stopping node still holds the address.

use baton_core::{SetId, Topology};

use super::Violation;
use crate::world::World;

pub fn check(topo: &Topology, world: &World, set: SetId, now_us: u64) -> Result<(), Violation> {
    let holders = world.holders(set);
    if holders.len() <= 1 {
        return Ok(());
    }
    let names: Vec<&str> = holders.iter().map(|&n| topo.node_name(n)).collect();
    Err(Violation {
        invariant: "single owner",
        at_us: now_us,
        detail: format!("set {} runs on {} at once", topo.set_name(set), names.join(" and ")),
    })
}
