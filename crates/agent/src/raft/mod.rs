//! Agreement through openraft 0.9: every voter of the configuration
//! (witnesses included) is a Raft voter; the log holds [`Command`]s; the
//! state machine applies them to a [`ClusterState`] and hands each, in
//! order, to the core. Vote, log and committed index live in redb in the
//! state directory, so every decision survives restarts.
//!
//! [`Command`]: baton_state::Command
//! [`ClusterState`]: baton_state::ClusterState

pub mod machine;
pub mod membership;
pub mod net;
pub mod store;

use std::future::Future;
use std::io::Cursor;
use std::time::Duration;

use baton_state::Command;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

openraft::declare_raft_types!(
    /// The Raft types of a baton cluster.
    pub TypeConfig:
        D = Command,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type NodeId = u64;

/// Raft's own thread, at an ordinary priority: openraft's tasks, its
/// storage (redb, which writes and syncs the disk) and the peers' calls run
/// there, so that a slow disk delays agreement, never the heartbeats, the
/// failure detector or the lease on the agent's thread (a build on the
/// same disk once held an agent's whole loop for 4 s). One per agent:
/// dropped with it, it ends, and every task on it goes (a test's agent
/// "killed" in-process leaves no Raft behind holding its port and store).
pub struct RaftThread {
    handle: Handle,
    stop: Option<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl RaftThread {
    pub fn start() -> Result<RaftThread, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a runtime for Raft: {e}"))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("raft".into())
            .spawn(move || {
                let _ = rt.block_on(stopped);
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| format!("a thread for Raft: {e}"))?;
        Ok(RaftThread { handle, stop: Some((stop, thread)) })
    }

    /// Runs `work` on Raft's thread (whatever it spawns stays there) and
    /// waits for its result.
    pub async fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> Result<T, String> {
        self.handle.spawn(work).await.map_err(|e| format!("Raft's thread: {e}"))
    }
}

impl Drop for RaftThread {
    /// Ends Raft's thread and waits for it: its store is closed when this
    /// returns, so an agent started again in the same process opens it.
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.stop.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}
