//! The Raft log, vote and committed index in a redb file.

// openraft's storage traits fix the (large) error type of these functions.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use std::collections::{BTreeMap, BTreeSet};

use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, LogState, Membership, OptionalSend, RaftLogReader,
    StorageError, StorageIOError, Vote,
};
use redb::{Database, ReadableTable, TableDefinition};

use super::{NodeId, TypeConfig};

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

/// redb's `Database::create`, with a panic — redb asserts on some damaged
/// files, e.g. one cut short (found by CorruptStateFile) — turned into an error.
fn create(path: &Path) -> std::result::Result<Database, String> {
    // The hook is the process's: two stores opened at once (agents in one
    // test process) would each keep the other's silent hook for good, and
    // every later panic would vanish without a word.
    static HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| Database::create(path));
    std::panic::set_hook(quiet);
    match opened {
        Ok(db) => db.map_err(|e| e.to_string()),
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("the file is damaged (redb: {why})"))
        }
    }
}

impl LogStore {
    /// Opens (or creates) the store. A file that is not a baton store, or
    /// is damaged, is refused with redb's reason.
    pub fn open(path: &Path) -> std::result::Result<LogStore, String> {
        let db = create(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        let tx = db.begin_write().map_err(|e| format!("opening {}: {e}", path.display()))?;
        tx.open_table(LOGS).map_err(|e| format!("opening {}: {e}", path.display()))?;
        tx.open_table(META).map_err(|e| format!("opening {}: {e}", path.display()))?;
        tx.commit().map_err(|e| format!("opening {}: {e}", path.display()))?;
        Ok(LogStore { db: Arc::new(db) })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let tx = self.db.begin_read().map_err(read_err)?;
        let table = tx.open_table(META).map_err(read_err)?;
        let Some(v) = table.get(key).map_err(read_err)? else { return Ok(None) };
        serde_json::from_slice(v.value()).map(Some).map_err(read_err)
    }

    fn put_meta<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(write_err)?;
        let tx = self.db.begin_write().map_err(write_err)?;
        tx.open_table(META).map_err(write_err)?.insert(key, bytes.as_slice()).map_err(write_err)?;
        tx.commit().map_err(write_err)
    }

    pub fn database(&self) -> Arc<Database> {
        Arc::clone(&self.db)
    }

    /// The committed log id recorded at the last run, if any.
    pub fn committed(&self) -> Result<Option<LogId<NodeId>>> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>("committed")?.flatten())
    }

    /// Two-node mode, with Raft stopped: appends a membership of `me` alone
    /// after the last entry, at a term above every term seen, and votes for
    /// `me` in it. Raft started again on this store elects `me` at once and
    /// commits the whole log under that membership.
    pub fn force_alone(&mut self, me: NodeId, node: BasicNode) -> Result<LogId<NodeId>> {
        let last = {
            let tx = self.db.begin_read().map_err(read_err)?;
            let table = tx.open_table(LOGS).map_err(read_err)?;
            let last = match table.last().map_err(read_err)? {
                Some((_, v)) => Some(serde_json::from_slice::<Entry<TypeConfig>>(v.value()).map_err(read_err)?.log_id),
                None => self.get_meta("purged")?,
            };
            last
        };
        let vote: Option<Vote<NodeId>> = self.get_meta("vote")?;
        let seen = vote.map_or(0, |v| v.leader_id().term).max(last.map_or(0, |l| l.leader_id.term));
        let log_id = LogId::new(CommittedLeaderId::new(seen + 1, me), last.map_or(0, |l| l.index + 1));
        let membership = Membership::new(vec![BTreeSet::from([me])], BTreeMap::from([(me, node)]));
        let entry = Entry::<TypeConfig> { log_id, payload: EntryPayload::Membership(membership) };
        let bytes = serde_json::to_vec(&entry).map_err(write_err)?;
        let tx = self.db.begin_write().map_err(write_err)?;
        tx.open_table(LOGS).map_err(write_err)?.insert(log_id.index, bytes.as_slice()).map_err(write_err)?;
        tx.commit().map_err(write_err)?;
        self.put_meta("vote", &Vote::new(seen + 1, me))?;
        Ok(log_id)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let tx = self.db.begin_read().map_err(read_err)?;
        let table = tx.open_table(LOGS).map_err(read_err)?;
        let mut out = Vec::new();
        for item in table.range(range).map_err(read_err)? {
            let (_, v) = item.map_err(read_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.get_meta("purged")?;
        let tx = self.db.begin_read().map_err(read_err)?;
        let table = tx.open_table(LOGS).map_err(read_err)?;
        let last = match table.last().map_err(read_err)? {
            Some((_, v)) => Some(serde_json::from_slice::<Entry<TypeConfig>>(v.value()).map_err(read_err)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        self.put_meta("vote", vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.get_meta("vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        self.put_meta("committed", &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>("committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let tx = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = tx.open_table(LOGS).map_err(write_err)?;
            for entry in entries {
                let bytes = serde_json::to_vec(&entry).map_err(write_err)?;
                table.insert(entry.log_id.index, bytes.as_slice()).map_err(write_err)?;
            }
        }
        // redb commits durably (fsync) before returning.
        let r = tx.commit().map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(r);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let tx = self.db.begin_write().map_err(write_err)?;
        tx.open_table(LOGS).map_err(write_err)?.retain(|k, _| k < log_id.index).map_err(write_err)?;
        tx.commit().map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        self.put_meta("purged", &log_id)?;
        let tx = self.db.begin_write().map_err(write_err)?;
        tx.open_table(LOGS).map_err(write_err)?.retain(|k, _| k > log_id.index).map_err(write_err)?;
        tx.commit().map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("baton-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("raft.redb");
        drop(LogStore::open(&path).unwrap());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let cut = LogStore::open(&path).err().expect("a file cut in half is refused");
        assert!(cut.contains("raft.redb"), "{cut}");
        let mut garbage = bytes.clone();
        garbage[..512].fill(0xa5);
        std::fs::write(&path, &garbage).unwrap();
        assert!(LogStore::open(&path).is_err(), "a file with a garbage header is refused");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
