//! The duplicate-address detector tells the truth: with leases, guards and
//! the agreed state working, no node ever holds an address of a set it does
//! not own, so an agreed `Duplicate` is either a real second holder (which
//! single-owner would also catch) or a false alarm — and neither may happen.
//! (docs/reference.md, "The safety property"; issue: a second holder is seen in production.)

use baton_core::Topology;
use baton_state::Command;

use super::Violation;

pub fn check(topo: &Topology, command: &Command, accepted: bool, now_us: u64) -> Result<(), Violation> {
    let Command::Duplicate { set, strangers, .. } = command else { return Ok(()) };
    if !accepted {
        return Ok(());
    }
    let who: Vec<String> = strangers
        .iter()
        .map(|s| s.node.map_or_else(|| format!("{:02x?}", s.mac), |n| topo.node_name(n).into()))
        .collect();
    Err(Violation {
        invariant: "no duplicate address",
        at_us: now_us,
        detail: format!("the cluster agreed that set {}'s address is held by {}", topo.set_name(*set), who.join(", ")),
    })
}
