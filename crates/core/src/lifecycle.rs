//! The life of one set on one node: stopped → starting (Test, PreAcq*,
//! resources in order, PostAcq*) → running → stopping (PreRel*, resources in
//! reverse, PostRel*) → stopped, with a deadline on every step and monitors
//! while running.
//!
//! The lifecycle decides which step comes next and what a result means; it
//! runs nothing. Each step goes out as an [`Action`] with a token, and only a
//! result carrying the current token moves it on, so a late answer to an old
//! step can never advance a newer sequence.

use std::collections::VecDeque;
use std::time::Duration;

use baton_state::Exclusion;

use crate::time::Time;
use crate::topology::{SetId, SetSpec};

/// The shell's own timeout fires first; this is the core's backstop for a
/// result that never arrives.
const RESULT_GRACE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookKind {
    Test,
    PreAcq,
    PostAcq,
    PreRel,
    PostRel,
}

impl HookKind {
    /// The file-name prefix of the hooks of this kind in the set's directory.
    pub fn prefix(self) -> &'static str {
        match self {
            HookKind::Test => "Test",
            HookKind::PreAcq => "PreAcq",
            HookKind::PostAcq => "PostAcq",
            HookKind::PreRel => "PreRel",
            HookKind::PostRel => "PostRel",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Run every hook of this kind, in name order.
    Hook(HookKind),
    Start(usize),
    Stop(usize),
}

/// Something the shell must do for a set, answered with the same token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Run { set: SetId, token: u64, step: Step, timeout: Duration },
    Monitor { set: SetId, token: u64, resource: usize, timeout: Duration },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Stopped,
    Starting,
    Running,
    Stopping,
    /// A stop failed: the set may still be running here. Nothing happens
    /// until the node is fenced or an operator clears it.
    Blocked,
}

/// Why a set is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The cluster asked for it (a move, standby, a shutdown).
    Release,
    /// The lease is ending: stop before the guard has to.
    LeaseEnding,
    /// A monitor failed and a local restart is allowed.
    Restart,
    /// Monitors failed too often: stop and let another node have it.
    GiveUp,
    /// A start failed part-way: undo what was started.
    Undo,
}

/// What the node must hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    Started,
    /// The start failed and everything it started is stopped again.
    StartAborted(Exclusion),
    Stopped(Why),
    /// A stop step failed; the lifecycle is now `Blocked`.
    StopFailed,
    StepFailed {
        step: Step,
        timed_out: bool,
    },
    MonitorFailed {
        resource: usize,
        timed_out: bool,
    },
}

#[derive(Clone, Debug)]
pub struct Lifecycle {
    set: SetId,
    phase: Phase,
    plan: Vec<Step>,
    pos: usize,
    why: Why,
    /// The step in flight: its token and when the core gives up waiting.
    inflight: Option<(u64, Time)>,
    /// A stop requested while a start step was in flight.
    pending_stop: Option<Why>,
    next_token: u64,
    /// Which resources may be running here.
    started: Vec<bool>,
    stop_failed: bool,
    /// Per resource: when the next monitor is due, and the one in flight.
    monitor_due: Vec<Option<Time>>,
    monitor_inflight: Vec<Option<(u64, Time)>>,
    failures: VecDeque<Time>,
}

impl Lifecycle {
    pub fn new(set: SetId, spec: &SetSpec) -> Self {
        let n = spec.resources.len();
        Lifecycle {
            set,
            phase: Phase::Stopped,
            plan: Vec::new(),
            pos: 0,
            why: Why::Release,
            inflight: None,
            pending_stop: None,
            next_token: 1,
            started: vec![false; n],
            stop_failed: false,
            monitor_due: vec![None; n],
            monitor_inflight: vec![None; n],
            failures: VecDeque::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// True while any resource of the set may be running here.
    pub fn holds(&self) -> bool {
        self.started.iter().any(|s| *s) || matches!(self.phase, Phase::Blocked)
    }

    /// Running with nothing in flight but monitors: a set a handover may
    /// leave running (or a stopped one).
    pub fn settled(&self) -> bool {
        match self.phase {
            Phase::Stopped => true,
            Phase::Running => self.inflight.is_none() && self.pending_stop.is_none(),
            Phase::Starting | Phase::Stopping | Phase::Blocked => false,
        }
    }

    /// A set an earlier program of this node started and handed over: it
    /// runs, every resource of it may be running, and each monitor is due
    /// at once, so that the new program checks rather than assumes.
    pub fn adopt(&mut self, now: Time, spec: &SetSpec) {
        assert_eq!(self.phase, Phase::Stopped, "adopting set {} while {:?}", self.set, self.phase);
        self.phase = Phase::Running;
        self.started.iter_mut().for_each(|s| *s = true);
        for (i, r) in spec.resources.iter().enumerate() {
            self.monitor_due[i] = r.monitor_interval.map(|_| now);
        }
    }

    /// Begin starting the set. Only from `Stopped`.
    pub fn start(&mut self, now: Time, spec: &SetSpec) -> Vec<Action> {
        assert_eq!(self.phase, Phase::Stopped, "start of set {} while {:?}", self.set, self.phase);
        let n = spec.resources.len();
        self.plan = [Step::Hook(HookKind::Test), Step::Hook(HookKind::PreAcq)]
            .into_iter()
            .chain((0..n).map(Step::Start))
            .chain([Step::Hook(HookKind::PostAcq)])
            .collect();
        self.pos = 0;
        self.phase = Phase::Starting;
        self.stop_failed = false;
        self.issue(now, spec)
    }

    /// Begin stopping the set (from `Starting` once the step in flight is
    /// answered, or from `Running` at once). A stop already under way keeps
    /// its course; a stronger reason replaces a weaker one.
    pub fn stop(&mut self, now: Time, spec: &SetSpec, why: Why) -> Vec<Action> {
        match self.phase {
            Phase::Running => self.begin_stop(now, spec, why, true),
            Phase::Starting => {
                self.pending_stop = Some(why);
                Vec::new()
            }
            Phase::Stopping => {
                if why == Why::LeaseEnding {
                    self.why = why;
                }
                Vec::new()
            }
            Phase::Stopped | Phase::Blocked => Vec::new(),
        }
    }

    fn begin_stop(&mut self, now: Time, spec: &SetSpec, why: Why, hooks: bool) -> Vec<Action> {
        let started: Vec<usize> = (0..self.started.len()).rev().filter(|&i| self.started[i]).collect();
        let mut plan = Vec::with_capacity(started.len() + 2);
        if why == Why::LeaseEnding {
            // docs/reference.md, "Behaviour": addresses first, before even the release hooks.
            plan.extend(started.iter().filter(|&&i| spec.resources[i].address).map(|&i| Step::Stop(i)));
        }
        if hooks {
            plan.push(Step::Hook(HookKind::PreRel));
        }
        let first = plan.clone();
        plan.extend(started.into_iter().map(Step::Stop).filter(|s| !first.contains(s)));
        if hooks {
            plan.push(Step::Hook(HookKind::PostRel));
        }
        self.plan = plan;
        self.pos = 0;
        self.why = why;
        self.phase = Phase::Stopping;
        self.pending_stop = None;
        self.monitor_due.iter_mut().for_each(|m| *m = None);
        self.monitor_inflight.iter_mut().for_each(|m| *m = None);
        self.issue(now, spec)
    }

    /// Issue the step at `pos`, or finish the sequence.
    fn issue(&mut self, now: Time, spec: &SetSpec) -> Vec<Action> {
        let Some(&step) = self.plan.get(self.pos) else {
            return Vec::new();
        };
        let timeout = match step {
            Step::Hook(_) => spec.hook_timeout,
            Step::Start(i) => spec.resources[i].start_timeout,
            Step::Stop(i) => spec.resources[i].stop_timeout,
        };
        if let Step::Start(i) = step {
            // From the moment its start begins, a resource may be running.
            self.started[i] = true;
        }
        let token = self.token();
        self.inflight = Some((token, now + timeout + RESULT_GRACE));
        vec![Action::Run { set: self.set, token, step, timeout }]
    }

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    /// The result of a step. Results with another token are stale and ignored.
    pub fn step_done(&mut self, now: Time, spec: &SetSpec, token: u64, ok: bool) -> (Vec<Action>, Vec<Report>) {
        match self.inflight {
            Some((t, _)) if t == token => self.advance(now, spec, ok, false),
            _ => (Vec::new(), Vec::new()),
        }
    }

    fn advance(&mut self, now: Time, spec: &SetSpec, ok: bool, timed_out: bool) -> (Vec<Action>, Vec<Report>) {
        self.inflight = None;
        let step = self.plan[self.pos];
        let mut reports = Vec::new();
        if !ok {
            reports.push(Report::StepFailed { step, timed_out });
        }
        match (self.phase, step, ok) {
            (Phase::Starting, Step::Hook(HookKind::Test), false) => {
                self.phase = Phase::Stopped;
                reports.push(Report::StartAborted(Exclusion::Vetoed));
                return (Vec::new(), reports);
            }
            (Phase::Starting, Step::Hook(HookKind::PreAcq), false) => {
                // A failing Pre hook stops the acquisition before anything started.
                self.phase = Phase::Stopped;
                reports.push(Report::StartAborted(Exclusion::Failed));
                return (Vec::new(), reports);
            }
            (Phase::Starting, _, false) => {
                let actions = self.begin_stop(now, spec, Why::Undo, true);
                return self.settle(actions, reports);
            }
            (Phase::Stopping, Step::Stop(i), ok) => {
                if ok {
                    self.started[i] = false;
                } else {
                    self.stop_failed = true;
                }
            }
            _ => {}
        }
        self.pos += 1;
        if self.phase == Phase::Starting {
            if let Some(why) = self.pending_stop.take() {
                let actions = self.begin_stop(now, spec, why, true);
                return self.settle(actions, reports);
            }
        }
        let actions = self.issue(now, spec);
        self.settle(actions, reports)
    }

    /// If the sequence ran out, enter its end state and say so.
    fn settle(&mut self, actions: Vec<Action>, mut reports: Vec<Report>) -> (Vec<Action>, Vec<Report>) {
        if !actions.is_empty() || self.pos < self.plan.len() {
            return (actions, reports);
        }
        match self.phase {
            Phase::Starting => {
                self.phase = Phase::Running;
                reports.push(Report::Started);
            }
            Phase::Stopping if self.stop_failed => {
                self.phase = Phase::Blocked;
                reports.push(Report::StopFailed);
            }
            Phase::Stopping => {
                self.phase = Phase::Stopped;
                reports.push(match self.why {
                    Why::Undo => Report::StartAborted(Exclusion::Failed),
                    why => Report::Stopped(why),
                });
            }
            _ => {}
        }
        (actions, reports)
    }

    /// Schedule monitors from now on; called when the node sees `Started`.
    pub fn arm_monitors(&mut self, now: Time, spec: &SetSpec) {
        for (i, r) in spec.resources.iter().enumerate() {
            self.monitor_due[i] = r.monitor_interval.map(|iv| now + iv);
        }
    }

    pub fn monitor_done(&mut self, now: Time, spec: &SetSpec, token: u64, ok: bool) -> Vec<Report> {
        let Some(i) = self.monitor_inflight.iter().position(|m| m.is_some_and(|(t, _)| t == token)) else {
            return Vec::new();
        };
        self.monitor_inflight[i] = None;
        self.monitor_due[i] = spec.resources[i].monitor_interval.map(|iv| now + iv);
        if ok {
            Vec::new()
        } else {
            vec![Report::MonitorFailed { resource: i, timed_out: false }]
        }
    }

    /// Count a monitor failure at `now`; returns how many fall in the window.
    pub fn record_failure(&mut self, now: Time, window: Duration) -> usize {
        self.failures.push_back(now);
        while self.failures.front().is_some_and(|&t| now.since(t) > window) {
            self.failures.pop_front();
        }
        self.failures.len()
    }

    /// Deadlines that passed and monitors that are due.
    pub fn poll(&mut self, now: Time, spec: &SetSpec) -> (Vec<Action>, Vec<Report>) {
        if let Some((_, deadline)) = self.inflight {
            if now >= deadline {
                return self.advance(now, spec, false, true);
            }
        }
        let mut actions = Vec::new();
        let mut reports = Vec::new();
        if self.phase != Phase::Running {
            return (actions, reports);
        }
        for i in 0..self.monitor_due.len() {
            if let Some((_, deadline)) = self.monitor_inflight[i] {
                if now >= deadline {
                    self.monitor_inflight[i] = None;
                    self.monitor_due[i] = spec.resources[i].monitor_interval.map(|iv| now + iv);
                    reports.push(Report::MonitorFailed { resource: i, timed_out: true });
                }
            } else if self.monitor_due[i].is_some_and(|due| now >= due) {
                let token = self.token();
                let timeout = spec.resources[i].monitor_timeout;
                self.monitor_due[i] = None;
                self.monitor_inflight[i] = Some((token, now + timeout + RESULT_GRACE));
                actions.push(Action::Monitor { set: self.set, token, resource: i, timeout });
            }
        }
        (actions, reports)
    }

    pub fn next_deadline(&self) -> Option<Time> {
        let steps = self.inflight.map(|(_, d)| d);
        let monitors = self.monitor_due.iter().flatten().copied();
        let mon_inflight = self.monitor_inflight.iter().flatten().map(|(_, d)| *d);
        steps.into_iter().chain(monitors).chain(mon_inflight).min()
    }

    /// The guard killed everything, or a block was lifted (the node fenced,
    /// or cleared): nothing runs here; forget every step and monitor in
    /// flight.
    pub fn reset(&mut self) {
        self.phase = Phase::Stopped;
        self.plan.clear();
        self.pos = 0;
        self.inflight = None;
        self.pending_stop = None;
        self.started.iter_mut().for_each(|s| *s = false);
        self.monitor_due.iter_mut().for_each(|m| *m = None);
        self.monitor_inflight.iter_mut().for_each(|m| *m = None);
    }
}

#[cfg(test)]
mod tests;
