//! docs/reference.md, "Behaviour": a resource whose stop fails blocks its set until its node
//! is fenced. Only a stop that really failed may do that: a stop whose
//! program the guard killed while releasing everything at the end of the
//! lease did not fail — the guard undid it — and a block for it would keep
//! the set stopped for nothing.

use baton_core::{NodeId, SetId, Topology};
use baton_state::Command;

use super::Violation;

/// `failed`: per node and set, whether one of its stop steps really failed.
pub fn check(
    topo: &Topology,
    command: &Command,
    accepted: bool,
    failed: &[Vec<bool>],
    now_us: u64,
) -> Result<(), Violation> {
    let Command::StopFailed { set, node, .. } = *command else { return Ok(()) };
    if !accepted || failed[usize::from(node)][usize::from(set)] {
        return Ok(());
    }
    Err(blocked(topo, node, set, now_us))
}

fn blocked(topo: &Topology, node: NodeId, set: SetId, now_us: u64) -> Violation {
    Violation {
        invariant: "only a failed stop blocks a set",
        at_us: now_us,
        detail: format!(
            "set {} blocked by {} though none of its stops failed there",
            topo.set_name(set),
            topo.node_name(node)
        ),
    }
}
