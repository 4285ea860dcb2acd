//! The `batond` binary: one node's daemon, the agent. `baton agent` checks
//! its command line, the configuration and which node this is, then
//! executes this program, installed beside it, under the same name and
//! with a settled command line (`baton agent --config FILE --node NAME
//! ...`), so that the command-line tool's code (clap, the manual pages and
//! completions, the commands' output) is not resident on every node. Its
//! arguments are that interface between two programs of baton and are read
//! here without a command-line library. A handover executes this program
//! again with the same arguments.
//! Exit codes: 0 after a clean stop, 1 when the agent failed, 2 on bad
//! usage or configuration.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use baton_agent::own_args::{self, Arg};

const USAGE: &str = "usage: batond agent --config FILE [--node NAME] [--state-dir DIR] [--socket PATH] \
                     [--log-level LEVEL]\n\
                     baton's daemon, started by `baton agent` (see `baton agent --help`).";

/// The settled command line `baton agent` passes.
#[derive(Debug, PartialEq)]
struct Args {
    config: PathBuf,
    node: Option<String>,
    state_dir: Option<PathBuf>,
    socket: Option<PathBuf>,
    log_level: Option<String>,
}

/// Reads the arguments after the program's name; `Ok(None)` for `--help`.
fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Option<Args>, String> {
    if args.next().is_none_or(|a| a != "agent") {
        return Err("the first argument is `agent`".into());
    }
    let valued = ["--config", "--node", "--state-dir", "--socket", "--log-level"];
    let Some(read) = own_args::read(args, &valued, &[])? else { return Ok(None) };
    let mut config = None;
    let mut out = Args { config: PathBuf::new(), node: None, state_dir: None, socket: None, log_level: None };
    for arg in read {
        let Arg::Value(name, value) = arg else { continue };
        match name.as_str() {
            "--config" => config = Some(value.into()),
            "--state-dir" => out.state_dir = Some(value.into()),
            "--socket" => out.socket = Some(value.into()),
            "--node" => out.node = Some(own_args::text(&name, value)?),
            _ => out.log_level = Some(own_args::text(&name, value)?),
        }
    }
    out.config = config.ok_or("--config FILE is needed")?;
    Ok(Some(out))
}

/// Starts the agent; the error and its exit code.
fn run(args: Args) -> Result<(), (String, u8)> {
    let usage = |e: String| (e, 2);
    baton_agent::malloc::keep_small();
    baton_agent::log::init(args.log_level.as_deref()).map_err(usage)?;
    if let Some(level) = &args.log_level {
        // Read by its guard, a child of this process; before any thread.
        std::env::set_var("RUST_LOG", level);
    }
    let config = baton_config::load(&args.config).map_err(|e| usage(e.to_string()))?;
    if config.cluster.realtime {
        // The agent's loop runs on this thread (a current-thread runtime):
        // heartbeats, leases and the core, all of it.
        baton_agent::realtime::enter_or_warn("baton");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| (e.to_string(), 1))?;
    let me = rt.block_on(baton_agent::whoami::node(&config, args.node.as_deref())).map_err(usage)?;
    let state_dir = args.state_dir.unwrap_or_else(|| config.cluster.state_dir.clone());
    let socket = args.socket.unwrap_or_else(|| state_dir.join("baton.sock"));
    let opts = baton_agent::shell::Options { config, me, state_dir, socket };
    rt.block_on(baton_agent::shell::run(opts)).map_err(|e| (format!("baton: {e}"), 1))
}

fn main() -> ExitCode {
    own_args::main("batond", USAGE, parse, run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Option<Args>, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn the_settled_command_line_is_read() {
        let args = parsed(&[
            "agent",
            "--config",
            "/etc/baton/cluster.toml",
            "--node",
            "alpha",
            "--state-dir",
            "/var/lib/baton",
            "--socket",
            "/run/baton.sock",
            "--log-level",
            "debug",
        ]);
        let want = Args {
            config: "/etc/baton/cluster.toml".into(),
            node: Some("alpha".into()),
            state_dir: Some("/var/lib/baton".into()),
            socket: Some("/run/baton.sock".into()),
            log_level: Some("debug".into()),
        };
        assert_eq!(args, Ok(Some(want)));
        assert_eq!(parsed(&["agent", "--help"]), Ok(None));
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_eq!(parsed(&[]), Err("the first argument is `agent`".into()));
        assert_eq!(parsed(&["status"]), Err("the first argument is `agent`".into()));
        assert_eq!(parsed(&["agent"]), Err("--config FILE is needed".into()));
        assert_eq!(parsed(&["agent", "--node"]), Err("--node needs a value".into()));
        assert_eq!(parsed(&["agent", "--json"]), Err("unknown argument --json".into()));
    }
}
