//! ARCHITECTURE.md, "Two servers without a witness": a node makes itself
//! the agreement layer's only voter only from a log that holds every
//! entry ever committed — otherwise decisions the cluster took would be
//! lost, and the two nodes' agreed states would part ways.

use baton_core::{NodeId, Topology};

use super::Violation;

/// `node`, holding `holds` entries of a log of `committed`, goes on alone.
pub fn check_alone(
    topo: &Topology,
    node: NodeId,
    holds: usize,
    committed: usize,
    now_us: u64,
) -> Result<(), Violation> {
    if holds >= committed {
        return Ok(());
    }
    Err(Violation {
        invariant: "alone from a complete log",
        at_us: now_us,
        detail: format!("{} went on alone holding {holds} of the {committed} entries committed", topo.node_name(node)),
    })
}
