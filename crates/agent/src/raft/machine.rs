//! The Raft state machine: applies committed commands to a copy of the
//! cluster state (for snapshots) and hands each, with its index, to the
//! agent's loop, where the core applies it too.

// openraft's state-machine traits fix the (large) error type of these functions.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::Arc;

use baton_state::{ClusterState, Command};
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use redb::Database;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::store::META;
use super::{NodeId, TypeConfig};

/// What the state machine tells the agent's loop, in log order.
#[derive(Debug)]
pub enum Applied {
    Command {
        index: u64,
        command: Command,
    },
    /// A snapshot replaced the whole state.
    Restore {
        index: u64,
        state: ClusterState,
    },
    /// A blank or membership entry: nothing for the core, but the log has
    /// been applied up to `index` (a restarted agent replays up to the
    /// committed index, which may be such an entry).
    Passed {
        index: u64,
    },
}

/// The shape of the cluster's first agreed state: the nodes, set slots
/// and fencing mode of the file every node started the cluster with. Every
/// node replays the log from it — never from a state shaped by its file of
/// today, which a configuration applied live has changed (a set added there
/// and replayed from the start made a restarted node see the set unowned
/// where the others saw it run). Kept in the store from its first opening;
/// a node whose store is new takes it from the cluster (`baton rejoin`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub nodes: usize,
    pub sets: usize,
    pub fence_required: Vec<bool>,
}

impl Genesis {
    /// The shape of a cluster started with `config`.
    pub fn of(config: &baton_config::Config) -> Genesis {
        Genesis { nodes: config.nodes.len(), sets: config.sets.len(), fence_required: config.fence_required() }
    }

    fn state(&self) -> ClusterState {
        ClusterState::new(self.nodes, self.sets).requiring_fence(self.fence_required.clone())
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Image {
    state: ClusterState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

/// The state machine; its snapshot lives only in `db`, where the builder
/// (a copy of the machine, made by openraft) and an installed snapshot put
/// it and where the leader reads it to send (a snapshot kept in memory was
/// the builder's own, and the leader found none: the soak's CorruptStateFile).
pub struct StateMachine {
    image: Image,
    tx: mpsc::Sender<Applied>,
    db: Arc<Database>,
    genesis: Genesis,
}

/// A snapshot as stored: its metadata and its data, both serialized.
type Stored = (Vec<u8>, Vec<u8>);

const SNAPSHOT_META: &str = "snapshot-meta";
const SNAPSHOT_DATA: &str = "snapshot-data";
const GENESIS: &str = "genesis";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

impl StateMachine {
    /// The state machine as of the last snapshot kept in `db`, or the
    /// cluster's first state: the genesis `db` keeps, else `genesis` (this
    /// store's first opening), which is kept from then on. `file` is the
    /// shape of this node's own file: a snapshot of a cluster that never
    /// agreed a configuration must have it (another cluster's state
    /// directory is refused).
    pub fn open(genesis: Genesis, file: &Genesis, tx: mpsc::Sender<Applied>, db: Arc<Database>) -> Result<Self> {
        let genesis = match read_meta(&db, GENESIS).map_err(sm_err)? {
            Some(kept) => serde_json::from_slice(&kept).map_err(sm_err)?,
            None => {
                write_meta(&db, GENESIS, &serde_json::to_vec(&genesis).expect("serializes")).map_err(sm_err)?;
                genesis
            }
        };
        let empty = Image { state: genesis.state(), last_applied: None, membership: Default::default() };
        let mut sm = StateMachine { image: empty, tx, db, genesis };
        if let Some(snapshot) = sm.stored()? {
            let image: Image = serde_json::from_slice(snapshot.snapshot.get_ref()).map_err(sm_err)?;
            // Once a configuration is agreed, its nodes and sets are the slots.
            let fits = image.state.config.is_some()
                || (image.state.sets.len() == file.sets && image.state.nodes.len() == file.nodes);
            if !fits {
                return Err(sm_err(std::io::Error::other(
                    "the stored snapshot is of a cluster with other nodes or sets; the configuration changed",
                )));
            }
            sm.image = image;
        }
        Ok(sm)
    }

    /// The cluster's first state's shape, as this store keeps it.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The snapshot kept in `db`, if any.
    fn stored(&self) -> Result<Option<Snapshot<TypeConfig>>> {
        let read = || -> std::result::Result<Option<Stored>, redb::Error> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(META)?;
            let meta = table.get(SNAPSHOT_META)?.map(|v| v.value().to_vec());
            let data = table.get(SNAPSHOT_DATA)?.map(|v| v.value().to_vec());
            Ok(meta.zip(data))
        };
        let Some((meta, data)) = read().map_err(sm_err)? else { return Ok(None) };
        let meta: SnapshotMeta<NodeId, BasicNode> = serde_json::from_slice(&meta).map_err(sm_err)?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }

    /// The agreed state and the index it is at, as this state machine starts.
    pub fn start_point(&self) -> (ClusterState, u64) {
        (self.image.state.clone(), self.image.last_applied.map_or(0, |l| l.index))
    }

    fn keep(&mut self, meta: SnapshotMeta<NodeId, BasicNode>, data: Vec<u8>) -> Result<()> {
        let write = || -> std::result::Result<(), redb::Error> {
            let tx = self.db.begin_write()?;
            {
                let mut table = tx.open_table(META)?;
                table.insert(SNAPSHOT_META, serde_json::to_vec(&meta).expect("serializes").as_slice())?;
                table.insert(SNAPSHOT_DATA, data.as_slice())?;
            }
            tx.commit()?;
            Ok(())
        };
        write().map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, &e)))
    }

    fn meta(&self) -> SnapshotMeta<NodeId, BasicNode> {
        let index = self.image.last_applied.map_or(0, |l| l.index);
        SnapshotMeta {
            last_log_id: self.image.last_applied,
            last_membership: self.image.membership.clone(),
            snapshot_id: format!("baton-{index}"),
        }
    }
}

fn read_meta(db: &Database, key: &str) -> std::result::Result<Option<Vec<u8>>, redb::Error> {
    let tx = db.begin_read()?;
    let table = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let value = table.get(key)?.map(|v| v.value().to_vec());
    Ok(value)
}

fn write_meta(db: &Database, key: &str, value: &[u8]) -> std::result::Result<(), redb::Error> {
    let tx = db.begin_write()?;
    tx.open_table(META)?.insert(key, value)?;
    tx.commit()?;
    Ok(())
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&e).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let data = serde_json::to_vec(&self.image).map_err(sm_err)?;
        let meta = self.meta();
        self.keep(meta.clone(), data.clone())?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        Ok((self.image.last_applied, self.image.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            self.image.last_applied = Some(entry.log_id);
            let index = entry.log_id.index;
            // The loop gone means the agent is shutting down.
            match entry.payload {
                EntryPayload::Blank => {
                    let _ = self.tx.send(Applied::Passed { index }).await;
                }
                EntryPayload::Normal(command) => {
                    let _ = self.image.state.apply(&command);
                    let _ = self.tx.send(Applied::Command { index, command }).await;
                }
                EntryPayload::Membership(m) => {
                    self.image.membership = StoredMembership::new(Some(entry.log_id), m);
                    let _ = self.tx.send(Applied::Passed { index }).await;
                }
            }
            out.push(());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        StateMachine {
            image: self.image.clone(),
            tx: self.tx.clone(),
            db: Arc::clone(&self.db),
            genesis: self.genesis.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let data = snapshot.into_inner();
        let image: Image = serde_json::from_slice(&data).map_err(sm_err)?;
        let index = meta.last_log_id.map_or(0, |l| l.index);
        self.keep(meta.clone(), data)?;
        let _ = self.tx.send(Applied::Restore { index, state: image.state.clone() }).await;
        self.image = image;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        self.stored()
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId};

    use super::*;
    use crate::raft::store::LogStore;

    fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 0), index), payload: EntryPayload::Normal(command) }
    }

    /// Runs `test` on a store of its own in a fresh directory, removed after.
    fn with_store<F: std::future::Future<Output = ()>>(tag: &str, test: impl FnOnce(LogStore) -> F) {
        let dir = std::env::temp_dir().join(format!("baton-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(test(LogStore::open(&dir.join("raft.redb")).unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_snapshot_is_kept_in_redb_and_a_reopened_machine_starts_from_it() {
        with_store("sm", |store| async move {
            let (tx, mut rx) = mpsc::channel(16);
            let first = shape(3, 1);
            let mut sm = StateMachine::open(first.clone(), &first, tx.clone(), store.database()).unwrap();
            let entries = vec![
                entry(1, Command::Join { node: 0, epoch: 0, incarnation: 1 }),
                entry(2, Command::Assign { set: 0, node: 0, generation: 0 }),
                // A new leader's blank entry: a restarted agent replaying up
                // to the committed index must see it applied too.
                Entry { log_id: LogId::new(CommittedLeaderId::new(2, 1), 3), payload: EntryPayload::Blank },
            ];
            sm.apply(entries).await.unwrap();
            assert!(matches!(rx.recv().await, Some(Applied::Command { index: 1, .. })));
            assert!(matches!(rx.recv().await, Some(Applied::Command { index: 2, .. })));
            assert!(matches!(rx.recv().await, Some(Applied::Passed { index: 3 })));
            // openraft builds snapshots with a copy of the machine; the
            // machine itself must then have it to send to a follower.
            let snap = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
            assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(3));
            let current = sm.get_current_snapshot().await.unwrap().expect("the builder's snapshot");
            assert_eq!(current.meta, snap.meta);
            drop(sm);
            let again = StateMachine::open(first.clone(), &first, tx, store.database()).unwrap();
            let (state, index) = again.start_point();
            assert_eq!(index, 3);
            assert_eq!(state.set(0).owner, Some(0));
            assert!(
                StateMachine::open(shape(4, 1), &shape(4, 1), mpsc::channel(1).0, store.database()).is_err(),
                "another cluster shape is refused"
            );
        });
    }

    fn shape(nodes: usize, sets: usize) -> Genesis {
        Genesis { nodes, sets, fence_required: vec![false; nodes] }
    }

    /// A set added live, then the agent started again with the new file
    /// before any snapshot: the log replays from the first state's shape,
    /// which the store kept, not from the file's.
    #[test]
    fn a_store_replays_from_the_first_state_it_kept_whatever_the_file_says_now() {
        with_store("genesis", |store| async move {
            let (tx, _rx) = mpsc::channel(16);
            let sm = StateMachine::open(shape(3, 1), &shape(3, 1), tx.clone(), store.database()).unwrap();
            assert_eq!(sm.start_point().0.sets.len(), 1);
            drop(sm);
            let grown = shape(3, 2);
            let sm = StateMachine::open(grown.clone(), &grown, tx, store.database()).unwrap();
            assert_eq!((sm.start_point().0.sets.len(), sm.genesis()), (1, &shape(3, 1)));
        });
    }
}
