//! What one node keeps for itself in its state directory, beside the Raft
//! store: its suspicion denials (see the core's `Persisted`), its
//! incarnation (heartbeat sequence numbers never repeat across restarts),
//! and the sets it gave up.

use std::io::Write;
use std::path::{Path, PathBuf};

use baton_core::{Denial, Persisted};
use baton_state::Exclusion;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Local {
    /// Per node: (round, denied epoch).
    pub denials: Vec<(u64, Option<u64>)>,
    pub incarnation: u64,
    /// Per set: the generation at which this node gave it up, and why.
    #[serde(default)]
    pub abandoned: Vec<Option<(u64, Exclusion)>>,
}

impl Local {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("local.json")
    }

    /// Reads the file; a missing one is a fresh node, a damaged one an error.
    pub fn load(state_dir: &Path) -> Result<Local, String> {
        let path = Local::path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is damaged ({e}); move it away to rejoin this node as new", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Local::default()),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    /// Writes durably: a temporary file, fsync, rename, fsync of the directory.
    pub fn save(&self, state_dir: &Path) -> Result<(), String> {
        let path = Local::path(state_dir);
        let tmp = state_dir.join("local.json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(self).expect("serializes"))?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(state_dir)?.sync_all()
        };
        write().map_err(|e| format!("writing {}: {e}", path.display()))
    }

    pub fn persisted(&self) -> Persisted {
        Persisted {
            denials: self.denials.iter().map(|&(round, epoch)| Denial { round, epoch }).collect(),
            abandoned: self.abandoned.clone(),
        }
    }

    pub fn set_persisted(&mut self, p: &Persisted) {
        self.denials = p.denials.iter().map(|d| (d.round, d.epoch)).collect();
        self.abandoned = p.abandoned.clone();
    }
}
