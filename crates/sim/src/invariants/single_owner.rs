//! docs/reference.md, "The safety property": no service set is ever running on two nodes at once. A
//! node counts as running a set from the moment any of its resources begins
//! to start until the last one has finished stopping (or the machine or the
//! guard killed it) — a stopping node still holds the address.

use baton_core::{NodeId, SetId, Topology};

use super::Violation;
use crate::world::World;

///
/// A set is its name: a slot a configuration change retired and the slot
/// that replaced it are the same set, so no two of them may be held at once
/// either, on two nodes or on one (ARCHITECTURE.md, "A configuration change").
pub fn check(topo: &Topology, world: &World, set: SetId, now_us: u64) -> Result<(), Violation> {
    let name = topo.set_name(set);
    let held: Vec<(SetId, NodeId)> = (0..topo.sets.len() as SetId)
        .filter(|&s| topo.set_name(s) == name)
        .flat_map(|s| world.holders(s).into_iter().map(move |n| (s, n)))
        .collect();
    if held.len() <= 1 {
        return Ok(());
    }
    let names: Vec<String> = held.iter().map(|&(s, n)| format!("{} (slot {s})", topo.node_name(n))).collect();
    Err(Violation {
        invariant: "single owner",
        at_us: now_us,
        detail: format!("set {name} runs on {} at once", names.join(" and ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's cluster after `web` was redefined: its old slot retired,
    /// the new one beside it.
    fn redefined() -> (Topology, World) {
        let mut topo = crate::demo::topology();
        let mut new = topo.sets[0].clone();
        topo.sets[0].nodes.clear();
        new.definition = "v2".into();
        topo.sets.push(new);
        let world = World::new(topo.nodes.len(), &[1, 1]);
        (topo, world)
    }

    #[test]
    fn a_retired_slot_and_its_successor_are_one_set() {
        let (topo, mut world) = redefined();
        world.set(0, 0, 0, 0, true);
        assert!(check(&topo, &world, 0, 1).is_ok(), "the old definition alone");
        world.set(1, 1, 1, 0, true);
        let v = check(&topo, &world, 1, 2).unwrap_err();
        assert_eq!(v.detail, "set web runs on alpha (slot 0) and beta (slot 1) at once");
        world.set(2, 1, 1, 0, false);
        world.set(3, 0, 1, 0, true);
        assert!(check(&topo, &world, 1, 4).is_err(), "old and new at once on one node too");
        world.set(5, 0, 0, 0, false);
        assert!(check(&topo, &world, 1, 6).is_ok());
    }
}
