//! Chaos in the lab: named fault scenarios (Pacemaker CTS names where one
//! exists) run against real agents, each ending in a check that the set
//! runs on exactly one node; beneath them the ownership record of every
//! part of the set (`ownership`: the address in the kernel's order, processes,
//! mounts and exports sampled, against the agreed owner) and a client
//! probing the service. `lab chaos` runs chosen scenarios once; `lab soak`
//! runs random ones for a duration. Any moment with two holders of any
//! part, or a holder the cluster had not given the set to, fails both.

pub mod scenarios;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baton_sim::rng::Rng;
use clap::Args;

use super::net::{Lab, DISK_LOG, DISK_MOUNT};
use super::ownership::{Parts, Record};
use super::web::Probe;
use super::UpArgs;
pub use scenarios::Scenario;

/// The client's probe interval.
const PROBE_MS: u64 = 20;

#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// Scenarios to run, in order (all of them if none is named).
    #[arg(value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Seed of the random choices (victims, orders, partitions).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Leave the lab up when a scenario fails, to look at it (`lab down` ends it).
    #[arg(long)]
    pub keep: bool,
    /// Run the list this many times.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    #[command(flatten)]
    pub up: UpArgs,
}

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// How long to run random scenarios, e.g. 1h.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub duration: Duration,
    /// Seed of the random choices; the report names it.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the report (markdown) to this file, e.g. docs/soak.md.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub up: UpArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    baton_config::parse_duration(text)
}

/// What a run saw, for its report.
#[derive(Default)]
struct Tally {
    /// Scenario name → (runs, failures, recovery times in ms).
    runs: BTreeMap<&'static str, (u32, u32, Vec<u64>)>,
    failures: Vec<String>,
}

/// Median, 95th percentile and maximum of `ms`, for the report.
fn spread(ms: &mut [u64]) -> String {
    if ms.is_empty() {
        return "-".into();
    }
    ms.sort_unstable();
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    format!("{:.1}/{:.1}/{:.1} s", at(0.5) as f64 / 1e3, at(0.95) as f64 / 1e3, ms[ms.len() - 1] as f64 / 1e3)
}

/// Milliseconds without an answer, summed over every gap longer than two
/// probe intervals, and the number of answered requests.
fn outage(samples: &[(u64, String)]) -> (u64, usize) {
    let answered: Vec<u64> = samples.iter().filter(|(_, w)| w != "-").map(|(t, _)| *t).collect();
    let total = answered.windows(2).map(|w| w[1] - w[0]).filter(|&gap| gap > 2 * PROBE_MS).sum();
    (total, answered.len())
}

/// A run's summary, and whether every check held.
type Run = (String, Result<(), String>);

/// Runs `next()`'s scenarios on a fresh lab until it says stop, with the
/// ownership record and the probe around them all; prints the report.
fn drive(
    up: &UpArgs,
    seed: u64,
    limit: Duration,
    keep: bool,
    mut next: impl FnMut(&mut Rng) -> Option<Scenario>,
) -> Result<Run, String> {
    let mut lab = Lab::up(up)?;
    let result = drive_on(&mut lab, seed, limit, keep, &mut next);
    if keep && result.is_err() {
        return result.map_err(|e| format!("{e}\nthe lab is still up in {}", lab.dir.display()));
    }
    let down = Lab::down(&lab.dir);
    result.and_then(|summary| down.map(|()| summary))
}

fn drive_on(
    lab: &mut Lab,
    seed: u64,
    limit: Duration,
    keep: bool,
    next: &mut impl FnMut(&mut Rng) -> Option<Scenario>,
) -> Result<Run, String> {
    let mut rng = Rng::new(seed);
    let first = scenarios::settle(lab, Duration::from_secs(30))?;
    let record = Record::start(lab, Parts::web(lab))?;
    // The probe outlives the run by a margin for the last scenario.
    let probe = Probe::start(lab, PROBE_MS, limit.as_secs() + 900)?;
    let started = Instant::now();
    let mut tally = Tally::default();
    while let Some(s) = next(&mut rng) {
        let at = started.elapsed().as_secs();
        record.label(format!("{} at {at} s", s.name()));
        let violations = record.violations();
        let mut recovered_ms = 0;
        let result = s.run(lab, &mut rng).and_then(|what| {
            // How long after the damage ends the set runs again, settled.
            let t = Instant::now();
            let settled = scenarios::settle(lab, Duration::from_secs(60));
            recovered_ms = t.elapsed().as_millis() as u64;
            settled.map(|owner| format!("{what}; web runs on {owner}")).map_err(|e| format!("afterwards: {e}"))
        });
        if record.violations() > violations {
            // The record's examples name the scenario; its logs say why.
            let logs = keep_logs(lab, at, &format!("{}-ownership", s.name()));
            println!("[{at:>5} s] {:<22} the ownership record saw a violation (logs: {logs})", s.name());
        }
        let entry = tally.runs.entry(s.name()).or_default();
        entry.0 += 1;
        if result.is_ok() {
            entry.2.push(recovered_ms);
        }
        match result {
            Ok(line) => println!("[{at:>5} s] {:<22} ok: {line}", s.name()),
            Err(e) => {
                entry.1 += 1;
                println!("[{at:>5} s] {:<22} FAILED: {e}", s.name());
                let logs = keep_logs(lab, at, s.name());
                tally.failures.push(format!("{} at {at} s: {e} (logs: {logs})", s.name()));
                if keep {
                    return Err(format!("{} failed: {e}", s.name()));
                }
                // A scenario that failed may leave the lab broken: restore
                // it, and if that fails, start every agent again.
                if let Err(e) = scenarios::restore(lab) {
                    println!("[{at:>5} s] restoring the lab failed ({e}); restarting every agent");
                    tally.failures.push(format!("restoring the lab after {} at {at} s: {e}", s.name()));
                    scenarios::restart_all(lab)?;
                }
            }
        }
    }
    let (outage_ms, answered) = outage(&probe.stop());
    let verdict = record.finish([first].into())?;
    let writers = disk_writers(lab);
    let mut summary = format!(
        "seed {seed}, {} s of chaos, {} scenarios (recovery after each: median/p95/max, until settled):\n",
        started.elapsed().as_secs(),
        tally.runs.values().map(|r| r.0).sum::<u32>()
    );
    for (name, (runs, failed, ms)) in &mut tally.runs {
        summary += &format!("  {name:<22} {runs:>4} run(s), {failed} failed, recovery {}\n", spread(ms));
    }
    summary += &format!("ownership changes (a node adding the service address): {}\n", verdict.window.takeovers());
    summary += &format!(
        "client: {answered} answers, total outage {:.1} s (gaps over {} ms)\n",
        outage_ms as f64 / 1000.0,
        2 * PROBE_MS
    );
    summary += &verdict.summary();
    if let Some(w) = &writers {
        summary += &format!("disk writers out of turn (lines of one daemon after another's first): {}\n", w.len());
        for (writer, ms) in w.iter().take(10) {
            summary += &format!("  {writer} wrote again at {}\n", baton_agent::events::timestamp(*ms));
        }
    }
    println!("\n{summary}");
    let verdict = if !verdict.clean() {
        Err(format!("a part of web was held by two nodes, or against the agreed owner; logs in {}", lab.dir.display()))
    } else if writers.is_some_and(|w| !w.is_empty()) {
        Err("the shared disk was written by two daemons at once".to_string())
    } else if !tally.failures.is_empty() {
        Err(format!("{} scenario(s) failed:\n  {}", tally.failures.len(), tally.failures.join("\n  ")))
    } else {
        Ok(())
    };
    Ok((summary, verdict))
}

/// Copies the nodes' logs of a failed scenario out of the lab (which `lab
/// down` removes) into `DIR.failures/AT-SCENARIO`; says where.
fn keep_logs(lab: &Lab, at: u64, scenario: &str) -> String {
    let mut into = lab.dir.clone().into_os_string();
    into.push(format!(".failures/{at}-{scenario}"));
    let into = std::path::PathBuf::from(into);
    if std::fs::create_dir_all(&into).is_err() {
        return "not kept".into();
    }
    for node in lab.all() {
        let log = format!("{node}.log");
        let _ = std::fs::copy(lab.dir.join(&log), into.join(&log));
    }
    into.display().to_string()
}

/// With a shared disk: what its writers' log says about them (read on the
/// node that mounts it now); `None` without a disk.
fn disk_writers(lab: &mut Lab) -> Option<Vec<(String, u64)>> {
    lab.disk.as_ref()?;
    let owner = scenarios::settle(lab, Duration::from_secs(30)).ok()?;
    let log = lab.dir.join(DISK_MOUNT).join(DISK_LOG);
    let copy = lab.dir.join("writes.log.copy");
    let out = lab.inside(&owner).ok()?.arg("cp").arg(&log).arg(&copy).output().ok()?;
    let found = out.status.success().then(|| super::daemon::interleaved(&copy))?;
    if !found.is_empty() {
        // Kept beside the failures' logs, with every node's log.
        let into = keep_logs(lab, 0, "disk-writers");
        let _ = std::fs::copy(&copy, std::path::Path::new(&into).join(DISK_LOG));
    }
    Some(found)
}

pub fn chaos(args: &ChaosArgs) -> Result<(), String> {
    let one: Vec<Scenario> = if args.scenarios.is_empty() { Scenario::ALL.to_vec() } else { args.scenarios.clone() };
    let mut list: Vec<Scenario> = one.iter().copied().cycle().take(one.len() * args.repeat.max(1)).collect();
    list.reverse();
    drive(&args.up, args.seed, Duration::from_secs(300) * list.len() as u32, args.keep, |_| list.pop())
        .and_then(|(_, verdict)| verdict)
}

pub fn soak(args: &SoakArgs) -> Result<(), String> {
    let until = Instant::now() + args.duration;
    // Only the scenarios this lab can run (a disk, fencing required).
    let fencing = args.up.fencing.as_deref();
    let usable: Vec<Scenario> =
        Scenario::ALL.iter().copied().filter(|s| s.unmet(args.up.disk, fencing).is_none()).collect();
    let left_out: Vec<&str> = Scenario::ALL.iter().filter(|s| !usable.contains(s)).map(|s| s.name()).collect();
    if !left_out.is_empty() {
        println!("left out (this lab lacks what they need): {}", left_out.join(", "));
    }
    let (summary, verdict) = drive(&args.up, args.seed, args.duration, false, |rng| {
        (Instant::now() < until).then(|| usable[rng.index(usable.len())])
    })?;
    // The report is written whether or not every scenario passed.
    let failed = verdict.as_ref().err().map_or(String::new(), |e| format!("\n{e}\n"));
    if let Some(file) = &args.report {
        let text = format!(
            "# Soak\n\nWritten by `baton lab soak --duration {}s --seed {}` on {}: a lab of {} nodes on {} links, \
             random chaos scenarios back to back, the service address watched in every node, a client asking \
             every {PROBE_MS} ms.\n\n```text\n{summary}{failed}```\n",
            args.duration.as_secs(),
            args.seed,
            baton_agent::events::timestamp(baton_agent::events::now_ms()),
            args.up.nodes,
            args.up.links,
        );
        std::fs::write(file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
        println!("report written to {}", file.display());
    }
    verdict
}
