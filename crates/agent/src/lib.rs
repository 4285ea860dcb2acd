//! baton's agent: the tokio shell around the core. Every source — a
//! heartbeat, a peer message, a committed entry, an API request, a finished
//! step, a timer — becomes one [`baton_core::Input`]; every
//! [`baton_core::Output`] becomes an action. The agent decides nothing.

pub mod api;
pub mod deliver;
pub mod events;
pub mod exec;
pub mod guard;
pub mod guard_link;
pub mod http;
pub mod links;
pub mod local;
pub mod log;
pub mod malloc;
pub mod metrics;
pub mod notify;
pub mod own_args;
pub mod preflight;
pub mod probe;
pub mod raft;
pub mod realtime;
pub mod shell;
pub mod status;
pub mod systemd;
pub mod whoami;

/// The program `name` installed beside this one, in the same directory
/// (`batond` for `baton agent`, `baton-guard` for the agent, the lab's
/// `baton-lab` for `baton lab`).
pub fn beside_me(name: &str) -> Result<std::path::PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("finding my own binary: {e}"))?;
    let program = me.with_file_name(name);
    match program.is_file() {
        true => Ok(program),
        false => Err(format!("{} is missing: it is installed beside {}", program.display(), me.display())),
    }
}
