//! The safety and liveness properties over many seeded runs. A failure
//! names the seed, the violation, and the one command that replays it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use baton_sim::scenario::Fault;
use baton_state::Command;

/// How many seeds `cargo test` runs (at least 1,000); BATON_SIM_SEEDS overrides.
fn seeds() -> u64 {
    std::env::var("BATON_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000)
}

#[test]
fn every_seed_keeps_every_invariant() {
    let total = seeds();
    let next = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= total {
                    break;
                }
                if let Err(f) = baton_sim::run_seed(seed, false) {
                    let line = format!("seed {seed}: {}\n  replay: {}", f.violation, baton_sim::replay_command(seed));
                    eprintln!("{line}");
                    failures.lock().unwrap().push(line);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of {total} seeds failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_seed_replays_exactly() {
    let a = baton_sim::run_seed(42, true).unwrap_or_else(|f| panic!("seed 42: {}", f.violation));
    let b = baton_sim::run_seed(42, true).unwrap_or_else(|f| panic!("seed 42: {}", f.violation));
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.timeline, b.timeline);
    assert!(a.events > 1000, "the run did something: {} events", a.events);
}

#[test]
fn the_demo_fails_web_over_to_beta() {
    let out = baton_sim::demo::run().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("web runs on alpha"), "{out}");
    assert!(out.contains("alpha is evicted"), "{out}");
    assert!(out.contains("web runs on beta"), "{out}");
}

/// Seeds the long search found violations with, each a real bug since fixed:
/// 10554 a node restarting from an older log prefix started a set it had
/// given up; 29376 and 28662 a rejoined node fenced again at once; 11895 a
/// stale "block seen" flag let a node forget a failed stop.
#[test]
fn seeds_the_long_search_found_stay_fixed() {
    for seed in [10554, 29376, 28662, 11895] {
        let maintenance = |f: &Fault| matches!(f, Fault::Operator(Command::Maintenance { .. }));
        let faults = baton_sim::scenario::random(seed).faults;
        assert!(
            !faults.iter().any(|(_, f)| maintenance(f)),
            "seed {seed} is no longer the scenario that found its bug"
        );
        if let Err(f) = baton_sim::run_seed(seed, false) {
            panic!("seed {seed}: {}\n  replay: {}", f.violation, baton_sim::replay_command(seed));
        }
    }
}
