//! The agent's start: its state directory, what it keeps for itself
//! (`local.json`), the Raft store and the agreed state replayed up to what
//! was committed before the restart — everything the core needs before it
//! decides anything.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use baton_config::Config;
use baton_state::ClusterState;
use openraft::{BasicNode, SnapshotPolicy};
use tokio::sync::{mpsc, watch};

use crate::events::EventLog;
use crate::local::{Local, Slot};
use crate::raft::machine::{Applied, Genesis, StateMachine};
use crate::raft::net::{self as raftnet, Peers};
use crate::raft::store::LogStore;
use crate::raft::{NodeId as RaftId, Raft, RaftThread};

/// The Raft store in the state directory.
pub const RAFT_FILE: &str = "raft.redb";
/// Left by `baton rejoin`: start from an empty log, without initializing.
pub const REJOIN_MARK: &str = "rejoining";
/// The cluster's first state's shape, as `baton rejoin` got it from the
/// leader, for a store that starts afresh.
pub const GENESIS_FILE: &str = "genesis.json";
/// The guard's lock in the state directory: one guard at a time.
pub const GUARD_LOCK: &str = "guard.lock";

/// What this node's Raft state is when damaged or lost.
fn rejoin_hint(config: &Config, me: usize, state_dir: &Path) -> String {
    format!(
        "This node cannot start from it. To rejoin it from its peers (a majority of them must be up), run \
         `baton rejoin --node {} --state-dir {}` (with the agent's --config), then start the agent again.",
        config.nodes[me].name,
        state_dir.display()
    )
}

/// Raft's timers follow the lease: a new leader must be able to commit an
/// eviction about when the lease of a dead owner ends (the core's
/// `Timing::raft_timers`).
fn raft_config(config: &Config) -> Result<openraft::Config, String> {
    let (election_min, election_max, heartbeat) = config.timing().raft_timers_ms();
    openraft_config(config.cluster.name.clone(), heartbeat, election_min, election_max)
        .validate()
        .map_err(|e| format!("raft configuration: {e}"))
}

/// openraft's configuration with these timers, every other field at
/// openraft's default, written out: `openraft::Config::default()` parses an
/// empty command line with clap, which would put all of clap's parser in
/// the daemon's resident code for that one call (a test holds these equal
/// to openraft's defaults).
#[allow(deprecated)] // send_snapshot_timeout: deprecated, still a field to fill
fn openraft_config(cluster_name: String, heartbeat: u64, election_min: u64, election_max: u64) -> openraft::Config {
    openraft::Config {
        cluster_name,
        heartbeat_interval: heartbeat,
        election_timeout_min: election_min,
        election_timeout_max: election_max,
        // The log holds decisions only (heartbeats never enter it); every
        // thousand of them are folded into a snapshot kept in redb.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
        install_snapshot_timeout: 200,
        send_snapshot_timeout: 0,
        max_payload_entries: 300,
        replication_lag_threshold: 5000,
        snapshot_max_chunk_size: 3 * 1024 * 1024,
        max_in_snapshot_log_to_keep: 1000,
        purge_batch_size: 1,
        enable_tick: true,
        enable_heartbeat: true,
        enable_elect: true,
    }
}

/// A node's durable state, opened and replayed.
pub struct Booted {
    pub local: Local,
    pub raft: Raft,
    /// The Raft instance peers are served by (two-node mode starts another).
    pub raft_tx: watch::Sender<Raft>,
    /// Where Raft runs; Raft ends with it.
    pub thread: RaftThread,
    /// The store under `raft`, for forcing a membership of one.
    pub store: LogStore,
    /// The index the replay reached: the core's state is at it.
    pub index: u64,
    pub peers: Peers,
    pub state: ClusterState,
    pub applied: mpsc::Receiver<Applied>,
    /// The agreed node slots, for the Raft leader to follow
    /// (`raft::membership::promote_learners`) and to answer `baton rejoin`.
    pub slots: watch::Sender<Vec<Slot>>,
}

/// Opens the state directory and the Raft store, starts Raft, and replays
/// the agreed state up to what was committed before the restart: acting on
/// a prefix could restart a set this node had already handed over. After a
/// handover (`handed`: the incarnation and the Raft index the program
/// before had reached), the incarnation stays and the replay goes at least
/// that far. `local` is `local.json` as the agent read it to number the
/// nodes by slot.
pub async fn boot(
    config: &Arc<Config>,
    me: usize,
    state_dir: &Path,
    mut local: Local,
    events: &Arc<EventLog>,
    handed: Option<(u64, u64)>,
) -> Result<Booted, String> {
    std::fs::create_dir_all(state_dir).map_err(|e| format!("creating {}: {e}", state_dir.display()))?;
    let raft_file = state_dir.join(RAFT_FILE);
    let rejoining = state_dir.join(REJOIN_MARK).exists();
    if local.incarnation > 0 && !raft_file.exists() && !rejoining {
        return Err(format!(
            "{} is missing, but this node ran before (incarnation {}): its Raft vote is lost, and starting \
             afresh could let it vote twice in one term. {}",
            raft_file.display(),
            local.incarnation,
            rejoin_hint(config, me, state_dir)
        ));
    }
    match handed {
        Some((incarnation, _)) if incarnation != local.incarnation => {
            return Err(format!(
                "handed over as incarnation {incarnation}, but {} says {}",
                state_dir.display(),
                local.incarnation
            ))
        }
        Some(_) => {}
        None => {
            local.incarnation += 1;
            local.save(state_dir)?;
        }
    }
    let peers = Peers::of(config)?;
    let (cluster, keys, addrs) = (peers.cluster, peers.keys.clone(), peers.addrs());
    let store = LogStore::open(&raft_file).map_err(|e| format!("{e}\n{}", rejoin_hint(config, me, state_dir)))?;
    let committed = store.committed().map_err(|e| e.to_string())?.map(|l| l.index);
    let committed = committed.max(handed.map(|(_, index)| index).filter(|&i| i > 0));
    let (applied_tx, mut applied) = mpsc::channel(1024);
    // A store opened for the first time after `baton rejoin` replays from
    // the cluster's first state as its leader said it, not this file's.
    let given = std::fs::read(state_dir.join(GENESIS_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let file = Genesis::of(config);
    let machine = StateMachine::open(given.unwrap_or_else(|| file.clone()), &file, applied_tx, store.database())
        .map_err(|e| format!("reading the stored snapshot: {e}\n{}", rejoin_hint(config, me, state_dir)))?;
    let genesis = machine.genesis().clone();
    let (mut state, mut index) = machine.start_point();
    let thread = RaftThread::start()?;
    let raft = start_raft(&thread, config, me, peers.clone(), store.clone(), machine)
        .await
        .map_err(|e| format!("starting raft: {e}"))?;
    let (raft_tx, current) = watch::channel(raft.clone());
    let (slots, followed) = watch::channel(local.slots.clone());
    for &addr in &addrs[me] {
        let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("listening on {addr}: {e}"))?;
        let (keys, current, events, genesis) = (keys.clone(), current.clone(), Arc::clone(events), genesis.clone());
        let followed = followed.clone();
        thread
            .run(async move {
                listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                tokio::spawn(raftnet::serve(listener, cluster, keys, current, events, genesis, followed));
                Ok::<_, std::io::Error>(())
            })
            .await?
            .map_err(|e| format!("listening on {addr}: {e}"))?;
    }
    let initialized = raft.is_initialized().await.map_err(|e| e.to_string())?;
    if rejoining && initialized {
        let _ = std::fs::remove_file(state_dir.join(REJOIN_MARK));
        let _ = std::fs::remove_file(state_dir.join(GENESIS_FILE));
    }
    // A rejoining node waits for the leader to send it the log.
    if !initialized && !rejoining {
        let members: BTreeMap<RaftId, BasicNode> =
            addrs.iter().enumerate().map(|(i, a)| (i as RaftId, BasicNode::new(a[0].to_string()))).collect();
        // Every node proposes the same membership; all but the first are told
        // it exists already, which is fine.
        let _ = raft.initialize(members).await;
    }
    let port = config.cluster.port;
    thread
        .run(async move {
            tokio::spawn(crate::raft::membership::promote_learners(current, followed, port));
        })
        .await?;
    if let Some(committed) = committed {
        while index < committed {
            replay(&mut state, &mut index, applied.recv().await)?;
        }
    }
    // A node added while the cluster runs (started after `baton rejoin`)
    // exists from the change that added it: it copies the log until then.
    let mut said = std::time::Instant::now();
    while state.nodes.len() <= me {
        if said.elapsed() >= std::time::Duration::from_secs(10) {
            tracing::info!(
                "baton: waiting for the cluster's log to add this node (`baton config apply` with it, on a node that \
                 runs)"
            );
            said = std::time::Instant::now();
        }
        let next = tokio::time::timeout(std::time::Duration::from_secs(1), applied.recv()).await;
        if let Ok(next) = next {
            replay(&mut state, &mut index, next)?;
        }
    }
    // Above any incarnation the agreed state recorded for this node, also
    // when local.json was lost: every start of the agent is a new one.
    let recorded = state.node(me as baton_core::NodeId).incarnation;
    if local.incarnation <= recorded && handed.is_none() {
        local.incarnation = recorded + 1;
        local.save(state_dir)?;
    }
    Ok(Booted { local, raft, raft_tx, thread, store, index, peers, state, applied, slots })
}

/// One entry of the replay at boot, applied to `state`.
fn replay(state: &mut ClusterState, index: &mut u64, applied: Option<Applied>) -> Result<(), String> {
    match applied {
        Some(Applied::Command { index: i, command }) => {
            let _ = state.apply(&command);
            *index = i;
        }
        Some(Applied::Restore { index: i, state: s }) => {
            *state = s;
            *index = i;
        }
        // Without this, a committed index at a leader's blank entry was never
        // reached: every agent of a cluster restarted at once waited for the
        // others (the soak's SimulStart).
        Some(Applied::Passed { index: i }) => *index = i,
        None => return Err("raft stopped while replaying the log".into()),
    }
    Ok(())
}

/// Two-node mode, the peer confirmed off by its fence device: this node's
/// Raft (already shut down) starts again with a membership of this node
/// alone, appended to its own log at a new term (etcd's
/// `--force-new-cluster`, gated by the fence; ARCHITECTURE.md, "Two
/// servers without a witness"). Returns the new instance and its stream of
/// applied entries, which replays from the last snapshot.
pub async fn restart_alone(
    thread: &RaftThread,
    config: &Config,
    me: usize,
    store: &mut LogStore,
    peers: &Peers,
) -> Result<(Raft, mpsc::Receiver<Applied>), String> {
    let node = BasicNode::new(peers.addrs()[me][0].to_string());
    let forced = store.force_alone(me as RaftId, node).map_err(|e| format!("forcing a membership of one: {e}"))?;
    tracing::warn!("baton: this node is now the only voter (membership entry {forced})");
    let (applied_tx, applied) = mpsc::channel(1024);
    let file = Genesis::of(config);
    let machine = StateMachine::open(file.clone(), &file, applied_tx, store.database())
        .map_err(|e| format!("reading the stored snapshot: {e}"))?;
    let raft = start_raft(thread, config, me, peers.clone(), store.clone(), machine)
        .await
        .map_err(|e| format!("starting raft again: {e}"))?;
    Ok((raft, applied))
}

/// Starts Raft on its own thread, where its tasks and its storage run from
/// then on.
async fn start_raft(
    thread: &RaftThread,
    config: &Config,
    me: usize,
    peers: Peers,
    store: LogStore,
    machine: StateMachine,
) -> Result<Raft, String> {
    let raft_config = Arc::new(raft_config(config)?);
    thread
        .run(async move { Raft::new(me as RaftId, raft_config, peers, store, machine).await })
        .await?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    /// Every field baton does not choose is openraft's default.
    #[test]
    fn the_raft_configuration_is_openrafts_default_but_for_the_timers_and_snapshots() {
        let ours = super::openraft_config("c".into(), 33, 300, 600);
        let theirs = openraft::Config {
            cluster_name: "c".into(),
            heartbeat_interval: 33,
            election_timeout_min: 300,
            election_timeout_max: 600,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            ..Default::default()
        };
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
    }
}
