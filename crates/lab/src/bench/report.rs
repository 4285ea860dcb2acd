//! `docs/bench.md`: the machine, the date, the command, the versions, and a
//! table per measurement.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use baton_sim::scale::ScaleReport;

use super::{BenchArgs, Phase, Row, System};

/// The value at quantile `q` of sorted `v` (nearest rank).
pub(super) fn quantile(v: &[u64], q: f64) -> u64 {
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

/// How the measured `baton` was linked, as `ldd` says: the package's build
/// (scripts/build-static) maps less of the C library than `cargo build`'s.
fn linkage() -> String {
    let exe = crate::baton_exe();
    let said = match Command::new("ldd").arg(&exe).output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Err(e) => return format!("its linking not known (ldd {}: {e})", exe.display()),
    };
    if said == "statically linked" {
        "linked statically as the package ships it (scripts/build-static)".into()
    } else if said.contains("libc.so") {
        "linked dynamically (`cargo build --release`; the package links statically: docs/footprint.md)".into()
    } else {
        format!("its linking not known (ldd {} said {said:?})", exe.display())
    }
}

fn ratio(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
        _ => "–".into(),
    }
}

/// A median/p95/max table, with the ratios of baton to keepalived.
fn outage_table(md: &mut String, systems: &[System], rows: &[Row], pick: fn(&Row) -> (&[u64], usize)) {
    let medians = medians_table(md, systems, rows, pick);
    // Each baton setting against keepalived's: the defaults against its
    // defaults, every shorter setting against its tuned one.
    let keepalived = |advert: &str| systems.iter().position(|s| s.keepalived == Some(advert));
    let ratios: Vec<String> = systems
        .iter()
        .enumerate()
        .filter(|(_, s)| s.keepalived.is_none())
        .map(|(i, s)| {
            let versus = if s.default { keepalived("1") } else { keepalived("0.1") };
            let label = s.name.split(" (").next().unwrap_or(s.name).trim_start_matches("baton, ");
            format!("{label} {}", ratio(medians[i], versus.and_then(|k| medians[k])))
        })
        .collect();
    let _ = writeln!(md, "\nMedian ratio baton / keepalived: {}.\n", ratios.join("; "));
}

/// How long the address was on no node in each planned move of the
/// address alone, where it was watched.
fn gap_table(md: &mut String, systems: &[System], rows: &[Row]) {
    if rows.iter().all(|r| r.move_gaps_us.is_empty()) {
        return;
    }
    let _ = writeln!(
        md,
        "Beneath the client's 10 ms probes: in each of those moves of the address alone, the time from the old \
         holder's delete of the address to the next holder's add (every node's addresses watched by one monitor, \
         `ip -ts monitor address all-nsid`, so in the order the kernel made the changes). Negative: the next \
         holder added the address before the old one deleted it, and both held it that long.\n\n\
         | system | moves | median | shortest | longest | moves with two holders |\n|---|---|---|---|---|---|"
    );
    for (system, row) in systems.iter().zip(rows).filter(|(_, r)| !r.move_gaps_us.is_empty()) {
        let g = &row.move_gaps_us;
        let (median, both) = (g[(g.len() - 1) / 2], g.iter().filter(|&&v| v < 0).count());
        let _ = writeln!(
            md,
            "| {} | {} | {median} µs | {} µs | {} µs | {both} |",
            system.name,
            g.len(),
            g[0],
            g[g.len() - 1]
        );
    }
    md.push('\n');
}

/// A median/p95/max table; returns the medians.
fn medians_table(
    md: &mut String,
    systems: &[System],
    rows: &[Row],
    pick: fn(&Row) -> (&[u64], usize),
) -> Vec<Option<u64>> {
    let _ = writeln!(md, "| system | trials | median | p95 | max |\n|---|---|---|---|---|");
    let mut medians = Vec::new();
    for (system, row) in systems.iter().zip(rows) {
        let (v, failed) = pick(row);
        medians.push((!v.is_empty()).then(|| quantile(v, 0.5)));
        let _ = writeln!(md, "| {} | {} |", system.name, outage_cells(v, failed));
    }
    medians
}

/// The cells of an outage row: trials (and how many failed), median, p95
/// and max of the sorted `outages`.
pub(super) fn outage_cells(outages: &[u64], failed: usize) -> String {
    let failed = if failed == 0 { String::new() } else { format!(" ({failed} failed)") };
    match outages.last() {
        Some(max) => format!(
            "{}{failed} | {} ms | {} ms | {max} ms",
            outages.len(),
            quantile(outages, 0.5),
            quantile(outages, 0.95)
        ),
        None => format!("0{failed} | – | – | –"),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(super) fn list(v: &[u64]) -> String {
    if v.is_empty() {
        return "–".into();
    }
    v.iter().map(|d| format!("{d} ms")).collect::<Vec<_>>().join(", ")
}

fn command(args: &BenchArgs) -> String {
    let mut c = format!(
        "cargo run --release -- lab bench --trials {} --pacemaker-trials {} --move-trials {} --pair-trials {} \
         --nfs-trials {} --dual-trials {} --quiet-minutes {} --cost-seconds {}",
        args.trials,
        args.pacemaker_trials,
        args.move_trials,
        args.pair_trials,
        args.nfs_trials,
        args.dual_trials,
        args.quiet_minutes,
        args.cost_seconds
    );
    if !args.only.is_empty() {
        let only: Vec<String> = args.only.iter().map(|&p| super::peers::phase_name(p)).collect();
        c += &format!(" --only {}", only.join(","));
    }
    for system in &args.systems {
        c += &format!(" --system {system:?}");
    }
    c
}

/// The simulator's scale run and the lab's, where measured.
pub type Scales<'a> = (Option<&'a Result<ScaleReport, String>>, Option<&'a Result<super::scale::Scale, String>>);

pub fn markdown(
    args: &BenchArgs,
    (systems, rows): (&[System], &[Row]),
    (pairs, pair_rows): (&[System], &[Row]),
    nfs: Option<&Row>,
    (scale, lab_scale): Scales<'_>,
    side: &str,
    chart: &Path,
) -> String {
    let on = |p: Phase| args.only.is_empty() || args.only.contains(&p);
    let mut md = String::new();
    let now = baton_agent::events::timestamp(baton_agent::events::now_ms());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map_or_else(|_| "unknown".to_string(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Measured on {now} by\n\n```sh\n{}\n```\n\n{cores} cores ({cpu}), Linux {}, baton {} (commit {rev}, {}), {}, {}.\n\n\
         Every trial builds a fresh lab: three nodes on two links, each a network namespace, the address \
         10.88.0.100 and a tiny web server answering with its node's name; baton and keepalived run on the same \
         nodes, links, address, web server and client.\n",
        command(args),
        kernel.trim(),
        env!("CARGO_PKG_VERSION"),
        linkage(),
        version("keepalived", "--version"),
        version("stress-ng", "--version"),
    );
    if !side.is_empty() {
        let _ = writeln!(
            md,
            "## Every system side by side\n\nbaton, keepalived and those peers of [bench-peers.md](bench-peers.md) \
             measured in this run, each at its defaults and at its fastest other setting (the one with the \
             shortest crash-failover median); the sections below and bench-peers.md have every setting and trial. \
             The last column is baton's figure over the best of the others on that row (lower is better on every \
             row).\n\n{side}"
        );
    }
    if on(Phase::Crash) {
        let _ = writeln!(
            md,
            "## Crash failover\n\nThe owner's daemon is killed with SIGKILL and its links are cut; a client in its \
             own namespace fetches the service address over HTTP every 10 ms; the outage is the time from the old \
             owner's last answer to the first answer from another node. Every trial: [{}]({}).\n",
            chart.file_name().map_or(String::new(), |f| f.to_string_lossy().into()),
            chart.file_name().map_or(String::new(), |f| f.to_string_lossy().into()),
        );
        outage_table(&mut md, systems, rows, |r| (&r.crash, r.crash_failed));
    }
    if on(Phase::Pair) {
        let _ = writeln!(
            md,
            "## Two servers, no witness: crash failover\n\nTwo nodes and a fence device for each (two-node mode), \
             the same trial as above: alpha's agent SIGKILLed and its links cut; beta hears nothing for the lease, \
             fences alpha (the lab's device for alpha waits 2 s first, so that of two live servers split apart \
             beta goes first), and only once the device confirms alpha off does it go on alone and start web. \
             Power: the lab's power switch (links down, every process of the node killed). Fence disk: a pill in \
             alpha's slot of a 1 MiB shared disk, counted after msgwait (2 s). keepalived has no equivalent.\n"
        );
        medians_table(&mut md, pairs, pair_rows, |r| (&r.crash, r.crash_failed));
        md.push('\n');
    }
    if let Some(row) = nfs {
        let _ = writeln!(
            md,
            "## An NFS client through a failover and a move\n\n`web` with the lab's shared disk (ext4 on a loop \
             device) and an NFS server for it: nfs-ganesha (`server = \"ganesha\"`, NFSv4, grace {}), bound to the \
             service address, its client records on the disk. The lab's NFS client looks a file up once, then \
             writes a record and reads the whole file back by that same handle every 100 ms; the pause is the time \
             from its last good round before the fault to its first good round after, on the new server. Crash: \
             the owner's agent SIGKILLed and its links cut; move: `baton move web` 7 s later. Every trial also \
             checks that every record written reads back. The grace period does not pause this client (reads and \
             writes without open state are served during it); it holds back new locks, which \
             `crates/lab/tests/lab_e2e.rs` (case 35) shows: a lock holder reclaims its lock on each new server \
             and a second client is refused it with NFS4ERR_GRACE meanwhile. keepalived serves no NFS.\n",
            super::nfs::GRACE
        );
        let _ = writeln!(md, "| pause | trials | median | p95 | max |\n|---|---|---|---|---|");
        for (what, v, failed) in
            [("crash failover", &row.crash, row.crash_failed), ("planned move", &row.moves, row.moves_failed)]
        {
            let failed = if failed == 0 { String::new() } else { format!(" ({failed} failed)") };
            match v.last() {
                Some(max) => {
                    let (med, p95) = (quantile(v, 0.5), quantile(v, 0.95));
                    let _ = writeln!(md, "| {what} | {}{failed} | {med} ms | {p95} ms | {max} ms |", v.len());
                }
                None => {
                    let _ = writeln!(md, "| {what} | 0{failed} | – | – | – |");
                }
            }
        }
        md.push('\n');
    }
    if on(Phase::Move) {
        let _ = writeln!(
            md,
            "## Planned move\n\nbaton: `baton move web` on the owner. keepalived: the master's priority lowered \
             below the backups' and its config reloaded (SIGHUP). The outage is measured by the same client.\n"
        );
        outage_table(&mut md, systems, rows, |r| (&r.moves, r.moves_failed));
        if rows.iter().any(|r| !r.moves_bare.is_empty() || r.moves_bare_failed > 0) {
            let _ = writeln!(
                md,
                "The same trial with the address alone in every baton set and the web server running on every \
                 node, as keepalived runs it (above, baton's defaults and tuned settings move the web server too: \
                 stopped on the old owner after the address, started on the new one after it):\n"
            );
            outage_table(&mut md, systems, rows, Row::moves_of_the_address);
        }
        gap_table(&mut md, systems, rows);
    }
    if on(Phase::Dual) {
        let _ = writeln!(
            md,
            "## Dual ownership\n\nEvery add and delete of the service address in every node namespace is recorded, \
             in the order the kernel made them, by one monitor of every node namespace (`ip -ts monitor address \
             all-nsid`) for 8 s after the fault; the time two or more \
             nodes held it at once is added up. (a) the owner's daemon is killed with SIGKILL, its links left up; \
             (b) the owner is partitioned from the other nodes on every link.\n\n\
             | system | (a) after SIGKILL, each trial | (b) under a partition, each trial |\n|---|---|---|"
        );
        for (system, row) in systems.iter().zip(rows) {
            let _ = writeln!(md, "| {} | {} | {} |", system.name, list(&row.dual_kill), list(&row.dual_partition));
        }
        let _ = writeln!(
            md,
            "\nA SIGKILLed keepalived leaves its address configured, and a partitioned keepalived master keeps it \
             while a backup takes it too; baton's guard removes the address when the agent dies, and a \
             partitioned owner gives it up before its lease ends, before anyone else may take it.\n"
        );
    }
    if on(Phase::Quiet) {
        let _ = writeln!(
            md,
            "## False failovers\n\n{} minutes per system with both cores busy (`stress-ng --cpu {cores}`) and 5 % of \
             the packets dropped on every link of every node (nftables `numgen random mod 100 < 5 drop` in each \
             node namespace; this kernel has no netem, so no jitter). No fault is injected: every time a node takes \
             the address is a false failover.\n\n| system | ownership changes | time with two holders |\n|---|---|---|",
            args.quiet_minutes
        );
        for (system, row) in systems.iter().zip(rows) {
            match &row.quiet {
                Some(q) => {
                    let _ = writeln!(md, "| {} | {} | {} ms |", system.name, q.takeovers, q.dual_ms);
                }
                None => {
                    let _ = writeln!(md, "| {} | failed to run | – |", system.name);
                }
            }
        }
        md.push('\n');
    }
    if on(Phase::Cost) {
        let _ = writeln!(
            md,
            "## Idle cost\n\nThree nodes at the default heartbeat, the set running, nothing happening, {} s. CPU is \
             utime + stime of the daemon's processes (baton: agent and guard; keepalived: parent and VRRP child) \
             over the window, as % of one core; memory is their resident set (VmRSS, which counts the C library \
             in every process) and their proportional set (PSS, which divides shared pages among every process \
             mapping them, here across the whole lab) at the end. The web server is the service and the process \
             holding a node's mount namespace is the lab's; neither is counted.\n\n| system | CPU per node (mean) | RSS per node (mean) | PSS per node (mean) | each node |\n|---|---|---|---|---|",
            args.cost_seconds
        );
        for (system, row) in systems.iter().zip(rows).filter(|(s, _)| s.default) {
            let _ = writeln!(md, "{}", super::cost::row(system.name, row.cost.as_ref()));
        }
        md.push('\n');
    }
    if let Some(scale) = scale {
        let _ = writeln!(
            md,
            "## Scale (simulator)\n\n`cargo run --release -p baton-sim -- scale --nodes 32 --sets 1000`: the real \
             decision core on every simulated node, each set preferring three nodes spread over the cluster, one \
             node's machine killed once everything runs. Placement time is the wall time of one placement pass \
             over the whole cluster on this machine; recovery is simulated time; memory is the peak resident set of \
             the whole simulation (all 32 nodes' cores and states).\n"
        );
        match scale {
            Ok(r) => {
                let _ = writeln!(
                    md,
                    "| nodes | sets | placement after the loss | sets lost | all running again (median / max) | peak memory |\n\
                     |---|---|---|---|---|---|\n| {} | {} | {:.0} µs | {} | {} ms / {} ms | {:.1} MiB |\n",
                    r.nodes,
                    r.sets,
                    r.plan_us,
                    r.lost,
                    r.recovered_median_ms,
                    r.recovered_max_ms,
                    mib(r.peak_rss_kib)
                );
            }
            Err(e) => {
                let _ = writeln!(md, "The scale run failed: {e}\n");
            }
        }
    }
    if let Some(lab_scale) = lab_scale {
        lab_scale_section(&mut md, lab_scale);
    }
    md
}

/// The lab at scale: its idle cost and one node's machine lost.
fn lab_scale_section(md: &mut String, run: &Result<super::scale::Scale, String>) {
    use super::scale::{LEASE_MS, NODES, SETS};
    let _ = writeln!(
        md,
        "## Scale (lab)\n\n`--only scale` also brings up {NODES} nodes with {SETS} sets besides `web`, each an \
         address and a program (`/bin/sleep`), preferring three nodes in turn, at the default timing (lease \
         {LEASE_MS} ms). Idle cost is the agent and guard of each node (not the sets' programs) once every set \
         runs. Then one node's machine is lost (its agent SIGKILLed and its links cut at once), and a client \
         sends ICMP echo requests every 20 ms to every address that node held: each set counts as back once an \
         echo request sent after the loss is answered from another node. The target: every set answering within \
         lease + 1 s.\n"
    );
    match run {
        Ok(r) => {
            let back: Vec<u64> = r.answers_ms.iter().flatten().copied().collect();
            let never = r.answers_ms.len() - back.len();
            let within = back.iter().filter(|&&ms| ms <= LEASE_MS + 1000).count();
            let (median, max) = (back.get(back.len() / 2).copied().unwrap_or(0), back.last().copied().unwrap_or(0));
            let mib = |kib: u64| kib as f64 / 1024.0;
            let _ = writeln!(
                md,
                "| nodes | sets | all running, from `lab up` on | idle CPU per node | RSS / PSS per node | node \
                 lost | its sets | answering again (median / max) | within lease + 1 s | never (10 leases) |\n\
                 |---|---|---|---|---|---|---|---|---|---|\n\
                 | {NODES} | {} | {:.1} s | {:.2} % | {:.1} / {:.1} MiB | {} | {} | {median} / {max} ms | {within} of {} \
                 | {never} |\n",
                SETS + 1,
                r.settled_ms as f64 / 1000.0,
                r.cost.mean_cpu(),
                mib(r.cost.mean_rss_kib()),
                mib(r.cost.mean_pss_kib()),
                r.victim,
                r.answers_ms.len(),
                r.answers_ms.len(),
            );
        }
        Err(e) => {
            let _ = writeln!(md, "The lab scale run failed: {e}\n");
        }
    }
}
