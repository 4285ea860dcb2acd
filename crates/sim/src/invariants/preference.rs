//! docs/reference.md, "Behaviour": once the cluster is stable, a set runs where its policy
//! says — on its pinned node if that is eligible; with `failback = "auto"`
//! on the most preferred eligible node; with `failback = "never"` on any
//! eligible node (the recovered primary becomes the standby).

use baton_core::{Failback, SetId, Topology};
use baton_state::ClusterState;

use super::recovery::eligible;
use super::Violation;

pub fn check(topo: &Topology, state: &ClusterState, set: SetId, now_us: u64) -> Result<(), Violation> {
    let rec = state.set(set);
    // Frozen and blocked sets are left where they are.
    let Some(owner) = rec.owner.filter(|_| !state.is_frozen(set) && rec.blocked.is_none()) else { return Ok(()) };
    let ok = eligible(topo, state, set);
    let spec = &topo.sets[usize::from(set)];
    let expected = match (rec.pin.filter(|p| ok.contains(p)), spec.failback) {
        (Some(pin), _) => Some(pin),
        (None, Failback::Auto { .. }) => ok.first().copied(),
        (None, Failback::Never) if ok.contains(&owner) => Some(owner),
        (None, Failback::Never) => None,
    };
    if expected == Some(owner) {
        return Ok(());
    }
    Err(Violation {
        invariant: "preference and failback",
        at_us: now_us,
        detail: format!(
            "set {} runs on {} but its policy wants {}",
            topo.set_name(set),
            topo.node_name(owner),
            expected.map_or("no node", |n| topo.node_name(n))
        ),
    })
}
