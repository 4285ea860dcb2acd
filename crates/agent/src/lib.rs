//! baton's agent: the tokio shell around the core. Every source — a
//! heartbeat, a peer message, a committed entry, an API request, a finished
//! step, a timer — becomes one [`baton_core::Input`]; every
//! [`baton_core::Output`] becomes an action. The agent decides nothing.

pub mod raft;
