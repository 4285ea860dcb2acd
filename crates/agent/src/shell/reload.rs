//! SIGHUP: the configuration file read again; its secrets applied at once.

use super::Agent;
use crate::raft::net as raftnet;

impl Agent {
    /// SIGHUP: the config file read again. Refused whole if it is invalid
    /// (the errors become an event, the running config stays); if valid,
    /// the secrets take effect at once (a rotation step) and the event says
    /// which other sections changed and wait for the agent's next start.
    pub(super) fn reload(&mut self) {
        let file = &self.config.file;
        let new = match baton_config::load(file) {
            Ok(new) => new,
            Err(e) => {
                let msg = format!("SIGHUP: {} refused, the running configuration stays:\n{e}", file.display());
                tracing::error!("baton: {msg}");
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
        tracing::info!("baton: {msg}");
        self.events.record("agent", None, msg, None, None);
    }
}
