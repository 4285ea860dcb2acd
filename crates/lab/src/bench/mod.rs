//! `baton lab bench`: baton and keepalived measured the same way on the same
//! lab, in one run, written to a markdown file with an SVG chart. Crash
//! failover and planned move (outage seen by the client), dual ownership
//! (after SIGKILL and under a partition), false failovers under load and
//! loss, idle cost, and scale in the simulator and in the lab.

mod chart;
mod cost;
mod nfs;
mod peers;
pub mod quiet;
pub mod release;
mod report;
mod scale;
mod side;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::demo::{trial, Disruption};
use super::net::Lab;
use super::{DirArg, UpArgs};
use watch::Watch;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    Crash,
    Move,
    Dual,
    Quiet,
    Cost,
    Scale,
    /// Crash failover of two servers without a witness (two-node mode).
    Pair,
    /// An NFS client's pause across a crash failover and a planned move.
    Nfs,
    /// Pacemaker+Corosync on machine nodes at Debian's defaults and tuned:
    /// crash failover, dual ownership, planned move, false failovers (all
    /// with this command's trial counts) and idle cost; written to
    /// --peers-out.
    Pacemaker,
    /// ucarp at Debian's example settings and tuned: the same trials.
    Ucarp,
    /// vip-manager with a three-member etcd and a Patroni-like leader key,
    /// at the defaults and tuned: the same trials.
    VipManager,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Crash-failover trials per system.
    #[arg(long, default_value_t = 20)]
    pub trials: usize,
    /// Planned-move trials per system.
    #[arg(long, default_value_t = 10)]
    pub move_trials: usize,
    /// Crash-failover trials per two-server setup (power fence, fence disk).
    #[arg(long, default_value_t = 10)]
    pub pair_trials: usize,
    /// NFS trials (each a crash failover then a planned move).
    #[arg(long, default_value_t = 5)]
    pub nfs_trials: usize,
    /// Dual-ownership trials per system and fault.
    #[arg(long, default_value_t = 3)]
    pub dual_trials: usize,
    /// Minutes per system of load and loss for the false-failover count.
    #[arg(long, default_value_t = 10)]
    pub quiet_minutes: u64,
    /// Seconds of idle measurement per system.
    #[arg(long, default_value_t = 60)]
    pub cost_seconds: u64,
    /// Crash-failover trials per Pacemaker setting.
    #[arg(long, default_value_t = 10)]
    pub pacemaker_trials: usize,
    /// Only these measurements (default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Phase>,
    /// Only the systems whose name contains this (repeatable; default:
    /// all), e.g. `--system fast --system "keepalived, tuned"`.
    #[arg(long = "system", value_name = "TEXT")]
    pub systems: Vec<String>,
    /// Where the results go; the chart goes next to it.
    #[arg(long, default_value = "docs/bench.md")]
    pub out: PathBuf,
    /// Where the peers' results go (Pacemaker+Corosync, ucarp, vip-manager);
    /// the sections of peers this run does not measure are kept from it.
    #[arg(long, default_value = "docs/bench-peers.md")]
    pub peers_out: PathBuf,
    /// Prefix of the labs' namespace names (see `lab up --prefix`).
    #[arg(long, default_value = crate::net::PREFIX)]
    pub prefix: String,
    #[command(flatten)]
    pub dir: DirArg,
}

#[derive(Clone)]
pub struct System {
    pub name: &'static str,
    heartbeat: &'static str,
    lease: &'static str,
    keepalived: Option<&'static str>,
    /// Runs at the default heartbeat (the cost row).
    default: bool,
    /// Full nodes; two without a witness is two-node mode.
    nodes: usize,
    /// `lab up --fencing`.
    fencing: Option<&'static str>,
    /// `lab up --disk` with an NFS server (nfs-ganesha) in `web`.
    nfs: bool,
    /// `lab up --address-only`: the web server on every node, as
    /// keepalived runs it, and the address alone in the set.
    address_only: bool,
}

const SYSTEMS: [System; 5] = [
    System {
        name: "baton, defaults (heartbeat 100ms, lease 1s)",
        heartbeat: "100ms",
        lease: "1s",
        keepalived: None,
        default: true,
        nodes: 3,
        fencing: None,
        nfs: false,
        address_only: false,
    },
    System {
        name: "baton, tuned (heartbeat 30ms, lease 300ms)",
        heartbeat: "30ms",
        lease: "300ms",
        keepalived: None,
        default: false,
        nodes: 3,
        fencing: None,
        nfs: false,
        address_only: false,
    },
    System {
        name: "baton, fast, address only (heartbeat 10ms, lease 100ms; the web server on every node)",
        heartbeat: "10ms",
        lease: "100ms",
        keepalived: None,
        default: false,
        nodes: 3,
        fencing: None,
        nfs: false,
        address_only: true,
    },
    System {
        name: "keepalived, defaults (VRRPv2, advert_int 1)",
        heartbeat: "100ms",
        lease: "1s",
        keepalived: Some("1"),
        default: true,
        nodes: 3,
        fencing: None,
        nfs: false,
        address_only: false,
    },
    System {
        name: "keepalived, tuned (VRRPv3, advert_int 0.1)",
        heartbeat: "100ms",
        lease: "1s",
        keepalived: Some("0.1"),
        default: false,
        nodes: 3,
        fencing: None,
        nfs: false,
        address_only: false,
    },
];

/// Two servers and nothing else (the seeds' pairs): the survivor fences its
/// peer before it takes over. The lab's device for alpha waits 2 s, so that
/// of two live servers split apart beta goes first (`delay`).
const PAIRS: [System; 2] = [
    System {
        name: "baton, two servers + power fence (lease 1s, fencing alpha waits 2s)",
        heartbeat: "100ms",
        lease: "1s",
        keepalived: None,
        default: false,
        nodes: 2,
        fencing: Some("power"),
        nfs: false,
        address_only: false,
    },
    System {
        name: "baton, two servers + fence disk (lease 1s, waits 2s, msgwait 2s)",
        heartbeat: "100ms",
        lease: "1s",
        keepalived: None,
        default: false,
        nodes: 2,
        fencing: Some("disk"),
        nfs: false,
        address_only: false,
    },
];

/// A fault that may leave two holders.
#[derive(Clone, Copy)]
enum Split {
    /// The owner's daemon SIGKILLed, its links left up.
    Kill,
    /// The owner cut off from every other node on every link.
    Partition,
}

/// Everything measured for one system.
#[derive(Default)]
pub struct Row {
    pub crash: Vec<u64>,
    pub crash_failed: usize,
    pub moves: Vec<u64>,
    pub moves_failed: usize,
    /// Planned moves with the address alone in the set and the web server
    /// on every node, as keepalived runs it: for a baton setting whose set
    /// also holds the web server (empty otherwise).
    pub moves_bare: Vec<u64>,
    pub moves_bare_failed: usize,
    /// In each planned move of the address alone: µs from the old holder's
    /// delete to the next holder's add (negative: both held it), sorted.
    pub move_gaps_us: Vec<i64>,
    pub dual_kill: Vec<u64>,
    pub dual_partition: Vec<u64>,
    pub quiet: Option<quiet::Quiet>,
    pub cost: Option<cost::Cost>,
}

impl Row {
    /// Planned moves of the address alone (the web server on every node):
    /// the work keepalived does in its move.
    pub fn moves_of_the_address(&self) -> (&[u64], usize) {
        if self.moves_bare.is_empty() && self.moves_bare_failed == 0 {
            (&self.moves, self.moves_failed)
        } else {
            (&self.moves_bare, self.moves_bare_failed)
        }
    }
}

/// How long dual-ownership trials watch after the fault: longer than
/// baton's and keepalived's takeovers at every setting benched.
const DUAL_WINDOW: Duration = Duration::from_secs(8);

/// How long (ms) two or more nodes held the service address at once in the
/// `window` after `split` hit the owner.
fn dual_ownership(lab: &mut Lab, split: Split, window: Duration) -> Result<u64, String> {
    lab.wait_running(Duration::from_secs(30))?;
    let first = lab.wait_vip_holder(Duration::from_secs(10)).ok_or("the address is nowhere")?;
    let others: Vec<String> = lab.nodes.iter().filter(|n| **n != first).cloned().collect();
    let witness = others.first().ok_or("one node only")?;
    let watch = Watch::start(lab, witness)?;
    match split {
        Split::Kill => lab.kill(&first)?,
        Split::Partition => lab.partition(&format!("{}/{first}", others.join(",")))?,
    }
    std::thread::sleep(window);
    let w = watch.finish()?;
    // A trial in which nobody took over measures nothing: the window was
    // too short for the system, not free of two holders.
    let since = |t: u64| t.saturating_sub(w.start) / 1000;
    let taken = w.changes.iter().find(|(_, node, added)| *added && *node != first);
    let Some((at, next, _)) = taken else {
        return Err(format!("no other node took the address within {} s of the fault", window.as_secs()));
    };
    let dropped = w.changes.iter().find(|(_, node, added)| !*added && *node == first);
    let dropped = dropped.map_or("kept it".into(), |(t, _, _)| format!("dropped it at +{} ms", since(*t)));
    eprintln!("{first} {dropped}; {next} took it at +{} ms", since(*at));
    Ok(w.dual_us([first].into()) / 1000)
}

/// Runs `f` on a fresh lab of `system` and removes the lab whatever happens.
fn on_lab<T>(args: &BenchArgs, system: &System, f: impl FnOnce(&mut Lab) -> Result<T, String>) -> Result<T, String> {
    let extra = system.nfs.then(|| nfs::extra(&args.dir.dir)).transpose()?;
    let up = UpArgs {
        nodes: system.nodes,
        heartbeat: system.heartbeat.into(),
        lease: Some(system.lease.into()),
        disk: system.nfs,
        keepalived: system.keepalived.map(str::to_string),
        fencing: system.fencing.map(str::to_string),
        address_only: system.address_only,
        extra: extra.clone(),
        ..UpArgs::plain(args.dir.clone(), args.prefix.clone())
    };
    let lab = Lab::up(&up);
    let result = lab.and_then(|mut lab| {
        let result = f(&mut lab);
        Lab::down(&lab.dir).and(result)
    });
    if let Some(file) = extra {
        let _ = std::fs::remove_file(file);
    }
    result
}

/// `n` outage trials: (sorted outages, failed trials, and for planned
/// moves the sorted gaps of the address in µs — from the old holder's
/// delete to the next holder's add, watched in every node).
fn outages(args: &BenchArgs, system: &System, how: Disruption, n: usize) -> (Vec<u64>, usize, Vec<i64>) {
    let mut gaps = Vec::new();
    let (ok, failed) = outage_runs(n, system.name, how, |_| {
        let (t, gap) = on_lab(args, system, |lab| {
            let marker = lab.nodes.first().cloned().ok_or("a lab without nodes")?;
            let watch = matches!(how, Disruption::Move).then(|| Watch::start(lab, &marker)).transpose()?;
            let t = trial(lab, how)?;
            let gap = watch.map(Watch::finish).transpose()?.and_then(|w| w.gap_us(&t.first, &t.next));
            Ok((t, gap))
        })?;
        let bare =
            if system.address_only && !system.name.contains("address only") { ", the address alone" } else { "" };
        let on_none = gap.map_or(String::new(), |g| format!(" (the address on no node for {g} µs)"));
        eprintln!("{}{bare}: {how:?}: {} -> {}: {} ms{on_none}", system.name, t.first, t.next, t.outage_ms);
        gaps.extend(gap);
        Ok(t.outage_ms)
    });
    gaps.sort_unstable();
    (ok, failed, gaps)
}

/// `n` outage trials of `name`, trial `i` being `run(i)`: (the sorted
/// outages of those that ran, in ms; how many failed).
fn outage_runs(
    n: usize,
    name: &str,
    how: Disruption,
    mut run: impl FnMut(usize) -> Result<u64, String>,
) -> (Vec<u64>, usize) {
    let (mut ok, mut failed) = (Vec::new(), 0);
    for i in 0..n {
        match run(i) {
            Ok(ms) => ok.push(ms),
            Err(e) => {
                eprintln!("{name}: {how:?} {}: {e}", i + 1);
                failed += 1;
            }
        }
    }
    ok.sort_unstable();
    (ok, failed)
}

/// One false-failover run of `name` (`run`), logged; `None` if it failed.
fn quiet_run(name: &str, run: impl FnOnce() -> Result<quiet::Quiet, String>) -> Option<quiet::Quiet> {
    match run() {
        Ok(q) => {
            eprintln!("{name}: {} ownership changes under load and loss", q.takeovers);
            Some(q)
        }
        Err(e) => {
            eprintln!("{name}: false-failover run: {e}");
            None
        }
    }
}

fn dual_trials(args: &BenchArgs, system: &System, split: Split) -> Vec<u64> {
    dual_runs(args.dual_trials, system.name, || on_lab(args, system, |lab| dual_ownership(lab, split, DUAL_WINDOW)))
}

/// `n` dual-ownership trials of `name`, each one `run`: the trials that
/// ran, in ms.
fn dual_runs(n: usize, name: &str, run: impl Fn() -> Result<u64, String>) -> Vec<u64> {
    (0..n)
        .filter_map(|_| match run() {
            Ok(ms) => {
                eprintln!("{name}: dual ownership: {ms} ms");
                Some(ms)
            }
            Err(e) => {
                eprintln!("{name}: dual-ownership trial: {e}");
                None
            }
        })
        .collect()
}

fn measure(args: &BenchArgs, system: &System) -> Row {
    let on = |p: Phase| args.only.is_empty() || args.only.contains(&p);
    let mut row = Row::default();
    if on(Phase::Crash) {
        (row.crash, row.crash_failed, _) = outages(args, system, Disruption::Crash, args.trials);
    }
    if on(Phase::Move) {
        (row.moves, row.moves_failed, row.move_gaps_us) = outages(args, system, Disruption::Move, args.move_trials);
        if system.keepalived.is_none() && !system.address_only {
            let bare = System { address_only: true, ..system.clone() };
            (row.moves_bare, row.moves_bare_failed, row.move_gaps_us) =
                outages(args, &bare, Disruption::Move, args.move_trials);
        }
    }
    if on(Phase::Dual) {
        row.dual_kill = dual_trials(args, system, Split::Kill);
        row.dual_partition = dual_trials(args, system, Split::Partition);
    }
    if on(Phase::Quiet) {
        let window = Duration::from_secs(60 * args.quiet_minutes);
        row.quiet = quiet_run(system.name, || on_lab(args, system, |lab| quiet::false_failovers(lab, window)));
    }
    if on(Phase::Cost) && system.default {
        let window = Duration::from_secs(args.cost_seconds);
        let measured = on_lab(args, system, |lab| {
            lab.wait_running(Duration::from_secs(30))?;
            std::thread::sleep(Duration::from_secs(5));
            cost::idle(lab, window)
        });
        match measured {
            Ok(c) => row.cost = Some(c),
            Err(e) => eprintln!("{}: cost: {e}", system.name),
        }
    }
    row
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let on = |p: Phase| args.only.is_empty() || args.only.contains(&p);
    let peer = |p: Phase| matches!(p, Phase::Pacemaker | Phase::Ucarp | Phase::VipManager);
    let peers = if Phase::value_variants().iter().any(|&p| peer(p) && on(p)) {
        peers::run(args)?
    } else {
        peers::Peers::default()
    };
    if Phase::value_variants().iter().any(|&p| !peer(p) && on(p)) {
        baton_and_keepalived(args, &peers)?;
    }
    Ok(())
}

/// Everything but the peers' own document: docs/bench.md and its chart,
/// with the peers this run measured beside baton and keepalived in its
/// first table and in the chart.
fn baton_and_keepalived(args: &BenchArgs, peers: &peers::Peers) -> Result<(), String> {
    let on = |p: Phase| args.only.is_empty() || args.only.contains(&p);
    // The simulator first: its memory is this process's peak so far.
    let scale = on(Phase::Scale).then(|| baton_sim::scale::run(32, 1000));
    // `--system`: only the systems named, and only they in the tables.
    let chosen = |s: &&System| args.systems.is_empty() || args.systems.iter().any(|n| s.name.contains(n.as_str()));
    let systems: Vec<System> = SYSTEMS.iter().filter(chosen).cloned().collect();
    let rows: Vec<Row> = systems.iter().map(|s| measure(args, s)).collect();
    let pairs: Vec<Row> = PAIRS
        .iter()
        .filter(|_| on(Phase::Pair))
        .map(|s| {
            let (crash, crash_failed, _) = outages(args, s, Disruption::Crash, args.pair_trials);
            Row { crash, crash_failed, ..Row::default() }
        })
        .collect();
    let nfs = on(Phase::Nfs).then(|| nfs::measure(args, &nfs::SYSTEM));
    let lab_scale = on(Phase::Scale).then(|| scale::measure(args));
    let _ = Lab::down(&args.dir.dir);
    let chart = args.out.with_extension("svg");
    let scales = (scale.as_ref(), lab_scale.as_ref());
    let everyone: Vec<(&str, bool, &Row)> = systems
        .iter()
        .zip(&rows)
        .map(|(s, r)| (s.name, s.default, r))
        .chain(peers.rows.iter().map(|(name, default, r)| (*name, *default, r)))
        .collect();
    let mut side = side::table(&side::columns(everyone.iter().copied()));
    if !side.is_empty() && !peers.rows.is_empty() {
        side += &format!("\nThe peers' versions: {}.\n", peers.versions);
    }
    let md = report::markdown(args, (&systems, &rows), (&PAIRS, &pairs), nfs.as_ref(), scales, &side, &chart);
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    if on(Phase::Crash) {
        let series: Vec<(&str, &[u64])> = everyone.iter().map(|(name, _, r)| (*name, &r.crash[..])).collect();
        let svg = chart::svg("Crash failover: outage seen by the client, every trial", &series);
        std::fs::write(&chart, svg).map_err(|e| format!("writing {}: {e}", chart.display()))?;
    }
    std::fs::write(&args.out, &md).map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    print!("{md}");
    Ok(())
}
