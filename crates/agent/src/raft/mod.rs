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

use std::io::Cursor;

use baton_state::Command;

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
