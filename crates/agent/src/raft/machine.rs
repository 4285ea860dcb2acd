//! The Raft state machine: applies committed commands to a copy of the
//! cluster state (for snapshots) and hands each, with its index, to the
//! agent's loop, where the core applies it too.

use std::io::Cursor;

use baton_state::{ClusterState, Command};
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

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
}

#[derive(Clone, Serialize, Deserialize)]
struct Image {
    state: ClusterState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

pub struct StateMachine {
    image: Image,
    snapshot: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
    tx: mpsc::Sender<Applied>,
}

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

impl StateMachine {
    pub fn new(nodes: usize, sets: usize, tx: mpsc::Sender<Applied>) -> Self {
        let image = Image { state: ClusterState::new(nodes, sets), last_applied: None, membership: Default::default() };
        StateMachine { image, snapshot: None, tx }
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

fn sm_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&e).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let data = serde_json::to_vec(&self.image).map_err(sm_err)?;
        let meta = self.meta();
        self.snapshot = Some((meta.clone(), data.clone()));
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
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => {
                    let _ = self.image.state.apply(&command);
                    let index = entry.log_id.index;
                    // The loop gone means the agent is shutting down.
                    let _ = self.tx.send(Applied::Command { index, command }).await;
                }
                EntryPayload::Membership(m) => {
                    self.image.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            out.push(());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        StateMachine { image: self.image.clone(), snapshot: None, tx: self.tx.clone() }
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
        let _ = self.tx.send(Applied::Restore { index, state: image.state.clone() }).await;
        self.image = image;
        self.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        Ok(self
            .snapshot
            .as_ref()
            .map(|(meta, data)| Snapshot { meta: meta.clone(), snapshot: Box::new(Cursor::new(data.clone())) }))
    }
}
