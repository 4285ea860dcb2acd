use std::time::Duration;

use baton_state::{ClusterState, Command, Exclusion};

use super::*;
use crate::lifecycle::{HookKind, Step};
use crate::requests::{self, Refusal, Reply, Request};
use crate::topology::{Failback, NodeSpec, ResourceSpec, SetSpec};

fn ms(ms: u64) -> Time {
    Time(ms * 1000)
}

/// a, b and the witness w; one set of one resource preferring a then b.
fn topo() -> Topology {
    let node = |name: &str, witness| NodeSpec { name: name.into(), witness, links: 2, retired: false };
    Topology {
        nodes: vec![node("a", false), node("b", false), node("w", true)],
        links: 2,
        sets: vec![SetSpec {
            name: "web".into(),
            nodes: vec![0, 1],
            failback: Failback::Never,
            max_restarts: 1,
            restart_window: Duration::from_secs(60),
            failure_timeout: None,
            resources: vec![ResourceSpec {
                label: "ip".into(),
                start_timeout: Duration::from_secs(1),
                stop_timeout: Duration::from_secs(1),
                monitor_interval: Some(Duration::from_secs(1)),
                monitor_timeout: Duration::from_secs(1),
                address: true,
            }],
            hook_timeout: Duration::from_secs(1),
            definition: String::new(),
        }],
        timing: crate::topology::test_timing(),
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

/// A heartbeat from `from` (epoch 0, sequence `seq`) that echoes node 0's
/// heartbeat `echoed`: a promise, from a baton that says nothing more.
fn echo(from: NodeId, seq: u64, echoed: u64) -> Heartbeat {
    Heartbeat { echoes: vec![Echo { to: 0, epoch: 0, seq: echoed }], ..silent(from, 0, seq) }
}

/// A heartbeat from `from` in `epoch` that echoes nothing.
fn silent(from: NodeId, epoch: u64, seq: u64) -> Heartbeat {
    Heartbeat { from, epoch, seq, echoes: vec![], promise: None, members: None, direct: false, released: vec![] }
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
            Output::Propose(Command::Join { node: 1, epoch: 0, incarnation: 5 }),
            Output::Send(Heartbeat {
                from: 1,
                epoch: 0,
                seq: 5 << 32,
                echoes: vec![],
                promise: Some(Duration::from_secs(1)),
                members: Some(0),
                direct: true,
                released: vec![],
            }),
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
    let hb = echo(1, 9, seq);
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

/// Node a with the lease until 1 s (b echoed its first heartbeat at 20 ms)
/// and web starting: its first step done at 30 ms.
fn starting_a() -> Node {
    let mut a = Node::new(topo(), 0, owned_state(), Persisted::default(), 1, ms(0));
    let seq = sends(&a.handle(ms(0), Input::Tick))[0].seq;
    let hb = echo(1, 9, seq);
    a.handle(ms(20), Input::Heartbeat { link: 0, heartbeat: hb });
    a.handle(ms(30), Input::StepDone { set: 0, token: 1, ok: true });
    a
}

#[test]
fn a_node_that_wakes_past_its_lease_runs_no_step_until_the_guard_reports() {
    let mut a = starting_a();
    assert_eq!(a.lifecycle(0).phase(), Phase::Starting);
    // Paused from 30 ms to 1.5 s: the lease ended at 1 s, and the guard fired.
    let out = a.handle(ms(1500), Input::StepDone { set: 0, token: 2, ok: true });
    assert!(out.contains(&Output::Event(Event::LeaseLost)));
    assert!(acts(&out).is_empty(), "no stop step or hook past the lease: {out:?}");
    let out = a.handle(ms(1510), Input::Tick);
    assert!(acts(&out).is_empty(), "still nothing before the guard's report: {out:?}");
    let out = a.handle(ms(1520), Input::GuardFired { deadline: ms(1000) });
    assert!(out.contains(&Output::Event(Event::GuardFired)));
    assert!(acts(&out).is_empty(), "{out:?}");
    assert_eq!(a.lifecycle(0).phase(), Phase::Stopped, "the guard undid it all");
}

#[test]
fn a_voter_denies_before_it_suspects_and_echoes_nothing_after() {
    let mut b = Node::new(topo(), 1, owned_state(), Persisted::default(), 1, ms(0));
    let hb = silent(0, 0, 40);
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
    let stale = silent(0, 0, 7);
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
    let hb = echo(1, 9, seq);
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
    let hb = echo(1, 10, seq);
    let out = b.handle(ms(110), Input::Heartbeat { link: 0, heartbeat: hb });
    assert!(acts(&out).is_empty(), "nothing started: {out:?}");
}

#[test]
fn maintenance_starts_nothing_but_a_lost_lease_still_releases() {
    let mut st = owned_state();
    st.apply(&Command::Maintenance { on: true }).unwrap();
    let mut a = Node::new(topo(), 0, st, Persisted::default(), 1, ms(0));
    let seq = sends(&a.handle(ms(0), Input::Tick))[0].seq;
    let hb = echo(1, 9, seq);
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
    let hb = echo(1, 9, seq);
    let out = a.handle(ms(10), Input::Heartbeat { link: 0, heartbeat: hb });
    assert!(a.lease_expiry().is_some(), "the voters still promise its epoch a lease");
    assert!(acts(&out).is_empty(), "but the set waits for the agreed join: {out:?}");
    let out = a.handle(ms(20), Input::Committed(Command::Join { node: 0, epoch: 0, incarnation: 2 }));
    assert!(matches!(acts(&out)[..], [Action::Run { step: Step::Hook(HookKind::Test), .. }]), "{out:?}");
}

fn replies(out: &[Output]) -> Vec<(u64, Reply)> {
    out.iter()
        .filter_map(|o| if let Output::Reply { id, reply } = o { Some((*id, reply.clone())) } else { None })
        .collect()
}

fn proposals(out: &[Output]) -> Vec<Command> {
    out.iter().filter_map(|o| if let Output::Propose(c) = o { Some(c.clone()) } else { None }).collect()
}

#[test]
fn a_request_is_refused_at_once_or_proposed_until_agreed_then_answered() {
    let mut st = owned_state();
    st.apply(&Command::Maintenance { on: true }).unwrap();
    let mut b = Node::new(topo(), 1, st, Persisted::default(), 1, ms(0));
    let out = b.handle(ms(0), Input::Request { id: 7, request: Request::Move { set: 0, to: Some(1) } });
    assert_eq!(replies(&out), [(7, Reply::Refused(Refusal::Maintenance))]);
    let out = b.handle(ms(10), Input::Request { id: 8, request: Request::Maintenance { on: false } });
    assert!(replies(&out).is_empty(), "answered only once agreed");
    assert!(proposals(&out).contains(&Command::Maintenance { on: false }));
    // Lost? Proposed again after the retry interval.
    let out = b.handle(ms(500), Input::Tick);
    assert!(proposals(&out).contains(&Command::Maintenance { on: false }), "{out:?}");
    let out = b.handle(ms(600), Input::Committed(Command::Maintenance { on: false }));
    assert_eq!(replies(&out), [(8, Reply::Done)]);
    // A request the cluster cannot agree on is answered as failed in time.
    b.handle(ms(700), Input::Request { id: 9, request: Request::Freeze { set: 0, frozen: true } });
    let out = b.handle(ms(700) + requests::AGREE_WAIT, Input::Tick);
    assert!(matches!(&replies(&out)[..], [(9, Reply::Failed(_))]), "{out:?}");
}

#[test]
fn a_stopping_agent_leaves_then_exits_once_its_node_is_empty() {
    let mut w = Node::new(topo(), 1, ClusterState::new(3, 1), Persisted::default(), 1, ms(0));
    w.handle(ms(0), Input::Committed(Command::Join { node: 1, epoch: 0, incarnation: 1 }));
    let out = w.handle(ms(10), Input::Shutdown);
    assert!(proposals(&out).contains(&Command::Leave { node: 1 }));
    assert!(!out.contains(&Output::Exit), "it stays a lease, for the standbys of its peers");
    let out = w.handle(ms(20), Input::Committed(Command::Leave { node: 1 }));
    assert!(!out.contains(&Output::Exit));
    // Without a lease it can agree nothing more; it runs nothing: it goes.
    let out = w.handle(ms(1100), Input::Tick);
    assert!(out.contains(&Output::Exit), "{out:?}");
    assert!(!w.handle(ms(1200), Input::Tick).contains(&Output::Exit), "once");
    // Its next incarnation asks to be back.
    let mut st = ClusterState::new(3, 1);
    st.apply(&Command::Join { node: 1, epoch: 0, incarnation: 1 }).unwrap();
    st.apply(&Command::Leave { node: 1 }).unwrap();
    let mut again = Node::new(topo(), 1, st, Persisted::default(), 2, ms(0));
    assert!(proposals(&again.handle(ms(0), Input::Tick)).contains(&Command::Back { node: 1 }));
}

/// Node a holding the lock "cron" (token 1), with a lease until 1000 ms
/// from b's echo at 10 ms.
fn lock_holder() -> Node {
    let mut st = owned_state();
    st.apply(&Command::Lock { name: "cron".into(), node: 0, epoch: 0 }).unwrap();
    let mut a = Node::new(topo(), 0, st, Persisted::default(), 1, ms(0));
    let seq = sends(&a.handle(ms(0), Input::Tick))[0].seq;
    let hb = echo(1, 9, seq);
    a.handle(ms(10), Input::Heartbeat { link: 0, heartbeat: hb });
    a
}

#[test]
fn a_lock_is_valid_while_a_third_of_the_lease_is_left() {
    let mut a = lock_holder();
    let ask = |a: &mut Node, at| {
        replies(&a.handle(at, Input::Request { id: 1, request: Request::LockState { name: "cron".into() } }))
    };
    // The lease ends at 1000 ms; a third of it (333 ms) is kept back.
    let [(1, Reply::LockState { holder: Some(0), token: Some(1), valid: true, valid_for })] = ask(&mut a, ms(100))[..]
    else {
        panic!()
    };
    assert_eq!(valid_for, Duration::from_millis(900) - Duration::from_millis(1000) / 3);
    let [(1, Reply::LockState { valid: false, .. })] = ask(&mut a, ms(700))[..] else { panic!() };
}

#[test]
fn a_confirmed_fence_is_proposed_and_a_failed_one_told() {
    let mut b = Node::new(topo(), 1, owned_state(), Persisted::default(), 1, ms(0));
    let fenced = Command::Fenced { node: 0, epoch: 0, incarnation: 1 };
    let out = b.handle(ms(0), Input::FenceDone { node: 0, epoch: 0, incarnation: 1, result: Ok(()) });
    assert!(proposals(&out).contains(&fenced));
    let out = b.handle(ms(0), Input::FenceDone { node: 0, epoch: 0, incarnation: 1, result: Err("no".into()) });
    assert!(out.contains(&Output::Event(Event::FenceFailed { node: 0, why: "no".into() })));
}

#[test]
fn the_leader_lets_an_exclusion_lapse_after_the_failure_timeout() {
    let mut t = topo();
    t.sets[0].failure_timeout = Some(Duration::from_secs(10));
    let mut st = owned_state();
    let failed = Command::StartFailed { set: 0, node: 0, generation: 1, exclusion: Exclusion::Failed };
    st.apply(&failed).unwrap();
    let expire = Command::Expire { set: 0, node: 0, since: 1 };
    let mut b = Node::new(t.clone(), 1, st.clone(), Persisted::default(), 1, ms(0));
    b.handle(ms(0), Input::Leader(true));
    let out = b.handle(ms(9_000), Input::Tick);
    assert!(!proposals(&out).contains(&expire), "not yet: {out:?}");
    let out = b.handle(ms(10_000), Input::Tick);
    assert!(proposals(&out).contains(&expire), "{out:?}");
    // Only the leader times it; a node that is not one proposes nothing.
    let mut c = Node::new(t, 1, st, Persisted::default(), 1, ms(0));
    let out = c.handle(ms(20_000), Input::Tick);
    assert!(!proposals(&out).contains(&expire));
}

/// Seed 6184: a second `baton lock` on the holding node, asked while the
/// first one's unlock was being agreed, must not be answered with its grant.
#[test]
fn a_lock_asked_on_its_holder_waits_for_a_grant_of_its_own() {
    let mut a = lock_holder();
    let lock = Request::Lock { name: "cron".into(), wait: Duration::from_secs(5) };
    let out = a.handle(ms(20), Input::Request { id: 2, request: lock });
    assert!(replies(&out).is_empty(), "token 1 is the first holder's: {out:?}");
    let out = a.handle(ms(30), Input::Committed(Command::Unlock { name: "cron".into(), node: 0, token: 1 }));
    assert!(proposals(&out).contains(&Command::Lock { name: "cron".into(), node: 0, epoch: 0 }), "{out:?}");
    let out = a.handle(ms(40), Input::Committed(Command::Lock { name: "cron".into(), node: 0, epoch: 0 }));
    assert!(matches!(replies(&out)[..], [(2, Reply::Locked { token: 2, .. })]), "{out:?}");
}

#[test]
fn a_joined_node_has_its_configuration_digest_agreed_once() {
    let mut b = Node::new(topo(), 1, owned_state(), Persisted::default(), 1, ms(0));
    let out = b.handle(ms(0), Input::ConfigDigest("ab12".into()));
    let said = Command::Config { node: 1, digest: "ab12".into() };
    assert!(proposals(&out).contains(&said), "{out:?}");
    let out = b.handle(ms(10), Input::Committed(said));
    assert!(!proposals(&out).iter().any(|c| matches!(c, Command::Config { .. })), "agreed: nothing more to say");
    assert!(!b.state().config_drift());
    let out = b.handle(ms(20), Input::Committed(Command::Config { node: 0, digest: "cd34".into() }));
    assert!(b.state().config_drift(), "a and b run different files");
    assert!(!proposals(&out).iter().any(|c| matches!(c, Command::Config { .. })));
}

/// a and b, no witness, a fence device for each: two-node mode.
fn pair_topo() -> Topology {
    let mut t = topo();
    t.nodes.truncate(2);
    t.fenceable = vec![true; 2];
    t
}

/// Both joined in incarnation 1, the set owned by b.
fn pair_state() -> ClusterState {
    let mut st = ClusterState::new(2, 1);
    for node in 0..2 {
        st.apply(&Command::Join { node, epoch: 0, incarnation: 1 }).unwrap();
    }
    st.apply(&Command::Assign { set: 0, node: 1, generation: 0 }).unwrap();
    st
}

#[test]
fn in_two_node_mode_a_node_fences_its_silent_peer_then_goes_on_alone_until_the_peer_votes_again() {
    let mut a = Node::new(pair_topo(), 0, pair_state(), Persisted::default(), 1, ms(0));
    a.handle(ms(0), Input::Voters(vec![0, 1]));
    let out = a.handle(ms(500), Input::Tick);
    assert!(!out.iter().any(|o| matches!(o, Output::Fence { .. })), "not silent for a lease yet: {out:?}");
    let out = a.handle(ms(1100), Input::Tick);
    assert!(out.contains(&Output::Fence { node: 1, epoch: 0, incarnation: 1 }), "{out:?}");
    assert_eq!(a.lease_expiry(), None, "without its peer's echo a node has no lease");
    let out = a.handle(ms(1400), Input::FenceDone { node: 1, epoch: 0, incarnation: 1, result: Ok(()) });
    assert!(out.contains(&Output::Alone), "confirmed off: only then the only voter: {out:?}");
    assert!(proposals(&out).contains(&Command::Fenced { node: 1, epoch: 0, incarnation: 1 }));
    a.handle(ms(1410), Input::Voters(vec![0]));
    a.handle(ms(1420), Input::Leader(true));
    let out = a.handle(ms(1430), Input::Committed(Command::Fenced { node: 1, epoch: 0, incarnation: 1 }));
    assert!(proposals(&out).contains(&Command::Alone { node: 0 }), "{out:?}");
    assert_eq!(a.lease_expiry(), None, "no lease of its own before `Alone` is agreed");
    a.handle(ms(1440), Input::Committed(Command::Alone { node: 0 }));
    assert!(a.lease_expiry().is_some_and(|end| end > ms(1440)), "alone, a holds its own lease");
    let out = a.handle(ms(1450), Input::Committed(Command::Assign { set: 0, node: 0, generation: 2 }));
    assert!(!acts(&out).is_empty(), "alone, a runs b's set: {out:?}");
    // b is back, empty: a takes it back into the agreement layer.
    let hb = silent(1, 1, 1 << 32);
    let mut out = a.handle(ms(3000), Input::Heartbeat { link: 0, heartbeat: hb.clone() });
    out.extend(a.handle(ms(3000), Input::Heartbeat { link: 1, heartbeat: hb }));
    assert!(out.contains(&Output::Readmit { node: 1 }), "{out:?}");
    let out = a.handle(ms(3500), Input::Voters(vec![0, 1]));
    assert!(proposals(&out).contains(&Command::Together), "{out:?}");
    let out = a.handle(ms(3600), Input::Committed(Command::Together));
    assert!(out.contains(&Output::Together), "the record of who went on alone is cleared: {out:?}");
    assert_eq!(a.state().alone, None);
    assert_eq!(a.lease_expiry(), None, "both vote again: the lease needs b's echo again");
}

#[test]
fn in_two_node_mode_a_node_that_has_not_joined_waits_for_its_peer_instead_of_fencing_it() {
    // Incarnation 2 boots; the agreed state knows incarnation 1 only. Its
    // peer may have fenced it and gone on alone while it was off.
    let mut a = Node::new(pair_topo(), 0, pair_state(), Persisted::default(), 2, ms(0));
    a.handle(ms(0), Input::Voters(vec![0, 1]));
    for t in [1100, 3000, 10_000] {
        let out = a.handle(ms(t), Input::Tick);
        assert!(!out.iter().any(|o| matches!(o, Output::Fence { .. })), "at {t} ms: {out:?}");
    }
    // A node left out of the voters never fences to go on alone either.
    let mut a = Node::new(pair_topo(), 0, pair_state(), Persisted::default(), 1, ms(0));
    a.handle(ms(0), Input::Voters(vec![1]));
    let out = a.handle(ms(1100), Input::Tick);
    assert!(!out.iter().any(|o| matches!(o, Output::Fence { .. })), "{out:?}");
}

#[test]
fn a_node_that_went_on_alone_and_restarted_ends_the_mode_once_its_peer_votes_again() {
    // b went on alone (a fenced), then b's agent restarted: the only voter
    // by its own log, it never forced in this incarnation.
    let mut st = pair_state();
    st.apply(&Command::Fenced { node: 0, epoch: 0, incarnation: 1 }).unwrap();
    st.apply(&Command::Alone { node: 1 }).unwrap();
    let mut b = Node::new(pair_topo(), 1, st, Persisted::default(), 2, ms(0));
    b.handle(ms(0), Input::Voters(vec![1]));
    b.handle(ms(10), Input::Leader(true));
    b.handle(ms(20), Input::Committed(Command::Join { node: 1, epoch: 0, incarnation: 2 }));
    let hb = silent(0, 1, 2 << 32);
    let mut out = b.handle(ms(300), Input::Heartbeat { link: 0, heartbeat: hb.clone() });
    out.extend(b.handle(ms(300), Input::Heartbeat { link: 1, heartbeat: hb }));
    assert!(out.contains(&Output::Readmit { node: 0 }), "{out:?}");
    let out = b.handle(ms(800), Input::Voters(vec![0, 1]));
    assert!(proposals(&out).contains(&Command::Together), "{out:?}");
    let out = b.handle(ms(900), Input::Committed(Command::Together));
    assert!(out.contains(&Output::Together), "{out:?}");
}

#[test]
fn with_a_fence_disk_a_node_booting_alone_fences_its_peer_after_the_startup_wait_unless_the_peer_went_on_alone() {
    let mut topo = pair_topo();
    topo.timing.startup_fence = Some(Duration::from_secs(5));
    let fences = |out: &[Output]| out.iter().any(|o| matches!(o, Output::Fence { .. }));
    // (what the disk's record said, whether the node may boot alone)
    for (record, boots_alone) in [(Some(None), true), (Some(Some(0)), true), (Some(Some(1)), false), (None, false)] {
        let mut a = Node::new(topo.clone(), 0, pair_state(), Persisted::default(), 2, ms(0));
        if let Some(holder) = record {
            a.handle(ms(0), Input::AloneRecord { holder });
        }
        a.handle(ms(0), Input::Voters(vec![0, 1]));
        for t in [1100, 3000, 4900] {
            assert!(!fences(&a.handle(ms(t), Input::Tick)), "{record:?}: still waiting at {t} ms");
        }
        let out = a.handle(ms(5100), Input::Tick);
        assert_eq!(fences(&out), boots_alone, "{record:?}: {out:?}");
        if boots_alone {
            assert!(out.contains(&Output::Fence { node: 1, epoch: 0, incarnation: 1 }), "{out:?}");
            let out = a.handle(ms(7200), Input::FenceDone { node: 1, epoch: 0, incarnation: 1, result: Ok(()) });
            assert!(out.contains(&Output::ReadAloneRecord), "the record is read again first: {out:?}");
            assert!(!out.contains(&Output::Alone), "{out:?}");
            let out = a.handle(ms(7210), Input::AloneRecord { holder: record.flatten() });
            assert!(out.contains(&Output::Alone), "{record:?}: {out:?}");
        } else {
            let out = a.handle(ms(7200), Input::FenceDone { node: 1, epoch: 0, incarnation: 1, result: Ok(()) });
            assert!(!out.contains(&Output::Alone), "{record:?}: a confirmation alone is not enough: {out:?}");
        }
    }
    // The peer went on alone after the record was read at start (on a
    // confirmation of this node's last incarnation): read again once the
    // peer is confirmed off, the record names it and this node waits.
    let mut a = Node::new(topo.clone(), 0, pair_state(), Persisted::default(), 2, ms(0));
    a.handle(ms(0), Input::AloneRecord { holder: None });
    a.handle(ms(0), Input::Voters(vec![0, 1]));
    assert!(fences(&a.handle(ms(5100), Input::Tick)));
    a.handle(ms(7200), Input::FenceDone { node: 1, epoch: 0, incarnation: 1, result: Ok(()) });
    let out = a.handle(ms(7210), Input::AloneRecord { holder: Some(1) });
    assert!(!out.contains(&Output::Alone), "{out:?}");
    assert!(!a.handle(ms(20_000), Input::Tick).contains(&Output::Alone));
    // Without a fence disk's record (a power fence) a lone boot waits.
    let mut a = Node::new(pair_topo(), 0, pair_state(), Persisted::default(), 2, ms(0));
    a.handle(ms(0), Input::AloneRecord { holder: None });
    a.handle(ms(0), Input::Voters(vec![0, 1]));
    assert!(!fences(&a.handle(ms(60_000), Input::Tick)));
}

#[test]
fn an_operator_lets_a_node_go_on_alone_only_in_two_node_mode_and_with_its_peer_silent() {
    let ask = |n: &mut Node, t: u64| n.handle(ms(t), Input::Request { id: 7, request: Request::Alone });
    let mut three = Node::new(topo(), 0, owned_state(), Persisted::default(), 1, ms(0));
    assert!(ask(&mut three, 0).contains(&Output::Reply { id: 7, reply: Reply::Refused(Refusal::NotPair) }));
    // Incarnation 2 has not joined: on its own it would wait for b forever.
    let mut a = Node::new(pair_topo(), 0, pair_state(), Persisted::default(), 2, ms(0));
    a.handle(ms(0), Input::Voters(vec![0, 1]));
    let hb = silent(1, 0, 1 << 32);
    a.handle(ms(10), Input::Heartbeat { link: 0, heartbeat: hb });
    let refused = Reply::Refused(Refusal::PeerAlive { node: 1 });
    assert!(ask(&mut a, 20).contains(&Output::Reply { id: 7, reply: refused }), "b is heard: it is not off");
    a.handle(ms(1400), Input::Tick);
    let mut out = ask(&mut a, 1500);
    assert!(out.contains(&Output::Alone), "b silent: a becomes the only voter on the operator's word: {out:?}");
    out.extend(a.handle(ms(1510), Input::Voters(vec![0])));
    out.extend(a.handle(ms(1520), Input::Committed(Command::Join { node: 0, epoch: 0, incarnation: 2 })));
    assert!(proposals(&out).contains(&Command::Fenced { node: 1, epoch: 0, incarnation: 1 }), "{out:?}");
    a.handle(ms(1540), Input::Committed(Command::Fenced { node: 1, epoch: 0, incarnation: 1 }));
    let out = a.handle(ms(1550), Input::Committed(Command::Alone { node: 0 }));
    assert!(out.contains(&Output::Reply { id: 7, reply: Reply::Done }), "{out:?}");
}

/// Two nodes whose stops failed: the leader, one of them, fences the other
/// first and itself only once that fence is done — gone down by its own
/// fence it could count none (simulator seed 60512).
#[test]
fn a_leader_fences_itself_only_once_no_other_fence_is_under_way() {
    let mut t = topo();
    t.fenceable = vec![true, true, false];
    let mut db = t.sets[0].clone();
    (db.name, db.nodes) = ("db".into(), vec![1, 0]);
    t.sets.push(db);
    let mut st = ClusterState::new(3, 2);
    for node in 0..3 {
        st.apply(&Command::Join { node, epoch: 0, incarnation: 1 }).unwrap();
    }
    for (set, node) in [(0, 0), (1, 1)] {
        st.apply(&Command::Assign { set, node, generation: 0 }).unwrap();
        st.apply(&Command::StopFailed { set, node, generation: 1 }).unwrap();
    }
    let mut a = Node::new(t, 0, st, Persisted::default(), 1, ms(0));
    let fences = |out: &[Output]| -> Vec<NodeId> {
        out.iter().filter_map(|o| if let Output::Fence { node, .. } = o { Some(*node) } else { None }).collect()
    };
    let out = a.handle(ms(0), Input::Leader(true));
    assert_eq!(fences(&out), [1], "the other first: {out:?}");
    let out = a.handle(ms(200), Input::Tick);
    assert!(fences(&out).is_empty(), "not itself while b's fence is under way: {out:?}");
    a.handle(ms(300), Input::FenceDone { node: 1, epoch: 0, incarnation: 1, result: Ok(()) });
    let out = a.handle(ms(300), Input::Committed(Command::Fenced { node: 1, epoch: 0, incarnation: 1 }));
    assert_eq!(fences(&out), [0], "b is fenced: then itself: {out:?}");
}

#[test]
fn a_node_whose_guard_found_a_pill_confirms_its_own_fence_before_it_joins() {
    let mut t = topo();
    t.fenceable = vec![true, true, false];
    let mut st = owned_state();
    st.apply(&Command::StopFailed { set: 0, node: 0, generation: 1 }).unwrap();
    let mut a = Node::new(t, 0, st, Persisted::default(), 2, ms(0));
    a.pill_found();
    let out = a.handle(ms(0), Input::Tick);
    let fenced = Command::Fenced { node: 0, epoch: 0, incarnation: 1 };
    assert_eq!(proposals(&out), std::slice::from_ref(&fenced), "its own fence first, no join yet: {out:?}");
    let out = a.handle(ms(10), Input::Committed(fenced));
    assert_eq!(a.state().set(0).blocked, None, "web is no longer blocked on it");
    assert!(
        proposals(&out).contains(&Command::Join { node: 0, epoch: 1, incarnation: 2 }),
        "then it joins, in its new epoch: {out:?}"
    );
}

#[test]
fn a_node_that_found_no_pill_joins_at_once_and_leaves_its_blocked_set_to_a_fence() {
    let mut st = owned_state();
    st.apply(&Command::StopFailed { set: 0, node: 0, generation: 1 }).unwrap();
    let mut a = Node::new(topo(), 0, st, Persisted::default(), 2, ms(0));
    let out = a.handle(ms(0), Input::Tick);
    assert_eq!(proposals(&out), [Command::Join { node: 0, epoch: 0, incarnation: 2 }], "{out:?}");
}

/// Node a with the lease (b echoed its first heartbeat) and web running.
fn running_a() -> (Node, Time) {
    let mut a = Node::new(topo(), 0, owned_state(), Persisted::default(), 1, ms(0));
    let seq = sends(&a.handle(ms(0), Input::Tick))[0].seq;
    let hb = echo(1, 9, seq);
    a.handle(ms(10), Input::Heartbeat { link: 0, heartbeat: hb });
    for token in 1..=4 {
        a.handle(ms(10 + token), Input::StepDone { set: 0, token, ok: true });
    }
    assert_eq!(a.lifecycle(0).phase(), Phase::Running);
    (a, ms(20))
}

fn handed_over(out: &[Output]) -> Option<&Handover> {
    out.iter().find_map(|o| match o {
        Output::Reply { reply: Reply::HandedOver(h), .. } => Some(h),
        _ => None,
    })
}

#[test]
fn a_handover_leaves_the_set_running_and_the_next_program_keeps_the_lease_and_the_sequence() {
    let (mut a, now) = running_a();
    let out = a.handle(now, Input::Request { id: 7, request: Request::Handover });
    let h = handed_over(&out).expect("a settled owner hands over").clone();
    assert_eq!(h.running, vec![(0, a.state().set(0).generation)]);
    assert_eq!((h.incarnation, h.epoch, h.lease_end), (1, 0, Some(ms(1000))));
    assert!(acts(&out).iter().all(|a| matches!(a, Action::Monitor { .. })), "nothing stops: {out:?}");
    assert!(a.handle(ms(30), Input::Tick).is_empty(), "the old program does nothing more");

    let mut b = Node::resume(topo(), 0, a.state().clone(), Persisted::default(), &h, ms(40));
    let out = b.handle(ms(40), Input::Tick);
    assert_eq!(b.lifecycle(0).phase(), Phase::Running);
    assert_eq!(
        acts(&out),
        vec![Action::Monitor { set: 0, token: 1, resource: 0, timeout: Duration::from_secs(1) }],
        "no start step, a monitor at once"
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Guard(_))), "the guard keeps the deadline it has: {out:?}");
    assert!(!out.iter().any(|o| matches!(o, Output::Propose(Command::Join { .. }))), "the same incarnation");
    let seq = sends(&out)[0].seq;
    assert_eq!(seq, h.next_seq, "the sequence goes on from where the old program stopped");
    // b's echo of the new heartbeat earns a later lease, told to the guard.
    let hb = echo(1, 10, seq);
    let out = b.handle(ms(50), Input::Heartbeat { link: 0, heartbeat: hb });
    assert!(out.contains(&Output::Guard(Some(ms(1040)))), "{out:?}");
}

#[test]
fn a_program_handed_over_to_that_earns_no_lease_stops_when_the_inherited_one_ends() {
    let (mut a, now) = running_a();
    let h = handed_over(&a.handle(now, Input::Request { id: 1, request: Request::Handover })).unwrap().clone();
    let mut b = Node::resume(topo(), 0, a.state().clone(), Persisted::default(), &h, ms(40));
    b.handle(ms(40), Input::Tick);
    let out = b.handle(ms(700), Input::Tick);
    assert!(out.contains(&Output::Event(Event::LeaseLost)), "{out:?}");
    assert_eq!(b.lifecycle(0).phase(), Phase::Stopping, "released before the guard has to");
}

#[test]
fn a_handover_waits_for_a_settled_node() {
    // Starting: the set is in the middle of its start steps.
    let mut a = Node::new(topo(), 0, owned_state(), Persisted::default(), 1, ms(0));
    let seq = sends(&a.handle(ms(0), Input::Tick))[0].seq;
    let hb = echo(1, 9, seq);
    a.handle(ms(10), Input::Heartbeat { link: 0, heartbeat: hb });
    let out = a.handle(ms(11), Input::Request { id: 1, request: Request::Handover });
    assert!(out.contains(&Output::Reply { id: 1, reply: Reply::Refused(Refusal::Unsettled { set: 0 }) }));
    // Stopping (SIGTERM): refused, and the node goes on as before.
    let (mut a, now) = running_a();
    a.handle(now, Input::Shutdown);
    let out = a.handle(now, Input::Request { id: 2, request: Request::Handover });
    assert!(out.contains(&Output::Reply { id: 2, reply: Reply::Refused(Refusal::NoHandover("the agent is stopping")) }));
    assert!(!sends(&a.handle(ms(100), Input::Tick)).is_empty(), "a refused handover changes nothing");
}

/// A configuration change agreed while web runs on a: web's definition
/// changed, so its slot is retired and a new one added. a keeps the
/// retired set until the cluster asks for it (it may not hand over
/// meanwhile), stops it with its old steps, and the new slot waits.
#[test]
fn an_agreed_change_retires_a_running_set_which_stops_with_its_old_definition() {
    let (mut a, now) = running_a();
    let mut changed = topo().sets[0].clone();
    changed.definition = "v2".into();
    let mut retired = topo().sets[0].clone();
    retired.nodes.clear();
    let configure = Command::Configure {
        generation: 1,
        digest: "d1".into(),
        text: String::new(),
        sets: vec![retired, changed],
        guard_margin: Duration::ZERO,
        timing: None,
        nodes: None,
    };
    a.handle(now, Input::Committed(configure));
    assert_eq!((a.topology().sets.len(), a.lifecycle(1).phase()), (2, Phase::Stopped), "a new slot, stopped");
    assert_eq!(a.lifecycle(0).phase(), Phase::Running, "nothing stops before the cluster asks");
    let out = a.handle(ms(30), Input::Request { id: 3, request: Request::Handover });
    assert!(out.contains(&Output::Reply { id: 3, reply: Reply::Refused(Refusal::Unsettled { set: 0 }) }), "{out:?}");
    let out = a.handle(ms(31), Input::Request { id: 4, request: Request::Move { set: 0, to: Some(1) } });
    assert!(out.contains(&Output::Reply { id: 4, reply: Reply::Refused(Refusal::Retired { set: 0 }) }), "{out:?}");
    let generation = a.state().set(0).generation;
    let out =
        a.handle(ms(32), Input::Committed(Command::Move { set: 0, from: 0, to: None, generation, direct: false }));
    assert_eq!(a.lifecycle(0).phase(), Phase::Stopping, "{out:?}");
    assert!(acts(&out).iter().any(|x| matches!(x, Action::Run { set: 0, .. })), "its stop steps run: {out:?}");
}

/// A change whose resources need a longer release (a mount added to a
/// cluster of addresses) shortens the lease the owner already holds, at
/// once: the guard is told an earlier deadline before anything of the new
/// file can start, and the agreed budget never shrinks again.
#[test]
fn an_agreed_change_with_a_larger_release_budget_shortens_the_lease_held() {
    let (mut a, now) = running_a();
    let mut sets = topo().sets;
    sets.push(SetSpec { name: "data".into(), ..sets[0].clone() });
    let configure = |generation: u64, margin: u64| Command::Configure {
        generation,
        digest: format!("d{generation}"),
        text: String::new(),
        sets: sets.clone(),
        guard_margin: Duration::from_millis(margin),
        timing: None,
        nodes: None,
    };
    let out = a.handle(now, Input::Committed(configure(1, 300)));
    assert!(out.contains(&Output::Guard(Some(ms(700)))), "the deadline 300 ms earlier: {out:?}");
    assert_eq!(a.topology().timing.guard_margin, Duration::from_millis(300));
    let out = a.handle(ms(21), Input::Committed(configure(2, 100)));
    assert!(!out.iter().any(|o| matches!(o, Output::Guard(_))), "a smaller budget changes nothing: {out:?}");
    assert_eq!(a.topology().timing.guard_margin, Duration::from_millis(300));
}

/// A lease shortened live (1 s to 400 ms, heartbeats every 50 ms): the
/// node's next heartbeat says it promises 400 ms, a promise it gave before
/// is kept (b, last heard at 10 ms, is not suspected at 500 ms), and a
/// promise from a voter that has not switched yet counts for the second it
/// still promises.
#[test]
fn a_lease_changed_live_is_promised_from_the_next_heartbeat_and_no_promise_is_taken_back() {
    let (mut a, now) = running_a();
    let timing = baton_state::AgreedTiming {
        heartbeat_interval: Duration::from_millis(50),
        lease: Duration::from_millis(400),
        startup_fence: None,
    };
    let configure = Command::Configure {
        generation: 1,
        digest: "d1".into(),
        text: String::new(),
        sets: topo().sets,
        guard_margin: Duration::ZERO,
        timing: Some(timing),
        nodes: None,
    };
    a.handle(now, Input::Committed(configure));
    assert_eq!(a.topology().timing.lease, Duration::from_millis(400));
    let out = a.handle(ms(70), Input::Tick);
    assert_eq!(sends(&out)[0].promise, Some(Duration::from_millis(400)), "sent 50 ms after the change: {out:?}");
    a.handle(ms(500), Input::Tick);
    assert!(!a.detector().is_dead(1), "b was promised a second at 10 ms, before the change");
    let seq = sends(&a.handle(ms(800), Input::Tick))[0].seq;
    let hb = Heartbeat {
        from: 1,
        epoch: 0,
        seq: 10,
        echoes: vec![Echo { to: 0, epoch: 0, seq }],
        promise: Some(Duration::from_secs(1)),
        members: None,
        direct: false,
        released: vec![],
    };
    a.handle(ms(810), Input::Heartbeat { link: 0, heartbeat: hb });
    assert_eq!(a.lease_expiry(), Some(ms(1800)), "b's promise of a second, not this node's 400 ms");
}

/// The guard names a deadline by the millisecond: a deadline that passed
/// and the next one told within the same millisecond read alike, and the
/// agent maps the guard's one report to the later. A report of the latest
/// deadline told covers every earlier one (the guard fires them in the
/// order told, and reports in that order): nothing stays owed, and the
/// node starts its set again once it holds a lease (it waited for ever).
#[test]
fn a_report_of_the_latest_deadline_told_settles_the_earlier_ones() {
    let mut a = starting_a();
    // Past the first deadline (1 s), a new lease: a second deadline is told
    // while the first is unreported.
    let seq = sends(&a.handle(ms(1001), Input::Tick))[0].seq;
    let hb = echo(1, 10, seq);
    let out = a.handle(ms(1002), Input::Heartbeat { link: 0, heartbeat: hb });
    assert!(out.contains(&Output::Guard(Some(ms(2001)))), "{out:?}");
    assert!(acts(&out).is_empty(), "the first deadline is owed a report: {out:?}");
    let out = a.handle(ms(1003), Input::GuardFired { deadline: ms(2001) });
    assert!(!acts(&out).is_empty(), "the set starts again: {out:?}");
    assert_eq!(a.lifecycle(0).phase(), Phase::Starting);
}

/// `topo()`'s nodes with `c` added in slot 3 (and `retire` retired), as a
/// configuration change agreed as generation 1 carries them.
fn add_c(retire: Option<usize>) -> Command {
    let mut nodes = topo().nodes;
    nodes.push(NodeSpec { name: "c".into(), witness: false, links: 2, retired: false });
    if let Some(r) = retire {
        nodes[r].retired = true;
    }
    Command::Configure {
        generation: 1,
        digest: "d1".into(),
        text: String::new(),
        sets: topo().sets,
        guard_margin: Duration::ZERO,
        timing: None,
        nodes: Some(nodes),
    }
}

#[test]
fn a_node_added_raises_the_majority_at_once_and_each_node_says_it_counts_by_it() {
    let (mut a, now) = running_a();
    assert!(a.lease_expiry().is_some(), "a and b are two of three");
    let out = a.handle(now, Input::Committed(add_c(None)));
    assert_eq!(a.lease_expiry(), None, "a and b are not three of four");
    assert!(out.contains(&Output::Event(Event::LeaseLost)), "{out:?}");
    assert!(acts(&out).iter().any(|a| matches!(a, Action::Run { step: Step::Stop(0), .. })), "{out:?}");
    assert!(out.contains(&Output::Propose(Command::Members { node: 0, epoch: 0, generation: 1 })), "{out:?}");
    // c echoes a's next heartbeat: three of four again.
    let seq = sends(&a.handle(ms(100), Input::Tick))[0].seq;
    let hb = echo(3, 1, seq);
    a.handle(ms(110), Input::Heartbeat { link: 1, heartbeat: hb });
    let hb = echo(1, 10, seq);
    a.handle(ms(111), Input::Heartbeat { link: 0, heartbeat: hb });
    assert_eq!(a.lease_expiry(), Some(ms(1100)));
    a.handle(ms(112), Input::Committed(Command::Members { node: 0, epoch: 0, generation: 1 }));
    let out = a.handle(ms(500), Input::Tick);
    assert!(!out.iter().any(|o| matches!(o, Output::Propose(Command::Members { .. }))), "said once agreed");
}

#[test]
fn a_node_removed_stops_counting_its_promises_and_exits_if_it_is_the_one() {
    // c added, then b retired: a counts by a, w and c.
    let (mut a, now) = running_a();
    let mut st = owned_state();
    let mut commit = |a: &mut Node, now: Time, command: Command| {
        st.apply(&command).unwrap();
        a.handle(now, Input::Committed(command))
    };
    commit(&mut a, now, add_c(None));
    for node in 0..3 {
        commit(&mut a, now, Command::Members { node, epoch: 0, generation: 1 });
    }
    let Command::Configure { nodes: Some(mut nodes), mut sets, .. } = add_c(Some(1)) else { unreachable!() };
    sets[0].nodes = vec![0, 3];
    nodes[1].retired = true;
    let retire_b = Command::Configure {
        generation: 2,
        digest: "d2".into(),
        text: String::new(),
        sets,
        guard_margin: Duration::ZERO,
        timing: None,
        nodes: Some(nodes),
    };
    let out = commit(&mut a, now, retire_b);
    assert_eq!(a.lease_expiry(), None, "b's promise counts no more: {out:?}");
    let seq = sends(&a.handle(ms(100), Input::Tick))[0].seq;
    let hb = echo(1, 10, seq);
    a.handle(ms(110), Input::Heartbeat { link: 0, heartbeat: hb });
    assert_eq!(a.lease_expiry(), None, "nor its heartbeats");
    let hb = echo(2, 1, seq);
    a.handle(ms(111), Input::Heartbeat { link: 0, heartbeat: hb });
    assert_eq!(a.lease_expiry(), Some(ms(1100)), "a and w are two of three");
    // b itself, from the agreed state: it runs nothing, and goes.
    let mut b = Node::new(topo(), 1, st, Persisted::default(), 2, ms(0));
    let out = b.handle(ms(0), Input::Tick);
    assert!(out.contains(&Output::Exit), "{out:?}");
    assert!(!b.handle(ms(100), Input::Tick).contains(&Output::Exit), "once");
}

#[test]
fn no_node_is_added_while_an_online_peer_runs_a_baton_that_cannot_count_by_slots() {
    let (mut a, now) = running_a();
    let mut more = topo();
    more.nodes.push(NodeSpec { name: "c".into(), witness: false, links: 2, retired: false });
    more.fenceable.push(false);
    // b's heartbeat (in running_a) said nothing about node slots; w was not heard.
    let why = a.plan(&more).unwrap_err();
    assert!(why.contains("but b, w did not say which nodes it counts by") && why.contains("upgrade"), "{why}");
    for (from, link) in [(1, 0), (2, 1)] {
        let hb = Heartbeat { members: Some(0), ..silent(from, 0, 50) };
        a.handle(now, Input::Heartbeat { link, heartbeat: hb });
    }
    assert_eq!(a.plan(&more).unwrap().node_changes, ["node c added (slot 3)"]);
}

/// The step runs among `acts`, in order.
fn runs(out: &[Output]) -> Vec<u64> {
    acts(out).iter().filter_map(|a| if let Action::Run { token, .. } = a { Some(*token) } else { None }).collect()
}

/// ARCHITECTURE.md, "A planned move handed over directly", point 2: the
/// owner says it released the set at once, with its `Released`, and in
/// every heartbeat until that is agreed — only once its last stop finished.
#[test]
fn the_owner_of_a_direct_move_says_it_released_the_set_once_its_stops_finished() {
    let (mut a, mut now) = running_a();
    let generation = a.state().set(0).generation;
    let move_ = Command::Move { set: 0, from: 0, to: Some(1), generation, direct: true };
    let mut out = a.handle(now, Input::Committed(move_));
    assert!(sends(&out).iter().all(|h| h.released.is_empty()), "stopping, not stopped: {out:?}");
    while let Some(&token) = runs(&out).first() {
        assert!(sends(&out).iter().all(|h| h.released.is_empty()), "a stop still to run: {out:?}");
        now = now + Duration::from_millis(1);
        out = a.handle(now, Input::StepDone { set: 0, token, ok: true });
    }
    assert_eq!(a.lifecycle(0).phase(), Phase::Stopped);
    assert_eq!(sends(&out).len(), 1, "a heartbeat at once, before the interval is up: {out:?}");
    assert_eq!(sends(&out)[0].released, vec![(0, generation)]);
    assert!(out.contains(&Output::Propose(Command::Released { set: 0, node: 0, generation })));
    // Said again with every heartbeat until the release is agreed.
    let out = a.handle(now + Duration::from_millis(100), Input::Tick);
    assert_eq!(sends(&out)[0].released, vec![(0, generation)]);
    a.handle(now + Duration::from_millis(101), Input::Committed(Command::Released { set: 0, node: 0, generation }));
    let out = a.handle(now + Duration::from_millis(200), Input::Tick);
    assert!(sends(&out)[0].released.is_empty());
}

/// Point 2 on the target's side: it starts only on its owner's word about
/// the generation the agreed state is at, inside its own lease.
#[test]
fn a_direct_moves_target_starts_on_the_owners_word_about_that_generation_only() {
    let mut st = owned_state();
    st.apply(&Command::Move { set: 0, from: 0, to: Some(1), generation: 1, direct: true }).unwrap();
    let mut b = Node::new(topo(), 1, st, Persisted::default(), 1, ms(0));
    let seq = sends(&b.handle(ms(0), Input::Tick))[0].seq;
    // Said before b holds a lease: nothing starts yet.
    let early = Heartbeat { released: vec![(0, 1)], ..silent(0, 0, 8) };
    assert!(acts(&b.handle(ms(10), Input::Heartbeat { link: 0, heartbeat: early })).is_empty());
    // A promise for b from a with nothing released: b's lease, nothing to start.
    let promise = Heartbeat { echoes: vec![Echo { to: 1, epoch: 0, seq }], ..silent(0, 0, 9) };
    let out = b.handle(ms(20), Input::Heartbeat { link: 0, heartbeat: promise });
    assert!(b.lease_expiry().is_some(), "{out:?}");
    // (The word heard at 10 ms still stands: it is the last about set 0.)
    assert_eq!(runs(&out), vec![1], "the owner's word, heard before the lease, counts once it is held: {out:?}");
    let mut st = owned_state();
    st.apply(&Command::Move { set: 0, from: 0, to: Some(1), generation: 1, direct: true }).unwrap();
    let mut b = Node::new(topo(), 1, st, Persisted::default(), 1, ms(0));
    let seq = sends(&b.handle(ms(0), Input::Tick))[0].seq;
    let promise = Heartbeat { echoes: vec![Echo { to: 1, epoch: 0, seq }], ..silent(0, 0, 9) };
    assert!(acts(&b.handle(ms(20), Input::Heartbeat { link: 0, heartbeat: promise })).is_empty());
    // Another generation (late, or replayed), or a node that does not own
    // the set: nothing.
    let stale = Heartbeat { released: vec![(0, 0)], ..silent(0, 0, 10) };
    assert!(acts(&b.handle(ms(30), Input::Heartbeat { link: 0, heartbeat: stale })).is_empty());
    let stranger = Heartbeat { released: vec![(0, 1)], ..silent(2, 0, 11) };
    assert!(acts(&b.handle(ms(31), Input::Heartbeat { link: 0, heartbeat: stranger })).is_empty());
    let handed = Heartbeat { released: vec![(0, 1)], ..silent(0, 0, 12) };
    let out = b.handle(ms(40), Input::Heartbeat { link: 0, heartbeat: handed });
    assert_eq!(runs(&out), vec![1], "b starts before the release is agreed: {out:?}");
    assert!(out.contains(&Output::Guard(b.lease_expiry())), "guarded from its first step: {out:?}");
    assert!(!out.iter().any(|o| matches!(o, Output::Propose(Command::Started { .. }))));
    for token in 1..=4 {
        b.handle(ms(40 + token), Input::StepDone { set: 0, token, ok: true });
    }
    assert_eq!(b.lifecycle(0).phase(), Phase::Running);
    // It says it started once the release gives it the set.
    let out = b.handle(ms(50), Input::Committed(Command::Released { set: 0, node: 0, generation: 1 }));
    assert_eq!(b.lifecycle(0).phase(), Phase::Running, "nothing stops: {out:?}");
    assert!(out.contains(&Output::Propose(Command::Started { set: 0, node: 1, generation: 2 })), "{out:?}");
}

/// Point 6: a move is direct only while every node, online or not, said
/// in the last heartbeat heard that it knows direct moves; the leader
/// proposes it two-phase otherwise.
#[test]
fn the_leader_proposes_direct_moves_only_once_every_node_knows_them() {
    let mut st = owned_state();
    st.apply(&Command::Pin { set: 0, node: Some(1) }).unwrap();
    let mut b = Node::new(topo(), 1, st, Persisted::default(), 1, ms(0));
    b.handle(ms(0), Input::Leader(true));
    let moves = |out: &[Output]| -> Vec<bool> {
        out.iter()
            .filter_map(|o| if let Output::Propose(Command::Move { direct, .. }) = o { Some(*direct) } else { None })
            .collect()
    };
    let old = |from, seq| Heartbeat { promise: Some(Duration::from_secs(1)), ..silent(from, 0, seq) };
    let new = |from, seq| Heartbeat { direct: true, ..old(from, seq) };
    b.handle(ms(10), Input::Heartbeat { link: 0, heartbeat: old(2, 1) });
    let out = b.handle(ms(20), Input::Heartbeat { link: 0, heartbeat: old(0, 1) });
    assert_eq!(moves(&out), vec![false], "{out:?}");
    b.handle(ms(30), Input::Heartbeat { link: 0, heartbeat: new(0, 2) });
    let out = b.handle(ms(1000), Input::Heartbeat { link: 0, heartbeat: new(2, 2) });
    assert_eq!(moves(&out), vec![true], "{out:?}");

    // The witness offline and never heard: it applies the move's commands
    // when it comes back, and may be a baton from before direct moves.
    let mut st = ClusterState::new(3, 1);
    for node in 0..2 {
        st.apply(&Command::Join { node, epoch: 0, incarnation: 1 }).unwrap();
    }
    st.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    st.apply(&Command::Pin { set: 0, node: Some(1) }).unwrap();
    assert!(!st.is_online(2));
    let mut c = Node::new(topo(), 1, st, Persisted::default(), 1, ms(0));
    c.handle(ms(0), Input::Leader(true));
    let out = c.handle(ms(20), Input::Heartbeat { link: 0, heartbeat: new(0, 1) });
    assert_eq!(moves(&out), vec![false], "{out:?}");
}

/// A heartbeat carries at most `MAX_RELEASED` hand-overs; the rest ride the
/// next ones, as the first are agreed.
#[test]
fn hand_overs_beyond_one_heartbeats_share_wait_for_the_next() {
    let mut t = topo();
    t.sets = (0..40).map(|i| SetSpec { name: format!("s{i}"), ..t.sets[0].clone() }).collect();
    let mut st = ClusterState::new(3, 40);
    for node in 0..3 {
        st.apply(&Command::Join { node, epoch: 0, incarnation: 1 }).unwrap();
    }
    for set in 0..40 {
        st.apply(&Command::Assign { set, node: 0, generation: 0 }).unwrap();
        st.apply(&Command::Move { set, from: 0, to: Some(1), generation: 1, direct: true }).unwrap();
    }
    let mut a = Node::new(t, 0, st, Persisted::default(), 1, ms(0));
    let out = a.handle(ms(0), Input::Tick);
    let first: Vec<SetId> = sends(&out)[0].released.iter().map(|&(s, _)| s).collect();
    assert_eq!(first, (0..MAX_RELEASED as SetId).collect::<Vec<_>>());
    // The first agreed frees a place: the next set's hand-over goes at once.
    let out = a.handle(ms(1), Input::Committed(Command::Released { set: 0, node: 0, generation: 1 }));
    let next: Vec<SetId> = sends(&out)[0].released.iter().map(|&(s, _)| s).collect();
    assert_eq!(next, (1..=MAX_RELEASED as SetId).collect::<Vec<_>>());
    for set in 1..MAX_RELEASED as SetId {
        a.handle(ms(2), Input::Committed(Command::Released { set, node: 0, generation: 1 }));
    }
    let out = a.handle(ms(200), Input::Tick);
    let rest: Vec<SetId> = sends(&out)[0].released.iter().map(|&(s, _)| s).collect();
    assert_eq!(rest, (MAX_RELEASED as SetId..40).collect::<Vec<_>>());
}
