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
use std::sync::OnceLock;

use baton_state::Command;
use tokio::runtime::Handle;

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
/// same disk once held an agent's whole loop for 4 s). One for the
/// process; it runs until the process exits.
fn thread() -> &'static Handle {
    static RAFT: OnceLock<Handle> = OnceLock::new();
    RAFT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime for Raft");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("raft".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("a thread for Raft");
        handle
    })
}

/// Runs `work` on Raft's thread (whatever it spawns stays there) and
/// waits for its result.
pub async fn on_raft_thread<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    thread().spawn(work).await.expect("Raft's thread runs until the process exits")
}
