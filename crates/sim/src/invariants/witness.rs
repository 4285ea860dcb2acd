//! docs/reference.md, "Vocabulary": a witness node votes but never runs service sets.

use baton_core::{NodeId, SetId, Topology};

use super::Violation;
use crate::world::World;

pub fn check(topo: &Topology, world: &World, node: NodeId, set: SetId, now_us: u64) -> Result<(), Violation> {
    if !topo.nodes[usize::from(node)].witness || !world.holds(node, set) {
        return Ok(());
    }
    Err(Violation {
        invariant: "witness never runs a set",
        at_us: now_us,
        detail: format!("witness {} runs set {}", topo.node_name(node), topo.set_name(set)),
    })
}
