//! `lab bench --only pacemaker,ucarp,vip-manager`: the peers measured the
//! way baton and keepalived are, on the same links, address, web server and
//! client, each at its defaults and tuned: crash failover (Pacemaker: the
//! owner's machine powered off, at Debian's defaults and at the shortest
//! token corosync's documentation allows; ucarp: its process SIGKILLed and
//! its links cut, as keepalived's in bench.md; vip-manager: vip-manager,
//! the etcd member and the leader loop SIGKILLed, the links cut), dual
//! ownership after SIGKILL and under a partition, planned move (each by its
//! own means: `pcs resource move`, ucarp's SIGUSR2, the leader key handed
//! over), false failovers under load and loss, and idle cost. Written to
//! their own file (`--peers-out`, docs/bench-peers.md) beside bench.md; a
//! run of some peers keeps the other peers' parts of the file it replaces
//! (see [`Doc`]).

use std::fmt::Write as _;
use std::time::Duration;

use clap::ValueEnum;

use super::cost;
use super::quiet;
use super::report::{list, outage_cells};
use super::{dual_ownership, dual_runs, outage_runs, quiet_run, BenchArgs, Phase, Row, Split, DUAL_WINDOW};
use crate::demo::{trial, Disruption};
use crate::net::Lab;
use crate::pacemaker;
use crate::UpArgs;
use crate::{ucarp, vip_manager};

/// Which peer, with its `lab up` setting.
#[derive(Clone, Copy)]
enum Setup {
    /// `lab up --pacemaker TOKEN`.
    Pacemaker(&'static str),
    /// `lab up --ucarp ADVBASE`.
    Ucarp(&'static str),
    /// `lab up --vip-manager INTERVAL_MS:TTL_S:LOOP_S`.
    VipManager(&'static str),
}

/// One setting of a peer.
pub struct Peer {
    pub name: &'static str,
    setup: Setup,
    /// Debian's defaults: the idle-cost row.
    default: bool,
}

pub const PACEMAKER: [Peer; 2] = [
    Peer {
        name: "Pacemaker+Corosync, Debian defaults (no token in corosync.conf)",
        setup: Setup::Pacemaker("default"),
        default: true,
    },
    Peer {
        name: "Pacemaker+Corosync, tuned (token 1000 ms, token_coefficient 0, consensus 1200 ms)",
        setup: Setup::Pacemaker("1000"),
        default: false,
    },
];

pub const UCARP: [Peer; 2] = [
    Peer {
        name: "ucarp, Debian's example (advbase 1, advskew 0/10/20, deadratio 3)",
        setup: Setup::Ucarp("1"),
        default: true,
    },
    Peer { name: "ucarp, tuned (advbase 1, advskew 0/10/20, deadratio 1)", setup: Setup::Ucarp("1:1"), default: false },
];

pub const VIP_MANAGER: [Peer; 3] = [
    Peer {
        name: "vip-manager, defaults (interval 1000 ms; leader key ttl 30 s, refreshed every 10 s)",
        setup: Setup::VipManager("1000:30:10"),
        default: true,
    },
    Peer {
        name: "vip-manager, tuned to Patroni's minimums (interval 100 ms; ttl 20 s, refreshed every 1 s)",
        setup: Setup::VipManager("100:20:1"),
        default: false,
    },
    Peer {
        name: "vip-manager, below Patroni's minimum (interval 100 ms; ttl 3 s, refreshed every 1 s)",
        setup: Setup::VipManager("100:3:1"),
        default: false,
    },
];

/// What vip-manager's idle cost counts on a node: etcd, vip-manager, and
/// the leader loop (`sh`) with the `etcdctl` and `sleep` it runs.
const VIP_MANAGER_PROGRAMS: [&str; 5] = ["etcd", "vip-manager", "sh", "etcdctl", "sleep"];

/// What was measured for one peer setting.
#[derive(Default)]
pub struct PeerRow {
    /// What every system's row has (bench.md's measurements).
    row: Row,
    /// Trials in which Pacemaker fenced the old owner through the lab's
    /// power switch before the client was served again.
    fenced: usize,
    /// corosync's token and consensus as they ran (cmap), ms.
    totem: Option<(u64, u64)>,
}

/// Runs `f` on a fresh Pacemaker lab of `peer` and removes the lab
/// whatever happens.
fn on_lab<T>(args: &BenchArgs, peer: &Peer, f: impl FnOnce(&mut Lab) -> Result<T, String>) -> Result<T, String> {
    let up = UpArgs {
        pacemaker: match peer.setup {
            Setup::Pacemaker(token) => Some(token.into()),
            _ => None,
        },
        ucarp: match peer.setup {
            Setup::Ucarp(advbase) => Some(advbase.into()),
            _ => None,
        },
        vip_manager: match peer.setup {
            Setup::VipManager(setting) => Some(setting.into()),
            _ => None,
        },
        ..UpArgs::plain(args.dir.clone(), args.prefix.clone())
    };
    let mut lab = Lab::up(&up)?;
    let result = f(&mut lab);
    Lab::down(&lab.dir).and(result)
}

/// corosync's token and consensus as `node` runs them.
fn totem(lab: &Lab, node: &str) -> Option<(u64, u64)> {
    Some((lab.corosync_ms(node, "token")?, lab.corosync_ms(node, "consensus")?))
}

/// Waits (up to 10 s) until one node alone has held the address for ten
/// looks in a row (about a second), as after an election settles; refuses the trial if
/// that never happens: its outage would measure the client's ARP cache, not
/// a failover.
fn steady(lab: &Lab) -> Result<(), String> {
    let mut alone = 0;
    let mut seen = Vec::new();
    let settled = crate::wait_until(Duration::from_secs(10), || {
        seen = lab.vip_holders();
        alone = if seen.len() == 1 { alone + 1 } else { 0 };
        alone >= 10
    });
    if settled {
        Ok(())
    } else {
        Err(format!("no node held the address alone for a second within 10 s (last: {})", seen.join(" and ")))
    }
}

/// What one outage trial measured.
struct Outage {
    outage_ms: u64,
    /// The power switch logged Pacemaker's fencing of the old owner.
    fenced: bool,
    /// corosync's token and consensus (Pacemaker only).
    totem: Option<(u64, u64)>,
}

/// A crash or planned-move trial; the disruption comes `phase` later than
/// it would.
fn outage(lab: &mut Lab, how: Disruption, phase: Duration) -> Result<Outage, String> {
    lab.wait_running(Duration::from_secs(60))?;
    steady(lab)?;
    std::thread::sleep(phase);
    if lab.pacemaker.is_none() || matches!(how, Disruption::Move) {
        let t = trial(lab, how)?;
        eprintln!("{how:?}: {} -> {}: {} ms", t.first, t.next, t.outage_ms);
        return Ok(Outage { outage_ms: t.outage_ms, fenced: false, totem: None });
    }
    let totem = lab.nodes.first().and_then(|n| totem(lab, n));
    let t = trial(lab, how)?;
    let log = std::fs::read_to_string(lab.dir.join("fence.log")).unwrap_or_default();
    let fenced = log.lines().any(|l| {
        (l.starts_with("action=reboot ") || l.starts_with("action=off "))
            && l.contains(&format!(" plug={} ", t.first))
            && l.ends_with("password=checked")
    });
    eprintln!("{} -> {}: {} ms, fenced: {fenced}", t.first, t.next, t.outage_ms);
    Ok(Outage { outage_ms: t.outage_ms, fenced, totem })
}

fn measure(args: &BenchArgs, peer: &Peer) -> PeerRow {
    let mut pr = PeerRow::default();
    let row = &mut pr.row;
    let (trials, programs): (usize, &[&str]) = match peer.setup {
        Setup::Pacemaker(_) => (args.pacemaker_trials, &pacemaker::DAEMONS),
        Setup::Ucarp(_) => (args.trials, &["ucarp"]),
        Setup::VipManager(_) => (args.trials, &VIP_MANAGER_PROGRAMS),
    };
    (row.crash, row.crash_failed) = outage_runs(trials, peer.name, Disruption::Crash, |i| {
        let c = on_lab(args, peer, |lab| outage(lab, Disruption::Crash, phase(peer, i, trials)))?;
        pr.fenced += usize::from(c.fenced);
        pr.totem = pr.totem.or(c.totem);
        Ok(c.outage_ms)
    });
    (row.moves, row.moves_failed) = outage_runs(args.move_trials, peer.name, Disruption::Move, |i| {
        Ok(on_lab(args, peer, |lab| outage(lab, Disruption::Move, phase(peer, i, args.move_trials)))?.outage_ms)
    });
    let window = dual_window(peer);
    let dual =
        |split| dual_runs(args.dual_trials, peer.name, || on_lab(args, peer, |lab| dual_ownership(lab, split, window)));
    row.dual_kill = dual(Split::Kill);
    row.dual_partition = dual(Split::Partition);
    if args.quiet_minutes > 0 {
        let window = Duration::from_secs(60 * args.quiet_minutes);
        row.quiet = quiet_run(peer.name, || {
            on_lab(args, peer, |lab| {
                lab.wait_running(Duration::from_secs(60))?;
                steady(lab)?;
                quiet::false_failovers(lab, window)
            })
        });
    }
    if peer.default && args.cost_seconds > 0 {
        let window = Duration::from_secs(args.cost_seconds);
        let measured = on_lab(args, peer, |lab| {
            lab.wait_running(Duration::from_secs(60))?;
            std::thread::sleep(Duration::from_secs(5));
            let pids = |node: &str| {
                let pids = cost::programs_in(&lab.ns(node)?, programs);
                if pids.is_empty() {
                    return Err(format!("none of {programs:?} runs on {node}"));
                }
                Ok(pids)
            };
            if let Setup::VipManager(_) = peer.setup {
                // The loop's `etcdctl` and `sleep` come and go: they count
                // through the shell that waits for them.
                return cost::idle_with_helpers(lab, window, pids, is_shell);
            }
            cost::idle_of(lab, window, pids)
        });
        match measured {
            Ok(c) => row.cost = Some(c),
            Err(e) => eprintln!("{}: cost: {e}", peer.name),
        }
    }
    pr
}

/// How much later than a lab's start trial `i` of `n` brings its fault:
/// (i + ½)/n of the peer's own cycle, so that the faults fall evenly over
/// it — with vip-manager the holder's refresh interval (a key refreshed
/// every 10 s outlives a crash by TTL − 10 s to TTL, depending on when it
/// comes), with ucarp the advertisement interval (a backup counts missed
/// advertisements from the last one it heard); a fault at the same time
/// after every lab's start would always find the same point of the cycle.
/// Nothing for Pacemaker, whose token rotates far faster than its timeout.
fn phase(peer: &Peer, i: usize, n: usize) -> Duration {
    let cycle = match peer.setup {
        Setup::VipManager(setting) => vip_manager::settings(setting).map_or(0, |s| s.loop_s.into()),
        Setup::Ucarp(setting) => ucarp::settings(setting).map_or(0, |(advbase, _)| advbase.into()),
        Setup::Pacemaker(_) => 0,
    };
    Duration::from_secs(cycle).mul_f64((i as f64 + 0.5) / n.max(1) as f64)
}

/// Is `pid` a shell (the leader loop, or a subshell of it)?
fn is_shell(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    argv0.rsplit(|b| *b == b'/').next() == Some(b"sh".as_slice())
}

/// The machine's load average (1, 5, 15 minutes).
fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The peers, in the order of the document.
const PEERS: [Phase; 3] = [Phase::Pacemaker, Phase::Ucarp, Phase::VipManager];

/// A phase's name on the command line (`vip-manager`).
pub(super) fn phase_name(p: Phase) -> String {
    p.to_possible_value().map_or_else(|| format!("{p:?}"), |v| v.get_name().to_string())
}

/// What a run measured of the peers, for bench.md's side-by-side table:
/// per setting its name, whether it is the peer's defaults, and its row;
/// and the peers' versions.
#[derive(Default)]
pub struct Peers {
    pub rows: Vec<(&'static str, bool, Row)>,
    pub versions: String,
}

/// Measures the peers `args` chooses, writes `--peers-out`, and returns
/// what was measured.
pub fn run(args: &BenchArgs) -> Result<Peers, String> {
    let on = |p: Phase| args.only.is_empty() || args.only.contains(&p);
    let load_before = load();
    let pacemaker = on(Phase::Pacemaker)
        .then(|| pacemaker::root().map(|_| PACEMAKER.iter().map(|p| measure(args, p)).collect::<Vec<_>>()))
        .transpose()?;
    let ucarp = on(Phase::Ucarp).then(|| UCARP.iter().map(|p| measure(args, p)).collect::<Vec<_>>());
    let vip_manager = on(Phase::VipManager).then(|| VIP_MANAGER.iter().map(|p| measure(args, p)).collect::<Vec<_>>());
    let measured =
        Measured { pacemaker: pacemaker.as_deref(), ucarp: ucarp.as_deref(), vip_manager: vip_manager.as_deref() };
    let new = document(args, &measured, &load_before, &load());
    let old = std::fs::read_to_string(&args.peers_out).map(|t| Doc::parse(&t)).unwrap_or_default();
    let md = old.merge(new).render(args.cost_seconds);
    if let Some(parent) = args.peers_out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(&args.peers_out, &md).map_err(|e| format!("writing {}: {e}", args.peers_out.display()))?;
    print!("{md}");
    let each = |peers: &'static [Peer], rows: Option<Vec<PeerRow>>| {
        peers.iter().zip(rows.unwrap_or_default()).map(|(p, r)| (p.name, p.default, r.row)).collect::<Vec<_>>()
    };
    let versions = measured.versions();
    let rows = [each(&PACEMAKER, pacemaker), each(&UCARP, ucarp), each(&VIP_MANAGER, vip_manager)];
    Ok(Peers { rows: rows.into_iter().flatten().collect(), versions })
}

/// A Debian package's version on the host.
fn host_package(package: &str) -> String {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(|| "not installed".into(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// The command that made the report.
fn command(args: &BenchArgs) -> String {
    let only: Vec<String> = args.only.iter().map(|&p| phase_name(p)).collect();
    format!(
        "cargo run --release -- lab bench{} --trials {} --pacemaker-trials {} --move-trials {} --dual-trials {} \
         --quiet-minutes {} --cost-seconds {} --prefix {} --dir {} --peers-out {}",
        if only.is_empty() { String::new() } else { format!(" --only {}", only.join(",")) },
        args.trials,
        args.pacemaker_trials,
        args.move_trials,
        args.dual_trials,
        args.quiet_minutes,
        args.cost_seconds,
        args.prefix,
        args.dir.dir.display(),
        args.peers_out.display()
    )
}

/// A crash-failover table; Pacemaker's with its token and fencing columns.
fn crash_table(md: &mut String, peers: &[Peer], rows: &[PeerRow], pacemaker: bool) {
    if pacemaker {
        md.push_str(
            "| system | trials | median | p95 | max | corosync token / consensus as run | fenced by Pacemaker |\n\
             |---|---|---|---|---|---|---|\n",
        );
    } else {
        md.push_str("| system | trials | median | p95 | max |\n|---|---|---|---|---|\n");
    }
    for (peer, row) in peers.iter().zip(rows) {
        let cells = outage_cells(&row.row.crash, row.row.crash_failed);
        if pacemaker {
            let totem = row.totem.map_or("–".into(), |(t, c)| format!("{t} ms / {c} ms"));
            let _ = writeln!(md, "| {} | {cells} | {totem} | {} of {} |", peer.name, row.fenced, row.row.crash.len());
        } else {
            let _ = writeln!(md, "| {} | {cells} |", peer.name);
        }
    }
    md.push('\n');
}

/// How long a dual-ownership trial of Pacemaker watches: its slowest crash
/// failover (Debian's defaults, about 9 s: token, consensus, fencing, start)
/// twice over.
const PACEMAKER_DUAL_WINDOW: Duration = Duration::from_secs(20);

/// How long a dual-ownership trial of `peer` watches after the fault: long
/// enough for another node to take the address over (vip-manager: the
/// leader key's TTL, one interval, and 5 s). A node Pacemaker fences is
/// powered off, which takes every address off its kernel (the records show
/// when), as a real power-off does.
fn dual_window(peer: &Peer) -> Duration {
    match peer.setup {
        Setup::Pacemaker(_) => PACEMAKER_DUAL_WINDOW,
        Setup::Ucarp(_) => DUAL_WINDOW,
        Setup::VipManager(setting) => vip_manager::settings(setting).map_or(DUAL_WINDOW, |s| {
            let takeover = Duration::from_secs(s.ttl_s.into()) + Duration::from_millis(s.interval_ms.into());
            DUAL_WINDOW.max(takeover + Duration::from_secs(5))
        }),
    }
}

/// A planned-move table; `how` says what the move is for this peer.
fn move_table(md: &mut String, peers: &[Peer], rows: &[PeerRow], how: &str) {
    if rows.iter().all(|r| r.row.moves.is_empty() && r.row.moves_failed == 0) {
        return;
    }
    let _ = writeln!(
        md,
        "Planned move: {how}. The outage is measured by the same client.\n\n\
         | system | trials | median | p95 | max |\n|---|---|---|---|---|"
    );
    for (peer, row) in peers.iter().zip(rows) {
        let _ = writeln!(md, "| {} | {} |", peer.name, outage_cells(&row.row.moves, row.row.moves_failed));
    }
    md.push('\n');
}

/// A false-failover table, as bench.md's.
fn quiet_table(md: &mut String, peers: &[Peer], rows: &[PeerRow], minutes: u64) {
    if rows.iter().all(|r| r.row.quiet.is_none()) {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = writeln!(
        md,
        "False failovers, measured as in bench.md: {minutes} minutes per setting with both cores busy (`stress-ng \
         --cpu {cores}`) and 5 % of the packets dropped on every link of every node, no fault injected; every \
         time a node takes the address is a false failover.\n\n\
         | system | ownership changes | time with two holders |\n|---|---|---|"
    );
    for (peer, row) in peers.iter().zip(rows) {
        match &row.row.quiet {
            Some(q) => {
                let _ = writeln!(md, "| {} | {} | {} ms |", peer.name, q.takeovers, q.dual_ms);
            }
            None => {
                let _ = writeln!(md, "| {} | failed to run | – |", peer.name);
            }
        }
    }
    md.push('\n');
}

/// A dual-ownership table, as bench.md's; `window` says how long each
/// trial watched.
fn dual_table(md: &mut String, peers: &[Peer], rows: &[PeerRow], what: &str, window: &str) {
    if rows.iter().all(|r| r.row.dual_kill.is_empty() && r.row.dual_partition.is_empty()) {
        return;
    }
    let _ = writeln!(
        md,
        "Dual ownership, measured as in bench.md: every add and delete of the address in every node namespace \
         recorded in the order the kernel made the changes, by one monitor of every node namespace (`ip -ts \
         monitor address all-nsid`), for {window} after the fault, the time \
         two or more nodes held it at once added up. (a) {what} SIGKILLed, its links left up; (b) the owner \
         partitioned from the other nodes on every link.\n\n\
         | system | (a) after SIGKILL, each trial | (b) under a partition, each trial |\n|---|---|---|"
    );
    for (peer, row) in peers.iter().zip(rows) {
        let _ = writeln!(md, "| {} | {} | {} |", peer.name, list(&row.row.dual_kill), list(&row.row.dual_partition));
    }
    md.push('\n');
}

/// The idle-cost rows of the peers' default settings.
fn cost_rows(peers: &[Peer], rows: &[PeerRow]) -> Vec<String> {
    peers.iter().zip(rows).filter(|(p, _)| p.default).map(|(p, r)| cost::row(p.name, r.row.cost.as_ref())).collect()
}

/// What this run measured, per peer.
struct Measured<'a> {
    pacemaker: Option<&'a [PeerRow]>,
    ucarp: Option<&'a [PeerRow]>,
    vip_manager: Option<&'a [PeerRow]>,
}

impl Measured<'_> {
    /// The versions of the peers measured.
    fn versions(&self) -> String {
        let mut versions = Vec::new();
        if self.pacemaker.is_some() {
            versions.push(format!(
                "Debian bookworm's pacemaker {}, corosync {}, libknet1 {}, pcs {}, resource-agents {} (in the \
                 machines)",
                pacemaker::version("pacemaker"),
                pacemaker::version("corosync"),
                pacemaker::version("libknet1"),
                pacemaker::version("pcs"),
                pacemaker::version("resource-agents"),
            ));
        }
        if self.ucarp.is_some() {
            versions.push(format!("Debian's ucarp {} (on the host)", host_package("ucarp")));
        }
        if self.vip_manager.is_some() {
            versions.push(format!(
                "Debian's vip-manager {} and etcd-server and etcd-client {} (on the host)",
                host_package("vip-manager"),
                host_package("etcd-server")
            ));
        }
        versions.join("; ")
    }
}

/// docs/bench-peers.md in parts: a run of some peers replaces their parts
/// and keeps the others' from the file as it was, so that one peer is
/// measured again without measuring all of them again.
#[derive(Default, Debug, PartialEq)]
struct Doc {
    /// The runs that made the document: the peers each measured, and its
    /// paragraphs from "Measured on" (date, command, machine, load, versions).
    runs: Vec<(Vec<Phase>, String)>,
    /// Per peer, its crash-failover section from its "## " line.
    sections: Vec<(Phase, String)>,
    /// Per peer, its idle-cost rows.
    cost: Vec<(Phase, String)>,
}

/// The peer a section title or a table row's system names.
fn peer_of(name: &str) -> Option<Phase> {
    [("Pacemaker+Corosync", Phase::Pacemaker), ("ucarp", Phase::Ucarp), ("vip-manager", Phase::VipManager)]
        .into_iter()
        .find_map(|(prefix, p)| name.starts_with(prefix).then_some(p))
}

/// The peers a run's command measured (its `--only`; all without one).
fn peers_of_command(text: &str) -> Vec<Phase> {
    let only = text.split_whitespace().skip_while(|w| *w != "--only").nth(1);
    match only {
        None => PEERS.to_vec(),
        Some(list) => {
            list.split(',').filter_map(|n| Phase::from_str(n, true).ok()).filter(|p| PEERS.contains(p)).collect()
        }
    }
}

const TITLE: &str = "# Benchmarks: the peers\n\n";
const LAB: &str = "The lab of [bench.md](bench.md): three nodes on two links, the address 10.88.0.100, a tiny web \
                   server answering with its node's name, and a client in its own namespace that fetches the address \
                   over HTTP every 10 ms; the outage is the time from the old owner's last answer to the first answer \
                   from another node. Every trial builds a fresh lab.\n\n";

impl Doc {
    /// The parts of a document this module wrote; what it cannot place
    /// (text of another shape) is left out.
    fn parse(text: &str) -> Doc {
        let mut doc = Doc::default();
        let (head, body) = match text.find("\n## ") {
            Some(i) => text.split_at(i + 1),
            None => (text, ""),
        };
        let runs = head.find("Measured on").map_or("", |i| &head[i..]);
        let runs = runs.find("The lab of [bench.md]").map_or(runs, |i| &runs[..i]);
        for run in runs.split_inclusive("\n\n").fold(Vec::<String>::new(), |mut acc, para| {
            match acc.last_mut() {
                Some(last) if !para.starts_with("Measured on") => last.push_str(para),
                _ => acc.push(para.to_string()),
            }
            acc
        }) {
            doc.runs.push((peers_of_command(&run), run));
        }
        let mut sections: Vec<&str> = Vec::new();
        let mut rest = body;
        while let Some(next) = rest[1.min(rest.len())..].find("\n## ") {
            let (section, tail) = rest.split_at(next + 2);
            sections.push(section);
            rest = tail;
        }
        sections.push(rest);
        for section in sections.into_iter().filter(|s| s.starts_with("## ")) {
            let title = &section[3..];
            if title.starts_with("Idle cost") {
                for line in section.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| system |")) {
                    if let Some(p) = peer_of(&line[2..]) {
                        doc.cost.push((p, line.to_string()));
                    }
                }
            } else if let Some(p) = peer_of(title) {
                doc.sections.push((p, section.to_string()));
            }
        }
        doc
    }

    /// `new` with what `self` (the document as it was) has of the peers
    /// `new` did not measure.
    fn merge(self, new: Doc) -> Doc {
        let measured: Vec<Phase> = new.runs.iter().flat_map(|(p, _)| p.clone()).collect();
        let kept = |p: &Phase| !measured.contains(p);
        let mut runs: Vec<(Vec<Phase>, String)> =
            self.runs.into_iter().filter(|(peers, _)| peers.iter().any(kept)).collect();
        runs.extend(new.runs);
        let pick = |old: Vec<(Phase, String)>, new: Vec<(Phase, String)>| -> Vec<(Phase, String)> {
            let mut all: Vec<(Phase, String)> = old.into_iter().filter(|(p, _)| kept(p)).chain(new).collect();
            all.sort_by_key(|(p, _)| PEERS.iter().position(|q| q == p));
            all
        };
        Doc { runs, sections: pick(self.sections, new.sections), cost: pick(self.cost, new.cost) }
    }

    fn render(&self, cost_seconds: u64) -> String {
        let mut md = TITLE.to_string();
        for (_, run) in &self.runs {
            md.push_str(run);
        }
        md.push_str(LAB);
        for (_, section) in &self.sections {
            md.push_str(section);
        }
        if !self.cost.is_empty() {
            let _ = writeln!(
                md,
                "## Idle cost\n\nThree nodes at the default settings, the address held, nothing happening, {cost_seconds} \
                 s. CPU is utime + stime of the peer's daemons (Pacemaker: corosync, pacemakerd, pacemaker-based, \
                 -fenced, -execd, -attrd, -schedulerd, -controld; ucarp: ucarp; vip-manager: vip-manager, the etcd \
                 member and the leader loop, with the `etcdctl` and `sleep` the loop ran and waited for within the \
                 window) over the window, as % of one core; memory is their resident set (VmRSS) and proportional \
                 set (PSS) at the end. A machine's systemd, journald and dbus, the web server and the fence agent \
                 are not counted.\n\n\
                 | system | CPU per node (mean) | RSS per node (mean) | PSS per node (mean) | each node |\n\
                 |---|---|---|---|---|"
            );
            for (_, row) in &self.cost {
                let _ = writeln!(md, "{row}");
            }
            md.push('\n');
        }
        md.push_str(
            "## Not measured here yet\n\nvip-manager behind a real Patroni (its members' health checks before it \
             takes the key) and on Consul.\n",
        );
        md
    }
}

/// This run's parts of the document.
fn document(args: &BenchArgs, measured: &Measured, load_before: &str, load_after: &str) -> Doc {
    let now = baton_agent::events::timestamp(baton_agent::events::now_ms());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut peers = Vec::new();
    let mut doc = Doc::default();
    if let Some(rows) = measured.pacemaker {
        peers.push(Phase::Pacemaker);
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## Pacemaker+Corosync\n\nEach node is a whole machine (systemd-nspawn, booted from a \
             Debian root with those packages installed by apt-get) in its network namespace. Corosync runs knet \
             with one knet link per lab link, encrypted (aes256/sha256), as `pcs cluster setup` writes it. The \
             cluster, configured with pcs in one CIB push: `stonith-enabled=true`, `no-quorum-policy=stop`, a \
             stonith device `fence_lab` for every node, and the group `web` of `ocf:heartbeat:IPaddr2` (the \
             address) and `systemd:lab-web` (the lab's web server), monitors every 10 s; everything else at \
             Pacemaker's defaults (`stonith-action=reboot`, no stickiness, no location preference). `fence_lab` is \
             a fence-agents-style agent in every machine that asks the lab's power switch, a small server the lab \
             runs on the host side with its socket on a management network the lab never cuts (10.87.0.254:7079, \
             password-checked), to power a node \
             off: its links cut and every process of its machine killed; `on` brings the links back but does not \
             boot the machine.\n\nThe fault: the owner's machine powered off from the host (its links cut, every \
             process in it killed at once). Pacemaker recovers only after fencing the lost node; the last column \
             counts the trials in which the power switch logged Pacemaker's fencing of the old owner, with the \
             right password.\n"
        );
        crash_table(&mut md, &PACEMAKER, rows, true);
        md.push_str(
            "Debian ships corosync.conf without a token, so corosync's own default applies: 3000 ms plus \
             `token_coefficient` (650 ms) per node above two, consensus 1.2 × token. Tuned: corosync.conf(5) gives \
             no lower bound for the token; 1000 ms is the default corosync 2 and pcs on RHEL 7 and 8 shipped (Red \
             Hat raised it to 3000 ms in RHEL 8.4 because 1 s caused failovers on networks with latency), \
             `token_coefficient: 0` removes the per-node addition, and consensus is at the minimum the manual \
             states, 1.2 × token.\n\n",
        );
        let what = "the owner's corosync (its main process; Pacemaker's daemons there lose their cluster layer)";
        dual_table(&mut md, &PACEMAKER, rows, what, "20 s");
        move_table(&mut md, &PACEMAKER, rows, "`pcs resource move web` on the owner (it bans the group from the node it runs on and lifts the ban once it runs elsewhere)");
        quiet_table(&mut md, &PACEMAKER, rows, args.quiet_minutes);
        doc.sections.push((Phase::Pacemaker, md));
        doc.cost.extend(cost_rows(&PACEMAKER, rows).into_iter().map(|r| (Phase::Pacemaker, r)));
    }
    if let Some(rows) = measured.ucarp {
        peers.push(Phase::Ucarp);
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## ucarp\n\nEach node runs ucarp in its network namespace (CARP on link 0, vhid 51, \
             `-z` as Debian's `if-up.d/ucarp` starts it) with up and down scripts that add and remove the address \
             (`ip addr add|del \"$2\"/24 dev \"$1\"`, as Debian's example scripts), and the web server always \
             running, as keepalived's lab does. The fault: the owner's ucarp SIGKILLed and its links cut. ucarp's \
             advbase is whole seconds (1 is the shortest whole one), so tuned lowers `--deadratio` (intervals \
             without an advertisement before a backup takes over) from 3 to 1. Not in the table: advbase 0 with \
             skews of about 0.1/0.2/0.3 s (sub-second adverts, which CARP allows and ucarp's manual does not \
             mention) — in the lab two or three nodes held the address at once before any fault, so its trials \
             measure the client's ARP cache, not a failover; every trial here first checks that one node alone \
             holds the address. So that the faults fall evenly over the advertisement cycle, trial i of n waits \
             (i + ½)/n × advbase longer before its fault.\n"
        );
        crash_table(&mut md, &UCARP, rows, false);
        dual_table(&mut md, &UCARP, rows, "the owner's ucarp (with the scripts it runs)", "8 s");
        let how = "SIGUSR2 to the owner's ucarp, which demotes a master to backup (ucarp(8): it then pauses 3 s \
                   before it listens for masters again); the trial waits (i + ½)/n × advbase before it";
        move_table(&mut md, &UCARP, rows, how);
        quiet_table(&mut md, &UCARP, rows, args.quiet_minutes);
        doc.sections.push((Phase::Ucarp, md));
        doc.cost.extend(cost_rows(&UCARP, rows).into_iter().map(|r| (Phase::Ucarp, r)));
    }
    if let Some(rows) = measured.vip_manager {
        peers.push(Phase::VipManager);
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## vip-manager\n\nEach node runs, in its network namespace, an etcd member (the three \
             members one cluster on link 0, at etcd's default heartbeat of 100 ms and election timeout of 1000 ms, \
             with the v2 API on, which vip-manager 1.0 reads), vip-manager (the address on eth0 with netmask 24, \
             `trigger-key /service/lab/leader`, the node's name as `trigger-value`, `dcs-type etcd`, its own \
             member as the endpoint) and the web server always running, as keepalived's lab does. vip-manager \
             only follows the key: it holds the address while the key's value is its node's name. In a Patroni \
             cluster Patroni writes the key, and this lab has no Patroni, so a small loop per node (a shell script \
             with `etcdctl`, the lab's `vip-manager-leader`) keeps it as Patroni keeps its leader key: created \
             only if absent, with a TTL (`etcdctl mk --ttl`), refreshed by its holder every loop_wait seconds \
             only while the value is still its own (`etcdctl set --swap-with-value`), watched by the others, who \
             race to create it once it is gone. Patroni also asks its members before it takes the key (is this \
             the healthiest one?), which the loop does not, so with Patroni a failover takes as long as here or \
             longer. The fault: the owner's vip-manager, etcd member and loop SIGKILLed at once and its links \
             cut; the key then lives until its TTL runs out counted from its last refresh, so the outage is \
             between TTL − loop_wait and TTL, plus up to one vip-manager interval. So that the faults fall \
             evenly over the refresh cycle, trial i of n waits (i + ½)/n × loop_wait longer before its fault.\n"
        );
        crash_table(&mut md, &VIP_MANAGER, rows, false);
        let window = "the key's TTL, one vip-manager interval and 5 s more (so that another node's takeover falls \
                      inside)";
        dual_table(&mut md, &VIP_MANAGER, rows, "the owner's vip-manager, etcd member and leader loop", window);
        let how = "the leader key handed from the owner to the next node in one compare-and-swap (`etcdctl set \
                   --swap-with-value`, with the key's TTL), as a Patroni switchover to a named candidate ends; \
                   the next node's loop finds its name there and keeps the key, the owner's next refresh fails";
        move_table(&mut md, &VIP_MANAGER, rows, how);
        quiet_table(&mut md, &VIP_MANAGER, rows, args.quiet_minutes);
        md.push_str(
            "Defaults: vip-manager's own interval (1000 ms) and Patroni's defaults for the key (ttl 30 s, \
             loop_wait 10 s). Tuned to Patroni's minimums: its documentation's smallest ttl (20 s) and loop_wait \
             (1 s), which with retry_timeout at its smallest (3 s) keep its rule loop_wait + 2 × retry_timeout ≤ \
             ttl, and vip-manager's interval at 100 ms (its documentation names no lower bound). Below Patroni's \
             minimum: what vip-manager and a key with a TTL allow when something other than Patroni writes it, a \
             3 s TTL refreshed every second (etcd's v2 TTLs are whole seconds).\n\n",
        );
        doc.sections.push((Phase::VipManager, md));
        doc.cost.extend(cost_rows(&VIP_MANAGER, rows).into_iter().map(|r| (Phase::VipManager, r)));
    }
    let run = format!(
        "Measured on {now} by\n\n```sh\n{}\n```\n\n{cores} cores, Linux {}; load average {load_before} at the start \
         and {load_after} at the end (this machine may be shared with other work while it runs, which slows what \
         it measures). {}.\n\n",
        command(args),
        kernel.trim(),
        measured.versions()
    );
    doc.runs.push((peers, run));
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(peers: &[Phase], tag: &str) -> (Vec<Phase>, String) {
        let only: Vec<String> = peers.iter().map(|&p| phase_name(p)).collect();
        (
            peers.to_vec(),
            format!(
                "Measured on {tag} by\n\n```sh\nlab bench --only {} --trials 1\n```\n\n2 cores.\n\n",
                only.join(",")
            ),
        )
    }

    fn doc(peers: &[Phase], tag: &str) -> Doc {
        Doc {
            runs: vec![run(peers, tag)],
            sections: peers
                .iter()
                .map(|&p| {
                    (p, format!("## {}: crash failover\n\n{tag} text\n\n| a | b |\n|---|---|\n\n", phase_title(p)))
                })
                .collect(),
            cost: peers.iter().map(|&p| (p, format!("| {}, defaults | {tag} | – | – | – |", phase_title(p)))).collect(),
        }
    }

    fn phase_title(p: Phase) -> &'static str {
        match p {
            Phase::Pacemaker => "Pacemaker+Corosync",
            Phase::Ucarp => "ucarp",
            _ => "vip-manager",
        }
    }

    #[test]
    fn a_rendered_document_parses_back_into_its_parts() {
        let d = doc(&[Phase::Pacemaker, Phase::Ucarp], "old");
        assert_eq!(Doc::parse(&d.render(60)), d);
    }

    #[test]
    fn a_run_of_one_peer_keeps_the_others_and_their_run() {
        let old = Doc::parse(&doc(&[Phase::Pacemaker, Phase::Ucarp], "old").render(60));
        let merged = old.merge(doc(&[Phase::VipManager], "new"));
        let text = merged.render(60);
        assert_eq!(merged.runs.len(), 2, "{text}");
        assert_eq!(merged.sections.iter().map(|(p, _)| *p).collect::<Vec<_>>(), PEERS, "{text}");
        assert_eq!(merged.cost.iter().map(|(p, _)| *p).collect::<Vec<_>>(), PEERS, "{text}");
        assert!(text.contains("Measured on old") && text.contains("Measured on new"), "{text}");
    }

    #[test]
    fn a_run_of_a_peer_replaces_its_parts_and_drops_a_run_it_wholly_replaces() {
        let old = Doc::parse(&doc(&[Phase::Ucarp], "OLDRUN").render(60));
        let merged = old.merge(doc(&[Phase::Ucarp, Phase::VipManager], "new"));
        let text = merged.render(60);
        assert!(!text.contains("OLDRUN"), "{text}");
        assert_eq!(merged.sections.len(), 2, "{text}");
    }

    #[test]
    fn a_run_of_vip_manager_on_the_real_document_keeps_pacemaker_and_ucarp() {
        let text = include_str!("../../../../docs/bench-peers.md");
        let old = Doc::parse(text);
        // Every peer's numbers come from a run the document names.
        assert!(PEERS.iter().all(|p| old.runs.iter().any(|(ps, _)| ps.contains(p))), "{:?}", old.runs);
        assert_eq!(old.sections.iter().map(|(p, _)| *p).collect::<Vec<_>>(), PEERS);
        assert_eq!(old.cost.iter().map(|(p, _)| *p).collect::<Vec<_>>(), PEERS);
        assert_eq!(old.render(60), text, "the document is not what the generator writes");
        let merged = Doc::parse(text).merge(doc(&[Phase::VipManager], "new"));
        for (p, kept) in [Phase::Pacemaker, Phase::Ucarp].map(|p| (p, merged.sections.iter().find(|(q, _)| *q == p))) {
            assert_eq!(kept, old.sections.iter().find(|(q, _)| *q == p), "{p:?}'s section changed");
        }
        assert_eq!(merged.cost[..2], old.cost[..2]);
        assert!(merged.runs.last().is_some_and(|(_, r)| r.starts_with("Measured on new")));
        assert!(merged.runs.iter().any(|(ps, _)| ps.contains(&Phase::Pacemaker)));
    }

    #[test]
    fn a_dual_ownership_trial_outlasts_the_peer_s_takeover() {
        assert_eq!(dual_window(&VIP_MANAGER[0]), Duration::from_secs(36), "ttl 30 s, interval 1 s, 5 s");
        assert_eq!(dual_window(&VIP_MANAGER[2]), Duration::from_millis(8100), "ttl 3 s");
        assert_eq!(dual_window(&UCARP[1]), Duration::from_secs(8));
        assert_eq!(dual_window(&PACEMAKER[0]), Duration::from_secs(20));
    }

    #[test]
    fn faults_fall_evenly_over_each_peer_s_own_cycle_and_pacemaker_s_come_at_once() {
        let phases = |peer: &Peer| -> Vec<u128> { (0..4).map(|i| phase(peer, i, 4).as_millis()).collect() };
        assert_eq!(phases(&VIP_MANAGER[0]), [1250, 3750, 6250, 8750]);
        assert_eq!(phases(&UCARP[0]), [125, 375, 625, 875], "advbase 1 s");
        assert_eq!(phase(&PACEMAKER[0], 3, 4), Duration::ZERO);
    }

    #[test]
    fn a_command_names_its_peers() {
        assert_eq!(peers_of_command("lab bench --only pacemaker,ucarp --trials 20"), [Phase::Pacemaker, Phase::Ucarp]);
        assert_eq!(peers_of_command("lab bench --only vip-manager"), [Phase::VipManager]);
        assert_eq!(peers_of_command("lab bench --trials 20"), PEERS);
    }
}
