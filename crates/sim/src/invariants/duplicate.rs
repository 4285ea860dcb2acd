//! The duplicate-address detector tells the truth: with leases, guards and
//! the agreed state working, no node ever holds an address of a set it does
//! not own, so a `Duplicate` event is either a real second holder (which
//! single-owner would also catch) or a false alarm — and neither may happen.
//! (SPEC, "Safety"; issue: a second holder is seen in production.)

use baton_core::{Event, NodeId, Topology};

use super::Violation;

pub fn check(topo: &Topology, node: NodeId, event: &Event, now_us: u64) -> Result<(), Violation> {
    let Event::Duplicate { set, strangers } = event else { return Ok(()) };
    let who: Vec<String> = strangers
        .iter()
        .map(|s| s.node.map_or_else(|| format!("{:02x?}", s.mac), |n| topo.node_name(n).into()))
        .collect();
    Err(Violation {
        invariant: "no duplicate address",
        at_us: now_us,
        detail: format!(
            "{} saw set {}'s address held by {} besides its owner",
            topo.node_name(node),
            topo.set_name(*set),
            who.join(", ")
        ),
    })
}
