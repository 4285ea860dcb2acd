//! baton's wire formats. Everything that crosses the network between nodes
//! is authenticated with the cluster secret (HMAC-SHA256) and bound to the
//! cluster's name, so packets of another cluster, forged packets and
//! replays are told apart, dropped and counted.
//!
//! Decoders take untrusted bytes: they check every length before reading
//! and never panic.

pub mod auth;
pub mod heartbeat;

pub use auth::{cluster_id, Keys};
pub use heartbeat::{Counters, Reject, Verifier};
