//! baton's pure decision core: the failure detector, leases, placement and
//! the lifecycle of a set on a node, glued together by [`Node`].
//!
//! Nothing here performs I/O, reads a clock or draws a random number: time
//! arrives as an argument, the outside world as [`Input`]s, and every
//! decision leaves as an [`Output`] (clippy's `disallowed-methods` in this
//! crate's `clippy.toml` keeps it that way). The agent and the simulator run
//! this same code.

pub mod detector;
pub mod lease;
pub mod lifecycle;
pub mod node;
pub mod placement;
pub mod reconfigure;
pub mod release;
pub mod requests;
pub mod simulate;
pub mod time;
pub mod topology;

pub use node::{Denial, Echo, Event, Heartbeat, Input, Node, Output, Persisted, Stranger};
pub use time::Time;
pub use topology::{Failback, NodeId, NodeSpec, ResourceSpec, SetId, SetSpec, Timing, Topology};
