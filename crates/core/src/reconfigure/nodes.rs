//! The nodes of a configuration change: the file's nodes mapped to node
//! slots by name (a slot never moves, a removed node's slot is retired),
//! and whether adding or removing one may be done while the cluster runs.
//! ARCHITECTURE.md, "Nodes added and removed while the cluster runs".

use baton_state::{ClusterState, NodeSpec};

use crate::topology::{NodeId, Topology};

/// The new file's nodes, by slot.
pub(super) struct Slots {
    /// The file's node `i` is slot `slot_of[i]`.
    pub slot_of: Vec<NodeId>,
    /// Every slot after the change, when a node is added or removed.
    pub nodes: Option<Vec<NodeSpec>>,
    /// What changes, in words.
    pub changes: Vec<String>,
    /// A node removed that still runs sets: put in standby first, and the
    /// change proposed once they moved off.
    pub drain: Option<NodeId>,
}

pub(super) fn slots(topo: &Topology, state: &ClusterState, new: &Topology) -> Result<Slots, String> {
    let restart = "apply it by restarting every agent with the new file";
    if topo.links != new.links {
        return Err(format!("the nodes' links change ({} links, now {}): {restart}", topo.links, new.links));
    }
    let mut nodes = topo.nodes.clone();
    let (mut slot_of, mut added) = (Vec::new(), Vec::new());
    for (i, spec) in new.nodes.iter().enumerate() {
        match topo.nodes.iter().position(|n| !n.retired && n.name == spec.name) {
            Some(s) if (topo.nodes[s].witness, topo.nodes[s].links) != (spec.witness, spec.links) => {
                return Err(format!("node {} changes its links or its witness role: {restart}", spec.name));
            }
            Some(s) if new.fenceable[i] != topo.fenceable[s] => {
                return Err(format!(
                    "the nodes a fence device covers change ({}): fencing is not changed live yet; {restart}",
                    spec.name
                ));
            }
            Some(s) => slot_of.push(s as NodeId),
            None => {
                if new.fenceable[i] {
                    return Err(format!(
                        "{} is added under a fence device: fencing is not changed live yet; add it without one, or \
                         {restart}",
                        spec.name
                    ));
                }
                slot_of.push(nodes.len() as NodeId);
                nodes.push(spec.clone());
                added.push(nodes.len() - 1);
            }
        }
    }
    let removed: Vec<usize> =
        (0..topo.nodes.len()).filter(|&s| !topo.nodes[s].retired && !slot_of.contains(&(s as NodeId))).collect();
    for &r in &removed {
        nodes[r].retired = true;
    }
    let named = |slots: &[usize]| slots.iter().map(|&s| nodes[s].name.as_str()).collect::<Vec<_>>().join(", ");
    let changes: Vec<String> = added
        .iter()
        .map(|&s| format!("node {} added (slot {s})", nodes[s].name))
        .chain(removed.iter().map(|&s| format!("node {} removed", nodes[s].name)))
        .collect();
    if changes.is_empty() {
        return Ok(Slots { slot_of, nodes: None, changes, drain: None });
    }
    if changes.len() > 1 {
        return Err(format!(
            "{}: one node is added or removed per change (the cluster's majorities must overlap from one \
             membership to the next); apply them one at a time",
            changes.join(", ")
        ));
    }
    let voters = |ns: &[NodeSpec]| ns.iter().filter(|n| !n.retired).count();
    let (before, after) = (voters(&topo.nodes), voters(&nodes));
    if before < 3 || after < 3 {
        return Err(format!(
            "{} voters, then {after}: a cluster of fewer than three voters (two-node mode) is not entered or left \
             live; {restart}",
            before
        ));
    }
    if let Some(&behind) = state.members_behind().first() {
        return Err(format!(
            "{} has not yet said it counts by the last change of nodes (it is starting, or its agreement lags): \
             apply again once it has",
            topo.node_name(behind)
        ));
    }
    if let Some(&new_slot) = added.first() {
        let online = (0..topo.nodes.len()).filter(|&s| !topo.nodes[s].retired && state.is_online(s as NodeId)).count();
        if online < after / 2 + 1 {
            return Err(format!(
                "{} of {before} voters are online: with {} added, {online} of {after} are no majority until it runs; \
                 bring the others back first",
                online, nodes[new_slot].name
            ));
        }
    }
    let mut changes = changes;
    let mut drain = None;
    if let Some(&gone) = removed.first() {
        let node = gone as NodeId;
        let owned = |s: usize| state.sets[s].owner == Some(node) || state.sets[s].blocked == Some(node);
        let runs: Vec<&str> = (0..state.sets.len()).filter(|&s| owned(s)).map(|s| topo.sets[s].name.as_str()).collect();
        // Its sets move off first (standby), unless nothing may move them.
        let stuck = (0..state.sets.len())
            .find(|&s| owned(s) && (state.is_frozen(s as u16) || state.sets[s].blocked == Some(node)));
        if let Some(s) = stuck {
            let why = if state.sets[s].blocked == Some(node) {
                "its stop failed there (blocked until fenced or cleaned up)"
            } else {
                "it is frozen there (or the cluster is in maintenance mode)"
            };
            return Err(format!("{} runs {}, and {why}: it cannot move off first", named(&removed), topo.sets[s].name));
        }
        if let Some(lock) = state.locks.iter().find(|(_, l)| l.holder == node).map(|(name, _)| name) {
            return Err(format!("{} holds the lock {lock}: release it first", named(&removed)));
        }
        if !runs.is_empty() {
            drain = Some(node);
            changes[0] += &format!(" once {} has moved off it (it is put in standby first)", runs.join(", "));
        }
    }
    Ok(Slots { slot_of, nodes: Some(nodes), changes, drain })
}
