//! `lab bench --only pacemaker,ucarp`: the peers measured the way baton
//! and keepalived are, on the same links, address, web server and client.
//! Pacemaker+Corosync: crash failover (the owner's machine powered off) at
//! Debian's defaults and at the shortest token corosync's documentation
//! allows, and the idle cost of its daemons. ucarp: crash failover (its
//! process SIGKILLed and its links cut, as keepalived's in bench.md) at
//! Debian's example settings and sub-second, and its idle cost. Written to
//! their own file (`--peers-out`, docs/bench-peers.md) beside bench.md.

use std::fmt::Write as _;
use std::time::Duration;

use super::cost::{self, Cost};
use super::report::quantile;
use super::{BenchArgs, Phase};
use crate::demo::{trial, Disruption};
use crate::net::Lab;
use crate::pacemaker;
use crate::UpArgs;

/// Which peer, with its `lab up` setting.
#[derive(Clone, Copy)]
enum Setup {
    /// `lab up --pacemaker TOKEN`.
    Pacemaker(&'static str),
    /// `lab up --ucarp ADVBASE`.
    Ucarp(&'static str),
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

/// What was measured for one peer setting.
#[derive(Default)]
pub struct PeerRow {
    /// Sorted outages of the crash trials, ms.
    crash: Vec<u64>,
    failed: usize,
    /// Trials in which Pacemaker fenced the old owner through the lab's
    /// power switch before the client was served again.
    fenced: usize,
    /// corosync's token and consensus as they ran (cmap), ms.
    totem: Option<(u64, u64)>,
    cost: Option<Cost>,
}

/// Runs `f` on a fresh Pacemaker lab of `peer` and removes the lab
/// whatever happens.
fn on_lab<T>(args: &BenchArgs, peer: &Peer, f: impl FnOnce(&mut Lab) -> Result<T, String>) -> Result<T, String> {
    let up = UpArgs {
        pacemaker: match peer.setup {
            Setup::Pacemaker(token) => Some(token.into()),
            Setup::Ucarp(_) => None,
        },
        ucarp: match peer.setup {
            Setup::Ucarp(advbase) => Some(advbase.into()),
            Setup::Pacemaker(_) => None,
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

/// What one crash trial measured.
struct Crash {
    outage_ms: u64,
    /// The power switch logged Pacemaker's fencing of the old owner.
    fenced: bool,
    /// corosync's token and consensus (Pacemaker only).
    totem: Option<(u64, u64)>,
}

fn crash(lab: &mut Lab) -> Result<Crash, String> {
    lab.wait_running(Duration::from_secs(60))?;
    steady(lab)?;
    if lab.pacemaker.is_none() {
        let t = trial(lab, Disruption::Crash)?;
        eprintln!("{} -> {}: {} ms", t.first, t.next, t.outage_ms);
        return Ok(Crash { outage_ms: t.outage_ms, fenced: false, totem: None });
    }
    let totem = lab.nodes.first().and_then(|n| totem(lab, n));
    let t = trial(lab, Disruption::Crash)?;
    let log = std::fs::read_to_string(lab.dir.join("fence.log")).unwrap_or_default();
    let fenced = log.lines().any(|l| {
        (l.starts_with("action=reboot ") || l.starts_with("action=off "))
            && l.contains(&format!(" plug={} ", t.first))
            && l.ends_with("password=checked")
    });
    eprintln!("{} -> {}: {} ms, fenced: {fenced}", t.first, t.next, t.outage_ms);
    Ok(Crash { outage_ms: t.outage_ms, fenced, totem })
}

fn measure(args: &BenchArgs, peer: &Peer) -> PeerRow {
    let mut row = PeerRow::default();
    let (trials, programs): (usize, &[&str]) = match peer.setup {
        Setup::Pacemaker(_) => (args.pacemaker_trials, &pacemaker::DAEMONS),
        Setup::Ucarp(_) => (args.trials, &["ucarp"]),
    };
    for i in 0..trials {
        match on_lab(args, peer, crash) {
            Ok(c) => {
                row.crash.push(c.outage_ms);
                row.fenced += usize::from(c.fenced);
                row.totem = row.totem.or(c.totem);
            }
            Err(e) => {
                eprintln!("{}: crash {}: {e}", peer.name, i + 1);
                row.failed += 1;
            }
        }
    }
    row.crash.sort_unstable();
    if peer.default && args.cost_seconds > 0 {
        let window = Duration::from_secs(args.cost_seconds);
        let measured = on_lab(args, peer, |lab| {
            lab.wait_running(Duration::from_secs(60))?;
            std::thread::sleep(Duration::from_secs(5));
            cost::idle_of(lab, window, |node| {
                let pids = cost::programs_in(&lab.ns(node)?, programs);
                if pids.is_empty() {
                    return Err(format!("none of {programs:?} runs on {node}"));
                }
                Ok(pids)
            })
        });
        match measured {
            Ok(c) => row.cost = Some(c),
            Err(e) => eprintln!("{}: cost: {e}", peer.name),
        }
    }
    row
}

/// The machine's load average (1, 5, 15 minutes).
fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let on = |p: Phase| args.only.is_empty() || args.only.contains(&p);
    let load_before = load();
    let pacemaker = on(Phase::Pacemaker)
        .then(|| pacemaker::root().map(|_| PACEMAKER.iter().map(|p| measure(args, p)).collect::<Vec<_>>()))
        .transpose()?;
    let ucarp = on(Phase::Ucarp).then(|| UCARP.iter().map(|p| measure(args, p)).collect::<Vec<_>>());
    let md = markdown(args, pacemaker.as_deref(), ucarp.as_deref(), &load_before, &load());
    if let Some(parent) = args.peers_out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(&args.peers_out, &md).map_err(|e| format!("writing {}: {e}", args.peers_out.display()))?;
    print!("{md}");
    Ok(())
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
    let only: Vec<String> = args.only.iter().map(|p| format!("{p:?}").to_lowercase()).collect();
    format!(
        "cargo run --release -- lab bench --only {} --trials {} --pacemaker-trials {} --cost-seconds {} --prefix {} \
         --dir {} --peers-out {}",
        if only.is_empty() { "pacemaker,ucarp".to_string() } else { only.join(",") },
        args.trials,
        args.pacemaker_trials,
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
        let failed = if row.failed == 0 { String::new() } else { format!(" ({} failed)", row.failed) };
        let cells = match row.crash.last() {
            Some(max) => format!(
                "{}{failed} | {} ms | {} ms | {max} ms",
                row.crash.len(),
                quantile(&row.crash, 0.5),
                quantile(&row.crash, 0.95)
            ),
            None => format!("0{failed} | – | – | –"),
        };
        if pacemaker {
            let totem = row.totem.map_or("–".into(), |(t, c)| format!("{t} ms / {c} ms"));
            let _ = writeln!(md, "| {} | {cells} | {totem} | {} of {} |", peer.name, row.fenced, row.crash.len());
        } else {
            let _ = writeln!(md, "| {} | {cells} |", peer.name);
        }
    }
    md.push('\n');
}

/// The idle-cost rows of the peers' default settings.
fn cost_rows(md: &mut String, peers: &[Peer], rows: &[PeerRow]) {
    for (peer, row) in peers.iter().zip(rows).filter(|(p, _)| p.default) {
        let _ = writeln!(md, "{}", cost::row(peer.name, row.cost.as_ref()));
    }
}

fn markdown(
    args: &BenchArgs,
    pacemaker: Option<&[PeerRow]>,
    ucarp: Option<&[PeerRow]>,
    load_before: &str,
    load_after: &str,
) -> String {
    let mut md = String::new();
    let now = baton_agent::events::timestamp(baton_agent::events::now_ms());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut versions = Vec::new();
    if pacemaker.is_some() {
        versions.push(format!(
            "Debian bookworm's pacemaker {}, corosync {}, libknet1 {}, pcs {}, resource-agents {} (in the machines)",
            pacemaker::version("pacemaker"),
            pacemaker::version("corosync"),
            pacemaker::version("libknet1"),
            pacemaker::version("pcs"),
            pacemaker::version("resource-agents"),
        ));
    }
    if ucarp.is_some() {
        versions.push(format!("Debian's ucarp {} (on the host)", host_package("ucarp")));
    }
    let _ = writeln!(
        md,
        "# Benchmarks: the peers\n\nMeasured on {now} by\n\n```sh\n{}\n```\n\n{cores} cores, Linux {}; load average \
         {load_before} at the start and {load_after} at the end (this machine may be shared with other work while \
         it runs, which slows what it measures). {}.\n\nThe lab of [bench.md](bench.md): three nodes on two links, \
         the address 10.88.0.100, a tiny web server answering with its node's name, and a client in its own \
         namespace that fetches the address over HTTP every 10 ms; the outage is the time from the old owner's \
         last answer to the first answer from another node. Every trial builds a fresh lab.\n",
        command(args),
        kernel.trim(),
        versions.join("; ")
    );
    if let Some(rows) = pacemaker {
        let _ = writeln!(
            md,
            "## Pacemaker+Corosync: crash failover\n\nEach node is a whole machine (systemd-nspawn, booted from a \
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
    }
    if let Some(rows) = ucarp {
        let _ = writeln!(
            md,
            "## ucarp: crash failover\n\nEach node runs ucarp in its network namespace (CARP on link 0, vhid 51, \
             `-z` as Debian's `if-up.d/ucarp` starts it) with up and down scripts that add and remove the address \
             (`ip addr add|del \"$2\"/24 dev \"$1\"`, as Debian's example scripts), and the web server always \
             running, as keepalived's lab does. The fault: the owner's ucarp SIGKILLed and its links cut. ucarp's \
             advbase is whole seconds (1 is the shortest whole one), so tuned lowers `--deadratio` (intervals \
             without an advertisement before a backup takes over) from 3 to 1. Not in the table: advbase 0 with \
             skews of about 0.1/0.2/0.3 s (sub-second adverts, which CARP allows and ucarp's manual does not \
             mention) — in the lab two or three nodes held the address at once before any fault, so its trials \
             measure the client's ARP cache, not a failover; every trial here first checks that one node alone \
             holds the address.\n"
        );
        crash_table(&mut md, &UCARP, rows, false);
    }
    if args.cost_seconds > 0 {
        let _ = writeln!(
            md,
            "## Idle cost\n\nThree nodes at the default settings, the address held, nothing happening, {} s. CPU is \
             utime + stime of the peer's daemons (Pacemaker: corosync, pacemakerd, pacemaker-based, -fenced, \
             -execd, -attrd, -schedulerd, -controld; ucarp: ucarp) over the window, as % of one core; memory is \
             their resident set (VmRSS) and proportional set (PSS) at the end. A machine's systemd, journald and \
             dbus, the web server and the fence agent are not counted.\n\n\
             | system | CPU per node (mean) | RSS per node (mean) | PSS per node (mean) | each node |\n\
             |---|---|---|---|---|",
            args.cost_seconds
        );
        if let Some(rows) = pacemaker {
            cost_rows(&mut md, &PACEMAKER, rows);
        }
        if let Some(rows) = ucarp {
            cost_rows(&mut md, &UCARP, rows);
        }
        md.push('\n');
    }
    md.push_str(
        "## Not measured here yet\n\nPlanned move, dual ownership and false failovers under load for the peers; \
         vip-manager (issue 19).\n",
    );
    md
}
