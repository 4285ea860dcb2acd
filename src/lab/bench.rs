//! `baton lab bench`: baton and keepalived measured the same way on the same
//! lab, in one run, written to a markdown file. So far the crash-failover
//! row: the owner's daemon SIGKILLed and its links cut, the outage measured
//! by the client in its own namespace (GET every 10 ms).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use clap::Args;

use super::demo::trial;
use super::net::Lab;
use super::{DirArg, UpArgs};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Trials per system.
    #[arg(long, default_value_t = 20)]
    pub trials: usize,
    /// Where the results go.
    #[arg(long, default_value = "docs/bench.md")]
    pub out: PathBuf,
    #[command(flatten)]
    pub dir: DirArg,
}

struct System {
    name: &'static str,
    heartbeat: &'static str,
    lease: &'static str,
    keepalived: Option<&'static str>,
}

const SYSTEMS: [System; 4] = [
    System { name: "baton, defaults (heartbeat 100ms, lease 1s)", heartbeat: "100ms", lease: "1s", keepalived: None },
    System { name: "baton, tuned (heartbeat 30ms, lease 300ms)", heartbeat: "30ms", lease: "300ms", keepalived: None },
    System {
        name: "keepalived, defaults (VRRPv2, advert_int 1)",
        heartbeat: "100ms",
        lease: "1s",
        keepalived: Some("1"),
    },
    System {
        name: "keepalived, tuned (VRRPv3, advert_int 0.1)",
        heartbeat: "100ms",
        lease: "1s",
        keepalived: Some("0.1"),
    },
];

/// The value at quantile `q` of sorted `v` (nearest rank).
fn quantile(v: &[u64], q: f64) -> u64 {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn version(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&[o.stdout, o.stderr].concat()).lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|_| "not installed".into())
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let mut rows = Vec::new();
    for system in &SYSTEMS {
        let up = UpArgs {
            nodes: 3,
            witness: false,
            links: 2,
            heartbeat: system.heartbeat.into(),
            lease: system.lease.into(),
            keepalived: system.keepalived.map(str::to_string),
            fencing: None,
            extra: None,
            dir: args.dir.clone(),
        };
        let mut outages = Vec::new();
        let mut errors = Vec::new();
        for i in 0..args.trials {
            let result = Lab::up(&up).and_then(|mut lab| {
                let t = trial(&mut lab);
                Lab::down(&lab.dir)?;
                t
            });
            match result {
                Ok(t) => {
                    eprintln!("{}: trial {}: {} -> {}: {} ms", system.name, i + 1, t.first, t.next, t.outage_ms);
                    outages.push(t.outage_ms);
                }
                Err(e) => {
                    eprintln!("{}: trial {}: {e}", system.name, i + 1);
                    errors.push(e);
                }
            }
        }
        outages.sort_unstable();
        rows.push((system, outages, errors));
    }
    let _ = Lab::down(&args.dir.dir);
    let mut md = String::new();
    let now = baton_agent::events::timestamp(baton_agent::events::now_ms());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map_or_else(|_| "unknown".to_string(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Measured by `cargo run --release -- lab bench --trials {}` on {now}: {cores} cores, Linux {}, baton {} (commit {rev}), {}.\n",
        args.trials,
        kernel.trim(),
        env!("CARGO_PKG_VERSION"),
        version("keepalived", "--version")
    );
    let _ = writeln!(
        md,
        "## Crash failover\n\nThree nodes on two links, each a network namespace; a client in its own namespace \
         fetches the service address over HTTP every 10 ms. The owner's daemon is killed with SIGKILL and its links \
         are cut; the outage is the time from the old owner's last answer to the first answer from another node.\n"
    );
    let _ = writeln!(md, "| system | trials | median | p95 | max |\n|---|---|---|---|---|");
    let mut medians = Vec::new();
    for (system, outages, errors) in &rows {
        let failed = if errors.is_empty() { String::new() } else { format!(" ({} failed)", errors.len()) };
        if outages.is_empty() {
            let _ = writeln!(md, "| {} | 0{failed} | – | – | – |", system.name);
            medians.push(None);
            continue;
        }
        let (med, p95, max) = (quantile(outages, 0.5), quantile(outages, 0.95), outages[outages.len() - 1]);
        medians.push(Some(med));
        let _ = writeln!(md, "| {} | {}{failed} | {med} ms | {p95} ms | {max} ms |", system.name, outages.len());
    }
    let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
        _ => "–".into(),
    };
    let _ = writeln!(
        md,
        "\nMedian ratio baton / keepalived: defaults {}, tuned {}.\n",
        ratio(medians[0], medians[2]),
        ratio(medians[1], medians[3])
    );
    let _ = writeln!(
        md,
        "## Not measured yet\n\nPlanned moves, false failovers under load and loss, dual ownership, idle cost and \
         scale are the rest of the benchmark issue."
    );
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(&args.out, &md).map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    print!("{md}");
    Ok(())
}
