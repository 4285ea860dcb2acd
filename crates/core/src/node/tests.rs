use std::time::Duration;

use baton_state::{ClusterState, Command, Exclusion};

use super::*;
use crate::lifecycle::{HookKind, Step};
use crate::topology::{Failback, NodeSpec, ResourceSpec, SetSpec, Timing};

fn ms(ms: u64) -> Time {
    Time(ms * 1000)
}

/// a, b and the witness w; one set of one resource preferring a then b.
fn topo() -> Topology {
    let node = |name: &str, witness| NodeSpec { name: name.into(), witness };
    Topology {
        nodes: vec![node("a", false), node("b", false), node("w", true)],
        links: 2,
        sets: vec![SetSpec {
            name: "web".into(),
            nodes: vec![0, 1],
            failback: Failback::Never,
            max_restarts: 1,
            restart_window: Duration::from_secs(60),
            resources: vec![ResourceSpec {
                label: "ip".into(),
                start_timeout: Duration::from_secs(1),
                stop_timeout: Duration::from_secs(1),
                monitor_interval: Some(Duration::from_secs(1)),
                monitor_timeout: Duration::from_secs(1),
                address: true,
            }],
            hook_timeout: Duration::from_secs(1),
        }],
        timing: Timing {
            heartbeat_interval: Duration::from_millis(100),
            lease: Duration::from_millis(1000),
            max_drift_ppm: 0,
            guard_margin: Duration::ZERO,
            probe_interval: None,
        },
        fenceable: vec![false; 3],
    }
}

/// The agreed state with every node joined and set 0 owned by node 0.
fn owned_state() -> ClusterState {
    let mut st = ClusterState::new(3, 1);
    for node in 0..3 {
        st.apply(&Command::Join { node, epoch: 0, incarnation: 1 }).unwrap();
    }
    st.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    st
}

fn sends(out: &[Output]) -> Vec<&Heartbeat> {
    out.iter().filter_map(|o| if let Output::Send(h) = o { Some(h) } else { None }).collect()
}

fn acts(out: &[Output]) -> Vec<Action> {
    out.iter().filter_map(|o| if let Output::Act(a) = o { Some(*a) } else { None }).collect()
}

#[test]
fn a_fresh_node_heartbeats_and_asks_to_join() {
    let mut n = Node::new(topo(), 1, ClusterState::new(3, 1), Persisted::default(), 5, ms(0));
    let out = n.handle(ms(0), Input::Tick);
    assert_eq!(
        out,
        vec![
            Output::Send(Heartbeat { from: 1, epoch: 0, seq: 5 << 32, echoes: vec![] }),
            Output::Propose(Command::Join { node: 1, epoch: 0, incarnation: 5 }),
        ]
    );
    assert_eq!(n.poll_timeout(), ms(100));
}

#[test]
fn echoes_promise_a_lease_and_the_owner_starts_only_inside_it() {
    let mut a = Node::new(topo(), 0, owned_state(), Persisted::default(), 1, ms(0));
    let out = a.handle(ms(0), Input::Tick);
    assert!(acts(&out).is_empty(), "no lease yet, so nothing starts: {out:?}");
    let seq = sends(&out)[0].seq;
    // b heard heartbeat `seq` and echoes it: with a's own vote, a majority.
    let hb = Heartbeat { from: 1, epoch: 0, seq: 9, echoes: vec![Echo { to: 0, epoch: 0, seq }] };
    let out = a.handle(ms(20), Input::Heartbeat { link: 0, heartbeat: hb });
    assert_eq!(a.lease_expiry(), Some(ms(1000)));
    assert_eq!(
        acts(&out),
        vec![Action::Run { set: 0, token: 1, step: Step::Hook(HookKind::Test), timeout: Duration::from_secs(1) }]
    );
    assert!(out.contains(&Output::Guard(Some(ms(1000)))), "the guard learns the deadline before the start");
    // Without renewal, the node begins its release a third of the hold early.
    let out = a.handle(ms(30), Input::StepDone { set: 0, token: 1, ok: true });
    assert_eq!(acts(&out).len(), 1);
    let out = a.handle(ms(700), Input::Tick);
    assert!(out.contains(&Output::Event(Event::LeaseLost)));
    assert_eq!(a.lifecycle(0).phase(), Phase::Starting, "the step in flight finishes first");
    let out = a.handle(ms(710), Input::StepDone { set: 0, token: 2, ok: true });
    assert_eq!(
        acts(&out),
        vec![Action::Run { set: 0, token: 3, step: Step::Hook(HookKind::PreRel), timeout: Duration::from_secs(1) }]
    );
}

#[test]
fn a_voter_denies_before_it_suspects_and_echoes_nothing_after() {
    let mut b = Node::new(topo(), 1, owned_state(), Persisted::default(), 1, ms(0));
    let hb = Heartbeat { from: 0, epoch: 0, seq: 40, echoes: vec![] };
    b.handle(ms(0), Input::Heartbeat { link: 0, heartbeat: hb.clone() });
    b.handle(ms(0), Input::Heartbeat { link: 1, heartbeat: hb.clone() });
    let out = b.handle(ms(100), Input::Tick);
    assert_eq!(sends(&out)[0].echoes, vec![Echo { to: 0, epoch: 0, seq: 40 }]);
    let out = b.handle(ms(1000), Input::Tick);
    let denial = Persisted {
        denials: vec![Denial { round: 1, epoch: Some(0) }, Denial::default(), Denial::default()],
        abandoned: vec![None],
    };
    let persist = out.iter().position(|o| *o == Output::Persist(denial.clone())).expect("persisted");
    let suspect = out
        .iter()
        .position(|o| *o == Output::Propose(Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }))
        .expect("proposed");
    assert!(persist < suspect, "the denial is durable before the suspicion leaves: {out:?}");
    // a is heard again, but until the withdrawal is agreed b promises nothing.
    let out = b.handle(ms(1010), Input::Heartbeat { link: 0, heartbeat: Heartbeat { seq: 41, ..hb } });
    assert!(out.contains(&Output::Propose(Command::Unsuspect { voter: 1, node: 0, round: 1 })));
    let out = b.handle(ms(1100), Input::Tick);
    assert_eq!(sends(&out)[0].echoes, vec![]);
    let out = b.handle(ms(1110), Input::Committed(Command::Unsuspect { voter: 1, node: 0, round: 1 }));
    assert!(
        out.contains(&Output::Persist(Persisted {
            // The witness was never heard at all, so b suspects it too.
            denials: vec![Denial { round: 1, epoch: None }, Denial::default(), Denial { round: 1, epoch: Some(0) }],
            abandoned: vec![None],
        })),
        "{out:?}"
    );
    let out = b.handle(ms(1200), Input::Tick);
    assert_eq!(sends(&out)[0].echoes, vec![Echo { to: 0, epoch: 0, seq: 41 }]);
}

#[test]
fn no_promise_for_an_epoch_the_cluster_has_left() {
    let mut st = owned_state();
    st.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }).unwrap();
    st.apply(&Command::Suspect { voter: 2, node: 0, epoch: 0, round: 1 }).unwrap();
    let mut b = Node::new(topo(), 1, st, Persisted::default(), 1, ms(0));
    let stale = Heartbeat { from: 0, epoch: 0, seq: 7, echoes: vec![] };
    b.handle(ms(0), Input::Heartbeat { link: 0, heartbeat: stale });
    let out = b.handle(ms(100), Input::Tick);
    assert_eq!(sends(&out)[0].echoes, vec![]);
}

#[test]
fn a_set_given_up_stays_given_up_across_a_restart() {
    // The node vetoes its set (Test hook), reports StartFailed, and crashes
    // before it learns the report was agreed.
    let mut a = Node::new(topo(), 0, owned_state(), Persisted::default(), 1, ms(0));
    let seq = sends(&a.handle(ms(0), Input::Tick))[0].seq;
    let hb = Heartbeat { from: 1, epoch: 0, seq: 9, echoes: vec![Echo { to: 0, epoch: 0, seq }] };
    let out = a.handle(ms(10), Input::Heartbeat { link: 0, heartbeat: hb });
    let [Action::Run { token, .. }] = acts(&out)[..] else { panic!("{out:?}") };
    let out = a.handle(ms(20), Input::StepDone { set: 0, token, ok: false });
    let saved =
        out.iter().find_map(|o| if let Output::Persist(p) = o { Some(p.clone()) } else { None }).expect("persisted");
    assert_eq!(saved.abandoned, vec![Some((1, Exclusion::Vetoed))]);
    let persist = out.iter().position(|o| matches!(o, Output::Persist(_))).unwrap();
    let report = out
        .iter()
        .position(|o| matches!(o, Output::Propose(Command::StartFailed { .. })))
        .expect("StartFailed proposed");
    assert!(persist < report, "written before the cluster is told");
    // Restarted from the same (older) agreed state, and joined again in its
    // new incarnation: it does not start again.
    let mut rejoined = owned_state();
    rejoined.apply(&Command::Join { node: 0, epoch: 0, incarnation: 2 }).unwrap();
    let mut b = Node::new(topo(), 0, rejoined, saved, 2, ms(100));
    let first = b.handle(ms(100), Input::Tick);
    let again = Command::StartFailed { set: 0, node: 0, generation: 1, exclusion: Exclusion::Vetoed };
    assert!(first.contains(&Output::Propose(again)), "the report is made again, in case it was lost");
    let seq = sends(&first)[0].seq;
    let hb = Heartbeat { from: 1, epoch: 0, seq: 10, echoes: vec![Echo { to: 0, epoch: 0, seq }] };
    let out = b.handle(ms(110), Input::Heartbeat { link: 0, heartbeat: hb });
    assert!(acts(&out).is_empty(), "nothing started: {out:?}");
}

#[test]
fn maintenance_starts_nothing_but_a_lost_lease_still_releases() {
    let mut st = owned_state();
    st.apply(&Command::Maintenance { on: true }).unwrap();
    let mut a = Node::new(topo(), 0, st, Persisted::default(), 1, ms(0));
    let seq = sends(&a.handle(ms(0), Input::Tick))[0].seq;
    let hb = Heartbeat { from: 1, epoch: 0, seq: 9, echoes: vec![Echo { to: 0, epoch: 0, seq }] };
    let out = a.handle(ms(10), Input::Heartbeat { link: 0, heartbeat: hb });
    assert!(acts(&out).is_empty(), "in maintenance mode the owner starts nothing: {out:?}");
    let out = a.handle(ms(20), Input::Committed(Command::Maintenance { on: false }));
    let [Action::Run { token, step: Step::Hook(HookKind::Test), .. }] = acts(&out)[..] else { panic!("{out:?}") };
    // Back in maintenance with the start under way: the lease still rules.
    a.handle(ms(30), Input::Committed(Command::Maintenance { on: true }));
    let out = a.handle(ms(40), Input::StepDone { set: 0, token, ok: true });
    let [Action::Run { token, .. }] = acts(&out)[..] else { panic!("the start goes on: {out:?}") };
    let out = a.handle(ms(700), Input::Tick);
    assert!(out.contains(&Output::Event(Event::LeaseLost)));
    let out = a.handle(ms(710), Input::StepDone { set: 0, token, ok: true });
    assert_eq!(
        acts(&out),
        vec![Action::Run {
            set: 0,
            token: token + 1,
            step: Step::Hook(HookKind::PreRel),
            timeout: Duration::from_secs(1)
        }],
        "a node without a lease releases even in maintenance mode"
    );
}

#[test]
fn a_restarted_agent_runs_nothing_until_its_new_incarnation_has_joined() {
    let mut a = Node::new(topo(), 0, owned_state(), Persisted::default(), 2, ms(0));
    let out = a.handle(ms(0), Input::Tick);
    assert!(out.contains(&Output::Propose(Command::Join { node: 0, epoch: 0, incarnation: 2 })));
    let seq = sends(&out)[0].seq;
    let hb = Heartbeat { from: 1, epoch: 0, seq: 9, echoes: vec![Echo { to: 0, epoch: 0, seq }] };
    let out = a.handle(ms(10), Input::Heartbeat { link: 0, heartbeat: hb });
    assert!(a.lease_expiry().is_some(), "the voters still promise its epoch a lease");
    assert!(acts(&out).is_empty(), "but the set waits for the agreed join: {out:?}");
    let out = a.handle(ms(20), Input::Committed(Command::Join { node: 0, epoch: 0, incarnation: 2 }));
    assert!(matches!(acts(&out)[..], [Action::Run { step: Step::Hook(HookKind::Test), .. }]), "{out:?}");
}
