//! One node's core: every input from the outside world goes through
//! [`Node::handle`], which returns what to do about it. The agent and the
//! simulator both drive this type; neither makes a decision of its own.
//!
//! After each input the node reconciles: it compares what the agreed state
//! and its lease allow with what its set lifecycles are doing, and emits the
//! steps, proposals and heartbeats that close the gap. Proposals are
//! level-triggered — re-sent while the agreed state does not yet reflect
//! them — so a lost message or a restart costs time, never correctness.

use std::collections::BTreeMap;
use std::time::Duration;

use baton_state::{Applied, ClusterState, Command, Exclusion, Phase as SetPhase, Rejected};

use crate::detector::{Change, Detector};
use crate::lease::Lease;
use crate::lifecycle::{Action, Lifecycle, Phase, Report, Why};
use crate::placement::{self, Liveness};
use crate::requests::{self, Pending, Refusal, Reply, Request, Work};
use crate::time::Time;
use crate::topology::{NodeId, SetId, Topology};

/// What one node tells every other node, on every link, every interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub from: NodeId,
    /// The sender's epoch as its agreed state says.
    pub epoch: u64,
    /// Strictly increasing across the sender's restarts.
    pub seq: u64,
    /// Lease promises: "I heard your heartbeat `seq` (epoch `epoch`)".
    pub echoes: Vec<Echo>,
    /// How long each of those promises is: the sender's lease as it sends
    /// (`None`: a sender from before the lease could change live, which
    /// promises the lease it started with).
    pub promise: Option<Duration>,
    /// The membership (the last change of nodes) the sender counts by
    /// (`None`: a baton from before nodes changed live; no node is added
    /// or removed while one is online).
    pub members: Option<u64>,
    /// The sender knows direct moves (`false`: a baton from before them;
    /// no move is direct while one is online).
    pub direct: bool,
    /// Sets the sender released for their direct move's target, by
    /// (set, generation): the target may start them now (ARCHITECTURE.md,
    /// "A planned move handed over directly").
    pub released: Vec<(SetId, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    pub to: NodeId,
    pub epoch: u64,
    pub seq: u64,
}

/// What a node must keep on disk across restarts, beyond the Raft log: the
/// suspicions it cast, and the sets it gave up. A voter that forgot it
/// suspected a node could promise that node a lease again after the cluster
/// evicted it; an owner that forgot it gave a set up (its `StartFailed` may
/// be agreed, and the set given to another node, before it learns so) could
/// start that set again after a restart, from an older prefix of the log.
/// Both are written before the cluster is told.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persisted {
    /// Per peer, indexed by node id.
    pub denials: Vec<Denial>,
    /// Per set: the generation at which this node gave it up, and why.
    pub abandoned: Vec<Option<(u64, Exclusion)>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Denial {
    /// The last suspicion round used about this peer.
    pub round: u64,
    /// While set, no promise is given to this peer for this epoch or older.
    pub epoch: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A timer the node asked for (see [`Node::poll_timeout`]) fired.
    Tick,
    Heartbeat {
        link: usize,
        heartbeat: Heartbeat,
    },
    /// The next committed command, in log order.
    Committed(Command),
    /// The agreement layer replaced the whole state (a snapshot was
    /// installed): continue from this one.
    Restore(ClusterState),
    StepDone {
        set: SetId,
        token: u64,
        ok: bool,
    },
    MonitorDone {
        set: SetId,
        token: u64,
        ok: bool,
    },
    /// The guard reached a deadline told (`Output::Guard`) and killed
    /// everything. Each deadline that passes before the next is told is
    /// fired, and reported, once.
    GuardFired {
        deadline: Time,
    },
    /// This node became (or stopped being) the agreement layer's leader.
    Leader(bool),
    /// An operator's request (from the API or `baton lock`), answered
    /// with an `Output::Reply` of the same id.
    Request {
        id: u64,
        request: Request,
    },
    /// SIGTERM: hand every set over, then `Output::Exit`.
    Shutdown,
    /// A fence this node asked for is over: `Ok` once a device confirmed
    /// the node off.
    FenceDone {
        node: NodeId,
        epoch: u64,
        incarnation: u64,
        result: Result<(), String>,
    },
    /// What a probe of a set's addresses found: whoever answered for them
    /// but the owner named in the probe (and this node, if it holds one).
    Probed {
        set: SetId,
        generation: u64,
        strangers: Vec<Stranger>,
    },
    /// The digest of this node's configuration file (at start and whenever
    /// it changes): agreed, so every node can show drift.
    ConfigDigest(String),
    /// The agreement layer's voters now (after `Output::Alone` or
    /// `Output::Readmit` changed them).
    Voters(Vec<NodeId>),
    /// Two-node mode with a fence disk: the node its record names as gone
    /// on alone last (`None`: nobody), read as the agent starts and after
    /// each `Output::ReadAloneRecord`. Not sent when the read fails.
    AloneRecord {
        holder: Option<NodeId>,
    },
}

pub use baton_state::Stranger;
pub use handover::Handover;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send to every peer on every link.
    Send(Heartbeat),
    /// Ask the agreement layer to commit this command.
    Propose(Command),
    /// Run a step or a monitor and answer with its token.
    Act(Action),
    /// Kill every step and monitor of this set still in flight, and make
    /// sure none of them touches the world afterwards: the lifecycle forgot
    /// them (the guard fired, or a block was lifted).
    Cancel {
        set: SetId,
    },
    /// Tell the guard when to kill everything (`None`: nothing to guard).
    Guard(Option<Time>),
    /// Write this durably before acting on any later output.
    Persist(Persisted),
    /// The answer to the request `id`.
    Reply {
        id: u64,
        reply: Reply,
    },
    /// After `Input::Shutdown`: this node runs nothing and its sets are
    /// handed over (or the wait is over): the agent may exit.
    Exit,
    /// Ask the network who holds the addresses of `set`, whose agreed owner
    /// (at `generation`) is `owner`, and answer with `Input::Probed`.
    Probe {
        set: SetId,
        owner: Option<NodeId>,
        generation: u64,
    },
    /// Ask a fence device to cut this node off (the leader asks). The epoch
    /// and incarnation are the ones the request is about: once the node is
    /// in another (fenced already, or back), the request is void.
    Fence {
        node: NodeId,
        epoch: u64,
        incarnation: u64,
    },
    /// Two-node mode, the peer confirmed off: make this node the agreement
    /// layer's only voter, from its own log at a new term, and answer with
    /// `Input::Voters`. Where a fence disk records who went on alone, write
    /// this node's name there first, and do not go on if that fails.
    Alone,
    /// Two-node mode, booting alone, the peer confirmed off: read the fence
    /// disk's record of who went on alone and answer with
    /// `Input::AloneRecord`.
    ReadAloneRecord,
    /// Two-node mode is over for this node, which went on alone: both vote
    /// again. Clear the fence disk's record of who went on alone if it
    /// still names this node.
    Together,
    /// Two-node mode, going on alone: take `node` back into the agreement
    /// layer (a learner, then a voter once its log caught up) and answer
    /// with `Input::Voters`.
    Readmit {
        node: NodeId,
    },
    Event(Event),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Detector(Change),
    Set {
        set: SetId,
        report: Report,
    },
    Applied {
        command: Command,
        result: Result<Applied, Rejected>,
    },
    LeaseLost,
    LeaseHeld,
    GuardFired,
    /// A node must be fenced (its stop failed) but no device covers it.
    Unfenceable {
        node: NodeId,
    },
    /// A fence this node asked for failed.
    FenceFailed {
        node: NodeId,
        why: String,
    },
}

/// At most this many hand-overs ride one heartbeat (17 bytes each: with
/// the echoes of 40 nodes the datagram stays within one Ethernet frame);
/// more wait for the next heartbeats, as the first are agreed.
const MAX_RELEASED: usize = 32;

/// How long a stopping agent waits for its sets to move elsewhere.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);

/// How long to wait before proposing the same command again.
fn retry_after(topo: &Topology) -> Duration {
    topo.timing.heartbeat_interval * 4
}

pub struct Node {
    topo: Topology,
    me: NodeId,
    state: ClusterState,
    detector: Detector,
    lease: Lease,
    persisted: Persisted,
    sets: Vec<Lifecycle>,
    /// Per set: the generation at which this node failed it, and how.
    failed: Vec<Option<(u64, Exclusion)>>,
    /// Per set: the agreed state has recorded our failed stop.
    block_seen: Vec<bool>,
    leader: bool,
    next_heartbeat: Time,
    last_seq: Vec<Option<(u64, u64)>>,
    /// Per node: its last heartbeat said how long its promises are.
    says_promise: Vec<bool>,
    /// Per node: its last heartbeat said which membership it counts by.
    says_members: Vec<bool>,
    /// Per node: its last heartbeat heard said it knows direct moves (kept
    /// while it is offline).
    says_direct: Vec<bool>,
    /// Per set: the last hand-over heard for it, (from, generation).
    handed: Vec<Option<(NodeId, u64)>>,
    /// The hand-overs this node's last heartbeat carried.
    announced: Vec<(SetId, u64)>,
    proposed: Vec<(Command, Time)>,
    /// Per node: when the leader last asked to fence it.
    fence_asked: Vec<Option<Time>>,
    /// Per node: the (epoch, incarnation) a device confirmed off: not
    /// fenced again while its record says the same.
    fence_confirmed: Vec<Option<(u64, u64)>>,
    guard: Option<Time>,
    /// The guard reported its firing for the deadline last told.
    guard_reported: bool,
    /// Earlier deadlines that had passed, unreported, when the next was
    /// told: the guard fires each before it reads the next, and reports it.
    guard_owed: Vec<Time>,
    lease_held: bool,
    /// When the next round of probes is due.
    next_probe: Time,
    /// Requests admitted and not answered yet.
    pending: Vec<Pending>,
    /// Since when the agent has been asked to stop (SIGTERM).
    leaving: Option<Time>,
    exited: bool,
    /// Fences under way (one per node at a time).
    fencing: Vec<NodeId>,
    /// Per node: told already that no device can fence it.
    unfenceable_said: Vec<bool>,
    /// The leader's side of `failure_timeout`: when it first saw each
    /// exclusion (set, node, the generation it was recorded at) agreed.
    exclusions_seen: BTreeMap<(SetId, NodeId, u64), Time>,
    /// The digest of this agent's configuration file, to be agreed.
    config_digest: Option<String>,
    booted: Time,
    /// The incarnation this agent joins with: above every one the agreed
    /// state has recorded for this node. It runs nothing until the agreed
    /// state says this incarnation joined.
    incarnation: u64,
    /// Two-node mode: whether this incarnation went on alone.
    pair: pair::Pair,
    /// This node's guard found a pill in its fence disk slot at start and
    /// waited out its `msgwait`: every earlier incarnation is off.
    pill_found: bool,
    /// A handover asked in this input (the request's id), answered once
    /// the node has reconciled.
    handover_asked: Option<u64>,
    /// Handed over: the next program carries on; this one does nothing more.
    handed_over: bool,
    now: Time,
}

impl Node {
    /// A node starting at `now` with what it persisted and the agreed state
    /// it recovered (the shell replays its log before calling this).
    /// `incarnation` grows with every start of the agent (the shell persists
    /// it, and starts above any the agreed state recorded for this node);
    /// heartbeat sequence numbers start at `incarnation << 32`, so that
    /// they never repeat across restarts.
    pub fn new(
        topo: Topology,
        me: NodeId,
        state: ClusterState,
        persisted: Persisted,
        incarnation: u64,
        now: Time,
    ) -> Self {
        topo.validate().expect("the topology was validated when it was built");
        // The agreed configuration's nodes and sets, if one is agreed, else
        // the file's.
        let mut topo = topo;
        if let Some(agreed) = &state.config {
            if !agreed.nodes.is_empty() {
                topo.nodes.clone_from(&agreed.nodes);
                topo.fenceable.resize(topo.nodes.len(), false);
            }
            topo.sets.clone_from(&agreed.sets);
            topo.timing.guard_margin = topo.timing.guard_margin.max(agreed.guard_margin);
            if let Some(t) = &agreed.timing {
                topo.timing.agree(t);
            }
        }
        let n = topo.nodes.len();
        assert!(usize::from(me) < n, "node {me} not in the topology");
        assert_eq!(state.nodes.len(), n, "state does not fit the topology");
        assert_eq!(state.sets.len(), topo.sets.len(), "state does not fit the topology");
        let mut persisted = persisted;
        persisted.denials.resize(n, Denial::default());
        persisted.abandoned.resize(topo.sets.len(), None);
        let shared: Vec<usize> = (0..n).map(|p| topo.shared_links(me, p as NodeId)).collect();
        let detector = Detector::new(me, &shared, topo.timing.lease, now);
        let lease = Lease::new(me, &topo.voters(), incarnation << 32);
        let sets = topo.sets.iter().enumerate().map(|(i, s)| Lifecycle::new(i as SetId, s)).collect();
        Node {
            failed: persisted.abandoned.clone(),
            block_seen: vec![false; topo.sets.len()],
            me,
            state,
            detector,
            lease,
            persisted,
            sets,
            leader: false,
            next_heartbeat: now,
            last_seq: vec![None; n],
            says_promise: vec![false; n],
            says_members: vec![false; n],
            says_direct: vec![false; n],
            handed: vec![None; topo.sets.len()],
            announced: Vec::new(),
            proposed: Vec::new(),
            fence_asked: vec![None; n],
            fence_confirmed: vec![None; n],
            guard: None,
            guard_reported: false,
            guard_owed: Vec::new(),
            lease_held: false,
            next_probe: now + topo.timing.probe_interval.unwrap_or_default(),
            pending: Vec::new(),
            leaving: None,
            exited: false,
            fencing: Vec::new(),
            unfenceable_said: vec![false; n],
            exclusions_seen: BTreeMap::new(),
            config_digest: None,
            booted: now,
            incarnation,
            pair: pair::Pair::default(),
            pill_found: false,
            handover_asked: None,
            handed_over: false,
            now,
            topo,
        }
    }

    /// This node's guard found a pill in its slot of the fence disk as it
    /// started, and waited `msgwait` (and a `watch`) before clearing it:
    /// every earlier incarnation of this node is off, as the fencer would
    /// count it. Before it joins, the node says so itself (`Fenced` of its
    /// last recorded incarnation), so that a set blocked on it is freed
    /// even if the fencer cannot confirm (it died, or the `Join` would
    /// void its confirmation: simulator seed 70597, fenced again and again
    /// on every return). ARCHITECTURE.md, "The shared disk as the fence device".
    pub fn pill_found(&mut self) {
        self.pill_found = true;
    }

    /// The agreed configuration changed (a `Configure` applied, or a
    /// snapshot restored): the sets are the agreed slots, policies as
    /// agreed, new slots stopped. Slots are only ever added.
    fn follow_config(&mut self) {
        let Some(agreed) = &self.state.config else { return };
        // A larger release budget is counted at once, before anything the
        // new file adds can start here: every lease this node holds ends
        // that much earlier (ARCHITECTURE.md, "A configuration change").
        if let Some(more) = agreed.guard_margin.checked_sub(self.topo.timing.guard_margin).filter(|d| !d.is_zero()) {
            self.topo.timing.guard_margin = agreed.guard_margin;
            self.lease.shorten(more);
        }
        // A new lease or heartbeat interval: promised from the next echo
        // on, every promise already given kept (point 7 there).
        if let Some(t) = &agreed.timing {
            self.topo.timing.agree(t);
            self.detector.set_timeout(t.lease);
            self.next_heartbeat = self.next_heartbeat.min(self.now + t.heartbeat_interval);
        }
        self.follow_nodes();
        let Some(agreed) = &self.state.config else { return };
        if agreed.sets == self.topo.sets {
            return;
        }
        assert!(agreed.sets.len() >= self.topo.sets.len(), "an agreed configuration dropped set slots");
        self.topo.sets.clone_from(&agreed.sets);
        let n = self.topo.sets.len();
        for (i, spec) in self.topo.sets.iter().enumerate().skip(self.sets.len()) {
            self.sets.push(Lifecycle::new(i as SetId, spec));
        }
        self.failed.resize(n, None);
        self.handed.resize(n, None);
        self.block_seen.resize(n, false);
        self.persisted.abandoned.resize(n, None);
        assert_eq!(self.state.sets.len(), n, "the agreed state does not fit its configuration");
    }

    /// The self-confirmation a node owes before it joins, if any.
    fn own_fence(&self) -> Option<Command> {
        let rec = self.state.node(self.me);
        let blocking = self.state.sets.iter().any(|s| s.blocked == Some(self.me));
        let stale = self.state.is_online(self.me) || blocking;
        let owed = self.pill_found && !rec.fenced && rec.incarnation < self.incarnation && stale;
        owed.then_some(Command::Fenced { node: self.me, epoch: rec.epoch, incarnation: rec.incarnation })
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    pub fn lifecycle(&self, set: SetId) -> &Lifecycle {
        &self.sets[usize::from(set)]
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// When this node's lease ends, if it has one.
    pub fn lease_expiry(&self) -> Option<Time> {
        self.alone_lease().or_else(|| self.lease.expiry(self.my_epoch()))
    }

    fn my_epoch(&self) -> u64 {
        self.state.node(self.me).epoch
    }

    pub fn handle(&mut self, now: Time, input: Input) -> Vec<Output> {
        assert!(now >= self.now, "time went backwards: {now} after {}", self.now);
        self.now = now;
        let mut out = Vec::new();
        if self.handed_over {
            return out;
        }
        // The lease is checked before anything else: a step result that
        // arrives after the lease ended (say, after a pause) must lead to a
        // stop, never to the next start step.
        if !self.holds_lease(now) {
            self.drop_all(now, &mut out);
        }

        match input {
            Input::Tick => {}
            Input::Heartbeat { link, heartbeat } => self.on_heartbeat(now, link, heartbeat, &mut out),
            Input::Committed(command) => {
                let result = self.state.apply(&command);
                if let (Command::Join { node, .. }, Ok(_)) = (&command, &result) {
                    self.detector.grace(now, *node);
                }
                if let (Command::Duplicate { set, strangers, .. }, Ok(_)) = (&command, &result) {
                    self.fence_strangers(now, *set, strangers, &mut out);
                }
                if let (Command::Configure { .. }, Ok(_)) = (&command, &result) {
                    self.follow_config();
                }
                out.push(Output::Event(Event::Applied { command, result }));
            }
            Input::Restore(state) => {
                assert_eq!(state.nodes.len(), self.topo.nodes.len(), "a restored state for other nodes");
                self.state = state;
                self.follow_config();
            }
            // While the guard fires it kills everything this node runs, the
            // programs of steps in flight too: their failure says nothing (a
            // "failed" stop would block the set for nothing). The guard's
            // report stops every set again from the top.
            Input::StepDone { ok: false, .. } if self.firing(now) => {}
            Input::StepDone { set, token, ok } => {
                let spec = &self.topo.sets[usize::from(set)];
                let (actions, reports) = self.sets[usize::from(set)].step_done(now, spec, token, ok);
                out.extend(actions.into_iter().map(Output::Act));
                self.on_reports(now, set, reports, &mut out);
            }
            Input::MonitorDone { set, token, ok } => {
                let spec = &self.topo.sets[usize::from(set)];
                let reports = self.sets[usize::from(set)].monitor_done(now, spec, token, ok);
                self.on_reports(now, set, reports, &mut out);
            }
            // The guard released everything it held when it fired, the
            // effects of steps in flight too (it keeps undoing addresses,
            // processes and mounts until a new deadline): every set is
            // stopped here. Nothing was started since: a node starts nothing
            // while a deadline it told is unreported (`firing`). Stop steps
            // are not run again: past the lease, another node may run the set.
            Input::GuardFired { deadline } => {
                for (i, lc) in self.sets.iter_mut().enumerate() {
                    lc.reset();
                    out.push(Output::Cancel { set: i as SetId });
                }
                // (A report of a deadline that had not passed when the next
                // was told matches nothing: the guard read the next late.)
                self.guard_owed.retain(|&d| d != deadline);
                // The guard fires deadlines and reports them in the order
                // told: once it reported the latest, no report of an earlier
                // one is still to come (and the guard names them by the
                // millisecond: one that passed and the next told within the
                // same millisecond read alike, and only one is reported).
                if self.guard == Some(deadline) {
                    self.guard_reported = true;
                    self.guard_owed.clear();
                }
                out.push(Output::Event(Event::GuardFired));
            }
            Input::Leader(leader) => self.leader = leader,
            Input::Request { id, request } => self.admit(now, id, request, &mut out),
            Input::Shutdown => {
                self.leaving.get_or_insert(now);
            }
            Input::FenceDone { node, epoch, incarnation, result } => {
                self.fencing.retain(|&n| n != node);
                match result {
                    Ok(()) => {
                        self.fence_confirmed[usize::from(node)] = Some((epoch, incarnation));
                        self.propose(now, Command::Fenced { node, epoch, incarnation }, &mut out);
                        self.pair_fenced(node, epoch, incarnation, &mut out);
                    }
                    Err(why) => out.push(Output::Event(Event::FenceFailed { node, why })),
                }
            }
            Input::Probed { set, generation, mut strangers } => {
                // A sighting counts once agreed at the generation it was
                // made at: a view a commit behind is rejected by `apply`.
                // A direct move's target holds the address by right.
                let target = self.state.set(set).direct_target();
                strangers.retain(|s| s.node.is_none() || s.node != target);
                if !strangers.is_empty() {
                    self.propose(now, Command::Duplicate { set, generation, strangers }, &mut out);
                }
            }
            Input::ConfigDigest(digest) => self.config_digest = Some(digest),
            Input::Voters(voters) => self.pair_voters(voters),
            Input::AloneRecord { holder } => self.pair_record(holder, &mut out),
        }
        self.reconcile(now, &mut out);
        // Past a deadline told to the guard, until it reports, the guard is
        // undoing everything here and another node may already run the
        // sets: no step and no monitor runs (a stop script or a hook would
        // act on a set that is no longer this node's). The steps the
        // lifecycle counts as in flight end with the report (`reset`).
        if self.firing(now) {
            out.retain(|o| !matches!(o, Output::Act(_)));
        }
        self.hand_over(now, &mut out);
        out
    }

    fn on_heartbeat(&mut self, now: Time, link: usize, hb: Heartbeat, out: &mut Vec<Output>) {
        let from = usize::from(hb.from);
        if hb.from == self.me
            || from >= self.topo.nodes.len()
            || self.topo.nodes[from].retired
            || link >= self.topo.shared_links(self.me, hb.from)
        {
            return;
        }
        for change in self.detector.heard(now, hb.from, link) {
            out.push(Output::Event(Event::Detector(change)));
        }
        if self.last_seq[from].is_none_or(|(_, s)| hb.seq > s) {
            self.last_seq[from] = Some((hb.epoch, hb.seq));
            self.says_promise[from] = hb.promise.is_some();
            self.says_members[from] = hb.members.is_some();
            self.says_direct[from] = hb.direct;
        }
        // Authenticated like the rest; a late or replayed hand-over names a
        // generation that no longer matches (`handed_to_me`).
        for &(set, generation) in &hb.released {
            if let Some(h) = self.handed.get_mut(usize::from(set)) {
                *h = Some((hb.from, generation));
            }
        }
        // Counted by the lease the voter promises, not this node's own
        // (ARCHITECTURE.md, "A configuration change", point 7).
        let hold = self.topo.timing.hold_for(hb.promise.unwrap_or(self.topo.timing.lease));
        for echo in hb.echoes.iter().filter(|e| e.to == self.me) {
            self.lease.on_echo(hb.from, echo.epoch, echo.seq, hold);
        }
    }

    /// Do I promise `peer` a lease for `epoch`? Not for an epoch the cluster
    /// has left behind, and not while a suspicion of mine may still count.
    fn grants(&self, peer: NodeId, epoch: u64) -> bool {
        let denial = self.persisted.denials[usize::from(peer)];
        epoch >= self.state.node(peer).epoch && denial.epoch.is_none_or(|d| epoch > d)
    }

    fn propose(&mut self, now: Time, command: Command, out: &mut Vec<Output>) {
        let retry = retry_after(&self.topo);
        self.proposed.retain(|(_, at)| now.since(*at) < retry);
        if self.proposed.iter().any(|(c, _)| *c == command) {
            return;
        }
        self.proposed.push((command.clone(), now));
        out.push(Output::Propose(command));
    }

    fn on_reports(&mut self, now: Time, set: SetId, reports: Vec<Report>, out: &mut Vec<Output>) {
        let i = usize::from(set);
        let generation = self.state.set(set).generation;
        for report in reports {
            out.push(Output::Event(Event::Set { set, report }));
            match report {
                Report::Started => self.sets[i].arm_monitors(now, &self.topo.sets[i]),
                Report::StartAborted(exclusion) => self.abandon(set, generation, exclusion, out),
                Report::Stopped(Why::GiveUp) => self.abandon(set, generation, Exclusion::Failed, out),
                Report::MonitorFailed { .. } if !self.state.is_frozen(set) => {
                    let spec = &self.topo.sets[i];
                    let failures = self.sets[i].record_failure(now, spec.restart_window);
                    let why = if failures > spec.max_restarts as usize { Why::GiveUp } else { Why::Restart };
                    let actions = self.sets[i].stop(now, spec, why);
                    out.extend(actions.into_iter().map(Output::Act));
                }
                _ => {}
            }
        }
    }

    /// Gives `set` up at `generation`: durably first, then (in reconcile)
    /// the cluster is told with `StartFailed`.
    fn abandon(&mut self, set: SetId, generation: u64, exclusion: Exclusion, out: &mut Vec<Output>) {
        let i = usize::from(set);
        self.failed[i] = Some((generation, exclusion));
        self.persisted.abandoned[i] = self.failed[i];
        out.push(Output::Persist(self.persisted.clone()));
    }

    fn reconcile(&mut self, now: Time, out: &mut Vec<Output>) {
        for change in self.detector.poll(now) {
            out.push(Output::Event(Event::Detector(change)));
        }
        self.suspicions(now, out);
        if let Some(fenced) = self.own_fence() {
            self.propose(now, fenced, out);
        } else if !self.joined() {
            let (epoch, incarnation) = (self.my_epoch(), self.incarnation);
            self.propose(now, Command::Join { node: self.me, epoch, incarnation }, out);
        } else if let Some(members) = self.members_owed() {
            self.propose(now, members, out);
        } else if let Some(digest) =
            self.config_digest.as_ref().filter(|&d| self.state.node(self.me).config.as_ref() != Some(d))
        {
            let command = Command::Config { node: self.me, digest: digest.clone() };
            self.propose(now, command, out);
        }
        let hold = self.holds_lease(now);
        if hold != self.lease_held {
            self.lease_held = hold;
            out.push(Output::Event(if hold { Event::LeaseHeld } else { Event::LeaseLost }));
        }
        for set in 0..self.sets.len() {
            let spec = &self.topo.sets[set];
            let (actions, reports) = self.sets[set].poll(now, spec);
            out.extend(actions.into_iter().map(Output::Act));
            self.on_reports(now, set as SetId, reports, out);
            self.reconcile_set(now, set as SetId, hold, out);
        }
        self.heartbeat(now, out);
        self.update_guard(out);
        self.probe(now, hold, out);
        self.serve(now, out);
        self.stay_or_leave(now, out);
        self.pair(now, out);
        if self.leader {
            self.lead(now, out);
        }
    }

    /// Every `probe_interval`, while it holds a lease, a node asks who holds
    /// the addresses of each set it does not own: a second holder — a node
    /// paused past its lease with a dead guard, an address an OCF agent left
    /// behind or someone added by hand — is seen in production, not only in
    /// tests.
    fn probe(&mut self, now: Time, hold: bool, out: &mut Vec<Output>) {
        let Some(interval) = self.topo.timing.probe_interval else { return };
        if now < self.next_probe {
            return;
        }
        self.next_probe = now + interval;
        if !hold {
            return;
        }
        for (i, spec) in self.topo.sets.iter().enumerate() {
            let rec = self.state.set(i as SetId);
            if spec.resources.iter().any(|r| r.address) && rec.owner != Some(self.me) && !self.handed_to_me(i as SetId)
            {
                out.push(Output::Probe { set: i as SetId, owner: rec.owner, generation: rec.generation });
            }
        }
    }

    /// An agreed duplicate: the leader fences every stranger that is a
    /// fenceable node other than the owner.
    fn fence_strangers(&mut self, now: Time, set: SetId, strangers: &[Stranger], out: &mut Vec<Output>) {
        if !self.leader {
            return;
        }
        let (owner, target) = (self.state.set(set).owner, self.state.set(set).direct_target());
        for node in strangers.iter().filter_map(|s| s.node).filter(|&n| Some(n) != owner && Some(n) != target) {
            if self.topo.fenceable[usize::from(node)] && self.state.is_online(node) {
                self.fence_asked[usize::from(node)] = Some(now);
                let r = self.state.node(node);
                out.push(Output::Fence { node, epoch: r.epoch, incarnation: r.incarnation });
            }
        }
    }

    /// A deadline told has passed and its report has not come yet: the
    /// guard is killing everything (it fires a passed deadline before it
    /// applies any later order). Nothing starts meanwhile, since its report
    /// stops every set again.
    fn firing(&self, now: Time) -> bool {
        !self.guard_owed.is_empty() || self.guard.is_some_and(|d| now >= d) && !self.guard_reported
    }

    /// Has the cluster agreed that this incarnation is online?
    fn joined(&self) -> bool {
        self.state.is_online(self.me) && self.state.node(self.me).incarnation == self.incarnation
    }

    /// May this node run sets right now? Only once this incarnation joined,
    /// and only inside its lease, leaving enough of it to stop gracefully.
    fn holds_lease(&self, now: Time) -> bool {
        let lead = self.topo.timing.release_lead();
        self.joined() && self.lease_expiry().is_some_and(|end| now + lead < end)
    }

    fn drop_all(&mut self, now: Time, out: &mut Vec<Output>) {
        for (lc, spec) in self.sets.iter_mut().zip(&self.topo.sets) {
            out.extend(lc.stop(now, spec, Why::LeaseEnding).into_iter().map(Output::Act));
        }
    }

    fn suspicions(&mut self, now: Time, out: &mut Vec<Output>) {
        for p in 0..self.topo.nodes.len() {
            let peer = p as NodeId;
            if peer == self.me {
                continue;
            }
            let denial = self.persisted.denials[p];
            if self.detector.is_dead(peer) && self.state.is_online(peer) {
                let epoch = self.state.node(peer).epoch;
                let round = if denial.epoch == Some(epoch) {
                    denial.round
                } else {
                    // Deny first, durably, then tell the cluster.
                    let round = denial.round + 1;
                    self.persisted.denials[p] = Denial { round, epoch: Some(epoch) };
                    out.push(Output::Persist(self.persisted.clone()));
                    round
                };
                let standing = self.state.suspicions.get(&(self.me, peer));
                if standing.is_none_or(|s| s.round < round) {
                    self.propose(now, Command::Suspect { voter: self.me, node: peer, epoch, round }, out);
                }
            } else if denial.epoch.is_some() && self.detector.is_alive(peer) {
                match self.state.suspicions.get(&(self.me, peer)) {
                    Some(s) if s.round >= denial.round && !s.active => {
                        self.persisted.denials[p].epoch = None;
                        out.push(Output::Persist(self.persisted.clone()));
                    }
                    _ => {
                        let round = denial.round;
                        self.propose(now, Command::Unsuspect { voter: self.me, node: peer, round }, out);
                    }
                }
            }
        }
    }

    /// Every heartbeat interval, and at once when this node released a set
    /// for its direct move's target.
    fn heartbeat(&mut self, now: Time, out: &mut Vec<Output>) {
        let released = self.released();
        let fresh = released.iter().any(|r| !self.announced.contains(r));
        if now < self.next_heartbeat && !fresh {
            return;
        }
        self.announced.clone_from(&released);
        self.next_heartbeat = now + self.topo.timing.heartbeat_interval;
        let echoes = (0..self.topo.nodes.len())
            .filter_map(|p| {
                let (epoch, seq) = self.last_seq[p]?;
                let to = p as NodeId;
                self.grants(to, epoch).then_some(Echo { to, epoch, seq })
            })
            .collect();
        let seq = self.lease.on_send(now);
        let promise = Some(self.detector.timeout());
        let members = Some(self.state.members());
        let (from, epoch) = (self.me, self.my_epoch());
        out.push(Output::Send(Heartbeat { from, epoch, seq, echoes, promise, members, direct: true, released }));
    }

    /// The sets this node owns and has stopped for their direct move's
    /// target, by (set, generation): every stop finished (a failed one is
    /// `Blocked`), and the guard is not undoing anything (ARCHITECTURE.md,
    /// "A planned move handed over directly", point 2).
    fn released(&self) -> Vec<(SetId, u64)> {
        if self.firing(self.now) {
            return Vec::new();
        }
        (0..self.sets.len())
            .filter(|&i| {
                let rec = &self.state.sets[i];
                rec.owner == Some(self.me)
                    && matches!(rec.phase, SetPhase::Releasing { to: Some(_), direct: true })
                    && self.sets[i].phase() == Phase::Stopped
            })
            .map(|i| (i as SetId, self.state.sets[i].generation))
            .take(MAX_RELEASED)
            .collect()
    }

    /// May this node run `set` as its direct move's target? Its owner said
    /// it stopped it at the generation the agreed state is at.
    fn handed_to_me(&self, set: SetId) -> bool {
        let rec = self.state.set(set);
        rec.direct_target() == Some(self.me) && rec.owner.zip(Some(rec.generation)) == self.handed[usize::from(set)]
    }

    fn reconcile_set(&mut self, now: Time, set: SetId, hold: bool, out: &mut Vec<Output>) {
        let i = usize::from(set);
        let rec = self.state.set(set).clone();
        let mine = rec.owner == Some(self.me);
        assert!(!(mine && self.topo.nodes[usize::from(self.me)].witness), "witness {} owns a set", self.me);
        // The target of a direct move runs the set once its owner stopped.
        let handed = self.handed_to_me(set);
        let failed_here = self.failed[i].filter(|(g, _)| *g == rec.generation && (mine || handed));
        let want = hold
            && !self.firing(now)
            && (mine && rec.phase == SetPhase::Stable || handed)
            && rec.blocked.is_none()
            && failed_here.is_none();
        let spec = &self.topo.sets[i];
        let lc = &mut self.sets[i];
        let why = if hold { Why::Release } else { Why::LeaseEnding };
        let mut actions = Vec::new();
        match lc.phase() {
            Phase::Stopped if want && !self.state.is_frozen(set) => actions = lc.start(now, spec),
            Phase::Running | Phase::Starting if !want => actions = lc.stop(now, spec, why),
            Phase::Stopping if !hold => actions = lc.stop(now, spec, why),
            _ => {}
        }
        out.extend(actions.into_iter().map(Output::Act));
        let generation = rec.generation;
        let phase = self.sets[i].phase();
        if !mine && !handed {
            self.failed[i] = None;
        }
        // `block_seen` mirrors the agreed state every time: a flag left over
        // from an earlier block must never clear a new one.
        let blocked_here = rec.blocked == Some(self.me);
        if self.block_seen[i] && !blocked_here && phase == Phase::Blocked {
            // Fenced, or an operator cleared the block: nothing runs here.
            self.sets[i].reset();
            out.push(Output::Cancel { set });
        }
        self.block_seen[i] = blocked_here;
        let command = match phase {
            Phase::Blocked if mine && rec.blocked.is_none() && !self.block_seen[i] => {
                Some(Command::StopFailed { set, node: self.me, generation })
            }
            Phase::Running if mine && rec.phase == SetPhase::Stable && !rec.running => {
                Some(Command::Started { set, node: self.me, generation })
            }
            // A start that failed before the set was this node's is not
            // reported: it starts again once it owns it.
            Phase::Stopped => match (failed_here, rec.phase) {
                (Some((_, exclusion)), _) if mine => {
                    Some(Command::StartFailed { set, node: self.me, generation, exclusion })
                }
                (None, SetPhase::Releasing { .. }) if mine => {
                    Some(Command::Released { set, node: self.me, generation })
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(command) = command {
            self.propose(now, command, out);
        }
    }

    /// Tells the guard the deadline: the lease's end while something may
    /// run here. Without a lease the last deadline told stays (it has passed:
    /// the guard fires once, reports once, and keeps undoing whatever it
    /// still holds until a new deadline comes); nothing to guard, none.
    fn update_guard(&mut self, out: &mut Vec<Output>) {
        let busy = self.sets.iter().any(|lc| lc.phase() != Phase::Stopped);
        let lease = self.lease_expiry().filter(|&e| e > self.now);
        let deadline = match (busy, lease) {
            (false, _) => None,
            (true, Some(end)) => Some(end),
            (true, None) => self.guard.or(Some(self.now)),
        };
        if deadline != self.guard {
            if !self.guard_reported {
                self.guard_owed.extend(self.guard.filter(|&d| self.now >= d));
            }
            self.guard = deadline;
            self.guard_reported = false;
            out.push(Output::Guard(deadline));
        }
    }

    fn liveness(&self) -> Vec<Liveness> {
        (0..self.topo.nodes.len())
            .map(|p| {
                let peer = p as NodeId;
                let (alive, dead) = (self.detector.is_alive(peer), self.detector.is_dead(peer));
                // Shortly after this node booted, a peer not heard yet, or
                // heard but not yet joined for the first time, may be about
                // to become eligible: placement waits for it if preferred.
                let rec = self.state.node(peer);
                let first_join = alive && rec.epoch == 0 && !self.state.is_online(peer);
                let early = self.now < self.booted + self.topo.timing.lease * 2;
                Liveness {
                    alive,
                    alive_since: self.detector.alive_since(peer),
                    pending: early && !dead && (!alive || first_join),
                }
            })
            .collect()
    }

    fn lead(&mut self, now: Time, out: &mut Vec<Output>) {
        let live = self.liveness();
        // Moves are direct once every node knows them, online or not: an
        // offline node applies the move when it comes back (point 6). A
        // node not heard since this one started counts as not knowing.
        let direct = (0..self.topo.nodes.len())
            .all(|p| p == usize::from(self.me) || self.topo.nodes[p].retired || self.says_direct[p]);
        for mut command in placement::plan(&self.topo, &self.state, &live, now) {
            if let Command::Move { direct: d, to: Some(_), .. } = &mut command {
                *d = direct;
            }
            self.propose(now, command, out);
        }
        self.expire(now, out);
        // A node whose stop failed, and a fenceable node gone silent, are
        // fenced; a confirmed fence evicts at once (`Fenced`).
        let mut targets: Vec<NodeId> = self.state.sets.iter().filter_map(|s| s.blocked).collect();
        // (In two-node mode a silent peer is fenced by `pair` alone, under
        // its gate: a leader that only resumed an old term does not.)
        let peer = self.pair_peer();
        targets.extend((0..self.topo.nodes.len() as NodeId).filter(|&n| {
            self.topo.fenceable[usize::from(n)]
                && self.state.is_online(n)
                && self.detector.is_dead(n)
                && peer != Some(n)
        }));
        // A leader whose own stop failed fences itself: the next leader
        // confirms it. Not the only voter of two-node mode: nobody would.
        if self.sole_voter() {
            targets.retain(|&n| n != self.me);
        }
        targets.sort_unstable();
        targets.dedup();
        // Itself last, once no other fence it asked for is under way: gone
        // down by its own fence, it could count none of them (simulator,
        // seed 60512: two servers whose stops both failed, fencing through
        // a disk, each fenced the other and itself, again and again).
        if let Some(at) = targets.iter().position(|&n| n == self.me) {
            targets.remove(at);
            if !self.fencing.iter().any(|&n| n != self.me)
                && !targets.iter().any(|&n| self.topo.fenceable[usize::from(n)])
            {
                targets.push(self.me);
            }
        }
        let retry = retry_after(&self.topo);
        for node in targets {
            let n = usize::from(node);
            if !self.topo.fenceable[n] {
                if !std::mem::replace(&mut self.unfenceable_said[n], true) {
                    out.push(Output::Event(Event::Unfenceable { node }));
                }
                continue;
            }
            self.ask_fence(now, node, retry, out);
        }
    }

    /// Exclusions lapse `failure_timeout` after this leader first saw them
    /// (a new leader starts counting afresh: an exclusion may last longer,
    /// never shorter). Timed by the leader alone, proposed like any decision.
    fn expire(&mut self, now: Time, out: &mut Vec<Output>) {
        let mut current = Vec::new();
        for (i, (rec, spec)) in self.state.sets.iter().zip(&self.topo.sets).enumerate() {
            let Some(timeout) = spec.failure_timeout else { continue };
            for (&node, &since) in &rec.excluded_at {
                current.push(((i as SetId, node, since), timeout));
            }
        }
        self.exclusions_seen.retain(|key, _| current.iter().any(|(k, _)| k == key));
        for ((set, node, since), timeout) in current {
            let seen = *self.exclusions_seen.entry((set, node, since)).or_insert(now);
            if now.since(seen) >= timeout {
                self.propose(now, Command::Expire { set, node, since }, out);
            }
        }
    }

    /// Admits a request: a query or a refusal is answered at once; work is
    /// kept, proposed and answered once done (in `serve`).
    fn admit(&mut self, now: Time, id: u64, request: Request, out: &mut Vec<Output>) {
        let answer = |reply| Output::Reply { id, reply };
        let named = match &request {
            Request::Move { set, .. } | Request::Freeze { set, .. } | Request::Cleanup { set } => Some(*set),
            _ => None,
        };
        if let Some(set) = named.filter(|&s| self.state.retired(s)) {
            return out.push(answer(Reply::Refused(Refusal::Retired { set })));
        }
        let work = match request {
            Request::IsActive { set } => {
                let active =
                    self.state.set(set).owner == Some(self.me) && self.sets[usize::from(set)].phase() == Phase::Running;
                return out.push(answer(Reply::Active(active)));
            }
            Request::LockState { name } => {
                let lock = self.state.locks.get(&name).copied();
                let mine = lock.is_some_and(|l| l.holder == self.me);
                let valid_for = if mine { self.lock_valid_for(now) } else { Duration::ZERO };
                let (holder, token) = (lock.map(|l| l.holder), lock.map(|l| l.token));
                let valid = !valid_for.is_zero();
                return out.push(answer(Reply::LockState { holder, token, valid, valid_for }));
            }
            Request::Move { set, to } => match self.admit_move(set, to) {
                Ok(to) => Work::Move { set, to, pinned: false },
                Err(why) => return out.push(answer(Reply::Refused(why))),
            },
            Request::Standby { standby: true, .. } if self.state.maintenance => {
                return out.push(answer(Reply::Refused(Refusal::Maintenance)));
            }
            Request::Standby { node, .. } if self.topo.nodes.get(usize::from(node)).is_none_or(|n| n.retired) => {
                return out.push(answer(Reply::Refused(Refusal::NoNode { node })));
            }
            Request::Standby { node, standby } => Work::Standby { node, standby },
            Request::Freeze { set, frozen } => Work::Freeze { set, frozen },
            Request::Cleanup { set } => Work::Cleanup { set },
            Request::Maintenance { on } => Work::Maintenance { on },
            Request::Lock { name, .. } if !requests::lock_name_ok(&name) => {
                return out.push(answer(Reply::Refused(Refusal::LockName)));
            }
            Request::Lock { name, wait } => {
                let after = self.state.locks.get(&name).filter(|l| l.holder == self.me).map(|l| l.token);
                self.pending.push(Pending { id, deadline: now + wait, work: Work::Lock { name, after } });
                return;
            }
            Request::Unlock { name, token } => Work::Unlock { name, token },
            Request::Alone => match self.pair_confirmed() {
                Ok(()) => Work::Alone,
                Err(why) => return out.push(answer(Reply::Refused(why))),
            },
            Request::Handover => {
                self.handover_asked = Some(id);
                return;
            }
            Request::Configure(p) => {
                let agreed = self.state.config.as_ref().is_some_and(|c| c.digest == p.digest);
                if agreed {
                    return out.push(answer(Reply::Done));
                }
                match self.plan(&p.topology) {
                    Ok(plan) => Work::Configure {
                        generation: plan.generation,
                        digest: p.digest,
                        text: p.text,
                        sets: plan.sets,
                        guard_margin: plan.guard_margin,
                        timing: plan.timing,
                        nodes: plan.nodes,
                        drain: plan.drain,
                    },
                    Err(why) => return out.push(answer(Reply::Refused(Refusal::Config(why)))),
                }
            }
        };
        let deadline = now + work.wait();
        self.pending.push(Pending { id, work, deadline });
    }

    /// How much longer a lock holder on this node may act on its lock: while
    /// more than a third of its lease is left, so that whoever runs under
    /// the lock is stopped before the lease ends — and before any other node
    /// can be given the lock, which needs this one evicted.
    fn lock_valid_for(&self, now: Time) -> Duration {
        let margin = self.topo.timing.lease / 3;
        match self.lease_expiry() {
            Some(end) if self.joined() && end > now + margin => Duration::from_micros(end.0 - now.0) - margin,
            _ => Duration::ZERO,
        }
    }

    fn admit_move(&self, set: SetId, to: Option<NodeId>) -> Result<NodeId, Refusal> {
        if self.state.maintenance {
            return Err(Refusal::Maintenance);
        }
        if self.state.set(set).frozen {
            return Err(Refusal::Frozen { set });
        }
        let Some(node) = to else { return self.next_preferred(set).ok_or(Refusal::NoTarget { set }) };
        if self.topo.nodes[usize::from(node)].witness {
            return Err(Refusal::Witness { node });
        }
        if !self.topo.sets[usize::from(set)].nodes.contains(&node) {
            return Err(Refusal::NotInList { set, node });
        }
        match requests::ineligible(&self.state, set, node) {
            Some(why) => Err(Refusal::Ineligible { set, node, why }),
            None => Ok(node),
        }
    }

    /// Answers the requests the agreed state shows done, or whose time is
    /// up; proposes again what the others still need.
    fn serve(&mut self, now: Time, out: &mut Vec<Output>) {
        let mut left = Vec::with_capacity(self.pending.len());
        let valid_for = self.lock_valid_for(now);
        for mut p in std::mem::take(&mut self.pending) {
            if let Some(reply) = p.work.done(&self.state, self.me, valid_for) {
                out.push(Output::Reply { id: p.id, reply });
            } else if now >= p.deadline {
                out.push(Output::Reply { id: p.id, reply: Reply::Failed(p.work.failure(&self.state, &self.topo)) });
            } else {
                if let Some(command) = p.work.command(&self.state, self.me) {
                    self.propose(now, command, out);
                }
                left.push(p);
            }
        }
        self.pending = left;
    }

    /// A stopping agent (SIGTERM) puts its node in standby, marked as its
    /// own doing, and exits once it runs nothing, that standby is agreed,
    /// and no set still waits on a leaving owner — while one does, this
    /// node's vote may be what lets the cluster move or stop it (when every
    /// node stops at once, the sets are stopped rather than stranded). It
    /// stays at least a lease, so the standbys of nodes told to stop at the
    /// same moment are agreed before it looks; without a lease it can agree
    /// nothing, and leaves once it runs nothing. An agent that runs (again)
    /// while the agreed state says its node left asks to be back.
    fn stay_or_leave(&mut self, now: Time, out: &mut Vec<Output>) {
        let me = self.me;
        if self.retired_out() {
            out.push(Output::Exit);
            return;
        }
        let Some(since) = self.leaving else {
            if self.state.node(me).leaving {
                self.propose(now, Command::Back { node: me }, out);
            }
            return;
        };
        if self.exited {
            return;
        }
        if !self.state.node(me).leaving && !self.topo.nodes[usize::from(me)].witness {
            self.propose(now, Command::Leave { node: me }, out);
        }
        let runs_nothing = self.sets.iter().all(|lc| lc.phase() == Phase::Stopped);
        let may_exit = if now.since(since) < self.topo.timing.lease {
            false
        } else if self.lease_expiry().is_none_or(|e| e <= now) {
            runs_nothing
        } else {
            let witness = self.topo.nodes[usize::from(me)].witness;
            let empty = witness || (self.state.owned_by(me).next().is_none() && runs_nothing);
            let agreed = witness || self.state.node(me).leaving;
            let stranded =
                self.state.sets.iter().any(|s| s.owner.is_some_and(|o| o != me && self.state.node(o).standby));
            empty && agreed && !stranded
        };
        if may_exit || now.since(since) >= SHUTDOWN_WAIT {
            self.exited = true;
            out.push(Output::Exit);
        }
    }

    /// What switching to `new` would do, as this node would propose it
    /// (`config diff`, `config apply`): the core's plan, and a timing
    /// change only once every online node says how long its promises are
    /// (ARCHITECTURE.md, "A configuration change", point 7).
    pub fn plan(&self, new: &Topology) -> Result<crate::reconfigure::Plan, String> {
        let plan = crate::reconfigure::plan(&self.topo, &self.state, new)?;
        let unheard = |says: &[bool]| -> Vec<&str> {
            (0..self.topo.nodes.len())
                .filter(|&p| p != usize::from(self.me) && self.state.is_online(p as NodeId) && !says[p])
                .map(|p| self.topo.nodes[p].name.as_str())
                .collect()
        };
        let old_batons = unheard(&self.says_members);
        if plan.nodes.is_some() && !old_batons.is_empty() {
            return Err(format!(
                "{}: the nodes change, but {} did not say which nodes it counts by (a baton from before nodes \
                 changed live, or not heard yet): upgrade it first",
                plan.node_changes.join(", "),
                old_batons.join(", ")
            ));
        }
        let (old, t) = (&self.topo.timing, &plan.timing);
        if (old.heartbeat_interval, old.lease) != (t.heartbeat_interval, t.lease) {
            let silent = unheard(&self.says_promise);
            if !silent.is_empty() {
                return Err(format!(
                    "the lease or heartbeat interval changes, but {} did not say how long its lease promises are \
                     (a baton from before timing changed live, or not heard yet): upgrade it first",
                    silent.join(", ")
                ));
            }
        }
        Ok(plan)
    }

    /// The node `move SET` without a target would choose.
    pub fn next_preferred(&self, set: SetId) -> Option<NodeId> {
        placement::next_preferred(&self.topo, &self.state, &self.liveness(), set)
    }

    /// When the node next needs a `Tick`.
    pub fn poll_timeout(&self) -> Time {
        let probe = self.topo.timing.probe_interval.map(|_| self.next_probe);
        let lifecycles = self.sets.iter().filter_map(Lifecycle::next_deadline);
        let lease = self.lease_expiry().filter(|_| self.guard.is_some()).into_iter();
        let lead = lease.clone().map(|end| end - self.topo.timing.release_lead());
        std::iter::once(self.next_heartbeat)
            .chain(probe)
            .chain(self.detector.next_deadline())
            .chain(lifecycles)
            .chain(lease)
            .chain(lead)
            .filter(|t| *t > self.now)
            .min()
            .unwrap_or(self.next_heartbeat)
    }
}

mod handover;
mod members;
mod pair;
#[cfg(test)]
mod tests;
