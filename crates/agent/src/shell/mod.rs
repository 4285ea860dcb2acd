//! The agent's loop around one [`Node`]: every source — a heartbeat, a
//! committed entry, a finished step, an operator's request, a signal, a
//! timer — becomes an [`Input`]; every [`Output`] is carried out here, in
//! order (`effects.rs`). The shell decides nothing the core does not: the
//! core admits and answers requests, orchestrates fencing and decides when a
//! stopping agent may exit.
//!
//! The outside world comes in through [`Ports`]: the guard, the sets'
//! resources, netlink (for probes) and the signals. `run` builds the real
//! ones; a test builds fakes and runs whole clusters of agents in one
//! process over loopback, without root.

mod boot;
mod calls;
mod configure;
mod effects;
mod handover;
mod history;
mod reload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_config::{Config, FenceKind};
use baton_core::{Input, Node, NodeId, Time};
use baton_resources::fence_disk::Disk;
use baton_resources::netlink::Netlink;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};

pub use boot::{GENESIS_FILE, GUARD_LOCK, RAFT_FILE, REJOIN_MARK};
pub use configure::AGREED_FILE;
pub use handover::Handed;

use crate::api::{self, Call};
use crate::events::EventLog;
use crate::exec::{Builder, Executor};
use crate::guard_link::{GuardLink, GuardPort, WatchdogArgs};
use crate::links::Links;
use crate::local::Local;
use crate::raft::machine::Applied;
use crate::raft::net::Peers;
use crate::raft::{NodeId as RaftId, Raft};

pub struct Options {
    pub config: Config,
    pub me: usize,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
}

/// What the operating system says to the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: hand the sets over and exit.
    Stop,
    /// SIGHUP: read the configuration file again.
    Reload,
}

/// The outside world of one agent.
pub struct Ports {
    pub guard: Arc<dyn GuardPort>,
    /// Resolves once the guard has ended after the agent let it go.
    pub guard_ended: Option<oneshot::Receiver<()>>,
    /// Builds a set's resources from its configuration.
    pub build: Builder,
    /// For the probes of the sets' addresses; `None`: no probes.
    pub netlink: Option<Netlink>,
    pub signals: mpsc::Receiver<Signal>,
    /// The guard found a pill in this node's fence disk slot as it started.
    pub pill_found: bool,
    /// This program was started by a handover: what the one before handed it.
    pub handed: Option<Handed>,
    /// The helper that delivers webhooks and mails (`baton-notify`).
    pub notifier: PathBuf,
}

/// The queue of inputs from the agent's own tasks (finished steps, probes,
/// fences, the guard's reports).
pub struct Inputs {
    pub tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
}

impl Default for Inputs {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Inputs { tx, rx }
    }
}

const QUEUE: usize = 4096;

/// The guard's program, beside the agent's.
const GUARD_EXE: &str = "baton-guard";

/// The agent a real node runs: the guard process, the configured resources
/// in their cgroups, netlink, the operating system's signals.
pub async fn run(opts: Options) -> Result<(), String> {
    let inputs = Inputs::default();
    let cluster = &opts.config.cluster;
    let watchdog = cluster
        .watchdog
        .as_ref()
        .map(|device| WatchdogArgs { device: device.clone(), timeout: cluster.watchdog_timeout });
    std::fs::create_dir_all(&opts.state_dir).map_err(|e| format!("creating {}: {e}", opts.state_dir.display()))?;
    let lock = opts.state_dir.join(GUARD_LOCK);
    let node = &opts.config.nodes[opts.me].name;
    // A fence disk that can fence this node: the guard reads its slot.
    let fence_disk = opts.config.fencing.iter().flat_map(|f| &f.devices).find_map(|d| match &d.kind {
        FenceKind::Disk { path } if d.nodes.contains(&opts.me) => Some((path.as_path(), node.as_str())),
        _ => None,
    });
    let handed = Handed::take()?;
    let (guard, guard_ended) = match &handed {
        Some(h) => {
            let deadline = h.record.lease_end_us.map(|us| h.time_of(us));
            GuardLink::attach(&h.record.guard, deadline, inputs.tx.clone())
        }
        None => {
            // The guard is a program of its own, installed beside this one.
            let exe = crate::beside_me(GUARD_EXE)?;
            GuardLink::spawn(&exe, &lock, watchdog.as_ref(), cluster.realtime, fence_disk, inputs.tx.clone()).await
        }
    }
    .map_err(|e| e.to_string())?;
    let nl = Netlink::connect().map_err(|e| format!("opening netlink: {e}"))?;
    let base = baton_resources::cgroup::base(node)
        .map(baton_resources::cgroup::Cgroup)
        .map_err(|e| format!("the cgroup of this node's sets: {e}"))?;
    let ocf_tmp = opts.state_dir.join(crate::exec::OCF_DIR);
    std::fs::create_dir_all(&ocf_tmp).map_err(|e| format!("creating {}: {e}", ocf_tmp.display()))?;
    let build = crate::exec::builder(node.clone(), base, nl.clone(), opts.state_dir.clone());
    let (tx, signals) = mpsc::channel(8);
    tokio::spawn(os_signals(tx));
    let pill_found = guard.pill_found;
    let ports = Ports {
        guard: Arc::new(guard),
        guard_ended: Some(guard_ended),
        build,
        netlink: Some(nl),
        signals,
        pill_found,
        handed,
        // Checked when a webhook or mail is configured (`notify::start`):
        // an agent without them starts without it.
        notifier: std::env::current_exe()
            .map_err(|e| format!("finding my own binary: {e}"))?
            .with_file_name(crate::notify::HELPER_EXE),
    };
    Agent::start(opts, ports, inputs).await?.run().await
}

async fn os_signals(tx: mpsc::Sender<Signal>) -> Result<(), std::io::Error> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        let s = tokio::select! {
            _ = term.recv() => Signal::Stop,
            _ = int.recv() => Signal::Stop,
            _ = hup.recv() => Signal::Reload,
        };
        if tx.send(s).await.is_err() {
            return Ok(());
        }
    }
}

pub struct Agent {
    config: Arc<Config>,
    /// The file this agent started with: what takes effect only at a start
    /// (`configure::later`) is as it says, whatever was agreed since.
    started: Arc<Config>,
    me: usize,
    state_dir: PathBuf,
    start: Instant,
    core: Node,
    local: Local,
    links: Links,
    /// The agreed node slots, for the Raft leader and `baton rejoin`.
    slots: watch::Sender<Vec<crate::local::Slot>>,
    raft: Raft,
    raft_tx: tokio::sync::watch::Sender<Raft>,
    /// Where Raft runs (its storage writes the disk there, not here).
    raft_thread: crate::raft::RaftThread,
    store: crate::raft::store::LogStore,
    /// The last log index handed to the core: a Raft started again replays
    /// from its snapshot, and what the core has seen is not given twice.
    applied_index: u64,
    /// The Raft voters as last told to the core.
    voters: Vec<NodeId>,
    /// The core asked to go on alone (`Output::Alone`), to be done between
    /// two inputs.
    going_alone: bool,
    peers: Peers,
    exec: Arc<Executor>,
    prober: crate::probe::Prober,
    /// The HTTP API: its address and token follow the agreed configuration.
    http: crate::http::Api,
    netlink: Option<Netlink>,
    inputs: Inputs,
    applied: mpsc::Receiver<Applied>,
    calls: mpsc::Receiver<Call>,
    signals: mpsc::Receiver<Signal>,
    guard: Arc<dyn GuardPort>,
    guard_ended: Option<oneshot::Receiver<()>>,
    leader: Option<RaftId>,
    events: Arc<EventLog>,
    /// Operator calls waiting for the core's reply.
    waiting: calls::Waiting,
    /// The program at the path this agent was started from (a handover
    /// executes it again), and the core's handover to carry out.
    exe: PathBuf,
    /// The helper that delivers webhooks and mails.
    notifier: PathBuf,
    handing_over: Option<baton_core::node::Handover>,
    /// When each set was last given to this node (for the takeover metric).
    assigned_at: Vec<Option<Time>>,
    /// Builds the resources of the sets a configuration change adds.
    build: Builder,
    /// The agreed configuration generation `config` is (0: its own file).
    generation: u64,
    /// Files read for `config apply` and `config diff`, back to the loop.
    prepared_tx: mpsc::Sender<configure::Prepared>,
    prepared: mpsc::Receiver<configure::Prepared>,
    socket: PathBuf,
}

impl Agent {
    /// Boots the node (state, Raft, replay), opens its sockets and APIs, and
    /// returns the agent ready to run.
    pub async fn start(opts: Options, ports: Ports, inputs: Inputs) -> Result<Agent, String> {
        let Options { config, me, state_dir, socket } = opts;
        // Nodes by slot once a change of nodes was agreed: Raft's node id,
        // and every index the agent uses, is the slot.
        let name = config.nodes[me].name.clone();
        let local = Local::load(&state_dir)?;
        let config = configure::by_slot(config, &local.slots);
        let me = config.nodes.iter().position(|n| n.name == name).expect("by_slot keeps every node of the file");
        let start = ports.handed.as_ref().map_or_else(Instant::now, |h| h.start);
        let config = Arc::new(config);
        let events = Arc::new(EventLog::open(&state_dir, &config.nodes[me].name));
        let handed = ports.handed.as_ref().map(|h| (h.record.incarnation, h.record.raft_index));
        let booted = boot::boot(&config, me, &state_dir, local, &events, handed).await?;
        let boot::Booted { local, raft, raft_tx, thread, store, index, peers, state, applied, slots } = booted;
        let started = Arc::clone(&config);
        let links = Links::bind(me, peers.cluster, peers.keys.clone(), peers.addrs(), inputs.tx.clone())
            .await
            .map_err(|e| e.to_string())?;
        // The agreed configuration, once there is one, not the file.
        let (config, generation) = match &state.config {
            Some(agreed) => {
                let parsed = baton_config::parse_str(&config.file, &agreed.text).map_err(|e| {
                    format!(
                        "the agreed configuration (generation {}) is not one this agent can run: {e}",
                        agreed.generation
                    )
                })?;
                // A removed node stands in as this agent keeps it (its file
                // may no longer list it); no retired set from the file.
                (Arc::new(configure::slotted(parsed, agreed, &config.nodes, None)?), agreed.generation)
            }
            None if (state.nodes.len(), state.sets.len()) != (config.nodes.len(), config.sets.len()) => {
                return Err(format!(
                    "{} has {} nodes and {} sets, but the cluster started with {} and {} and no other \
                     configuration was agreed since: apply this file with `baton config apply` on a node that \
                     runs, or start this agent with the file the cluster runs",
                    config.file.display(),
                    config.nodes.len(),
                    config.sets.len(),
                    state.nodes.len(),
                    state.sets.len()
                ))
            }
            None => (config, 0),
        };
        let topology = configure::topology(&config, ports.netlink.is_some()).await;
        let now = Time(start.elapsed().as_micros() as u64);
        let mut core = match &ports.handed {
            Some(h) => Node::resume(topology, me as NodeId, state, local.persisted(), &h.handover(&config)?, now),
            None => Node::new(topology, me as NodeId, state, local.persisted(), local.incarnation, now),
        };
        if ports.pill_found {
            core.pill_found();
        }
        read_alone_record(&config, &inputs.tx);
        // Which file this node has, for every node to compare (drift):
        // now, and whenever it changes.
        tokio::spawn(watch_file(config.file.clone(), inputs.tx.clone()));
        let node_name = config.nodes[me].name.clone();
        let exec = Executor::new(
            node_name.clone(),
            config.sets.iter().map(|s| (ports.build)(s)).collect(),
            Arc::clone(&ports.guard),
            inputs.tx.clone(),
            Arc::clone(&events),
            ports.handed.as_ref().map(|h| h.record.books.clone()),
        );
        let exec = Arc::new(exec.await?);
        let (calls_tx, calls) = mpsc::channel::<Call>(64);
        let history = api::History { log: Arc::clone(&events), peers: peers.clone(), me };
        api::serve(&socket, calls_tx.clone(), history.clone()).await.map_err(|e| e.to_string())?;
        let mut http = crate::http::Api::new(calls_tx, history);
        let http_down = http.follow(config.cluster.http, config.cluster.http_token_file.as_deref());
        crate::notify::start(&config.notify, &ports.notifier, &events);
        let how = if ports.handed.is_some() { "carried on after a handover" } else { "started" };
        events.record("agent", None, format!("agent {how} (incarnation {})", local.incarnation), None, None);
        for what in config.warnings().into_iter().chain(http_down) {
            tracing::warn!("baton: warning: {what}");
            events.record("agent", None, format!("warning: {what}"), None, None);
        }
        tracing::info!(
            "baton: node {node_name} of cluster {} is up; control socket {}",
            config.cluster.name,
            socket.display()
        );
        let (prepared_tx, prepared) = configure::channel();
        let mut agent = Agent {
            assigned_at: vec![None; config.sets.len()],
            build: ports.build,
            generation,
            prepared_tx,
            prepared,
            prober: crate::probe::Prober::new(&config, me as NodeId),
            http,
            events,
            config,
            started,
            me,
            state_dir,
            start,
            core,
            local,
            links,
            slots,
            raft,
            raft_tx,
            raft_thread: thread,
            store,
            applied_index: index,
            voters: Vec::new(),
            going_alone: false,
            peers,
            exec,
            netlink: ports.netlink,
            inputs,
            applied,
            calls,
            signals: ports.signals,
            guard: ports.guard,
            guard_ended: ports.guard_ended,
            leader: None,
            waiting: calls::Waiting::default(),
            exe: std::env::current_exe().map_err(|e| format!("finding my own binary: {e}"))?,
            notifier: ports.notifier,
            handing_over: None,
            socket,
        };
        agent.follow_nodes();
        Ok(agent)
    }

    fn now(&self) -> Time {
        Time(self.start.elapsed().as_micros() as u64)
    }
}

impl Agent {
    /// Tells the core when Raft's voters changed (two-node mode watches them).
    fn tell_voters(&mut self, membership: &openraft::StoredMembership<RaftId, openraft::BasicNode>) {
        let voters: Vec<NodeId> = membership.membership().voter_ids().map(|v| v as NodeId).collect();
        if voters != self.voters {
            self.voters = voters.clone();
            let _ = self.inputs.tx.try_send(Input::Voters(voters));
        }
    }

    /// Two-node mode: Raft starts again with this node as its only voter.
    async fn go_alone(&mut self) -> Result<(), String> {
        // Recorded before the membership is forced, or not forced at all
        // (ARCHITECTURE.md, "Booting alone, with a fence disk").
        if let Some(disk) = self.config.alone_record() {
            let (disk, me) = (disk.to_path_buf(), self.config.nodes[self.me].name.clone());
            tokio::task::spawn_blocking(move || Disk::open(&disk).and_then(|d| d.set_alone(Some(&me))))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("recording on the fence disk that this node goes on alone: {e}; it does not"))?;
        }
        let _ = self.raft.shutdown().await;
        let (raft, applied) =
            boot::restart_alone(&self.raft_thread, &self.config, self.me, &mut self.store, &self.peers).await?;
        self.raft_tx.send_replace(raft.clone());
        self.raft = raft;
        self.applied = applied;
        self.leader = None;
        Ok(())
    }
}

/// Reads the fence disk's record of who went on alone, where one fences
/// the pair, and gives it to the core (`Input::AloneRecord`); a failed read
/// gives nothing, and a node booting alone then waits for its peer.
pub(crate) fn read_alone_record(config: &Arc<Config>, inputs: &mpsc::Sender<Input>) {
    let Some(disk) = config.alone_record().map(|p| p.to_path_buf()) else { return };
    let (config, inputs) = (Arc::clone(config), inputs.clone());
    tokio::task::spawn_blocking(move || match Disk::open(&disk).and_then(|d| d.alone()) {
        Ok(holder) => {
            let holder = holder.and_then(|name| config.node_index(&name)).map(|n| n as NodeId);
            let _ = inputs.blocking_send(Input::AloneRecord { holder });
        }
        Err(e) => tracing::warn!("baton: {e}: booting alone, this node waits for its peer"),
    });
}

/// How often the agent looks whether its configuration file changed.
const FILE_CHECK: Duration = Duration::from_secs(5);

/// Tells the core the digest of the configuration file as the agent starts
/// and each time it changes (an edit without a reload shows as drift
/// within seconds), until the agent's loop is gone.
async fn watch_file(file: PathBuf, inputs: mpsc::Sender<Input>) {
    let mut told: Option<String> = None;
    loop {
        let now = std::fs::read(&file).ok().map(|bytes| baton_config::digest(&bytes));
        if let Some(digest) = now.filter(|d| told.as_ref() != Some(d)) {
            if inputs.send(Input::ConfigDigest(digest.clone())).await.is_err() {
                return;
            }
            told = Some(digest);
        }
        tokio::time::sleep(FILE_CHECK).await;
    }
}

/// An input, in a few words, for the log.
fn what(input: &Input) -> &'static str {
    match input {
        Input::Tick => "a timer",
        Input::Heartbeat { .. } => "a heartbeat",
        Input::Committed(_) | Input::Restore(_) => "an agreed decision",
        Input::StepDone { .. } | Input::MonitorDone { .. } => "a step's result",
        Input::Request { .. } => "an operator's request",
        _ => "an input",
    }
}

impl Agent {
    /// The main loop, until the core says the agent may exit.
    pub async fn run(mut self) -> Result<(), String> {
        // The server's metrics change with the leader, the vote and the
        // membership only (the full metrics change with every Raft
        // heartbeat, which woke this loop ten times a second for nothing).
        let mut metrics = self.raft.server_metrics();
        let mut systemd = crate::systemd::Systemd::from_env();
        systemd.notify("READY=1");
        self.tell_voters(&metrics.borrow().membership_config.clone());
        loop {
            if std::mem::take(&mut self.going_alone) {
                self.go_alone().await?;
                metrics = self.raft.server_metrics();
            }
            let wake = self.start + Duration::from_micros(self.core.poll_timeout().0);
            let input = tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => Input::Tick,
                Some(input) = self.inputs.rx.recv() => input,
                Some(applied) = self.applied.recv() => match applied {
                    Applied::Command { index, .. } | Applied::Restore { index, .. } | Applied::Passed { index }
                        if index <= self.applied_index => continue,
                    Applied::Command { command, index } => {
                        self.applied_index = index;
                        Input::Committed(command)
                    }
                    Applied::Restore { state, index } => {
                        self.applied_index = index;
                        Input::Restore(state)
                    }
                    Applied::Passed { index } => {
                        self.applied_index = index;
                        continue;
                    }
                },
                changed = metrics.changed() => {
                    if changed.is_err() {
                        // Raft quit (a storage error; its log says which):
                        // a node that can agree nothing must not go on.
                        return Err("the agreement layer (Raft) stopped; exiting: the guard releases everything \
                                    and the supervisor starts the agent again"
                            .into());
                    }
                    let now = metrics.borrow().clone();
                    self.tell_voters(&now.membership_config);
                    if now.current_leader == self.leader { continue; }
                    self.leader = now.current_leader;
                    Input::Leader(self.leader == Some(self.me as RaftId))
                },
                Some(call) = self.calls.recv() => match self.call(call) {
                    Some(input) => input,
                    None => continue,
                },
                Some(prepared) = self.prepared.recv() => match self.prepared(prepared) {
                    Some(input) => input,
                    None => continue,
                },
                Some(signal) = self.signals.recv() => match signal {
                    Signal::Stop => {
                        tracing::info!("baton: asked to stop: handing this node's sets over");
                        Input::Shutdown
                    }
                    Signal::Reload => { self.reload(); continue; }
                },
            };
            let (began, kind) = (std::time::Instant::now(), what(&input));
            let exit = self.step(input)?;
            let busy = began.elapsed();
            if busy > self.core.topology().timing.heartbeat_interval {
                tracing::warn!(
                    "baton: the agent's loop was busy {} ms with {kind}: heartbeats waited meanwhile",
                    busy.as_millis()
                );
            }
            if let Some(h) = self.handing_over.take() {
                return Err(self.hand_over(h).await);
            }
            systemd.feed();
            systemd.status(|| crate::status::line(&self.config, &self.core, self.leader, self.now()));
            if exit {
                break;
            }
        }
        tracing::info!("baton: node {} handed its sets over; exiting", self.config.nodes[self.me].name);
        systemd.notify("STOPPING=1");
        let _ = self.raft.shutdown().await;
        let guard_ended = self.guard_ended.take();
        let socket = self.socket.clone();
        drop(self);
        let _ = std::fs::remove_file(socket);
        // Closing the guard's stdin ends it; it holds nothing by now.
        if let Some(ended) = guard_ended {
            let _ = tokio::time::timeout(Duration::from_secs(6), ended).await;
        }
        Ok(())
    }
}
