//! What one node keeps for itself in its state directory, beside the Raft
//! store: its suspicion denials (see the core's `Persisted`), its
//! incarnation (heartbeat sequence numbers never repeat across restarts),
//! the sets it gave up, and the cluster's node slots once a change of
//! nodes was agreed.

use std::io::Write;
use std::path::{Path, PathBuf};

use baton_config::{Address, NodeConfig};
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
    /// The agreed node slots, as this node last followed them (empty: no
    /// change of nodes agreed, the file's order is the slots'). An agent
    /// starts with its file's nodes in this order (Raft's node id is the
    /// slot), a node the file no longer lists standing in as kept.
    #[serde(default)]
    pub slots: Vec<Slot>,
}

/// A node slot: enough of the node to stand in for it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub witness: bool,
    /// One per link: the address and its prefix length, if given.
    pub addresses: Vec<(std::net::IpAddr, Option<u8>)>,
    /// Removed by a configuration change.
    pub retired: bool,
}

impl Slot {
    pub fn of(node: &NodeConfig, retired: bool) -> Slot {
        let addresses = node.addresses.iter().map(|a| (a.ip, a.prefix)).collect();
        Slot { name: node.name.clone(), witness: node.witness, addresses, retired }
    }

    pub fn node(&self) -> NodeConfig {
        let addresses = self.addresses.iter().map(|&(ip, prefix)| Address { ip, prefix }).collect();
        NodeConfig { name: self.name.clone(), addresses, witness: self.witness }
    }
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
