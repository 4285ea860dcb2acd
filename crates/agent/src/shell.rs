//! The agent's loop: sockets, timers, signals, Raft and the API around one
//! [`Node`]. Every source becomes an [`Input`]; every [`Output`] is carried
//! out here, in order. Nothing in this file decides what the cluster does.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_config::Config;
use baton_core::{Event, Input, Node, NodeId, Output, SetId, Time};
use baton_state::Command;
use openraft::{BasicNode, SnapshotPolicy};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use baton_resources::fence;

use crate::api::{self, Call, Request, Response};
use crate::events::EventLog;
use crate::exec::Executor;
use crate::guard::{monotonic_ms, Order};
use crate::guard_link::{GuardLink, WatchdogArgs};
use crate::links::Links;
use crate::local::Local;
use crate::raft::machine::{Applied, StateMachine};
use crate::raft::net::{self as raftnet, Peers};
use crate::raft::store::LogStore;
use crate::raft::{NodeId as RaftId, Raft};
use crate::status;

pub struct Options {
    pub config: Config,
    pub me: usize,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
}

/// How long SIGTERM waits for this node's sets to move elsewhere.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);
const QUEUE: usize = 4096;

struct Agent {
    config: Arc<Config>,
    me: usize,
    state_dir: PathBuf,
    start: Instant,
    core: Node,
    local: Local,
    links: Links,
    raft: Raft,
    peers: Peers,
    exec: Arc<Executor>,
    prober: crate::probe::Prober,
    nl: baton_resources::netlink::Netlink,
    inputs: mpsc::Sender<Input>,
    guard: GuardLink,
    leader: Option<RaftId>,
    events: Arc<EventLog>,
    fence_warned: Vec<bool>,
    /// Nodes a fence is under way for.
    fencing: Arc<std::sync::Mutex<std::collections::BTreeSet<NodeId>>>,
    /// When each set was last given to this node (for the takeover metric).
    assigned_at: Vec<std::cell::Cell<Option<Time>>>,
}

/// Raft's timers follow the lease: a new leader must be able to commit an
/// eviction about when the lease of a dead owner ends, so with a lease
/// shorter than 600 ms the election timeout shrinks with it (never below
/// 100 ms); longer leases keep 300–600 ms. The leader's heartbeat is a
/// third of the shortest election timeout.
fn raft_config(name: &str, lease: Duration) -> Result<openraft::Config, String> {
    let election_min = (lease.as_millis() as u64 / 2).clamp(100, 300);
    openraft::Config {
        cluster_name: name.to_string(),
        heartbeat_interval: (election_min / 3).max(15),
        election_timeout_min: election_min,
        election_timeout_max: election_min * 2,
        // The log holds decisions only (heartbeats never enter it); every
        // thousand of them are folded into a snapshot kept in redb.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
        ..Default::default()
    }
    .validate()
    .map_err(|e| format!("raft configuration: {e}"))
}

/// The guard's lock in the state directory: one guard at a time.
pub const GUARD_LOCK: &str = "guard.lock";
/// The Raft store in the state directory.
pub const RAFT_FILE: &str = "raft.redb";
/// Left by `baton rejoin`: start from an empty log, without initializing.
pub const REJOIN_MARK: &str = "rejoining";

/// What to do when this node's Raft state is damaged or lost.
fn rejoin_hint(config: &Config, me: usize, state_dir: &std::path::Path) -> String {
    format!(
        "This node cannot start from it. To rejoin it from its peers (a majority of them must be up), run \
         `baton rejoin --node {} --state-dir {}` (with the agent's --config), then start the agent again.",
        config.nodes[me].name,
        state_dir.display()
    )
}

pub async fn run(opts: Options) -> Result<(), String> {
    let Options { config, me, state_dir, socket } = opts;
    let config = Arc::new(config);
    std::fs::create_dir_all(&state_dir).map_err(|e| format!("creating {}: {e}", state_dir.display()))?;
    let mut local = Local::load(&state_dir)?;
    let raft_file = state_dir.join(RAFT_FILE);
    let rejoining = state_dir.join(REJOIN_MARK).exists();
    if local.incarnation > 0 && !raft_file.exists() && !rejoining {
        return Err(format!(
            "{} is missing, but this node ran before (incarnation {}): its Raft vote is lost, and starting \
             afresh could let it vote twice in one term. {}",
            raft_file.display(),
            local.incarnation,
            rejoin_hint(&config, me, &state_dir)
        ));
    }
    local.incarnation += 1;
    local.save(&state_dir)?;
    let peers = Peers::of(&config)?;
    let (cluster, keys, addrs) = (peers.cluster, peers.keys.clone(), peers.addrs.clone());
    let (inputs, mut inputs_rx) = mpsc::channel::<Input>(QUEUE);

    let exe = std::env::current_exe().map_err(|e| format!("finding my own binary: {e}"))?;
    let watchdog = config
        .cluster
        .watchdog
        .as_ref()
        .map(|device| WatchdogArgs { device: device.clone(), timeout: config.cluster.watchdog_timeout });
    let lock = state_dir.join(GUARD_LOCK);
    let (guard, guard_ended) =
        GuardLink::spawn(&exe, &lock, watchdog.as_ref(), inputs.clone()).await.map_err(|e| e.to_string())?;
    let links =
        Links::bind(me, cluster, keys.clone(), addrs.clone(), inputs.clone()).await.map_err(|e| e.to_string())?;

    let store = LogStore::open(&raft_file).map_err(|e| format!("{e}\n{}", rejoin_hint(&config, me, &state_dir)))?;
    let committed = store.committed().map_err(|e| e.to_string())?.map(|l| l.index);
    let (applied_tx, mut applied_rx) = mpsc::channel(1024);
    let machine = StateMachine::open(
        config.nodes.len(),
        config.sets.len(),
        config.fence_required(),
        applied_tx,
        store.database(),
    )
    .map_err(|e| format!("reading the stored snapshot: {e}\n{}", rejoin_hint(&config, me, &state_dir)))?;
    let (mut state, mut index) = machine.start_point();
    let raft = Raft::new(
        me as RaftId,
        Arc::new(raft_config(&config.cluster.name, config.cluster.lease)?),
        peers.clone(),
        store,
        machine,
    )
    .await
    .map_err(|e| format!("starting raft: {e}"))?;
    let events = Arc::new(EventLog::open(&state_dir, &config.nodes[me].name));
    for &addr in &addrs[me] {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("listening on {addr}: {e}"))?;
        tokio::spawn(raftnet::serve(listener, cluster, keys.clone(), raft.clone(), Arc::clone(&events)));
    }
    let initialized = raft.is_initialized().await.map_err(|e| e.to_string())?;
    if rejoining && initialized {
        let _ = std::fs::remove_file(state_dir.join(REJOIN_MARK));
    }
    // A rejoining node waits for the leader to send it the log.
    if !initialized && !rejoining {
        let members: BTreeMap<RaftId, BasicNode> =
            addrs.iter().enumerate().map(|(i, a)| (i as RaftId, BasicNode::new(a[0].to_string()))).collect();
        // Every node proposes the same membership; all but the first are told
        // it exists already, which is fine.
        let _ = raft.initialize(members).await;
    }
    tokio::spawn(crate::raft::membership::promote_learners(raft.clone()));

    // Rebuild the agreed state up to what was committed before the restart,
    // before deciding anything: acting on a prefix could restart a set this
    // node had already handed over.
    if let Some(committed) = committed {
        while index < committed {
            match applied_rx.recv().await {
                Some(Applied::Command { index: i, command }) => {
                    let _ = state.apply(&command);
                    index = i;
                }
                Some(Applied::Restore { index: i, state: s }) => {
                    state = s;
                    index = i;
                }
                None => return Err("raft stopped while replaying the log".into()),
            }
        }
    }

    let start = Instant::now();
    let mut topology = config.topology();
    crate::preflight::apply(&config, &mut topology).await;
    // Above any incarnation the agreed state recorded for this node, also
    // when local.json was lost: every start of the agent is a new one.
    let recorded = state.node(me as NodeId).incarnation;
    if local.incarnation <= recorded {
        local.incarnation = recorded + 1;
        local.save(&state_dir)?;
    }
    let core = Node::new(topology, me as NodeId, state, local.persisted(), local.incarnation, Time(0));
    let nl = baton_resources::netlink::Netlink::connect().map_err(|e| format!("opening netlink: {e}"))?;
    let node_name = config.nodes[me].name.clone();
    let ocf_tmp = state_dir.join("ocf");
    std::fs::create_dir_all(&ocf_tmp).map_err(|e| format!("creating {}: {e}", ocf_tmp.display()))?;
    let base = baton_resources::cgroup::base(&node_name)
        .map(baton_resources::cgroup::Cgroup)
        .map_err(|e| format!("the cgroup of this node's sets: {e}"))?;
    let sets = crate::exec::build(&config, &node_name, &base, &nl, &ocf_tmp);
    let prober = crate::probe::Prober::new(&config, me as NodeId);
    let exec =
        Arc::new(Executor::new(node_name.clone(), sets, guard.clone(), inputs.clone(), Arc::clone(&events)).await?);
    let (calls_tx, mut calls_rx) = mpsc::channel::<Call>(64);
    let history = api::History { log: Arc::clone(&events), peers: peers.clone(), me };
    api::serve(&socket, calls_tx.clone(), history.clone()).await.map_err(|e| e.to_string())?;
    let http = &config.cluster;
    let http_down =
        crate::http::serve(http.http, http.http_token_file.as_deref(), calls_tx, history).await.err().into_iter();
    crate::notify::start(&config.notify, &events);
    events.record("agent", None, format!("agent started (incarnation {})", local.incarnation), None, None);
    let missing = config.warnings().into_iter().chain(http_down);
    for what in missing {
        eprintln!("baton: warning: {what}");
        events.record("agent", None, format!("warning: {what}"), None, None);
    }
    eprintln!("baton: node {node_name} of cluster {} is up; control socket {}", config.cluster.name, socket.display());

    let mut agent = Agent {
        fence_warned: vec![false; config.nodes.len()],
        assigned_at: vec![std::cell::Cell::new(None); config.sets.len()],
        fencing: Default::default(),
        events: Arc::clone(&events),
        config,
        me,
        state_dir,
        start,
        core,
        local,
        links,
        raft: raft.clone(),
        peers,
        exec,
        prober,
        nl: nl.clone(),
        inputs: inputs.clone(),
        guard,
        leader: None,
    };
    let mut metrics = raft.metrics();
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut leaving: Option<Instant> = None;
    let mut standby_retry = Instant::now();
    let mut systemd = crate::systemd::Systemd::from_env();
    systemd.notify("READY=1");
    loop {
        let wake = agent.start + Duration::from_micros(agent.core.poll_timeout().0);
        let input = tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => Input::Tick,
            Some(input) = inputs_rx.recv() => input,
            Some(applied) = applied_rx.recv() => match applied {
                Applied::Command { command, .. } => Input::Committed(command),
                Applied::Restore { state, .. } => Input::Restore(state),
            },
            Ok(()) = metrics.changed() => {
                let leader = metrics.borrow().current_leader;
                if leader == agent.leader { continue; }
                agent.leader = leader;
                Input::Leader(leader == Some(me as RaftId))
            },
            Some((req, user, reply)) = calls_rx.recv() => {
                let _ = reply.send(agent.answer(req, user));
                Input::Tick
            },
            _ = term.recv() => { agent.leave(&mut leaving); Input::Tick },
            _ = int.recv() => { agent.leave(&mut leaving); Input::Tick },
            _ = hup.recv() => { agent.reload(); Input::Tick },
        };
        agent.step(input)?;
        systemd.feed();
        if leaving.is_none() {
            agent.standby_after_restart(&mut standby_retry);
        }
        if let Some(since) = leaving {
            if agent.may_exit(since) || since.elapsed() > SHUTDOWN_WAIT {
                break;
            }
        }
    }
    eprintln!("baton: node {node_name} handed its sets over; exiting");
    systemd.notify("STOPPING=1");
    let _ = raft.shutdown().await;
    drop(agent);
    // Closing the guard's stdin ends it; it holds nothing by now.
    let _ = tokio::time::timeout(Duration::from_secs(6), guard_ended).await;
    Ok(())
}

impl Agent {
    fn now(&self) -> Time {
        Time(self.start.elapsed().as_micros() as u64)
    }

    fn step(&mut self, input: Input) -> Result<(), String> {
        let now = self.now();
        let before: Vec<Option<NodeId>> = self.core.state().sets.iter().map(|s| s.owner).collect();
        let outputs = self.core.handle(now, input);
        self.note_previous_owners(&before);
        for output in outputs {
            self.carry_out(output)?;
        }
        Ok(())
    }

    /// Remembers who owned each set before it changed hands, for the hooks'
    /// BATON_PREVIOUS_OWNER.
    fn note_previous_owners(&self, before: &[Option<NodeId>]) {
        let mut previous = self.exec.previous.lock().expect("not poisoned");
        let me = Some(self.me as NodeId);
        for (s, rec) in self.core.state().sets.iter().enumerate() {
            if rec.owner == me && before[s] != me {
                self.assigned_at[s].set(Some(self.now()));
            }
            if let Some(old) = before[s].filter(|&o| Some(o) != rec.owner) {
                previous[s] = Some(self.config.nodes[usize::from(old)].name.clone());
            }
        }
    }

    fn carry_out(&mut self, output: Output) -> Result<(), String> {
        match output {
            Output::Send(hb) => self.links.send(&hb),
            Output::Propose(command) => self.propose(command),
            Output::Act(action) => self.exec.act(action),
            Output::Cancel { set } => self.exec.cancel(set),
            Output::Guard(deadline) => {
                let ms = deadline.map(|d| {
                    let at = self.start + Duration::from_micros(d.0);
                    monotonic_ms() + at.saturating_duration_since(Instant::now()).as_millis() as u64
                });
                // In order with every other order to the guard, without waiting.
                self.guard.tell(Order::Deadline(ms));
            }
            Output::Persist(p) => {
                self.local.set_persisted(&p);
                self.local.save(&self.state_dir)?;
            }
            Output::Fence { node, epoch, incarnation } => self.fence(node, epoch, incarnation),
            Output::Probe { set, owner, generation } => {
                self.prober.probe(self.nl.clone(), set, owner, generation, self.inputs.clone())
            }
            Output::Event(event) => self.log(&event),
        }
        Ok(())
    }

    /// Fences `node` with its devices, in order, until one confirms it off;
    /// then proposes `Fenced`, which evicts it at once.
    fn fence(&mut self, node: NodeId, epoch: u64, incarnation: u64) {
        let name = self.config.nodes[usize::from(node)].name.clone();
        let devices: Vec<fence::Device> = self
            .config
            .fencing
            .iter()
            .flat_map(|f| &f.devices)
            .filter(|d| d.nodes.contains(&usize::from(node)))
            .map(|d| fence::Device {
                agent: fence::resolve(&d.agent),
                params: d.params.clone(),
                password_file: d.password_file.clone(),
                delay: d.delay,
                timeout: d.timeout,
            })
            .collect();
        if devices.is_empty() {
            if !std::mem::replace(&mut self.fence_warned[usize::from(node)], true) {
                eprintln!("baton: {name} needs fencing (a stop failed there) but no fence device covers it; its set stays blocked");
            }
            return;
        }
        if self.core.state().node(node).epoch != epoch || !self.fencing.lock().expect("not poisoned").insert(node) {
            return;
        }
        let (raft, fencing, events) = (self.raft.clone(), Arc::clone(&self.fencing), Arc::clone(&self.events));
        tokio::spawn(async move {
            for device in devices {
                let started = Instant::now();
                let result = device.off(&name).await;
                let took = Some(started.elapsed().as_millis() as u64);
                match result {
                    Ok(()) => {
                        let msg = format!("{name} fenced by {}: confirmed off", device.agent.display());
                        eprintln!("baton: {msg}");
                        events.metrics().fence(true);
                        events.record("fence", None, msg, took, None);
                        if let Err(e) = raft.client_write(Command::Fenced { node, epoch, incarnation }).await {
                            eprintln!("baton: recording the fence of {name}: {e}");
                        }
                        break;
                    }
                    Err(e) => {
                        eprintln!("baton: fencing {name}: {e}");
                        events.metrics().fence(false);
                        events.record("fence", None, format!("fencing {name} failed: {e}"), took, None);
                    }
                }
            }
            fencing.lock().expect("not poisoned").remove(&node);
        });
    }

    fn log(&self, event: &Event) {
        let name = |n: NodeId| self.config.nodes[usize::from(n)].name.as_str();
        let set = |s: SetId| self.config.sets[usize::from(s)].name.as_str();
        let line = match event {
            Event::Detector(c) => format!("{c:?}"),
            Event::Set { set: s, report } => format!("set {}: {report:?}", set(*s)),
            Event::Applied { command, result: Ok(_) } => format!("agreed: {command:?}"),
            Event::Applied { command, result: Err(why) } => format!("agreed but void: {command:?}: {why}"),
            Event::LeaseLost => "lease lost: releasing every set".into(),
            Event::LeaseHeld => "lease held".into(),
            Event::GuardFired => "the guard killed everything this node ran".into(),
        };
        eprintln!("baton[{}]: {line}", name(self.me as NodeId));
        let since = |t: Time| self.now().0.saturating_sub(t.0) as f64 / 1e6;
        match event {
            Event::Detector(baton_core::detector::Change::NodeDown { last_heard, .. }) => {
                self.events.metrics().detection(since(*last_heard));
            }
            Event::Set { set: s, report: baton_core::lifecycle::Report::Started } => {
                if let Some(t) = self.assigned_at[usize::from(*s)].take() {
                    self.events.metrics().takeover(since(t));
                }
            }
            Event::LeaseHeld | Event::LeaseLost => self.events.metrics().lease(matches!(event, Event::LeaseHeld)),
            _ => {}
        }
        if let Some((kind, s, message)) = self.history_of(event) {
            self.events.record(kind, s.map(set), message, None, None);
        }
    }

    /// What an event means for the history, if it belongs there. Agreed
    /// decisions are recorded by the leader only, so that the merged history
    /// of all nodes has each once.
    fn history_of(&self, event: &Event) -> Option<(&'static str, Option<SetId>, String)> {
        use baton_core::detector::Change;
        use baton_core::lifecycle::Report;
        let name = |n: NodeId| self.config.nodes[usize::from(n)].name.clone();
        Some(match event {
            Event::Detector(Change::NodeDown { peer, .. }) => {
                ("detection", None, format!("{} silent on every link for the lease", name(*peer)))
            }
            Event::Detector(Change::NodeUp { peer }) => ("detection", None, format!("{} heard again", name(*peer))),
            Event::Detector(Change::LinkDown { peer, link, .. }) => {
                ("link", None, format!("link {link} to {} down (no heartbeat for the lease)", name(*peer)))
            }
            Event::Detector(Change::LinkUp { peer, link }) => {
                ("link", None, format!("link {link} to {} up", name(*peer)))
            }
            Event::Set { set, report } => match report {
                Report::Started => ("takeover", Some(*set), "running here: every start step done".into()),
                Report::Stopped(why) => ("release", Some(*set), format!("stopped here ({why:?})")),
                Report::StartAborted(e) => {
                    ("failure", Some(*set), format!("start abandoned here ({e:?}); stopped cleanly"))
                }
                Report::StopFailed => {
                    ("failure", Some(*set), "a stop failed: blocked until this node is fenced".into())
                }
                Report::MonitorFailed { resource, timed_out } => {
                    let how = if *timed_out { "timed out" } else { "failed" };
                    ("failure", Some(*set), format!("monitor of resource {resource} {how}"))
                }
                Report::StepFailed { .. } => return None,
            },
            Event::Applied { command: Command::Duplicate { set, strangers, .. }, result: Ok(_) }
                if self.leader == Some(self.me as RaftId) =>
            {
                let who: Vec<String> = strangers
                    .iter()
                    .map(|s| {
                        let mac = s.mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
                        s.node.map_or(mac.clone(), |n| format!("{} ({mac})", name(n)))
                    })
                    .collect();
                let owner = self.core.state().set(*set).owner.map_or("nobody".into(), name);
                let msg = format!("its address answers from {} besides its owner {owner}", who.join(", "));
                ("duplicate", Some(*set), msg)
            }
            Event::Applied { command, result } if self.leader == Some(self.me as RaftId) => {
                let void = result.as_ref().err().map(|why| format!(" — void: {why}")).unwrap_or_default();
                let (set, what) = match command {
                    Command::Assign { set, node, .. } => (
                        Some(*set),
                        format!("assigned to {} (first eligible node in its preference order)", name(*node)),
                    ),
                    Command::Move { set, from, to, .. } => (
                        Some(*set),
                        format!("{} asked to hand over to {}", name(*from), to.map_or("nobody".into(), name)),
                    ),
                    Command::Released { set, node, .. } => (Some(*set), format!("released by {}", name(*node))),
                    Command::Started { set, node, .. } => (Some(*set), format!("runs on {}", name(*node))),
                    Command::StartFailed { set, node, exclusion, .. } => {
                        (Some(*set), format!("failed on {} ({exclusion:?}): {} excluded", name(*node), name(*node)))
                    }
                    Command::StopFailed { set, node, .. } => {
                        (Some(*set), format!("stop failed on {}: blocked", name(*node)))
                    }
                    Command::Suspect { voter, node, .. } => {
                        let evicted = matches!(result, Ok(baton_state::Applied::Evicted(_)));
                        let tail = if evicted { ": a majority agrees, evicted and its sets freed" } else { "" };
                        (None, format!("{} suspects {}{tail}", name(*voter), name(*node)))
                    }
                    Command::Unsuspect { voter, node, .. } => {
                        (None, format!("{} hears {} again", name(*voter), name(*node)))
                    }
                    Command::Fenced { node, .. } => (None, format!("{} fenced: evicted at once", name(*node))),
                    Command::Join { node, incarnation, .. } => {
                        (None, format!("{} joined (agent incarnation {incarnation})", name(*node)))
                    }
                    Command::Freeze { set, frozen } => (Some(*set), if *frozen { "frozen" } else { "unfrozen" }.into()),
                    Command::Standby { node, standby } => {
                        (None, format!("{} {}", name(*node), if *standby { "in standby" } else { "online again" }))
                    }
                    Command::Leave { node } => (None, format!("{} in standby: its agent is stopping", name(*node))),
                    Command::Back { node } => (None, format!("{} back: its agent runs again", name(*node))),
                    Command::Pin { set, node } => {
                        (Some(*set), format!("pinned to {}", node.map_or("nobody".into(), name)))
                    }
                    Command::Clear { set } => (Some(*set), "exclusions cleared".into()),
                    Command::Maintenance { on: true } => {
                        (None, "maintenance mode on: nothing is started, stopped or recovered".into())
                    }
                    Command::Maintenance { on: false } => (None, "maintenance mode off".into()),
                    Command::Lock { name: lock, node, .. } => {
                        let token = self.core.state().locks.get(lock).map_or(0, |l| l.token);
                        (None, format!("lock {lock} given to {} (fencing token {token})", name(*node)))
                    }
                    Command::Unlock { name: lock, node, token } => {
                        (None, format!("lock {lock} (token {token}) given back by {}", name(*node)))
                    }
                    // Accepted ones are above; a stale sighting is not news.
                    Command::Duplicate { .. } => return None,
                };
                ("agreed", set, format!("{what}{void}"))
            }
            Event::Applied { .. } => return None,
            Event::LeaseLost => ("lease", None, "lease lost: releasing every set, addresses first".into()),
            Event::LeaseHeld => ("lease", None, "lease held".into()),
            Event::GuardFired => ("guard", None, "the guard killed everything this node ran".into()),
        })
    }

    fn propose(&self, command: Command) {
        match self.leader {
            Some(l) if l == self.me as RaftId => {
                let raft = self.raft.clone();
                tokio::spawn(async move {
                    let _ = raft.client_write(command).await;
                });
            }
            Some(l) => {
                let peers = self.peers.clone();
                tokio::spawn(async move {
                    let req = raftnet::Request::Propose(command);
                    let _ = peers.call(l, &mut None, &req, Duration::from_secs(2)).await;
                });
            }
            // No leader: the core proposes again while it still wants it.
            None => {}
        }
    }

    fn set_id(&self, name: &str) -> Result<SetId, Response> {
        self.config
            .sets
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as SetId)
            .ok_or_else(|| Response::err(format!("no set named \"{name}\"")))
    }

    fn node_id(&self, name: &str) -> Result<NodeId, Response> {
        self.config
            .node_index(name)
            .map(|i| i as NodeId)
            .ok_or_else(|| Response::err(format!("no node named \"{name}\"")))
    }

    fn answer(&mut self, req: Request, user: Option<String>) -> Response {
        let what = match &req {
            Request::Move { set, node, reason } => {
                Some((format!("move {set} {}", node.as_deref().unwrap_or("(next)")), reason))
            }
            Request::Freeze { set, frozen, reason } => {
                Some((format!("{} {set}", if *frozen { "freeze" } else { "unfreeze" }), reason))
            }
            Request::Standby { node, standby, reason } => {
                Some((format!("{} {node}", if *standby { "standby" } else { "online" }), reason))
            }
            Request::Cleanup { set, reason } => Some((format!("cleanup {set}"), reason)),
            Request::Maintenance { on, reason } => {
                Some((format!("maintenance {}", if *on { "on" } else { "off" }), reason))
            }
            _ => None,
        }
        .map(|(what, reason)| (what, reason.clone()));
        let response = self.try_answer(req).unwrap_or_else(|e| e);
        if let Some((what, reason)) = what {
            let outcome = match &response.error {
                None => "accepted".to_string(),
                Some(e) => format!("refused: {e}"),
            };
            let why = reason.map(|r| format!(" because \"{r}\"")).unwrap_or_default();
            self.events.record("operator", None, format!("{what}{why}: {outcome}"), None, user);
        }
        response
    }

    fn try_answer(&mut self, req: Request) -> Result<Response, Response> {
        let now = self.now();
        Ok(match req {
            Request::Status => {
                let doc = status::document(&self.config, &self.core, self.leader, &self.links.counters(), now);
                Response::ok(Some(doc))
            }
            Request::IsActive { set } => {
                let s = self.set_id(&set)?;
                let active = self.core.state().set(s).owner == Some(self.me as NodeId)
                    && self.core.lifecycle(s).phase() == baton_core::lifecycle::Phase::Running;
                Response::ok(Some(serde_json::json!({ "active": active })))
            }
            Request::Events { .. } => return Err(Response::err("events are answered by the API itself")),
            Request::Move { set, node, .. } => {
                let s = self.set_id(&set)?;
                let rec = self.core.state().set(s);
                if self.core.state().maintenance {
                    return Err(Response::err("the cluster is in maintenance mode: `baton maintenance off` first"));
                }
                if rec.frozen {
                    return Err(Response::err(format!("{set} is frozen: unfreeze it first")));
                }
                let target = match node {
                    Some(name) => {
                        let n = self.node_id(&name)?;
                        if self.config.nodes[usize::from(n)].witness {
                            return Err(Response::err(format!("{name} is a witness and never runs sets")));
                        }
                        if !self.config.sets[usize::from(s)].nodes.contains(&usize::from(n)) {
                            return Err(Response::err(format!("{name} is not in {set}'s node list")));
                        }
                        if self.core.state().check_eligible(s, n).is_err() {
                            let rec = self.core.state().node(n);
                            let why = if !self.core.state().is_online(n) {
                                "it is not online (not joined yet, or evicted)"
                            } else if rec.standby {
                                "it is in standby"
                            } else {
                                "it is excluded for this set (a veto or a failure); clear it first"
                            };
                            return Err(Response::err(format!("{name} cannot run {set} now: {why}")));
                        }
                        n
                    }
                    None => self
                        .core
                        .next_preferred(s)
                        .ok_or_else(|| Response::err(format!("no other node can run {set} now")))?,
                };
                self.propose(Command::Pin { set: s, node: Some(target) });
                let target = self.config.nodes[usize::from(target)].name.clone();
                Response::ok(Some(serde_json::json!({ "target": target })))
            }
            Request::Freeze { set, frozen, .. } => {
                let s = self.set_id(&set)?;
                self.propose(Command::Freeze { set: s, frozen });
                Response::ok(None)
            }
            Request::Cleanup { set, .. } => {
                let s = self.set_id(&set)?;
                self.propose(Command::Clear { set: s });
                Response::ok(None)
            }
            Request::Maintenance { on, .. } => {
                self.propose(Command::Maintenance { on });
                Response::ok(None)
            }
            Request::Lock { name, .. } => {
                if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                    return Err(Response::err("a lock name is 1 to 128 printable characters"));
                }
                let me = self.me as NodeId;
                // Only a free lock is asked for: a waiting caller asks again
                // every 100 ms, and a held lock would only be refused.
                if !self.core.state().locks.contains_key(&name) {
                    let epoch = self.core.state().node(me).epoch;
                    self.propose(Command::Lock { name, node: me, epoch });
                }
                Response::ok(None)
            }
            Request::LockState { name } => {
                let me = self.me as NodeId;
                let lock = self.core.state().locks.get(&name).copied();
                let margin = self.config.cluster.lease / 3;
                let lease_ok = self.core.lease_expiry().is_some_and(|e| e > now + margin);
                let name_of = |n: NodeId| self.config.nodes[usize::from(n)].name.clone();
                Response::ok(Some(serde_json::json!({
                    "holder": lock.map(|l| name_of(l.holder)),
                    "token": lock.map(|l| l.token),
                    "valid": lock.is_some_and(|l| l.holder == me) && lease_ok,
                })))
            }
            Request::Unlock { name, token } => {
                self.propose(Command::Unlock { name, node: self.me as NodeId, token });
                Response::ok(None)
            }
            Request::Standby { node, standby, .. } => {
                let n = self.node_id(&node)?;
                if standby && self.core.state().maintenance {
                    return Err(Response::err(format!(
                        "the cluster is in maintenance mode, so {node}'s sets would not move: \
                         `baton maintenance off` first"
                    )));
                }
                self.propose(Command::Standby { node: n, standby });
                Response::ok(None)
            }
        })
    }

    /// SIGTERM: hand every set to the next node, then exit.
    /// SIGHUP: the config file read again. Refused whole if it is invalid
    /// (the errors become an event, the running config stays); if valid,
    /// the secrets take effect at once (a rotation step) and the event says
    /// which other sections changed and wait for the agent's next start.
    fn reload(&mut self) {
        let file = &self.config.file;
        let new = match baton_config::load(file) {
            Ok(new) => new,
            Err(e) => {
                let msg = format!("SIGHUP: {} refused, the running configuration stays:\n{e}", file.display());
                eprintln!("baton: {msg}");
                self.events.record("agent", None, msg, None, None);
                return;
            }
        };
        let keys = match raftnet::secrets(&new.cluster) {
            Ok(keys) => keys,
            Err(e) => {
                let msg = format!("SIGHUP: {} refused: {e}", file.display());
                self.events.record("agent", None, msg, None, None);
                return;
            }
        };
        let accepted = keys.len();
        self.peers.keys.replace(keys);
        let old = &self.config;
        let mut pending = Vec::new();
        let mut cluster = old.cluster.clone();
        cluster.secret_file.clone_from(&new.cluster.secret_file);
        cluster.accept_secret_files.clone_from(&new.cluster.accept_secret_files);
        if cluster != new.cluster {
            pending.push("cluster");
        }
        for (name, same) in [
            ("nodes", old.nodes == new.nodes),
            ("sets", old.sets == new.sets),
            ("fencing", old.fencing == new.fencing),
            ("notify", old.notify == new.notify),
        ] {
            if !same {
                pending.push(name);
            }
        }
        let later = if pending.is_empty() {
            String::new()
        } else {
            format!("; changes to [{}] take effect when the agent restarts", pending.join("], ["))
        };
        let msg = format!("SIGHUP: {} reloaded: {accepted} secret(s) accepted, the first signs{later}", file.display());
        eprintln!("baton: {msg}");
        self.events.record("agent", None, msg, None, None);
    }

    fn leave(&mut self, leaving: &mut Option<Instant>) {
        if leaving.is_some() {
            return;
        }
        eprintln!("baton: asked to stop: handing this node's sets over");
        *leaving = Some(Instant::now());
        self.propose(Command::Leave { node: self.me as NodeId });
    }

    /// Owns nothing and runs nothing.
    fn empty(&self) -> bool {
        self.core.state().owned_by(self.me as NodeId).next().is_none() && self.runs_nothing()
            || self.config.nodes[self.me].witness
    }

    /// A leaving node exits once it runs nothing, its standby is agreed
    /// (so a restart cannot race a late commit of it and stay in standby),
    /// and no set still waits on a leaving owner: while one does, this
    /// node's vote may be what lets the cluster move or stop it (when every
    /// node stops at once, the sets are stopped rather than stranded). It
    /// stays at least a lease, so that the standbys of nodes told to stop
    /// at the same moment are agreed before it looks.
    fn may_exit(&self, leaving_since: Instant) -> bool {
        if leaving_since.elapsed() < self.config.cluster.lease {
            return false;
        }
        // Without a lease nothing can be agreed any more (it has stopped its
        // sets): a node left alone has nothing to wait for once it runs nothing.
        if self.core.lease_expiry().is_none_or(|e| e <= self.now()) {
            return self.runs_nothing();
        }
        let st = self.core.state();
        let standby_agreed = st.node(self.me as NodeId).leaving || self.config.nodes[self.me].witness;
        let stranded = (0..self.config.sets.len() as SetId)
            .any(|s| st.set(s).owner.is_some_and(|o| o != self.me as NodeId && st.node(o).standby));
        self.empty() && standby_agreed && !stranded
    }

    fn runs_nothing(&self) -> bool {
        (0..self.config.sets.len() as SetId)
            .all(|s| self.core.lifecycle(s).phase() == baton_core::lifecycle::Phase::Stopped)
    }

    /// A node whose agent stopped (a `Leave` in the agreed state) takes sets
    /// again: its next incarnation asks to be back for as long as the
    /// agreed state says it left — also when that `Leave` is agreed only
    /// after the restart (it may have been left uncommitted in the log), or
    /// replayed to a node rejoining from an empty log; both left nodes
    /// stuck in standby when this was a flag in `local.json` (found by the
    /// chaos scenarios, the soak: a full disk kept the flag from being saved).
    fn standby_after_restart(&mut self, retry: &mut Instant) {
        if self.core.state().node(self.me as NodeId).leaving && retry.elapsed() > Duration::from_secs(1) {
            *retry = Instant::now();
            self.propose(Command::Back { node: self.me as NodeId });
        }
    }
}
