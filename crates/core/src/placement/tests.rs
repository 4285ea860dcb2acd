use std::time::Duration;

use baton_state::{ClusterState, Command, Exclusion};

use super::*;
use crate::topology::{NodeSpec, Timing};

fn s(secs: u64) -> Time {
    Time(secs * 1_000_000)
}

/// Nodes a, b, c and the witness w; one set preferring a, b, c.
fn topo(failback: Failback) -> Topology {
    let node = |name: &str, witness| NodeSpec { name: name.into(), witness, links: 1, retired: false };
    Topology {
        nodes: vec![node("a", false), node("b", false), node("c", false), node("w", true)],
        links: 1,
        sets: vec![SetSpec {
            name: "web".into(),
            nodes: vec![0, 1, 2],
            failback,
            max_restarts: 3,
            restart_window: Duration::from_secs(600),
            failure_timeout: None,
            resources: vec![],
            hook_timeout: Duration::from_secs(5),
            definition: String::new(),
        }],
        timing: Timing {
            heartbeat_interval: Duration::from_millis(100),
            lease: Duration::from_secs(1),
            max_drift_ppm: 10_000,
            guard_margin: Duration::from_millis(50),
            probe_interval: None,
            startup_fence: None,
        },
        fenceable: vec![false; 4],
    }
}

fn state() -> ClusterState {
    let mut st = ClusterState::new(4, 1);
    for node in 0..4 {
        st.apply(&Command::Join { node, epoch: 0, incarnation: 1 }).unwrap();
    }
    st
}

fn all_alive() -> Vec<Liveness> {
    vec![Liveness { alive: true, alive_since: s(0), pending: false }; 4]
}

#[test]
fn an_unowned_set_goes_to_the_first_eligible_node_cascading() {
    let t = topo(Failback::Never);
    let st = state();
    let mut live = all_alive();
    assert_eq!(plan(&t, &st, &live, s(1)), vec![Command::Assign { set: 0, node: 0, generation: 0 }]);
    live[0].alive = false;
    assert_eq!(plan(&t, &st, &live, s(1)), vec![Command::Assign { set: 0, node: 1, generation: 0 }]);
    live[1].alive = false;
    assert_eq!(plan(&t, &st, &live, s(1)), vec![Command::Assign { set: 0, node: 2, generation: 0 }]);
    live[2].alive = false;
    assert_eq!(plan(&t, &st, &live, s(1)), vec![], "the witness is never chosen");
}

#[test]
fn excluded_offline_and_standby_nodes_are_skipped() {
    let t = topo(Failback::Never);
    let mut st = state();
    st.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    st.apply(&Command::StartFailed { set: 0, node: 0, generation: 1, exclusion: Exclusion::Vetoed }).unwrap();
    st.apply(&Command::Standby { node: 1, standby: true }).unwrap();
    assert_eq!(plan(&t, &st, &all_alive(), s(1)), vec![Command::Assign { set: 0, node: 2, generation: 2 }]);
}

#[test]
fn a_standby_owner_hands_its_set_to_the_next_node_or_to_nobody() {
    let t = topo(Failback::Never);
    let mut st = state();
    st.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    st.apply(&Command::Standby { node: 0, standby: true }).unwrap();
    let live = all_alive();
    assert_eq!(
        plan(&t, &st, &live, s(1)),
        vec![Command::Move { set: 0, from: 0, to: Some(1), generation: 1, direct: false }]
    );
    st.apply(&Command::Standby { node: 1, standby: true }).unwrap();
    st.apply(&Command::Standby { node: 2, standby: true }).unwrap();
    assert_eq!(
        plan(&t, &st, &live, s(1)),
        vec![Command::Move { set: 0, from: 0, to: None, generation: 1, direct: false }]
    );
}

#[test]
fn failback_never_keeps_the_set_where_it_is() {
    let t = topo(Failback::Never);
    let mut st = state();
    st.apply(&Command::Assign { set: 0, node: 1, generation: 0 }).unwrap();
    assert_eq!(plan(&t, &st, &all_alive(), s(100)), vec![]);
}

#[test]
fn failback_auto_returns_after_the_delay() {
    let t = topo(Failback::Auto { delay: Duration::from_secs(30) });
    let mut st = state();
    st.apply(&Command::Assign { set: 0, node: 2, generation: 0 }).unwrap();
    let mut live = all_alive();
    live[0].alive_since = s(100);
    live[1].alive_since = s(90);
    assert_eq!(plan(&t, &st, &live, s(110)), vec![], "nobody ahead of c has been up 30s");
    assert_eq!(
        plan(&t, &st, &live, s(125)),
        vec![Command::Move { set: 0, from: 2, to: Some(1), generation: 1, direct: false }]
    );
    assert_eq!(
        plan(&t, &st, &live, s(130)),
        vec![Command::Move { set: 0, from: 2, to: Some(0), generation: 1, direct: false }]
    );
}

#[test]
fn frozen_blocked_and_releasing_sets_are_left_alone() {
    let t = topo(Failback::Never);
    let mut st = state();
    st.apply(&Command::Standby { node: 0, standby: true }).unwrap();
    st.apply(&Command::Freeze { set: 0, frozen: true }).unwrap();
    assert_eq!(plan(&t, &st, &all_alive(), s(1)), vec![]);
    st.apply(&Command::Freeze { set: 0, frozen: false }).unwrap();
    st.apply(&Command::Assign { set: 0, node: 1, generation: 0 }).unwrap();
    st.apply(&Command::StopFailed { set: 0, node: 1, generation: 1 }).unwrap();
    st.apply(&Command::Standby { node: 1, standby: true }).unwrap();
    assert_eq!(plan(&t, &st, &all_alive(), s(1)), vec![]);
}

#[test]
fn maintenance_mode_places_nothing() {
    let t = topo(Failback::Never);
    let mut st = state();
    st.apply(&Command::Maintenance { on: true }).unwrap();
    assert_eq!(plan(&t, &st, &all_alive(), s(1)), vec![]);
    st.apply(&Command::Maintenance { on: false }).unwrap();
    assert_eq!(plan(&t, &st, &all_alive(), s(1)), vec![Command::Assign { set: 0, node: 0, generation: 0 }]);
}

#[test]
fn a_silent_owner_keeps_its_set_until_it_is_evicted() {
    let t = topo(Failback::Never);
    let mut st = state();
    st.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    let mut live = all_alive();
    live[0].alive = false;
    assert_eq!(plan(&t, &st, &live, s(1)), vec![]);
    st.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }).unwrap();
    st.apply(&Command::Suspect { voter: 2, node: 0, epoch: 0, round: 1 }).unwrap();
    st.apply(&Command::Suspect { voter: 3, node: 0, epoch: 0, round: 1 }).unwrap();
    assert_eq!(plan(&t, &st, &live, s(1)), vec![Command::Assign { set: 0, node: 1, generation: 2 }]);
}

#[test]
fn a_pin_wins_while_its_node_is_eligible() {
    let t = topo(Failback::Auto { delay: Duration::ZERO });
    let mut st = state();
    st.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    st.apply(&Command::Pin { set: 0, node: Some(2) }).unwrap();
    let mut live = all_alive();
    assert_eq!(
        plan(&t, &st, &live, s(1)),
        vec![Command::Move { set: 0, from: 0, to: Some(2), generation: 1, direct: false }]
    );
    st.apply(&Command::Pin { set: 0, node: Some(3) }).unwrap();
    assert_eq!(plan(&t, &st, &live, s(1)), vec![], "a pin to a witness is ignored");
    live[2].alive = false;
    st.apply(&Command::Pin { set: 0, node: Some(2) }).unwrap();
    assert_eq!(plan(&t, &st, &live, s(1)), vec![]);
}

#[test]
fn next_preferred_wraps_around_the_list() {
    let t = topo(Failback::Never);
    let mut st = state();
    let live = all_alive();
    assert_eq!(next_preferred(&t, &st, &live, 0), Some(0));
    st.apply(&Command::Assign { set: 0, node: 2, generation: 0 }).unwrap();
    assert_eq!(next_preferred(&t, &st, &live, 0), Some(0));
    st.apply(&Command::Standby { node: 0, standby: true }).unwrap();
    assert_eq!(next_preferred(&t, &st, &live, 0), Some(1));
}

#[test]
fn at_start_a_preferred_node_still_booting_is_waited_for() {
    let t = topo(Failback::Never);
    let st = state();
    let mut live = all_alive();
    live[0] = Liveness { alive: false, alive_since: s(0), pending: true };
    assert_eq!(plan(&t, &st, &live, s(0)), vec![], "a may be starting");
    live[0].pending = false;
    assert_eq!(plan(&t, &st, &live, s(1)), vec![Command::Assign { set: 0, node: 1, generation: 0 }]);
}
