//! The `baton-guard` binary: the guard process each agent starts beside it
//! (`crates/agent/src/guard.rs`). A program of its own, so that what stays
//! resident on every node for it is its own small code, not the agent's.
//! Its arguments are an interface between two programs of baton (the agent
//! passes them, `guard_link.rs`), read here without a command-line library:
//! clap was a tenth of the guard's resident code.
//! Exit codes: 0 when its agent let it go, 1 on a failure, 2 on bad usage.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use baton_agent::own_args::{self, Arg};

const USAGE: &str = "usage: baton-guard [--lock FILE] [--realtime] [--watchdog DEVICE [--watchdog-timeout-ms MS]] \
                     [--fence-disk DEVICE --node NAME]\n\
                     The guard of one baton agent: holds the lease deadline and undoes what the node runs when \
                     the lease ends or the agent dies. Started by `baton agent`, which speaks to it on its stdin; \
                     not meant to be run by hand.";

/// What the agent asks of its guard.
#[derive(Debug, Default, PartialEq)]
struct Args {
    /// A watchdog device to pet while a lease could still be released in time.
    watchdog: Option<PathBuf>,
    /// The watchdog's timeout in milliseconds.
    watchdog_timeout_ms: u64,
    /// The node's guard lock: wait for an earlier guard to finish.
    lock: Option<PathBuf>,
    /// Run at real-time priority with memory locked (cluster.realtime).
    realtime: bool,
    /// A fence disk whose slot for `node` this guard reads.
    fence_disk: Option<PathBuf>,
    /// This node's name (its slot on the fence disk).
    node: Option<String>,
}

/// Reads the arguments; `Ok(None)` for `--help`.
fn parse(args: impl Iterator<Item = OsString>) -> Result<Option<Args>, String> {
    let valued = ["--lock", "--watchdog", "--watchdog-timeout-ms", "--fence-disk", "--node"];
    let Some(read) = own_args::read(args, &valued, &["--realtime"])? else { return Ok(None) };
    let mut out = Args { watchdog_timeout_ms: 1000, ..Args::default() };
    for arg in read {
        let (name, value) = match arg {
            Arg::Switch(_) => {
                out.realtime = true;
                continue;
            }
            Arg::Value(name, value) => (name, value),
        };
        match name.as_str() {
            "--lock" => out.lock = Some(value.into()),
            "--watchdog" => out.watchdog = Some(value.into()),
            "--fence-disk" => out.fence_disk = Some(value.into()),
            "--node" => out.node = Some(own_args::text(&name, value)?),
            _ => {
                let v = own_args::text(&name, value)?;
                out.watchdog_timeout_ms =
                    v.parse().map_err(|_| format!("{name}: {v} is not a number of milliseconds"))?;
            }
        }
    }
    if out.fence_disk.is_some() && out.node.is_none() {
        return Err("--fence-disk needs --node".into());
    }
    Ok(Some(out))
}

fn run(args: Args) -> Result<(), String> {
    baton_agent::malloc::keep_small();
    // The agent hands its guard its log level through RUST_LOG.
    baton_agent::log::init(None)?;
    if args.realtime {
        baton_agent::realtime::enter_or_warn("baton guard");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let timeout = std::time::Duration::from_millis(args.watchdog_timeout_ms);
    let watchdog = args
        .watchdog
        .as_deref()
        .map(|w| baton_agent::guard::Watchdog::open(w, timeout))
        .transpose()
        .map_err(|e| e.to_string())?;
    let disk = args.fence_disk.as_deref().zip(args.node.as_deref());
    rt.block_on(baton_agent::guard::run(watchdog, args.lock.as_deref(), disk)).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    own_args::main("baton-guard", USAGE, parse, |args| run(args).map_err(|e| (format!("baton-guard: {e}"), 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Option<Args>, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn the_agents_arguments_are_read() {
        let args = parsed(&[
            "--lock",
            "/run/baton/guard.lock",
            "--realtime",
            "--fence-disk",
            "/dev/sdb",
            "--node",
            "alpha",
            "--watchdog",
            "/dev/watchdog",
            "--watchdog-timeout-ms",
            "3000",
        ]);
        let want = Args {
            watchdog: Some("/dev/watchdog".into()),
            watchdog_timeout_ms: 3000,
            lock: Some("/run/baton/guard.lock".into()),
            realtime: true,
            fence_disk: Some("/dev/sdb".into()),
            node: Some("alpha".into()),
        };
        assert_eq!(args, Ok(Some(want)));
        assert_eq!(parsed(&[]), Ok(Some(Args { watchdog_timeout_ms: 1000, ..Args::default() })));
        assert_eq!(parsed(&["--help"]), Ok(None));
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_eq!(parsed(&["--lock"]), Err("--lock needs a value".into()));
        assert_eq!(parsed(&["--bogus"]), Err("unknown argument --bogus".into()));
        assert_eq!(parsed(&["--fence-disk", "/dev/sdb"]), Err("--fence-disk needs --node".into()));
        assert_eq!(
            parsed(&["--watchdog-timeout-ms", "soon"]),
            Err("--watchdog-timeout-ms: soon is not a number of milliseconds".into())
        );
    }
}
