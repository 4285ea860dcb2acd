//! docs/reference.md, "Behaviour": `baton freeze SET` means no automatic restart
//! or failover for SET, and maintenance mode means that for every set. Checked twice: no ownership change of a frozen set
//! is ever agreed, and no node begins to start a set its own agreed state
//! says is frozen.

use baton_core::{SetId, Topology};
use baton_state::{ClusterState, Command};

use super::Violation;

/// `before` is the reference state just before `command` was applied.
pub fn check_agreed(
    topo: &Topology,
    before: &ClusterState,
    command: &Command,
    accepted: bool,
    now_us: u64,
) -> Result<(), Violation> {
    let set = match command {
        Command::Assign { set, .. } | Command::Move { set, .. } => *set,
        _ => return Ok(()),
    };
    if !accepted || !before.is_frozen(set) {
        return Ok(());
    }
    Err(Violation {
        invariant: "frozen set left alone",
        at_us: now_us,
        detail: format!("{command:?} was agreed while set {} was frozen", topo.set_name(set)),
    })
}

/// A node is about to begin starting `set` from scratch.
pub fn check_start(
    topo: &Topology,
    node_view: &ClusterState,
    node: &str,
    set: SetId,
    now_us: u64,
) -> Result<(), Violation> {
    if !node_view.is_frozen(set) {
        return Ok(());
    }
    Err(Violation {
        invariant: "frozen set left alone",
        at_us: now_us,
        detail: format!("{node} began starting frozen set {}", topo.set_name(set)),
    })
}
