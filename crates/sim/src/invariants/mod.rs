//! The properties every simulation run must keep, one checker per file, each
//! naming where the property comes from.

pub mod acting;
pub mod block;
pub mod duplicate;
pub mod frozen;
pub mod lock;
pub mod pair;
pub mod preference;
pub mod recovery;
pub mod shutdown;
pub mod single_owner;
pub mod witness;

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub at_us: u64,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, ms) = (self.at_us / 1_000_000, (self.at_us / 1000) % 1000);
        write!(f, "{} violated at {s}.{ms:03}s: {}", self.invariant, self.detail)
    }
}
