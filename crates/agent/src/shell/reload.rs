//! SIGHUP (`systemctl reload baton`): the configuration file read again;
//! its secrets (and the HTTP API's token) applied at once, and the file
//! proposed as the cluster's configuration, as `baton config apply` does.

use super::configure::Who;
use super::Agent;
use crate::raft::net as raftnet;

impl Agent {
    /// SIGHUP: the config file read again. Refused whole if it is invalid
    /// (the errors become an event, the running config stays); if valid,
    /// the secrets take effect at once (a rotation step) and the file is
    /// proposed; the history says how that went.
    pub(super) fn reload(&mut self) {
        let running = std::sync::Arc::clone(&self.config);
        let file = &running.file;
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                let msg = format!("SIGHUP: reading {}: {e}; the running configuration stays", file.display());
                return self.events.record("agent", None, msg, None, None);
            }
        };
        let new = match baton_config::parse_str(file, &text) {
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
        // The HTTP API's token, a secret too, read again.
        self.follow_http(&running);
        let msg = format!("SIGHUP: {} reloaded: {accepted} secret(s) accepted, the first signs", file.display());
        // The file this node has now, for drift, without waiting for the
        // watch on it to look again.
        let _ = self.inputs.tx.try_send(baton_core::Input::ConfigDigest(baton_config::digest(text.as_bytes())));
        tracing::info!("baton: {msg}");
        self.events.record("agent", None, msg, None, None);
        // Everything else in it is proposed as the cluster's configuration,
        // as `baton config apply` would (the answer goes to the history).
        let (answer, _) = tokio::sync::oneshot::channel();
        let who = Who { user: Some("SIGHUP".into()), reason: None };
        self.prepare(text, false, answer, who);
    }
}
