//! The replicated cluster state: what every node agrees on, and the only way
//! it changes — a committed [`Command`] passed to [`ClusterState::apply`].
//!
//! `apply` is a pure, deterministic function. Every command carries the
//! preconditions it was decided under (an epoch, a generation, a round), and
//! `apply` rejects a command whose preconditions no longer hold. That is what
//! makes stale, duplicated or reordered proposals harmless: a deposed leader
//! or a node replaying an old request can only produce rejections.
//!
//! This crate must not do I/O, read clocks or know about the network.

mod command;
mod configure;
mod model;
mod spec;

pub use command::{Applied, Command, Exclusion, Rejected, Stranger};
pub use model::{
    AgreedConfig, AgreedTiming, ClusterState, LockRecord, Membership, NodeId, NodeRecord, Phase, SetId, SetRecord,
    Suspicion,
};
pub use spec::{Failback, NodeSpec, ResourceSpec, SetSpec};

#[cfg(test)]
mod tests;
