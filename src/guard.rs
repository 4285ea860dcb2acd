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
fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Option<Args>, String> {
    let mut out = Args { watchdog_timeout_ms: 1000, ..Args::default() };
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(|a| format!("{} is not an option", a.to_string_lossy()))?;
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--help" | "-h" => return Ok(None),
            "--realtime" => out.realtime = true,
            "--lock" => out.lock = Some(value()?.into()),
            "--watchdog" => out.watchdog = Some(value()?.into()),
            "--fence-disk" => out.fence_disk = Some(value()?.into()),
            "--node" => out.node = Some(value()?.into_string().map_err(|_| "--node: not UTF-8".to_string())?),
            "--watchdog-timeout-ms" => {
                let v = value()?;
                out.watchdog_timeout_ms = v.to_str().and_then(|v| v.parse().ok()).ok_or_else(|| {
                    format!("--watchdog-timeout-ms: {} is not a number of milliseconds", v.to_string_lossy())
                })?;
            }
            other => return Err(format!("unknown argument {other}")),
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
    let args = match parse(std::env::args_os().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("baton-guard: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton-guard: {e}");
            ExitCode::from(1)
        }
    }
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
