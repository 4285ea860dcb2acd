//! docs/reference.md, "The safety property": a node runs no part of a set —
//! no start, stop, hook or monitor — while the cluster has agreed the set is
//! another node's or nobody's. A node gives a set up by finishing its stops
//! before it reports `Released` (it is the owner until then), and the target
//! of a direct move may start it before that (ARCHITECTURE.md, "A planned
//! move handed over directly"); a node whose lease ended was evicted only
//! after its guard undid everything, so a stop step it runs after waking (a
//! stop script, a hook) would act on a set that may already run elsewhere.
//! The lab's ownership record sees such a step as the set's processes on the
//! wrong node.

use baton_core::lifecycle::Action;
use baton_core::{NodeId, SetId, Topology};
use baton_state::ClusterState;

use super::Violation;

/// `node` is about to carry out `action`; `agreed` is the reference state.
pub fn check(
    topo: &Topology,
    agreed: &ClusterState,
    node: NodeId,
    action: &Action,
    now_us: u64,
) -> Result<(), Violation> {
    let set: SetId = match action {
        Action::Run { set, .. } | Action::Monitor { set, .. } => *set,
    };
    let rec = agreed.set(set);
    let owner = rec.owner;
    // A direct move's target runs the set once the owner said it stopped
    // it (single owner checks that the two never hold it at once).
    if owner == Some(node) || rec.direct_target() == Some(node) {
        return Ok(());
    }
    Err(Violation {
        invariant: "steps only on the owner",
        at_us: now_us,
        detail: format!(
            "{} carries out {action:?} of set {} while the cluster gives it to {}",
            topo.node_name(node),
            topo.set_name(set),
            owner.map_or("nobody", |o| topo.node_name(o))
        ),
    })
}
