//! docs/reference.md, `baton agent`: SIGTERM hands the node's sets over and exits. An
//! agent the core lets exit holds nothing of any set at that moment (its
//! guard would otherwise have to kill what it ran: an outage, not a hand-over).

use baton_core::{NodeId, Topology};

use super::Violation;
use crate::world::World;

pub fn check(topo: &Topology, world: &World, node: NodeId, now_us: u64) -> Result<(), Violation> {
    let held: Vec<&str> =
        (0..topo.sets.len() as u16).filter(|&s| world.holds(node, s)).map(|s| topo.set_name(s)).collect();
    if held.is_empty() {
        return Ok(());
    }
    Err(Violation {
        invariant: "a stopping agent hands its sets over",
        at_us: now_us,
        detail: format!("{} exited while running {}", topo.node_name(node), held.join(", ")),
    })
}
