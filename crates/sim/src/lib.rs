//! baton's deterministic simulator: the real [`baton_core::Node`] on every
//! simulated node, a virtual clock per node (with drift), a seeded network
//! that loses, duplicates, delays and partitions, a model of the agreement
//! layer, and resources that fail on command — judged by the invariant
//! checkers in [`invariants`].
//!
//! Everything random comes from the seed, so a failing seed replays the same
//! run exactly: `cargo run -p baton-sim --release -- replay --seed N`.

pub mod clock;
pub mod demo;
pub mod engine;
pub mod invariants;
pub mod net;
pub mod rng;
pub mod scale;
pub mod scenario;
pub mod world;

pub use engine::{Failure, Report, Sim};

/// Run the random scenario a seed stands for.
pub fn run_seed(seed: u64, trace: bool) -> Result<Report, Failure> {
    Sim::new(scenario::random(seed), seed, trace).run()
}

/// The one command that replays `seed` with a full trace.
pub fn replay_command(seed: u64) -> String {
    format!("cargo run -p baton-sim --release -- replay --seed {seed}")
}
