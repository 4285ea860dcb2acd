//! `baton-sim`: search many seeds for an invariant violation, replay one
//! seed with its full trace, or show a scripted failover.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "baton-sim", about = "baton's deterministic simulator")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run many seeds and report the first violation, with seeds per second.
    Search {
        #[arg(long, default_value_t = 100_000)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Worker threads (default: every core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// A scripted failover of three nodes, with its timeline.
    Demo,
    /// A large cluster loses one node: placement time, recovery, memory.
    Scale {
        #[arg(long, default_value_t = 32)]
        nodes: usize,
        #[arg(long, default_value_t = 1000)]
        sets: usize,
    },
    /// Run one seed and print its trace.
    Replay {
        #[arg(long)]
        seed: u64,
        /// Print only the verdict and the ownership timeline.
        #[arg(long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Search { seeds, from, threads } => search(from, seeds, threads),
        Cmd::Replay { seed, quiet } => replay(seed, quiet),
        Cmd::Scale { nodes, sets } => match baton_sim::scale::run(nodes, sets) {
            Ok(r) => {
                println!("{}", r.summary());
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("{why}");
                ExitCode::FAILURE
            }
        },
        Cmd::Demo => match baton_sim::demo::run() {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("demo failed: {why}");
                ExitCode::FAILURE
            }
        },
    }
}

fn search(from: u64, seeds: u64, threads: Option<usize>) -> ExitCode {
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let next = AtomicU64::new(from);
    let failed: Mutex<Option<(u64, String)>> = Mutex::new(None);
    let worst = AtomicU64::new(0);
    let start = Instant::now();
    let end = from + seeds;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end || failed.lock().expect("no poisoning").is_some() {
                    break;
                }
                match baton_sim::run_seed(seed, false) {
                    Ok(r) => {
                        worst.fetch_max(r.recovered_after_us.unwrap_or(0), Ordering::Relaxed);
                    }
                    Err(f) => {
                        let mut slot = failed.lock().expect("no poisoning");
                        if slot.as_ref().is_none_or(|(s, _)| seed < *s) {
                            *slot = Some((seed, f.violation.to_string()));
                        }
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let done = next.load(Ordering::Relaxed).min(end) - from;
    println!(
        "{done} seeds in {secs:.1}s: {:.0} seeds/s on {threads} threads; slowest recovery after heal {:.2}s",
        done as f64 / secs,
        worst.load(Ordering::Relaxed) as f64 / 1e6
    );
    match failed.into_inner().expect("no poisoning") {
        None => {
            println!("no violation in seeds {from}..{end}");
            ExitCode::SUCCESS
        }
        Some((seed, violation)) => {
            println!("seed {seed}: {violation}");
            println!("replay: {}", baton_sim::replay_command(seed));
            ExitCode::FAILURE
        }
    }
}

fn replay(seed: u64, quiet: bool) -> ExitCode {
    match baton_sim::run_seed(seed, !quiet) {
        Ok(r) => {
            for line in &r.trace {
                println!("{line}");
            }
            println!(
                "seed {seed}: ok ({} events, {} evictions, {} failovers, recovered {:?} after the heal)",
                r.events,
                r.evictions,
                r.failovers,
                r.recovered_after_us.map(|us| us as f64 / 1e6)
            );
            ExitCode::SUCCESS
        }
        Err(f) => {
            for line in &f.trace {
                println!("{line}");
            }
            println!("seed {seed}: {}", f.violation);
            ExitCode::FAILURE
        }
    }
}
