//! docs/reference.md, `baton lock`: a cluster-wide lock runs its command on one node at
//! a time. A holder runs from the grant until the last answer it got says
//! (`valid_for`, measured on its own clock) — as `baton lock` kills its
//! command then at the latest. Two nodes inside such a window for one lock
//! at once is a violation.

use baton_core::{NodeId, Topology};

use super::Violation;

/// One `baton lock` run: on `node`, for `name`, allowed until `until_us`
/// (true time).
#[derive(Clone, Debug)]
pub struct Holder {
    pub node: NodeId,
    pub name: String,
    pub token: u64,
    pub until_us: u64,
}

pub fn check(topo: &Topology, holders: &[Holder], now_us: u64) -> Result<(), Violation> {
    for (i, a) in holders.iter().enumerate() {
        for b in &holders[i + 1..] {
            if a.name == b.name && a.node != b.node && a.until_us > now_us && b.until_us > now_us {
                return Err(Violation {
                    invariant: "one lock holder",
                    at_us: now_us,
                    detail: format!(
                        "lock {} held on {} (token {}) and {} (token {}) at once",
                        a.name,
                        topo.node_name(a.node),
                        a.token,
                        topo.node_name(b.node),
                        b.token
                    ),
                });
            }
        }
    }
    Ok(())
}
