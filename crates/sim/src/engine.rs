//! The simulation loop: real cores on a virtual clock, a faulty network, a
//! model of the agreement layer, and the world the checkers judge.
//!
//! The agreement model is a single committed log that a leader appends to
//! only while it can reach a majority (crashed and paused nodes do not
//! count), delivered to each node in order, late or not at all when the
//! network says so. Leaders come and go; a deposed leader learns of it late.
//! That is all the real core may rely on from Raft.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};

use baton_core::lifecycle::{self, Action, HookKind, Step};
use baton_core::node::Handover;
use baton_core::requests::{Reply, Request};
use baton_core::{Event, Heartbeat, Input, Node, NodeId, Output, Persisted, SetId, Stranger, Time, Topology};
use baton_state::{Applied, ClusterState, Command};

use crate::clock::Clock;
use crate::invariants::{
    acting, block, duplicate, frozen, lock, pair, preference, recovery, shutdown, single_owner, witness, Violation,
};
use crate::net::Net;
use crate::rng::Rng;
use crate::scenario::{
    Fault, FenceFaults, ResourceFaults, Scenario, FENCE_DISK_MSGWAIT_US, FENCE_DISK_WATCH_US, SECOND,
};
use crate::world::World;

const TICK_US: u64 = 20_000;
const ELECTION_TIMEOUT_US: u64 = 500_000;
const RESEND_US: u64 = 200_000;

#[derive(Debug)]
enum Ev {
    Wake {
        node: NodeId,
        inc: u64,
        at: u64,
    },
    Deliver {
        to: NodeId,
        link: usize,
        heartbeat: Heartbeat,
    },
    Proposal {
        command: Command,
        leader: NodeId,
        term: u64,
    },
    Replicate {
        to: NodeId,
        inc: u64,
        upto: usize,
    },
    /// `acts` is the set's action generation on that node when the step began.
    StepDone {
        node: NodeId,
        acts: u64,
        set: SetId,
        token: u64,
        ok: bool,
        stopped: Option<usize>,
        /// A start the guard hears of only when it is done (`late_hold`).
        started: Option<usize>,
    },
    MonitorDone {
        node: NodeId,
        inc: u64,
        set: SetId,
        token: u64,
        resource: usize,
    },
    Guard {
        node: NodeId,
        inc: u64,
        deadline: Time,
    },
    /// The guard finished undoing one resource (unless it was started
    /// again since: `starts` is its start count when the undo began).
    Undone {
        node: NodeId,
        set: SetId,
        resource: usize,
        starts: u64,
    },
    /// The guard finished its release for `deadline`; the agent (if any)
    /// hears it.
    Released {
        node: NodeId,
        inc: u64,
        deadline: Time,
    },
    Fault(Fault),
    Restart {
        node: NodeId,
        inc: u64,
    },
    /// The program a handover started carries on.
    HandedBack {
        node: NodeId,
        inc: u64,
    },
    Resume {
        node: NodeId,
        inc: u64,
    },
    LeaderNotice {
        node: NodeId,
        inc: u64,
        leader: bool,
    },
    /// A probe's answer reaches the node that asked.
    Probed {
        node: NodeId,
        inc: u64,
        set: SetId,
        generation: u64,
        strangers: Vec<Stranger>,
    },
    /// A `baton lock` run asks whether it may go on (or, done, gives the
    /// lock back).
    LockPoll {
        node: NodeId,
        token: u64,
        done_at: u64,
    },
    /// The fence `by` asked for is done; `by` hears it (if still the
    /// agent `inc` that asked).
    FenceDone {
        by: NodeId,
        inc: u64,
        epoch: u64,
        incarnation: u64,
        target: NodeId,
    },
    /// A fence disk's pill for `target` is written (or the write fails).
    Pill {
        by: NodeId,
        inc: u64,
        epoch: u64,
        incarnation: u64,
        target: NodeId,
    },
    /// `target`'s guard reads its slot: a pill still there takes it down.
    PillRead {
        target: NodeId,
    },
    /// `node`'s guard has read no slot for `msgwait / 2`, if its disk is
    /// still lost: it takes the node down.
    DiskCheck {
        node: NodeId,
        inc: u64,
    },
    /// A node taken back into the agreement layer (`Output::Readmit`)
    /// caught up: it votes again, and `by` hears so.
    Readmitted {
        by: NodeId,
        inc: u64,
        node: NodeId,
    },
    /// The agent reads the fence disk's record of who went on alone.
    RecordRead {
        node: NodeId,
        inc: u64,
    },
    Tick,
}

struct Item {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct SimNode {
    core: Option<Node>,
    inc: u64,
    boots: u64,
    clock: Clock,
    paused: bool,
    inbox: Vec<Input>,
    disk: Persisted,
    delivered: usize,
    guard: Option<Time>,
    wake_at: u64,
    sent: (usize, u64),
    /// Per set: bumped whenever the guard, a crash or a `Cancel` kills the
    /// actions in flight, so a step begun before can no longer touch the world.
    acts: Vec<u64>,
    /// Per set: the action generation the guard's last firing killed: such
    /// a step's program died under it, and the agent reports it failed.
    killed: Vec<Option<u64>>,
    /// [set][resource]: what the guard holds (and would undo).
    guard_held: Vec<Vec<bool>>,
    /// [set][resource]: how many times it was started here.
    starts: Vec<Vec<u64>>,
    /// When the guard's release under way is done: the guard handles one
    /// thing at a time, so it reports a later firing only after that.
    released_at: u64,
    /// After a SIGTERM: how long its supervisor waits to start it again.
    restart_after: Option<u64>,
    /// How much of the log its agreement layer holds on disk (an entry is
    /// on every voter the leader reached when committing it, and on every
    /// node it was delivered to).
    holds: usize,
    /// The agreement layer's voters as its own log says (stale on a node
    /// left out of a membership change until it is taken back).
    voters_view: Vec<NodeId>,
    /// The deadline the guard last fired for.
    fired: Option<Time>,
    /// The agent `inc` the guard running now was started with.
    guard_since: u64,
    /// A handover asked: how long until the next program carries on.
    handover_after: Option<u64>,
    /// Until when its agreement layer's traffic is held back (`Fault::Lag`).
    lagged_until: u64,
    /// Handed over, the next program not yet back: what it carries on from.
    handed: Option<Handover>,
}

impl SimNode {
    /// An agent runs here, or a handover is under way (its guard runs on).
    fn running(&self) -> bool {
        self.core.is_some() || self.handed.is_some()
    }
}

/// What a run that kept every invariant reports.
#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    pub evictions: u32,
    /// Times a set began running on a node other than the one that ran it last.
    pub failovers: u32,
    /// How long after the heal the last set was running again.
    pub recovered_after_us: Option<u64>,
    pub timeline: Vec<(u64, SetId, NodeId, bool)>,
    /// (true µs, set, agreed owner, agreed running): every change the
    /// cluster agreed on.
    pub agreed: Vec<(u64, SetId, Option<NodeId>, bool)>,
    pub trace: Vec<String>,
}

pub struct Failure {
    pub violation: Violation,
    pub trace: Vec<String>,
}

pub struct Sim {
    sc: Scenario,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Item>,
    nodes: Vec<SimNode>,
    net: Net,
    log: Vec<Command>,
    reference: ClusterState,
    leader: Option<NodeId>,
    term: u64,
    leaderless_since: Option<u64>,
    /// Per node: a voter of the agreement layer (two-node mode changes it).
    voters: Vec<bool>,
    /// How the fence devices misbehave now (until the heal), with a random
    /// stream of their own so that other seeds keep their runs.
    fences: FenceFaults,
    fence_rng: Rng,
    world: World,
    res: ResourceFaults,
    /// Fences under way: (who asked, target).
    fencing: BTreeSet<(NodeId, NodeId)>,
    /// Per node: a pill in its slot of the fence disk (a guard that starts
    /// and finds one waits `msgwait`, then clears it), and when that wait ends.
    pills: Vec<bool>,
    pill_wait: Vec<Option<u64>>,
    /// Per node: until when its guard cannot read the fence disk.
    disk_lost_until: Vec<u64>,
    /// The fence disk's record of who went on alone last (two-node mode).
    alone_record: Option<NodeId>,
    pending_ops: Vec<Command>,
    /// Requests asked and not answered: id → (node, request).
    asked: std::collections::BTreeMap<u64, (NodeId, Request)>,
    next_request: u64,
    /// `baton lock` runs, as their command line sees them.
    holders: Vec<lock::Holder>,
    /// [node][set]: a stop step of it really failed (a resource fault).
    stop_failed: Vec<Vec<bool>>,
    /// Per set slot: the longest its resources take the guard to undo (µs):
    /// the scenario's budget, or the one agreed with the change that added
    /// the slot (a file with slower resources asks for more).
    release_us: Vec<u64>,
    violation: Option<Violation>,
    report: Report,
    tracing: bool,
    /// The cluster's topology as agreed: the scenario's, with the set
    /// slots of every configuration change agreed since.
    topo: Topology,
}

impl Sim {
    pub fn new(sc: Scenario, seed: u64, tracing: bool) -> Self {
        let (slots, n) = (sc.topo.nodes.len(), sc.machines());
        let resources: Vec<usize> = sc.topo.sets.iter().map(|s| s.resources.len()).collect();
        let node = || SimNode {
            core: None,
            inc: 0,
            boots: 0,
            clock: Clock::new(0, 0, 0),
            paused: false,
            inbox: Vec::new(),
            disk: Persisted::default(),
            delivered: 0,
            guard: None,
            wake_at: 0,
            sent: (0, 0),
            acts: vec![0; sc.topo.sets.len()],
            killed: vec![None; sc.topo.sets.len()],
            guard_held: resources.iter().map(|&r| vec![false; r]).collect(),
            starts: resources.iter().map(|&r| vec![0; r]).collect(),
            released_at: 0,
            restart_after: None,
            holds: 0,
            voters_view: (0..slots as NodeId).collect(),
            fired: None,
            guard_since: 0,
            handover_after: None,
            lagged_until: 0,
            handed: None,
        };
        Sim {
            rng: Rng::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d)),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: (0..n).map(|_| node()).collect(),
            net: Net::new(sc.topo.nodes.iter().chain(sc.spare.as_ref().map(|s| &s.node)).map(|s| s.links).collect()),
            log: Vec::new(),
            reference: ClusterState::new(slots, sc.topo.sets.len()).requiring_fence(sc.fence_required.clone()),
            leader: None,
            term: 0,
            leaderless_since: Some(0),
            voters: (0..n).map(|x| x < slots).collect(),
            fences: sc.fences,
            fence_rng: Rng::new(seed ^ 0x6465_7669_6365_5f72),
            world: World::new(n, &resources),
            res: ResourceFaults::default(),
            fencing: BTreeSet::new(),
            pills: vec![false; n],
            pill_wait: vec![None; n],
            disk_lost_until: vec![0; n],
            alone_record: None,
            pending_ops: Vec::new(),
            asked: std::collections::BTreeMap::new(),
            next_request: 1,
            holders: Vec::new(),
            stop_failed: vec![vec![false; sc.topo.sets.len()]; n],
            release_us: vec![sc.topo.timing.guard_margin.as_micros() as u64; sc.topo.sets.len()],
            violation: None,
            report: Report::default(),
            tracing,
            topo: sc.topo.clone(),
            sc,
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Item { at, seq: self.seq, ev });
    }

    fn trace(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            let t = self.now;
            self.report.trace.push(format!("{:>4}.{:03}s {}", t / 1_000_000, (t / 1000) % 1000, line()));
        }
    }

    fn fail(&mut self, result: Result<(), Violation>) {
        if let Err(v) = result {
            if self.violation.is_none() {
                self.trace(|| format!("VIOLATION {v}"));
                self.violation = Some(v);
            }
        }
    }

    pub fn run(mut self) -> Result<Report, Failure> {
        if self.tracing {
            let topo = &self.topo;
            let mut lines: Vec<String> = topo
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let role = if n.witness { " (witness)" } else { "" };
                    format!("node n{i} = {}{role}, clock drift {}ppm", n.name, self.sc.drift_ppm[i])
                })
                .collect();
            lines.extend(topo.sets.iter().map(|s| {
                format!(
                    "set {} prefers {:?}, {:?}, max_restarts {}, {} resources",
                    s.name,
                    s.nodes,
                    s.failback,
                    s.max_restarts,
                    s.resources.len()
                )
            }));
            if topo.fenceable.iter().any(|&f| f) {
                let kind = if self.sc.fence_disk { "a shared fence disk (pills)" } else { "power" };
                lines.push(format!("fence devices: {kind}, {:?}", self.sc.fences));
            }
            for line in lines {
                self.trace(|| line);
            }
        }
        for i in 0..self.nodes.len() {
            let at = self.rng.range(0, 50_000);
            self.push(at, Ev::Restart { node: i as NodeId, inc: 0 });
        }
        for (at, fault) in self.sc.faults.clone() {
            self.push(at, Ev::Fault(fault));
        }
        self.push(0, Ev::Tick);
        let end = self.sc.end_at_us;
        while let Some(item) = self.queue.pop() {
            if item.at > end || self.violation.is_some() {
                break;
            }
            assert!(item.at >= self.now, "the event queue went back in time");
            self.now = item.at;
            self.report.events += 1;
            self.dispatch(item.ev);
        }
        self.now = end;
        if self.violation.is_none() {
            self.final_checks();
        }
        self.report.timeline = std::mem::take(&mut self.world.timeline);
        self.report.failovers = count_failovers(&self.report.timeline);
        match self.violation {
            Some(violation) => Err(Failure { violation, trace: self.report.trace }),
            None => Ok(self.report),
        }
    }

    fn final_checks(&mut self) {
        for set in 0..self.topo.sets.len() as SetId {
            let r = recovery::check(&self.topo, &self.reference, &self.world, set, self.now);
            self.fail(r);
            let r = preference::check(&self.topo, &self.reference, set, self.now);
            self.fail(r);
        }
    }

    fn alive(&self, node: NodeId) -> bool {
        let n = &self.nodes[usize::from(node)];
        n.core.is_some() && !n.paused
    }

    /// Can the agreement layers of `a` and `b` talk now: a link open both
    /// ways, and neither held back (`Fault::Lag`)?
    fn agrees(&self, a: usize, b: usize) -> bool {
        let lagged = |x: usize| self.now < self.nodes[x].lagged_until;
        self.net.reachable(a, b) && (a == b || !(lagged(a) || lagged(b)))
    }

    /// Is `leader` a voter that can reach a majority of live voters right now?
    fn quorum(&self, leader: NodeId) -> bool {
        let voters = (0..self.nodes.len()).filter(|&x| self.voters[x]);
        let reach = voters.clone().filter(|&x| self.alive(x as NodeId) && self.agrees(usize::from(leader), x)).count();
        self.voters[usize::from(leader)] && self.alive(leader) && reach > voters.count() / 2
    }

    /// Every voter learns the new membership (a node left out keeps the
    /// one its log last had, until the leader replicates to it).
    fn tell_voters(&mut self) {
        for x in 0..self.nodes.len() as NodeId {
            if self.voters[usize::from(x)] {
                self.learn_voters(x);
            }
        }
    }

    fn learn_voters(&mut self, x: NodeId) {
        let voters: Vec<NodeId> = (0..self.nodes.len() as NodeId).filter(|&v| self.voters[usize::from(v)]).collect();
        if self.nodes[usize::from(x)].voters_view != voters {
            self.nodes[usize::from(x)].voters_view = voters.clone();
            self.input(x, Input::Voters(voters));
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Wake { node, inc, at } => {
                let n = &self.nodes[usize::from(node)];
                if n.inc == inc && n.wake_at == at {
                    self.input(node, Input::Tick);
                }
            }
            Ev::Deliver { to, link, heartbeat } => self.input(to, Input::Heartbeat { link, heartbeat }),
            Ev::Proposal { command, leader, term } => {
                if self.leader == Some(leader) && self.term == term {
                    self.commit(command);
                }
            }
            Ev::Replicate { to, inc, upto } => {
                if self.nodes[usize::from(to)].inc == inc {
                    while self.nodes[usize::from(to)].delivered < upto {
                        let k = self.nodes[usize::from(to)].delivered;
                        let n = &mut self.nodes[usize::from(to)];
                        n.delivered += 1;
                        n.holds = n.holds.max(n.delivered);
                        let command = self.log[k].clone();
                        self.input(to, Input::Committed(command));
                    }
                    // The log carries the membership: whoever the leader
                    // reaches learns the voters.
                    self.learn_voters(to);
                }
            }
            Ev::StepDone { node, acts, set, token, ok, stopped, started } => {
                let n = &self.nodes[usize::from(node)];
                if n.killed[usize::from(set)] == Some(acts) && n.acts[usize::from(set)] == acts + 1 {
                    // The guard killed this step's program: it failed, and
                    // changed nothing in the world.
                    self.input(node, Input::StepDone { set, token, ok: false });
                } else if n.acts[usize::from(set)] == acts {
                    if let Some(r) = stopped {
                        self.trace(|| format!("n{node} world: s{set} r{r} stopped"));
                        self.world.set(self.now, node, set, r, false);
                        self.nodes[usize::from(node)].guard_held[usize::from(set)][r] = false;
                    }
                    if let Some(r) = started {
                        // Only with the late order: the guard hears of it now.
                        self.nodes[usize::from(node)].guard_held[usize::from(set)][r] = true;
                    }
                    self.input(node, Input::StepDone { set, token, ok });
                }
            }
            Ev::MonitorDone { node, inc, set, token, resource } => {
                if self.nodes[usize::from(node)].inc == inc {
                    let ok = self.world.resource(node, set, resource);
                    self.input(node, Input::MonitorDone { set, token, ok });
                }
            }
            Ev::Guard { node, inc, deadline } => {
                let n = &mut self.nodes[usize::from(node)];
                if n.inc == inc && n.guard == Some(deadline) {
                    n.guard = None;
                    n.fired = Some(deadline);
                    n.killed = n.acts.iter().map(|&a| Some(a)).collect();
                    n.acts.iter_mut().for_each(|a| *a += 1);
                    self.trace(|| format!("n{node} guard fires: undoing what it holds, steps in flight killed"));
                    let took = self.guard_release(node);
                    let n = &mut self.nodes[usize::from(node)];
                    n.released_at = n.released_at.max(self.now + took);
                    let at = n.released_at;
                    self.push(at, Ev::Released { node, inc, deadline });
                }
            }
            Ev::Undone { node, set, resource, starts } => {
                if self.nodes[usize::from(node)].starts[usize::from(set)][resource] == starts {
                    self.trace(|| format!("n{node} world: s{set} r{resource} undone by the guard"));
                    self.world.set(self.now, node, set, resource, false);
                }
            }
            Ev::Released { node, inc, deadline } => {
                let n = &self.nodes[usize::from(node)];
                if n.inc == inc {
                    // The guard names a deadline by the millisecond, and the
                    // agent takes a report for the latest told of that name.
                    let named = n.guard.filter(|g| g.0 / 1000 == deadline.0 / 1000).unwrap_or(deadline);
                    self.input(node, Input::GuardFired { deadline: named });
                }
            }
            Ev::Fault(fault) => self.fault(fault),
            Ev::Restart { node, inc } => {
                // A machine runs an agent once the cluster has it as a
                // node, and until it removed it.
                let slot = self.topo.nodes.get(usize::from(node));
                if slot.is_none_or(|s| s.retired) {
                    return;
                }
                let n = &self.nodes[usize::from(node)];
                // A supervisor starts no second agent while a handover's
                // process lives (seed 60370: one booted at the heal beside
                // the handed-over sets its guard still held).
                if n.inc == inc && !n.running() {
                    if n.released_at > self.now {
                        // A new guard waits for the old one's release to
                        // finish (its lock), and the agent for its guard.
                        let at = n.released_at;
                        self.push(at, Ev::Restart { node, inc });
                    } else if self.disk_lost_until[usize::from(node)] > self.now {
                        // A guard that cannot read its slot does not start.
                        let at = self.disk_lost_until[usize::from(node)];
                        self.push(at, Ev::Restart { node, inc });
                    } else if self.pills[usize::from(node)] {
                        // Its guard finds a pill: it waits msgwait, then clears it.
                        let i = usize::from(node);
                        match self.pill_wait[i] {
                            Some(t) if t <= self.now => {
                                (self.pills[i], self.pill_wait[i]) = (false, None);
                                self.boot(node);
                                // The guard tells its agent it found a pill.
                                if let Some(core) = self.nodes[i].core.as_mut() {
                                    core.pill_found();
                                }
                            }
                            Some(t) => self.push(t, Ev::Restart { node, inc }),
                            None => {
                                let t = self.now + FENCE_DISK_MSGWAIT_US + FENCE_DISK_WATCH_US;
                                self.pill_wait[i] = Some(t);
                                self.push(t, Ev::Restart { node, inc });
                            }
                        }
                    } else {
                        self.boot(node);
                    }
                }
            }
            Ev::Resume { node, inc } => {
                if self.nodes[usize::from(node)].inc == inc {
                    self.resume(node);
                }
            }
            Ev::HandedBack { node, inc } => {
                let n = &self.nodes[usize::from(node)];
                if n.inc == inc && n.core.is_none() {
                    if n.released_at > self.now {
                        // The guard answers the new program's `sync` only
                        // once its release under way is done.
                        let at = n.released_at;
                        self.push(at, Ev::HandedBack { node, inc });
                    } else {
                        self.carry_on(node);
                    }
                }
            }
            Ev::LeaderNotice { node, inc, leader } => {
                // A late "deposed" notice must not undo a later re-election.
                if self.nodes[usize::from(node)].inc == inc && (leader || self.leader != Some(node)) {
                    self.input(node, Input::Leader(leader));
                }
            }
            Ev::FenceDone { by, inc, target, epoch, incarnation } => {
                self.fencing.remove(&(by, target));
                if self.sc.fence_disk {
                    // `msgwait` after the pill: the victim's guard has read it.
                    if self.fence_current(target, epoch, incarnation) {
                        self.confirmed(target, epoch, incarnation);
                    }
                } else if self.fence_rng.chance(self.fences.fail_per_mille) {
                    self.trace(|| format!("the fence device fails to power n{target} off"));
                    if self.nodes[usize::from(by)].inc == inc {
                        let result = Err("the device failed".to_string());
                        self.input(by, Input::FenceDone { node: target, epoch, incarnation, result });
                    }
                    return;
                } else {
                    self.fence(target, epoch, incarnation);
                }
                // The device confirmed (a void fence powered off a node
                // already off, or back: the core's `Fenced` is then stale).
                if self.nodes[usize::from(by)].inc == inc {
                    self.input(by, Input::FenceDone { node: target, epoch, incarnation, result: Ok(()) });
                }
            }
            Ev::Pill { by, inc, target, epoch, incarnation } => {
                if self.fence_rng.chance(self.fences.fail_per_mille) {
                    self.trace(|| format!("writing n{target}'s pill fails"));
                    self.fencing.remove(&(by, target));
                    if self.nodes[usize::from(by)].inc == inc {
                        let result = Err("the fence disk failed".to_string());
                        self.input(by, Input::FenceDone { node: target, epoch, incarnation, result });
                    }
                    return;
                }
                self.trace(|| format!("n{by} writes a pill into n{target}'s slot"));
                self.pills[usize::from(target)] = true;
                // A guard waiting out an earlier pill waits this one out too.
                let wait = &mut self.pill_wait[usize::from(target)];
                *wait = wait.map(|_| self.now + FENCE_DISK_MSGWAIT_US + FENCE_DISK_WATCH_US);
                let read = self.now + self.rng.range(1, FENCE_DISK_WATCH_US);
                self.push(read, Ev::PillRead { target });
                self.push(self.now + FENCE_DISK_MSGWAIT_US, Ev::FenceDone { by, inc, target, epoch, incarnation });
            }
            Ev::PillRead { target } => {
                if self.disk_lost_until[usize::from(target)] > self.now {
                    // The guard reads again every watch, until the disk is
                    // back (or the unread limit takes the node down first).
                    let at = self.now + self.rng.range(1, FENCE_DISK_WATCH_US);
                    self.push(at, Ev::PillRead { target });
                } else if self.pills[usize::from(target)] && self.nodes[usize::from(target)].running() {
                    // Whatever agent runs there now, of the fenced incarnation
                    // or a later one that started before the pill was written
                    // (or none, in a handover: the guard acts alone).
                    self.take_down(target, "reads its pill");
                }
            }
            Ev::DiskCheck { node, inc } => {
                let n = &self.nodes[usize::from(node)];
                // The guard the check is about runs on through handovers.
                if inc >= n.guard_since && n.running() && self.disk_lost_until[usize::from(node)] > self.now {
                    self.take_down(node, "has read no slot for msgwait/2");
                }
            }
            Ev::LockPoll { node, token, done_at } => {
                let Some(h) = self.holders.iter().find(|h| h.node == node && h.token == token).cloned() else {
                    return;
                };
                if self.now >= done_at {
                    self.holders.retain(|x| x.token != token);
                    self.ask(node, Request::Unlock { name: h.name, token });
                } else {
                    self.ask(node, Request::LockState { name: h.name });
                    self.push(self.now + 100_000, Ev::LockPoll { node, token, done_at });
                }
            }
            Ev::Probed { node, inc, set, generation, strangers } => {
                if self.nodes[usize::from(node)].inc == inc {
                    self.input(node, Input::Probed { set, generation, strangers });
                }
            }
            Ev::Readmitted { by, inc, node } => {
                let reach = self.alive(node) && self.agrees(usize::from(by), usize::from(node));
                if self.nodes[usize::from(by)].inc != inc || self.leader != Some(by) || !reach {
                    return;
                }
                if self.nodes[usize::from(node)].holds < self.log.len() {
                    // A learner becomes a voter only once its log caught up.
                    self.push(self.now + 100_000, Ev::Readmitted { by, inc, node });
                    return;
                }
                self.voters[usize::from(node)] = true;
                self.trace(|| format!("n{node} votes again"));
                self.tell_voters();
            }
            Ev::RecordRead { node, inc } => {
                // What the disk holds when the read reaches it; a node that
                // cannot read the disk hears nothing back.
                let i = usize::from(node);
                if self.nodes[i].inc == inc && self.disk_lost_until[i] <= self.now {
                    self.input(node, Input::AloneRecord { holder: self.alone_record });
                }
            }
            Ev::Tick => self.tick(),
        }
    }

    fn boot(&mut self, node: NodeId) {
        let i = usize::from(node);
        let local0 = self.rng.range(0, 1 << 40);
        let n = &mut self.nodes[i];
        n.boots += 1;
        n.inc += 1;
        n.guard_since = n.inc;
        let spare = self.sc.spare.as_ref().map(|s| s.drift_ppm);
        n.clock = Clock::new(self.now, local0, self.sc.drift_ppm.get(i).copied().or(spare).unwrap_or(0));
        n.paused = false;
        n.inbox.clear();
        n.guard = None;
        n.sent = (0, 0);
        let mut state = ClusterState::new(self.sc.topo.nodes.len(), self.sc.topo.sets.len())
            .requiring_fence(self.sc.fence_required.clone());
        for command in &self.log[..n.delivered] {
            let _ = state.apply(command);
        }
        let local = n.clock.local(self.now);
        n.core = Some(Node::new(self.sc.topo.clone(), node, state, n.disk.clone(), n.boots, local));
        let voters = n.voters_view.clone();
        self.trace(|| format!("n{node} boots"));
        if self.sc.fence_disk {
            // The agent reads the record as it starts (its guard has read
            // its slot: the disk is readable).
            self.input(node, Input::AloneRecord { holder: self.alone_record });
        }
        self.input(node, Input::Voters(voters));
    }

    /// `baton handover` agreed by the core: the program goes, the guard
    /// stays with what it holds and its deadline; the next program comes
    /// after the delay the fault chose.
    fn hand_over(&mut self, node: NodeId, handover: Handover) {
        let i = usize::from(node);
        let after = self.nodes[i].handover_after.take().unwrap_or(0);
        let n = &mut self.nodes[i];
        n.core = None;
        n.inc += 1;
        n.acts.iter_mut().for_each(|a| *a += 1);
        n.inbox.clear();
        n.handed = Some(handover);
        if self.leader == Some(node) {
            self.leader = None;
        }
        let inc = n.inc;
        // The guard is not the program: its deadline still fires.
        if let Some(d) = n.guard {
            let at = n.clock.true_of(d).max(self.now);
            self.push(at, Ev::Guard { node, inc, deadline: d });
        }
        self.trace(|| format!("n{node} hands over: the program is replaced, its guard holds on"));
        self.push(self.now + after, Ev::HandedBack { node, inc });
    }

    /// The next program of a handover: the same incarnation and clock, the
    /// log it holds, and — the guard's answer to its `sync` — a firing for
    /// the deadline handed over that no program heard.
    fn carry_on(&mut self, node: NodeId) {
        let i = usize::from(node);
        let Some(h) = self.nodes[i].handed.take() else { return };
        let n = &mut self.nodes[i];
        let mut state = ClusterState::new(self.sc.topo.nodes.len(), self.sc.topo.sets.len())
            .requiring_fence(self.sc.fence_required.clone());
        for command in &self.log[..n.delivered] {
            let _ = state.apply(command);
        }
        let local = n.clock.local(self.now);
        n.core = Some(Node::resume(self.sc.topo.clone(), node, state, n.disk.clone(), &h, local));
        let unheard = h.lease_end.filter(|&d| n.fired == Some(d));
        let voters = n.voters_view.clone();
        self.trace(|| format!("n{node} carries on after its handover"));
        if self.sc.fence_disk {
            self.input(node, Input::AloneRecord { holder: self.alone_record });
        }
        self.input(node, Input::Voters(voters));
        if let Some(deadline) = unheard {
            self.input(node, Input::GuardFired { deadline });
        }
    }

    /// A configuration change was agreed: the set slots it added exist
    /// from now on, everywhere (stopped), and the agreed policies hold.
    /// Returns the node slots it added.
    fn follow_config(&mut self) -> std::ops::Range<usize> {
        let Some(agreed) = &self.reference.config else { return 0..0 };
        let before = self.topo.nodes.len();
        if !agreed.nodes.is_empty() && agreed.nodes != self.topo.nodes {
            self.topo.nodes.clone_from(&agreed.nodes);
            self.topo.fenceable.resize(self.topo.nodes.len(), false);
            assert!(self.topo.nodes.len() <= self.nodes.len(), "a node slot without a machine");
            // The agreement layer's voters follow: a node added becomes a
            // voter (a learner that has copied the log), a node removed
            // leaves them.
            for (x, spec) in self.topo.nodes.iter().enumerate() {
                self.voters[x] = !spec.retired;
            }
            self.tell_voters();
        }
        let added = before..self.topo.nodes.len();
        let Some(agreed) = &self.reference.config else { return added };
        let old = self.topo.sets.len();
        self.topo.sets.clone_from(&agreed.sets);
        let resources: Vec<usize> = self.topo.sets.iter().map(|s| s.resources.len()).collect();
        self.world.grow(&resources);
        for n in &mut self.nodes {
            n.acts.resize(resources.len(), 0);
            n.killed.resize(resources.len(), None);
            n.guard_held.extend(resources[old..].iter().map(|&r| vec![false; r]));
            n.starts.extend(resources[old..].iter().map(|&r| vec![0; r]));
        }
        for f in &mut self.stop_failed {
            f.resize(resources.len(), false);
        }
        self.release_us.resize(resources.len(), agreed.guard_margin.as_micros() as u64);
        let (slots, generation) = (resources.len() - old, agreed.generation);
        self.trace(|| format!("configuration generation {generation} agreed: {slots} set slots added"));
        added
    }

    fn crash(&mut self, node: NodeId) {
        self.stop_agent(node);
        let n = &mut self.nodes[usize::from(node)];
        n.guard_held.iter_mut().flatten().for_each(|h| *h = false);
        // The machine died: its guard's release with it, and any `baton
        // lock` command running there.
        n.released_at = self.now;
        self.holders.retain(|h| h.node != node);
        self.trace(|| format!("n{node} crashes"));
        self.world.clear_node(self.now, node);
    }

    /// The agent is gone (the machine too, or only the agent).
    fn stop_agent(&mut self, node: NodeId) {
        let n = &mut self.nodes[usize::from(node)];
        n.core = None;
        n.handed = None;
        n.inc += 1;
        n.acts.iter_mut().for_each(|a| *a += 1);
        n.paused = false;
        n.inbox.clear();
        n.guard = None;
        if self.leader == Some(node) {
            self.leader = None;
        }
    }

    /// The guard undoes everything it holds, each resource done at a time of
    /// its own within the release budget; returns when the last is done.
    fn guard_release(&mut self, node: NodeId) -> u64 {
        let mut last = 0;
        for set in 0..self.topo.sets.len() {
            let budget = self.release_us[set];
            for r in 0..self.topo.sets[set].resources.len() {
                let n = &mut self.nodes[usize::from(node)];
                if std::mem::take(&mut n.guard_held[set][r]) {
                    let starts = n.starts[set][r];
                    let took = self.rng.range(0, budget.max(1));
                    last = last.max(took);
                    self.push(self.now + took, Ev::Undone { node, set: set as SetId, resource: r, starts });
                }
            }
        }
        last
    }

    fn resume(&mut self, node: NodeId) {
        let n = &mut self.nodes[usize::from(node)];
        if !n.paused {
            return;
        }
        n.paused = false;
        let inbox = std::mem::take(&mut n.inbox);
        self.trace(|| format!("n{node} resumes with {} inputs waiting", inbox.len()));
        for input in inbox {
            self.input(node, input);
        }
        self.input(node, Input::Tick);
    }

    fn input(&mut self, node: NodeId, input: Input) {
        let i = usize::from(node);
        let n = &mut self.nodes[i];
        let Some(core) = n.core.as_mut() else { return };
        if n.paused {
            n.inbox.push(input);
            return;
        }
        let local = n.clock.local(self.now);
        let outputs = core.handle(local, input);
        let wake = n.clock.true_of(core.poll_timeout()).max(self.now + 1);
        let inc = n.inc;
        for output in outputs {
            // An agent gone meanwhile (it exited, or could not record that
            // it goes on alone) does nothing more.
            if self.nodes[i].inc != inc {
                break;
            }
            self.output(node, output);
        }
        let n = &mut self.nodes[i];
        if n.core.is_some() && wake != n.wake_at {
            n.wake_at = wake;
            let inc = n.inc;
            self.push(wake, Ev::Wake { node, inc, at: wake });
        }
    }

    fn output(&mut self, node: NodeId, output: Output) {
        let i = usize::from(node);
        match output {
            Output::Send(heartbeat) => {
                for to in 0..self.nodes.len() {
                    for link in (0..self.topo.links).filter(|_| to != i) {
                        for delay in self.net.fate(&mut self.rng, link, i, to) {
                            let ev = Ev::Deliver { to: to as NodeId, link, heartbeat: heartbeat.clone() };
                            self.push(self.now + delay, ev);
                        }
                    }
                }
            }
            Output::Propose(command) => {
                self.trace(|| format!("n{node} proposes {command:?}"));
                self.propose(node, command)
            }
            Output::Act(action) => {
                self.trace(|| format!("n{node} acts {action:?}"));
                let r = acting::check(&self.topo, &self.reference, node, &action, self.now);
                self.fail(r);
                self.act(node, action)
            }
            Output::Guard(deadline) => {
                // A deadline that has passed fires before a later one applies.
                let n = &self.nodes[i];
                if let Some(old) = n.guard.filter(|&old| n.clock.true_of(old) <= self.now) {
                    let inc = n.inc;
                    self.dispatch(Ev::Guard { node, inc, deadline: old });
                }
                let n = &mut self.nodes[i];
                n.guard = deadline;
                if let Some(d) = deadline {
                    let (at, inc) = (n.clock.true_of(d).max(self.now), n.inc);
                    self.push(at, Ev::Guard { node, inc, deadline: d });
                }
            }
            Output::Persist(p) => self.nodes[i].disk = p,
            Output::Cancel { set } => self.nodes[i].acts[usize::from(set)] += 1,
            Output::Fence { node: target, epoch, incarnation } => {
                self.trace(|| format!("n{node} asks to fence n{target}"));
                if self.fencing.insert((node, target)) {
                    let late = if self.fences.slow { self.fence_rng.range(0, 2_500_000) } else { 0 };
                    let at = self.now + self.rng.range(100_000, 500_000) + late;
                    let inc = self.nodes[i].inc;
                    if self.sc.fence_disk {
                        self.push(at, Ev::Pill { by: node, inc, target, epoch, incarnation });
                    } else {
                        self.push(at, Ev::FenceDone { by: node, inc, target, epoch, incarnation });
                    }
                }
            }
            Output::Alone => {
                if self.sc.fence_disk {
                    // It records that it goes on alone first, and goes no
                    // further if it cannot: its agent exits.
                    if self.disk_lost_until[i] > self.now {
                        return self.take_down(node, "cannot write the alone record");
                    }
                    self.alone_record = Some(node);
                }
                // The node restarts its agreement layer as its only voter,
                // from its own log (the single log here) at a new term.
                let r = pair::check_alone(&self.topo, node, self.nodes[i].holds, self.log.len(), self.now);
                self.fail(r);
                self.voters = (0..self.nodes.len()).map(|x| x == i).collect();
                if let Some(old) = self.leader.take() {
                    let inc = self.nodes[usize::from(old)].inc;
                    self.push(self.now, Ev::LeaderNotice { node: old, inc, leader: false });
                }
                self.term += 1;
                self.leaderless_since = Some(self.now);
                self.trace(|| format!("n{node} is the only voter"));
                self.tell_voters();
            }
            Output::ReadAloneRecord => {
                let inc = self.nodes[i].inc;
                let at = self.now + self.rng.range(1_000, 50_000);
                self.push(at, Ev::RecordRead { node, inc });
            }
            Output::Together => {
                if self.alone_record == Some(node) {
                    self.alone_record = None;
                }
            }
            Output::Readmit { node: peer } => {
                let (lo, hi) = (100_000, 800_000);
                let at = self.now + self.rng.range(lo, hi);
                let inc = self.nodes[i].inc;
                self.push(at, Ev::Readmitted { by: node, inc, node: peer });
            }
            Output::Event(e) => {
                // A stop the agent gave up on at its timeout failed, even
                // if the world finished it meanwhile (the agent was paused).
                if let Event::Set {
                    set,
                    report: lifecycle::Report::StepFailed { step: Step::Stop(_), timed_out: true },
                } = e
                {
                    self.stop_failed[i][usize::from(set)] = true;
                }
                self.trace(|| format!("n{node} {e:?}"))
            }
            Output::Reply { id, reply } => self.replied(node, id, reply),
            Output::Exit => {
                let r = shutdown::check(&self.topo, &self.world, node, self.now);
                self.fail(r);
                self.trace(|| format!("n{node} agent exits"));
                let after = self.nodes[i].restart_after.take().unwrap_or(SECOND);
                self.stop_agent(node);
                let took = self.guard_release(node);
                let n = &mut self.nodes[i];
                n.released_at = n.released_at.max(self.now + took);
                let inc = n.inc;
                self.push(self.now + after, Ev::Restart { node, inc });
            }
            Output::Probe { set, owner, generation } => {
                // The network answers with the truth: every node but the
                // named owner that holds an address of the set.
                let strangers = (0..self.nodes.len() as NodeId)
                    .filter(|&n| Some(n) != owner)
                    .filter(|&n| {
                        let spec = &self.topo.sets[usize::from(set)];
                        (0..spec.resources.len()).any(|r| spec.resources[r].address && self.world.resource(n, set, r))
                    })
                    .map(|n| Stranger { mac: [2, 0, 0, 0, 0, n], node: Some(n) })
                    .collect();
                let at = self.now + self.rng.range(1_000, 200_000);
                let inc = self.nodes[i].inc;
                self.push(at, Ev::Probed { node, inc, set, generation, strangers });
            }
        }
    }

    fn propose(&mut self, from: NodeId, command: Command) {
        let Some(leader) = self.leader else { return };
        if leader == from {
            self.commit(command);
        } else if self.agrees(usize::from(from), usize::from(leader)) && !self.rng.chance(self.net.loss_per_mille) {
            let (lo, hi) = self.net.delay_us;
            let at = self.now + self.rng.range(lo, hi);
            self.push(at, Ev::Proposal { command, leader, term: self.term });
        }
    }

    /// Append to the log if the leader can reach a majority; true if it did.
    fn commit(&mut self, command: Command) -> bool {
        let Some(leader) = self.leader else { return false };
        if !self.quorum(leader) {
            return false;
        }
        let before = self.reference.clone();
        let result = self.reference.apply(&command);
        let added =
            if matches!(command, Command::Configure { .. }) && result.is_ok() { self.follow_config() } else { 0..0 };
        for (i, (b, a)) in before.sets.iter().zip(&self.reference.sets).enumerate() {
            if (b.owner, b.running) != (a.owner, a.running) {
                self.report.agreed.push((self.now, i as SetId, a.owner, a.running));
            }
        }
        let r = frozen::check_agreed(&self.topo, &before, &command, result.is_ok(), self.now);
        self.fail(r);
        let r = duplicate::check(&self.topo, &command, result.is_ok(), self.now);
        self.fail(r);
        let r = block::check(&self.topo, &command, result.is_ok(), &self.stop_failed, self.now);
        self.fail(r);
        if result
            == Ok(Applied::Evicted(match command {
                Command::Suspect { node, .. } | Command::Fenced { node, .. } => node,
                _ => NodeId::MAX,
            }))
        {
            self.report.evictions += 1;
        }
        let index = self.log.len();
        self.trace(|| format!("commit #{index} {command:?} -> {result:?}"));
        self.log.push(command);
        for x in 0..self.nodes.len() {
            if self.voters[x] && self.alive(x as NodeId) && self.agrees(usize::from(leader), x) {
                self.nodes[x].holds = self.log.len();
            }
        }
        // A machine added as a node has copied the log as a learner; its
        // agent starts from it.
        for x in added {
            let n = &mut self.nodes[x];
            (n.delivered, n.holds) = (self.log.len(), self.log.len());
            let (at, inc) = (self.now + self.rng.range(10_000, 300_000), n.inc);
            self.push(at, Ev::Restart { node: x as NodeId, inc });
        }
        true
    }

    fn act(&mut self, node: NodeId, action: Action) {
        let inc = self.nodes[usize::from(node)].inc;
        match action {
            Action::Run { set, token, step, timeout } => {
                let acts = self.nodes[usize::from(node)].acts[usize::from(set)];
                let timeout_us = timeout.as_micros() as u64;
                let mut dur = self.rng.range(1_000, 50_000);
                let mut stopped = None;
                let mut started = None;
                let mut ok = match step {
                    Step::Hook(HookKind::Test) => {
                        let core = self.nodes[usize::from(node)].core.as_ref().expect("acting node is up");
                        let r = frozen::check_start(&self.topo, core.state(), self.topo.node_name(node), set, self.now);
                        self.fail(r);
                        !self.rng.chance(self.res.veto_per_mille)
                    }
                    Step::Hook(HookKind::PreAcq) => !self.rng.chance(self.res.start_fail_per_mille / 4),
                    Step::Hook(_) => true,
                    Step::Start(r) => {
                        self.trace(|| format!("n{node} world: s{set} r{r} starting"));
                        self.nodes[usize::from(node)].starts[usize::from(set)][r] += 1;
                        // The agent tells the guard before the start begins.
                        if self.sc.late_hold {
                            started = Some(r);
                        } else {
                            self.nodes[usize::from(node)].guard_held[usize::from(set)][r] = true;
                        }
                        self.world.set(self.now, node, set, r, true);
                        self.check_holders(node, set);
                        !self.rng.chance(self.res.start_fail_per_mille)
                    }
                    Step::Stop(r) => {
                        if self.res.slow_stops {
                            dur = self.rng.range(timeout_us / 2, timeout_us * 9 / 10);
                        }
                        let ok = !self.rng.chance(self.res.stop_fail_per_mille);
                        stopped = ok.then_some(r);
                        ok
                    }
                };
                if dur > timeout_us {
                    (dur, ok, stopped) = (timeout_us, false, None);
                }
                if matches!(step, Step::Stop(_)) && !ok {
                    // Failed, or timed out: the resource may still run.
                    self.stop_failed[usize::from(node)][usize::from(set)] = true;
                }
                self.push(self.now + dur, Ev::StepDone { node, acts, set, token, ok, stopped, started });
            }
            Action::Monitor { set, token, resource, .. } => {
                let at = self.now + self.rng.range(1_000, 20_000);
                self.push(at, Ev::MonitorDone { node, inc, set, token, resource });
            }
        }
    }

    /// An operator's (or `baton lock`'s) request to `node`.
    fn ask(&mut self, node: NodeId, request: Request) {
        let id = self.next_request;
        self.next_request += 1;
        self.trace(|| format!("n{node} asked #{id}: {request:?}"));
        self.asked.insert(id, (node, request.clone()));
        self.input(node, Input::Request { id, request });
    }

    /// A reply: `baton lock` runs its command from a grant, asks every 100 ms
    /// whether it may go on, and stops when told no or when the last answer's
    /// `valid_for` (its own clock) runs out.
    fn replied(&mut self, node: NodeId, id: u64, reply: Reply) {
        self.trace(|| format!("n{node} replies #{id}: {reply:?}"));
        let Some((_, request)) = self.asked.remove(&id) else { return };
        let until = |sim: &Self, valid_for: std::time::Duration| {
            let n = &sim.nodes[usize::from(node)];
            let local = n.clock.local(sim.now) + valid_for;
            n.clock.true_of(local)
        };
        match (request, reply) {
            (Request::Handover, Reply::HandedOver(handover)) => self.hand_over(node, handover),
            (Request::Lock { name, .. }, Reply::Locked { token, valid_for }) => {
                let until_us = until(self, valid_for);
                self.holders.push(lock::Holder { node, name, token, until_us });
                let hold = self.rng.range(200_000, 2_000_000);
                self.push(self.now + 100_000, Ev::LockPoll { node, token, done_at: self.now + hold });
            }
            (Request::LockState { name }, Reply::LockState { valid, token: t, valid_for, .. }) => {
                let until_us = until(self, valid_for);
                for h in self.holders.iter_mut().filter(|h| h.node == node && h.name == name) {
                    h.until_us =
                        if valid && t == Some(h.token) { until_us.max(h.until_us) } else { self.now.min(h.until_us) };
                }
            }
            _ => {}
        }
        let r = lock::check(&self.topo, &self.holders, self.now);
        self.fail(r);
        self.holders.retain(|h| h.until_us > self.now);
    }

    fn check_holders(&mut self, node: NodeId, set: SetId) {
        let r = single_owner::check(&self.topo, &self.world, set, self.now);
        self.fail(r);
        let r = witness::check(&self.topo, &self.world, node, set, self.now);
        self.fail(r);
    }

    /// A fence disk's guard takes its node down: the agent killed, then
    /// everything undone; its supervisor starts the agent again later.
    fn take_down(&mut self, node: NodeId, why: &str) {
        self.stop_agent(node);
        self.trace(|| format!("n{node}'s guard {why}: agent killed, everything undone"));
        let took = self.guard_release(node);
        let n = &mut self.nodes[usize::from(node)];
        n.released_at = n.released_at.max(self.now + took);
        let (inc, after) = (n.inc, self.rng.range(SECOND / 5, 3 * SECOND));
        self.push(self.now + after, Ev::Restart { node, inc });
    }

    /// Is a fence of `target`'s (epoch, incarnation) still to be done?
    /// Fenced already, or back in a new epoch: the request is void.
    fn fence_current(&self, target: NodeId, epoch: u64, incarnation: u64) -> bool {
        let rec = self.reference.node(target);
        (rec.epoch, rec.incarnation) == (epoch, incarnation)
            && !self.pending_ops.iter().any(|c| matches!(c, Command::Fenced { node, .. } if *node == target))
    }

    /// The device confirms `target` off, leader or not (in two-node mode
    /// the one who asks may have no leader); the leader proposes the
    /// confirmation until a majority agrees.
    fn confirmed(&mut self, target: NodeId, epoch: u64, incarnation: u64) {
        if self.leader.is_some() {
            self.pending_ops.push(Command::Fenced { node: target, epoch, incarnation });
        }
    }

    /// A power fence: the machine goes off at once, whatever incarnation of
    /// its agent runs (a power switch knows none), and boots again later.
    /// Only a fence of the incarnation the cluster records is agreed.
    fn fence(&mut self, target: NodeId, epoch: u64, incarnation: u64) {
        self.trace(|| format!("fence device powers n{target} off"));
        self.crash(target);
        let at = self.now + self.rng.range(1_000_000, 3_000_000);
        let inc = self.nodes[usize::from(target)].inc;
        self.push(at, Ev::Restart { node: target, inc });
        if self.fence_current(target, epoch, incarnation) {
            self.confirmed(target, epoch, incarnation);
        }
    }

    fn fault(&mut self, fault: Fault) {
        self.trace(|| format!("FAULT {fault:?}"));
        let n = self.nodes.len();
        let links = self.topo.links;
        match fault {
            Fault::Crash { node, down_us } => {
                if self.nodes[usize::from(node)].core.is_some() {
                    self.crash(node);
                    if let Some(d) = down_us {
                        let inc = self.nodes[usize::from(node)].inc;
                        self.push(self.now + d, Ev::Restart { node, inc });
                    }
                }
            }
            Fault::KillAgent { node, down_us } => {
                // In a handover's gap too: the process that would carry on dies.
                if self.nodes[usize::from(node)].running() {
                    self.stop_agent(node);
                    self.trace(|| format!("n{node} agent killed: its guard undoes what it holds"));
                    let took = self.guard_release(node);
                    let n = &mut self.nodes[usize::from(node)];
                    n.released_at = n.released_at.max(self.now + took);
                    let inc = self.nodes[usize::from(node)].inc;
                    self.push(self.now + down_us, Ev::Restart { node, inc });
                }
            }
            Fault::FenceDiskLost { node, for_us } => {
                let i = usize::from(node);
                self.disk_lost_until[i] = self.disk_lost_until[i].max(self.now + for_us);
                // Its last good read was up to a watch ago.
                let at = self.now + FENCE_DISK_MSGWAIT_US / 2 - self.rng.range(0, FENCE_DISK_WATCH_US);
                let inc = self.nodes[i].inc;
                self.push(at, Ev::DiskCheck { node, inc });
            }
            Fault::Pause { node, for_us } => {
                let nd = &mut self.nodes[usize::from(node)];
                if nd.core.is_some() && !nd.paused {
                    nd.paused = true;
                    let inc = nd.inc;
                    if self.leader == Some(node) {
                        // A paused leader is deposed by the others' election.
                        self.leaderless_since.get_or_insert(self.now);
                    }
                    self.push(self.now + for_us, Ev::Resume { node, inc });
                }
            }
            Fault::Partition { side } => {
                for l in 0..links {
                    for a in side.iter().map(|&a| usize::from(a)) {
                        for b in (0..n).filter(|b| !side.contains(&(*b as NodeId))) {
                            self.net.set_cut(l, a, b, true);
                            self.net.set_cut(l, b, a, true);
                        }
                    }
                }
            }
            Fault::OneWay { from, to } => {
                for l in 0..links {
                    for &a in &from {
                        for &b in &to {
                            self.net.set_cut(l, usize::from(a), usize::from(b), true);
                        }
                    }
                }
            }
            Fault::Lag { node, for_us } => self.nodes[usize::from(node)].lagged_until = self.now + for_us,
            Fault::CutLink { node, link } => {
                for p in (0..n).filter(|&p| p != usize::from(node)) {
                    self.net.set_cut(link, usize::from(node), p, true);
                    self.net.set_cut(link, p, usize::from(node), true);
                }
            }
            Fault::Loss { per_mille } => self.net.loss_per_mille = per_mille,
            Fault::Duplication { per_mille } => self.net.dup_per_mille = per_mille,
            Fault::Delay { min_us, max_us } => self.net.delay_us = (min_us, max_us),
            Fault::DeposeLeader => {
                if let Some(old) = self.leader.take() {
                    let at = self.now + self.rng.range(0, 1_000_000);
                    let inc = self.nodes[usize::from(old)].inc;
                    self.push(at, Ev::LeaderNotice { node: old, inc, leader: false });
                    self.leaderless_since = Some(self.now);
                }
            }
            Fault::Resources(r) => self.res = r,
            Fault::ResourceCrash { node, set } => {
                // Only a monitored resource's death can be noticed at all.
                let spec = &self.topo.sets[usize::from(set)];
                if let Some(r) = spec.resources.iter().position(|r| r.monitor_interval.is_some()) {
                    if self.world.resource(node, set, r) {
                        self.world.set(self.now, node, set, r, false);
                    }
                }
            }
            Fault::Request(request) => {
                let up: Vec<NodeId> = (0..self.nodes.len() as NodeId).filter(|&n| self.alive(n)).collect();
                if !up.is_empty() {
                    let node = up[self.rng.index(up.len())];
                    self.ask(node, request);
                }
            }
            Fault::Handover { node, down_us } => {
                let n = &mut self.nodes[usize::from(node)];
                if n.core.is_some() && !n.paused {
                    n.handover_after = Some(down_us);
                    self.ask(node, Request::Handover);
                }
            }
            Fault::Shutdown { node, down_us } => {
                if self.nodes[usize::from(node)].core.is_some() {
                    self.nodes[usize::from(node)].restart_after = Some(down_us);
                    self.input(node, Input::Shutdown);
                }
            }
            Fault::Heal => self.heal(),
        }
    }

    fn heal(&mut self) {
        self.net.heal();
        self.res = ResourceFaults::default();
        self.fences = FenceFaults::default();
        let now = self.now;
        self.disk_lost_until.iter_mut().for_each(|t| *t = (*t).min(now));
        for node in 0..self.nodes.len() as NodeId {
            if self.nodes[usize::from(node)].core.is_none() {
                // Through a restart, which waits for an old guard's release
                // to finish, as a real agent waits for the guard lock (seed
                // 3449: booted at the heal while the killed agent's guard
                // still held a resource, it gave the set away).
                let inc = self.nodes[usize::from(node)].inc;
                self.dispatch(Ev::Restart { node, inc });
            } else {
                self.resume(node);
            }
        }
        for set in 0..self.topo.sets.len() as SetId {
            self.pending_ops.push(Command::Freeze { set, frozen: false });
            self.pending_ops.push(Command::Clear { set });
        }
        for node in 0..self.nodes.len() as NodeId {
            self.pending_ops.push(Command::Standby { node, standby: false });
        }
        self.pending_ops.push(Command::Maintenance { on: false });
    }

    fn tick(&mut self) {
        self.elect();
        self.replicate();
        if self.leader.is_some_and(|l| self.quorum(l)) && !self.pending_ops.is_empty() {
            for command in std::mem::take(&mut self.pending_ops) {
                if !self.commit(command.clone()) {
                    self.pending_ops.push(command);
                }
            }
        }
        if self.now >= self.sc.heal_at_us && self.report.recovered_after_us.is_none() && self.all_recovered() {
            self.report.recovered_after_us = Some(self.now - self.sc.heal_at_us);
        }
        self.push(self.now + TICK_US, Ev::Tick);
    }

    fn all_recovered(&self) -> bool {
        (0..self.topo.sets.len() as SetId)
            .all(|s| recovery::check(&self.topo, &self.reference, &self.world, s, self.now).is_ok())
    }

    fn elect(&mut self) {
        if self.leader.is_some_and(|l| self.quorum(l)) {
            self.leaderless_since = None;
            return;
        }
        let since = *self.leaderless_since.get_or_insert(self.now);
        if self.now - since < ELECTION_TIMEOUT_US {
            return;
        }
        let candidates: Vec<NodeId> = (0..self.nodes.len() as NodeId).filter(|&x| self.quorum(x)).collect();
        if candidates.is_empty() {
            return;
        }
        let new = candidates[self.rng.index(candidates.len())];
        if let Some(old) = self.leader.filter(|&old| old != new) {
            let at = self.now + self.rng.range(0, 1_000_000);
            let inc = self.nodes[usize::from(old)].inc;
            self.push(at, Ev::LeaderNotice { node: old, inc, leader: false });
        }
        self.leader = Some(new);
        self.term += 1;
        self.leaderless_since = None;
        let term = self.term;
        self.trace(|| format!("n{new} becomes leader (term {term})"));
        self.input(new, Input::Leader(true));
    }

    fn replicate(&mut self) {
        let Some(leader) = self.leader.filter(|&l| self.alive(l)) else { return };
        let len = self.log.len();
        for x in 0..self.nodes.len() {
            let n = &self.nodes[x];
            if n.core.is_none() || n.delivered >= len || !self.agrees(usize::from(leader), x) {
                continue;
            }
            if n.sent.0 >= len && self.now - n.sent.1 < RESEND_US {
                continue;
            }
            let inc = n.inc;
            self.nodes[x].sent = (len, self.now);
            if !self.rng.chance(self.net.loss_per_mille) {
                let (lo, hi) = self.net.delay_us;
                let at = self.now + self.rng.range(lo, hi);
                self.push(at, Ev::Replicate { to: x as NodeId, inc, upto: len });
            }
        }
    }
}

fn count_failovers(timeline: &[(u64, SetId, NodeId, bool)]) -> u32 {
    let mut last: Vec<(SetId, NodeId)> = Vec::new();
    let mut count = 0;
    for &(_, set, node, _) in timeline.iter().filter(|e| e.3) {
        match last.iter_mut().find(|(s, _)| *s == set) {
            Some((_, prev)) if *prev != node => {
                count += 1;
                *prev = node;
            }
            Some(_) => {}
            None => last.push((set, node)),
        }
    }
    count
}
