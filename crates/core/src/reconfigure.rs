//! A configuration change as the core decides it: what applying a new file
//! would do to each set, whether it may be applied while the cluster runs,
//! and the set slots the agreed state switches to (`Command::Configure`).
//! `baton config diff` prints the same plan without proposing it.
//!
//! Slots never move: a set keeps its slot while only its policy changes
//! (preference order, failback, restart limits, failure timeout); a set the
//! file removes, or whose resources or hooks change, is retired in its slot
//! (released wherever it runs, never placed again) and a changed or new set
//! gets a slot at the end, which is placed once no retired set runs.
//! ARCHITECTURE.md, "A configuration change", gives the safety argument.

mod nodes;

use std::fmt;
use std::time::Duration;

use baton_state::{AgreedTiming, ClusterState, NodeSpec, SetSpec};

use crate::topology::{NodeId, Topology};

/// A configuration file, validated, offered to the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Its digest (`baton_config::digest`) and text, as agreed.
    pub digest: String,
    pub text: String,
    /// What the core makes of it.
    pub topology: Topology,
}

/// What a configuration change does to one set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new set: placed where its preference order says.
    Start,
    /// Gone from the file: released wherever it runs.
    Stop,
    /// Its resources or hooks changed: released, then started as the new
    /// definition says (never both at once).
    Restart,
    /// Only its policy changed: it stays where it runs unless the new
    /// policy places it elsewhere.
    Policy,
    Nothing,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Start => "start",
            Change::Stop => "stop",
            Change::Restart => "restart",
            Change::Policy => "policy",
            Change::Nothing => "nothing",
        })
    }
}

/// One set's part of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetChange {
    pub name: String,
    pub change: Change,
    /// Where it runs now (as agreed), if anywhere.
    pub owner: Option<NodeId>,
    /// Why, in words.
    pub why: String,
}

/// What applying a configuration would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The generation it would be agreed as.
    pub generation: u64,
    /// The set slots after it (the agreed ones, extended).
    pub sets: Vec<SetSpec>,
    /// Set by set, in the new file's order, then the sets it removes.
    pub changes: Vec<SetChange>,
    /// The guard's release budget from then on: the larger of the running
    /// one and the new file's (a budget only grows while agents run).
    pub guard_margin: Duration,
    /// The heartbeat interval, lease and startup fence from then on.
    pub timing: AgreedTiming,
    /// Every node slot after it, when it adds or removes a node.
    pub nodes: Option<Vec<NodeSpec>>,
    /// The node it adds or removes, in words.
    pub node_changes: Vec<String>,
    /// A node it removes that still runs sets: put in standby first, and
    /// the change proposed once they moved off.
    pub drain: Option<NodeId>,
}

/// The plan for switching the cluster running `topo` (with the agreed
/// `state`) to `new`; an error says why it cannot be applied live.
pub fn plan(topo: &Topology, state: &ClusterState, new: &Topology) -> Result<Plan, String> {
    let slots = nodes::slots(topo, state, new)?;
    // The file names nodes by its own order; the cluster by slot.
    let mut new_sets = new.sets.clone();
    for spec in &mut new_sets {
        spec.nodes.iter_mut().for_each(|n| *n = slots.slot_of[usize::from(*n)]);
    }
    // Nodes switch at different moments: every mix of the running and the
    // new heartbeat interval and lease must hold a lease (ARCHITECTURE.md,
    // "A configuration change", point 7).
    let mut held = topo.timing;
    held.guard_margin = held.guard_margin.max(new.timing.guard_margin);
    let (old_t, new_t) = (&topo.timing, &new.timing);
    for (heartbeat_interval, lease) in [
        (old_t.heartbeat_interval, old_t.lease),
        (new_t.heartbeat_interval, new_t.lease),
        (old_t.heartbeat_interval, new_t.lease),
        (new_t.heartbeat_interval, old_t.lease),
    ] {
        let mix = crate::Timing { heartbeat_interval, lease, ..held };
        if let Err(why) = mix.validate() {
            let grows = held.guard_margin > topo.timing.guard_margin;
            return Err(if (heartbeat_interval, lease) == (old_t.heartbeat_interval, old_t.lease) && grows {
                format!(
                    "the guard's release budget grows from {:?} to {:?} with this file's resources: {why}; make \
                     the lease longer first",
                    topo.timing.guard_margin, held.guard_margin
                )
            } else {
                format!(
                    "heartbeat interval {heartbeat_interval:?} with lease {lease:?} (nodes switch one by one, so \
                     the running and the new values mix for a while): {why}; change the heartbeat interval and \
                     the lease in two steps"
                )
            });
        }
    }
    let timing = AgreedTiming {
        heartbeat_interval: new_t.heartbeat_interval,
        lease: new_t.lease,
        startup_fence: new_t.startup_fence,
    };
    for (i, spec) in new_sets.iter().enumerate() {
        if new_sets[..i].iter().any(|s| s.name == spec.name) {
            return Err(format!("set {} is configured twice", spec.name));
        }
        if spec.nodes.is_empty() {
            return Err(format!("set {} has no nodes", spec.name));
        }
    }
    let mut sets = topo.sets.clone();
    let mut changes = Vec::new();
    let live = |slot: usize| !topo.sets[slot].nodes.is_empty();
    for spec in &new_sets {
        let at = (0..topo.sets.len()).find(|&s| live(s) && topo.sets[s].name == spec.name);
        let (change, why) = match at {
            None => {
                sets.push(spec.clone());
                (Change::Start, "new in the file".to_string())
            }
            Some(s) if topo.sets[s].restarts_for(spec) => {
                sets[s].nodes.clear();
                sets.push(spec.clone());
                (Change::Restart, "its resources or hooks changed".to_string())
            }
            Some(s) if topo.sets[s] != *spec => {
                sets[s] = spec.clone();
                (Change::Policy, policy_changes(&topo.sets[s], spec))
            }
            Some(_) => (Change::Nothing, "unchanged".to_string()),
        };
        let owner = at.and_then(|s| state.set(s as u16).owner);
        changes.push(SetChange { name: spec.name.clone(), change, owner, why });
    }
    for (s, old) in topo.sets.iter().enumerate() {
        if live(s) && !new_sets.iter().any(|n| n.name == old.name) {
            sets[s].nodes.clear();
            let owner = state.set(s as u16).owner;
            changes.push(SetChange {
                name: old.name.clone(),
                change: Change::Stop,
                owner,
                why: "gone from the file".into(),
            });
        }
    }
    for (s, spec) in sets.iter().enumerate().take(topo.sets.len()) {
        let retires = live(s) && spec.nodes.is_empty();
        let rec = state.set(s as u16);
        if retires && rec.owner.is_some() {
            if rec.frozen {
                return Err(format!(
                    "{} is frozen where it runs: unfreeze it before removing or changing it",
                    spec.name
                ));
            }
            if state.maintenance {
                return Err(format!(
                    "the cluster is in maintenance mode, and {} runs: `baton maintenance off` before removing or \
                     changing it",
                    spec.name
                ));
            }
        }
    }
    if sets.len() > usize::from(u16::MAX) {
        return Err(format!("{} set slots: more than {} sets were ever configured", sets.len(), u16::MAX));
    }
    Ok(Plan {
        generation: state.config_generation() + 1,
        sets,
        changes,
        guard_margin: held.guard_margin,
        timing,
        nodes: slots.nodes,
        node_changes: slots.changes,
        drain: slots.drain,
    })
}

/// The policy fields that differ, in words.
fn policy_changes(old: &SetSpec, new: &SetSpec) -> String {
    let mut what = Vec::new();
    if old.nodes != new.nodes {
        what.push("node order");
    }
    if old.failback != new.failback {
        what.push("failback");
    }
    if old.max_restarts != new.max_restarts || old.restart_window != new.restart_window {
        what.push("restart limits");
    }
    if old.failure_timeout != new.failure_timeout {
        what.push("failure_timeout");
    }
    if old.resources != new.resources {
        what.push("monitors");
    }
    format!("{} changed", what.join(", "))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use baton_state::{Command, Failback, ResourceSpec};

    use super::*;
    use crate::placement::{self, Liveness};
    use crate::time::Time;
    use crate::topology::NodeSpec;

    fn set(name: &str, nodes: &[NodeId], definition: &str) -> SetSpec {
        SetSpec {
            name: name.into(),
            nodes: nodes.to_vec(),
            failback: Failback::Never,
            max_restarts: 1,
            restart_window: Duration::from_secs(60),
            failure_timeout: None,
            resources: vec![ResourceSpec {
                label: "ip".into(),
                start_timeout: Duration::from_secs(1),
                stop_timeout: Duration::from_secs(1),
                monitor_interval: None,
                monitor_timeout: Duration::from_secs(1),
                address: true,
            }],
            hook_timeout: Duration::from_secs(1),
            definition: definition.into(),
        }
    }

    fn topo(sets: Vec<SetSpec>) -> Topology {
        let node = |name: &str| NodeSpec { name: name.into(), witness: false, links: 1, retired: false };
        Topology {
            nodes: vec![node("a"), node("b"), node("c")],
            links: 1,
            sets,
            timing: crate::topology::test_timing(),
            fenceable: vec![false; 3],
        }
    }

    /// Every node joined; web on a, db on b, mail on c.
    fn running() -> (Topology, ClusterState) {
        let t = topo(vec![set("web", &[0, 1], "w"), set("db", &[1, 0], "d"), set("mail", &[2, 0], "m")]);
        let mut st = ClusterState::new(3, 3);
        for node in 0..3 {
            st.apply(&Command::Join { node, epoch: 0, incarnation: 1 }).unwrap();
        }
        for s in 0..3 {
            st.apply(&Command::Assign { set: s, node: s as NodeId, generation: 0 }).unwrap();
        }
        (t, st)
    }

    fn changes(p: &Plan) -> Vec<(&str, Change)> {
        p.changes.iter().map(|c| (c.name.as_str(), c.change)).collect()
    }

    #[test]
    fn a_plan_keeps_slots_changes_policy_in_place_and_retires_what_is_removed_or_redefined() {
        let (t, st) = running();
        // Reordered, web's preference changed, db redefined, mail gone, ftp new.
        let new = topo(vec![set("ftp", &[2], "f"), set("db", &[1, 0], "d2"), set("web", &[1, 0], "w")]);
        let p = plan(&t, &st, &new).unwrap();
        assert_eq!(
            changes(&p),
            [("ftp", Change::Start), ("db", Change::Restart), ("web", Change::Policy), ("mail", Change::Stop)]
        );
        let names: Vec<(&str, bool)> = p.sets.iter().map(|s| (s.name.as_str(), s.nodes.is_empty())).collect();
        assert_eq!(names, [("web", false), ("db", true), ("mail", true), ("ftp", false), ("db", false)]);
        assert_eq!(p.sets[0].nodes, [1, 0], "the policy changes in its slot");
        assert_eq!((p.generation, p.changes[2].why.as_str()), (1, "node order changed"));
        assert_eq!(p.changes[1].owner, Some(1));
        let same = plan(&t, &st, &t).unwrap();
        assert!(same.changes.iter().all(|c| c.change == Change::Nothing) && same.sets == t.sets);
    }

    #[test]
    fn the_release_budget_only_grows_and_must_leave_the_lease_room_to_hold() {
        let (mut t, st) = running();
        t.timing.guard_margin = Duration::from_millis(120);
        let mut new = t.clone();
        new.timing.guard_margin = Duration::from_millis(420);
        assert_eq!(plan(&t, &st, &new).unwrap().guard_margin, Duration::from_millis(420), "a mount added");
        new.timing.guard_margin = Duration::from_millis(20);
        assert_eq!(plan(&t, &st, &new).unwrap().guard_margin, Duration::from_millis(120), "kept while agents run");
        new.timing.guard_margin = Duration::from_millis(900);
        let why = plan(&t, &st, &new).unwrap_err();
        assert!(why.contains("from 120ms to 900ms") && why.contains("no time to hold"), "{why}");
    }

    #[test]
    fn fencing_and_a_frozen_set_refuse_a_live_change_and_timing_changes_in_steps() {
        let (t, mut st) = running();
        let mut faster = t.clone();
        faster.timing.lease = Duration::from_millis(500);
        assert_eq!(plan(&t, &st, &faster).unwrap().timing.lease, Duration::from_millis(500));
        let mut slower = t.clone();
        (slower.timing.heartbeat_interval, slower.timing.lease) = (Duration::from_millis(400), Duration::from_secs(4));
        assert!(slower.timing.validate().is_ok());
        let why = plan(&t, &st, &slower).unwrap_err();
        assert!(why.contains("400ms with lease 1s") && why.contains("in two steps"), "{why}");
        slower.timing.heartbeat_interval = Duration::from_millis(100);
        let step = plan(&t, &st, &slower).unwrap();
        assert_eq!(
            (step.timing.heartbeat_interval, step.timing.lease),
            (t.timing.heartbeat_interval, slower.timing.lease)
        );
        let mut fenced = t.clone();
        fenced.fenceable[0] = true;
        assert!(plan(&t, &st, &fenced).is_err());
        st.apply(&Command::Freeze { set: 2, frozen: true }).unwrap();
        let without_mail = topo(t.sets[..2].to_vec());
        assert!(plan(&t, &st, &without_mail).unwrap_err().contains("mail is frozen"));
        let mail_policy = topo(vec![t.sets[0].clone(), t.sets[1].clone(), set("mail", &[0, 2], "m")]);
        assert!(plan(&t, &st, &mail_policy).is_ok(), "a frozen set's policy may change: it stays where it runs");
    }

    #[test]
    fn placement_releases_retired_sets_and_places_new_ones_once_nothing_retired_runs() {
        let (t, mut st) = running();
        let new = topo(vec![set("web", &[0, 1], "w2"), set("db", &[0, 1], "d"), set("mail", &[2, 0], "m")]);
        let p = plan(&t, &st, &new).unwrap();
        let cmd = Command::Configure {
            generation: 1,
            digest: "x".into(),
            text: String::new(),
            sets: p.sets.clone(),
            guard_margin: p.guard_margin,
            timing: Some(p.timing),
            nodes: p.nodes,
        };
        st.apply(&cmd).unwrap();
        let t = topo(p.sets);
        let live = [Liveness { alive: true, alive_since: Time(0), pending: false }; 3];
        let cmds = placement::plan(&t, &st, &live, Time(0));
        // web's old slot is released to nobody, its new slot waits; db
        // stays on b, which its new order still has (failback "never").
        assert_eq!(cmds, [Command::Move { set: 0, from: 0, to: None, generation: 1, direct: false }]);
        st.apply(&cmds[0]).unwrap();
        st.apply(&Command::Released { set: 0, node: 0, generation: 1 }).unwrap();
        let generation = st.set(3).generation;
        assert_eq!(placement::plan(&t, &st, &live, Time(0))[0], Command::Assign { set: 3, node: 0, generation });
    }

    fn node(name: &str) -> NodeSpec {
        NodeSpec { name: name.into(), witness: false, links: 1, retired: false }
    }

    /// Agrees `p` on `st`, with every online node acknowledging it.
    fn agree(st: &mut ClusterState, p: &Plan) {
        let cmd = Command::Configure {
            generation: p.generation,
            digest: format!("d{}", p.generation),
            text: String::new(),
            sets: p.sets.clone(),
            guard_margin: p.guard_margin,
            timing: Some(p.timing),
            nodes: p.nodes.clone(),
        };
        st.apply(&cmd).unwrap();
    }

    #[test]
    fn a_node_is_added_by_name_and_sets_name_it_by_its_slot_whatever_the_file_order() {
        let (t, mut st) = running();
        // d first in the file, the others reordered: web prefers d, then a.
        let mut new = topo(vec![set("web", &[0, 3], "w"), t.sets[1].clone(), t.sets[2].clone()]);
        new.nodes = vec![node("d"), node("c"), node("b"), node("a")];
        new.fenceable = vec![false; 4];
        new.sets[1].nodes = vec![2, 3];
        new.sets[2].nodes = vec![1, 3];
        let p = plan(&t, &st, &new).unwrap();
        assert_eq!(p.node_changes, ["node d added (slot 3)"]);
        let slots: Vec<&str> = p.nodes.as_ref().unwrap().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(slots, ["a", "b", "c", "d"], "slots never move");
        assert_eq!(p.sets[0].nodes, [3, 0], "web: d, then a, by slot");
        assert_eq!(changes(&p), [("web", Change::Policy), ("db", Change::Nothing), ("mail", Change::Nothing)]);
        agree(&mut st, &p);
        assert_eq!(st.majority(), 3);
        // Until a, b and c say they count by four voters, nothing else
        // about the nodes changes.
        let mut t4 = t.clone();
        t4.nodes = p.nodes.clone().unwrap();
        t4.fenceable = vec![false; 4];
        t4.sets = p.sets.clone();
        let mut five = t4.clone();
        five.nodes.push(node("e"));
        five.fenceable.push(false);
        let why = plan(&t4, &st, &five).unwrap_err();
        assert!(why.contains("a has not yet said it counts by the last change"), "{why}");
        for n in 0..3 {
            st.apply(&Command::Members { node: n, epoch: 0, generation: 1 }).unwrap();
        }
        // d never joined: three of five online are a majority, so e may come.
        assert_eq!(plan(&t4, &st, &five).unwrap().node_changes, ["node e added (slot 4)"]);
        five.nodes.remove(0);
        five.fenceable.remove(0);
        // By file index in b, c, d, e: web on d, db on b, mail on c.
        for (spec, nodes) in five.sets.iter_mut().zip([[2], [0], [1]]) {
            spec.nodes = nodes.to_vec();
        }
        let why = plan(&t4, &st, &five).unwrap_err();
        assert!(why.contains("node e added (slot 4), node a removed") && why.contains("one at a time"), "{why}");
    }

    #[test]
    fn a_node_that_runs_a_set_is_drained_before_it_is_removed_and_never_below_three_voters() {
        let (t, st) = running();
        let mut four = t.clone();
        four.nodes.push(node("d"));
        four.fenceable.push(false);
        let mut st4 = ClusterState::new(4, 3);
        for node in 0..4 {
            st4.apply(&Command::Join { node, epoch: 0, incarnation: 1 }).unwrap();
        }
        for s in 0..3 {
            st4.apply(&Command::Assign { set: s, node: s as NodeId, generation: 0 }).unwrap();
        }
        // c runs mail, and mail may only run on c and a.
        let mut without_c = four.clone();
        without_c.nodes.remove(2);
        without_c.fenceable.remove(2);
        without_c.sets[2].nodes = vec![0];
        let drained = plan(&four, &st4, &without_c).unwrap();
        assert_eq!(drained.drain, Some(2));
        assert_eq!(drained.node_changes, ["node c removed once mail has moved off it (it is put in standby first)"]);
        st4.apply(&Command::Freeze { set: 2, frozen: true }).unwrap();
        let why = plan(&four, &st4, &without_c).unwrap_err();
        assert!(why.contains("c runs mail, and it is frozen there"), "{why}");
        st4.apply(&Command::Freeze { set: 2, frozen: false }).unwrap();
        st4.apply(&Command::Move { set: 2, from: 2, to: Some(0), generation: 1, direct: false }).unwrap();
        st4.apply(&Command::Released { set: 2, node: 2, generation: 1 }).unwrap();
        let p = plan(&four, &st4, &without_c).unwrap();
        assert_eq!((p.node_changes.as_slice(), p.drain), (&["node c removed".to_string()][..], None));
        assert!(p.nodes.as_ref().unwrap()[2].retired && p.sets[2].nodes == [0]);
        agree(&mut st4, &p);
        assert_eq!((st4.majority(), st4.node(2).retired), (2, true));
        // Three voters are the fewest a change leaves.
        let mut two = t.clone();
        two.nodes.truncate(2);
        two.fenceable.truncate(2);
        two.sets = vec![set("web", &[0, 1], "w")];
        let why = plan(&t, &st, &two).unwrap_err();
        assert!(why.contains("3 voters, then 2") && why.contains("two-node mode"), "{why}");
        let mut witness = t.clone();
        witness.nodes[2].witness = true;
        witness.sets[2].nodes = vec![0];
        assert!(plan(&t, &st, &witness).unwrap_err().contains("witness role"));
    }
}
