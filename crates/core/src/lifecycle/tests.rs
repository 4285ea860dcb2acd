use std::time::Duration;

use super::*;
use crate::topology::{Failback, ResourceSpec};

fn ms(ms: u64) -> Time {
    Time(ms * 1000)
}

fn spec(resources: usize) -> SetSpec {
    let r = |i| ResourceSpec {
        label: format!("r{i}"),
        start_timeout: Duration::from_secs(2),
        stop_timeout: Duration::from_secs(3),
        monitor_interval: Some(Duration::from_secs(10)),
        monitor_timeout: Duration::from_secs(1),
        address: i == 0,
    };
    SetSpec {
        name: "web".into(),
        nodes: vec![0, 1],
        failback: Failback::Never,
        max_restarts: 3,
        restart_window: Duration::from_secs(600),
        failure_timeout: None,
        resources: (0..resources).map(r).collect(),
        hook_timeout: Duration::from_secs(5),
        definition: String::new(),
    }
}

/// Answers every step with `ok` until the lifecycle stops asking; returns
/// the steps in order and every report.
fn drive(lc: &mut Lifecycle, spec: &SetSpec, mut actions: Vec<Action>, fail: Option<Step>) -> (Vec<Step>, Vec<Report>) {
    let mut steps = Vec::new();
    let mut reports = Vec::new();
    for _ in 0..100 {
        let Some(Action::Run { token, step, .. }) = actions.pop() else { break };
        steps.push(step);
        let (a, r) = lc.step_done(ms(1), spec, token, Some(step) != fail);
        actions = a;
        reports.extend(r);
    }
    (steps, reports)
}

#[test]
fn start_runs_test_preacq_resources_in_order_then_postacq() {
    let s = spec(2);
    let mut lc = Lifecycle::new(0, &s);
    let first = lc.start(ms(0), &s);
    let (steps, reports) = drive(&mut lc, &s, first, None);
    use HookKind::*;
    assert_eq!(steps, vec![Step::Hook(Test), Step::Hook(PreAcq), Step::Start(0), Step::Start(1), Step::Hook(PostAcq)]);
    assert_eq!(reports, vec![Report::Started]);
    assert_eq!(lc.phase(), Phase::Running);
    assert!(lc.holds());
}

#[test]
fn stop_is_the_mirror_of_start() {
    let s = spec(3);
    let mut lc = Lifecycle::new(0, &s);
    let a = lc.start(ms(0), &s);
    drive(&mut lc, &s, a, None);
    let a = lc.stop(ms(5), &s, Why::Release);
    let (steps, reports) = drive(&mut lc, &s, a, None);
    use HookKind::*;
    assert_eq!(steps, vec![Step::Hook(PreRel), Step::Stop(2), Step::Stop(1), Step::Stop(0), Step::Hook(PostRel)]);
    assert_eq!(reports, vec![Report::Stopped(Why::Release)]);
    assert!(!lc.holds());
}

#[test]
fn a_test_hook_veto_starts_nothing() {
    let s = spec(2);
    let mut lc = Lifecycle::new(0, &s);
    let a = lc.start(ms(0), &s);
    let (steps, reports) = drive(&mut lc, &s, a, Some(Step::Hook(HookKind::Test)));
    assert_eq!(steps, vec![Step::Hook(HookKind::Test)]);
    assert_eq!(reports.last(), Some(&Report::StartAborted(Exclusion::Vetoed)));
    assert_eq!(lc.phase(), Phase::Stopped);
}

#[test]
fn a_failed_start_stops_what_was_started_including_the_failed_one() {
    let s = spec(3);
    let mut lc = Lifecycle::new(0, &s);
    let a = lc.start(ms(0), &s);
    let (steps, reports) = drive(&mut lc, &s, a, Some(Step::Start(1)));
    use HookKind::*;
    assert_eq!(
        steps,
        vec![
            Step::Hook(Test),
            Step::Hook(PreAcq),
            Step::Start(0),
            Step::Start(1),
            Step::Hook(PreRel),
            Step::Stop(1),
            Step::Stop(0),
            Step::Hook(PostRel)
        ]
    );
    assert_eq!(
        reports,
        vec![Report::StepFailed { step: Step::Start(1), timed_out: false }, Report::StartAborted(Exclusion::Failed)]
    );
}

#[test]
fn a_failed_stop_blocks_the_set() {
    let s = spec(2);
    let mut lc = Lifecycle::new(0, &s);
    let a = lc.start(ms(0), &s);
    drive(&mut lc, &s, a, None);
    let a = lc.stop(ms(5), &s, Why::Release);
    let (steps, reports) = drive(&mut lc, &s, a, Some(Step::Stop(1)));
    assert!(steps.contains(&Step::Stop(0)), "the other resources are still stopped");
    assert_eq!(reports.last(), Some(&Report::StopFailed));
    assert_eq!(lc.phase(), Phase::Blocked);
    assert!(lc.holds(), "a blocked set may still be running");
}

#[test]
fn a_step_that_never_answers_times_out() {
    let s = spec(1);
    let mut lc = Lifecycle::new(0, &s);
    let a = lc.start(ms(0), &s);
    let Action::Run { token, .. } = a[0] else { panic!() };
    lc.step_done(ms(1), &s, token, true);
    // PreAcq is in flight; its limit is 5s plus the grace.
    assert_eq!(lc.next_deadline(), Some(ms(1) + Duration::from_secs(6)));
    let (actions, reports) = lc.poll(ms(7000), &s);
    assert_eq!(
        reports,
        vec![
            Report::StepFailed { step: Step::Hook(HookKind::PreAcq), timed_out: true },
            Report::StartAborted(Exclusion::Failed)
        ]
    );
    assert!(actions.is_empty());
}

#[test]
fn a_stop_asked_during_a_start_waits_for_the_step_in_flight() {
    let s = spec(1);
    let mut lc = Lifecycle::new(0, &s);
    let a = lc.start(ms(0), &s);
    let Action::Run { token, .. } = a[0] else { panic!() };
    assert!(lc.stop(ms(1), &s, Why::LeaseEnding).is_empty());
    let (a, _) = lc.step_done(ms(2), &s, token, true);
    let (steps, reports) = drive(&mut lc, &s, a, None);
    assert_eq!(steps, vec![Step::Hook(HookKind::PreRel), Step::Hook(HookKind::PostRel)], "nothing was started yet");
    assert_eq!(reports, vec![Report::Stopped(Why::LeaseEnding)]);
}

#[test]
fn stale_tokens_change_nothing() {
    let s = spec(1);
    let mut lc = Lifecycle::new(0, &s);
    lc.start(ms(0), &s);
    assert_eq!(lc.step_done(ms(1), &s, 999, true), (vec![], vec![]));
    assert_eq!(lc.phase(), Phase::Starting);
}

#[test]
fn monitors_run_at_their_interval_while_running() {
    let s = spec(1);
    let mut lc = Lifecycle::new(0, &s);
    let a = lc.start(ms(0), &s);
    drive(&mut lc, &s, a, None);
    lc.arm_monitors(ms(10), &s);
    assert_eq!(lc.poll(ms(5000), &s), (vec![], vec![]));
    let (actions, _) = lc.poll(ms(10_010), &s);
    let [Action::Monitor { token, resource: 0, .. }] = actions[..] else { panic!("{actions:?}") };
    assert_eq!(
        lc.monitor_done(ms(10_020), &s, token, false),
        vec![Report::MonitorFailed { resource: 0, timed_out: false }]
    );
    assert_eq!(lc.record_failure(ms(10_020), s.restart_window), 1);
    assert_eq!(lc.record_failure(ms(700_000), s.restart_window), 1, "the first failure left the window");
}

#[test]
fn when_the_lease_ends_addresses_go_first() {
    let s = spec(3);
    let mut lc = Lifecycle::new(0, &s);
    let a = lc.start(ms(0), &s);
    drive(&mut lc, &s, a, None);
    let a = lc.stop(ms(5), &s, Why::LeaseEnding);
    let (steps, _) = drive(&mut lc, &s, a, None);
    use HookKind::*;
    assert_eq!(steps, vec![Step::Stop(0), Step::Hook(PreRel), Step::Stop(2), Step::Stop(1), Step::Hook(PostRel)]);
}
