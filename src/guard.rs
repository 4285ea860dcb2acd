//! The `baton-guard` binary: the guard process each agent starts beside it
//! (`crates/agent/src/guard.rs`). A program of its own, so that what stays
//! resident on every node for it is its own small code, not the agent's.
//! Exit codes: 0 when its agent let it go, 1 on a failure, 2 on bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// The guard of one baton agent: holds the lease deadline and undoes what
/// the node runs when the lease ends or the agent dies. Started by `baton
/// agent`, which speaks to it on its stdin; not meant to be run by hand.
#[derive(Parser, Debug)]
#[command(name = "baton-guard", version)]
struct Args {
    /// A watchdog device to pet while a lease could still be released in time.
    #[arg(long, value_name = "DEVICE")]
    watchdog: Option<PathBuf>,
    /// The watchdog's timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    watchdog_timeout_ms: u64,
    /// The node's guard lock: wait for an earlier guard to finish.
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// Run at real-time priority with memory locked (cluster.realtime).
    #[arg(long)]
    realtime: bool,
    /// A fence disk whose slot for --node this guard reads.
    #[arg(long, value_name = "DEVICE", requires = "node")]
    fence_disk: Option<PathBuf>,
    /// This node's name (its slot on the fence disk).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
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
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton-guard: {e}");
            ExitCode::from(1)
        }
    }
}
