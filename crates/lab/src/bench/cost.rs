//! What a node's HA daemon costs when nothing happens: CPU time over a
//! window and resident memory at its end, summed over the daemon's
//! processes in the node's namespace (baton: agent and guard; keepalived:
//! parent and VRRP child). Memory both as the resident set (which counts
//! pages shared between processes, such as the program's code, in each) and
//! as the proportional set (which divides them). The lab's web server is the service, not the
//! daemon, and is left out.

use std::process::Command;
use std::time::Duration;

use crate::net::Lab;

pub struct Cost {
    /// Per node: (name, % of one core, resident KiB, proportional KiB,
    /// processes counted).
    pub nodes: Vec<(String, f64, u64, u64, usize)>,
}

impl Cost {
    pub fn mean_cpu(&self) -> f64 {
        self.nodes.iter().map(|n| n.1).sum::<f64>() / self.nodes.len().max(1) as f64
    }

    pub fn mean_rss_kib(&self) -> u64 {
        self.nodes.iter().map(|n| n.2).sum::<u64>() / self.nodes.len().max(1) as u64
    }

    pub fn mean_pss_kib(&self) -> u64 {
        self.nodes.iter().map(|n| n.3).sum::<u64>() / self.nodes.len().max(1) as u64
    }
}

/// One row of an idle-cost table (`| system | CPU | RSS | PSS | each node |`):
/// the means, then every node's own numbers; a system whose run failed says so.
pub fn row(system: &str, cost: Option<&Cost>) -> String {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let Some(c) = cost else { return format!("| {system} | failed to run | – | – | – |") };
    let each: Vec<String> = c
        .nodes
        .iter()
        .map(|(n, cpu, rss, pss, procs)| {
            format!("{n}: {cpu:.2} %, RSS {:.1} MiB, PSS {:.1} MiB ({procs} processes)", mib(*rss), mib(*pss))
        })
        .collect();
    format!(
        "| {system} | {:.2} % | {:.1} MiB | {:.1} MiB | {} |",
        c.mean_cpu(),
        mib(c.mean_rss_kib()),
        mib(c.mean_pss_kib()),
        each.join("; ")
    )
}

fn daemon_pids(ns: &str, holder: Option<u32>) -> Vec<u32> {
    let out = Command::new("ip").args(["netns", "pids", ns]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&pid| Some(pid) != holder)
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            !args.iter().any(|a| *a == b"serve".as_slice())
        })
        .collect()
}

/// utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat).
fn cpu_ticks(pid: u32) -> Option<u64> {
    ticks(pid, false)
}

/// utime + stime, and with `reaped` cutime + cstime too (fields 16 and 17:
/// the children it has waited for), in clock ticks.
fn ticks(pid: u32, reaped: bool) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let own = field(11)? + field(12)?;
    Some(if reaped { own + field(13)? + field(14)? } else { own })
}

/// A `Key:   123 kB` line of a /proc file.
fn kib(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// The processes in namespace `ns` whose program is one of `programs`
/// (by the name of the file run, as /proc/PID/cmdline says).
pub fn programs_in(ns: &str, programs: &[&str]) -> Vec<u32> {
    let out = Command::new("ip").args(["netns", "pids", ns]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            let name = argv0.rsplit(|b| *b == b'/').next().unwrap_or_default();
            programs.iter().any(|p| p.as_bytes() == name)
        })
        .collect()
}

/// Measures every node of a settled lab over `window`: baton's or
/// keepalived's processes (all in the node but the service and the lab's).
pub fn idle(lab: &Lab, window: Duration) -> Result<Cost, String> {
    idle_of(lab, window, |node| Ok(daemon_pids(&lab.ns(node)?, lab.holders.get(node).copied())))
}

/// Measures, on every node over `window`, a daemon that forks short-lived
/// helpers (vip-manager's leader loop and its `etcdctl` and `sleep`): the
/// CPU of the processes `pids` names at the start, with that of the
/// children the processes `reaper` picks waited for within the window (a
/// helper that ran only inside the window counts through its parent); the
/// memory of the processes `pids` names at the end.
pub fn idle_with_helpers(
    lab: &Lab,
    window: Duration,
    pids: impl Fn(&str) -> Result<Vec<u32>, String>,
    reaper: impl Fn(u32) -> bool,
) -> Result<Cost, String> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let sum = |pids: &[u32]| -> u64 { pids.iter().filter_map(|&p| ticks(p, reaper(p))).sum() };
    let mut before = Vec::new();
    for node in &lab.nodes {
        let pids = pids(node)?;
        if pids.is_empty() {
            return Err(format!("no daemon runs on {node}"));
        }
        before.push((node.clone(), sum(&pids), pids));
    }
    std::thread::sleep(window);
    let mut nodes = Vec::new();
    for (node, ticks_before, started) in before {
        let cpu = sum(&started).saturating_sub(ticks_before) as f64 / hz / window.as_secs_f64() * 100.0;
        let now = pids(&node)?;
        let rss: u64 = now.iter().filter_map(|&p| kib(&format!("/proc/{p}/status"), "VmRSS:")).sum();
        let pss: u64 = now.iter().filter_map(|&p| kib(&format!("/proc/{p}/smaps_rollup"), "Pss:")).sum();
        nodes.push((node, cpu, rss, pss, now.len()));
    }
    Ok(Cost { nodes })
}

/// Measures the processes `pids` names on every node over `window`.
pub fn idle_of(lab: &Lab, window: Duration, pids: impl Fn(&str) -> Result<Vec<u32>, String>) -> Result<Cost, String> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut before = Vec::new();
    for node in &lab.nodes {
        let pids = pids(node)?;
        if pids.is_empty() {
            return Err(format!("no daemon runs on {node}"));
        }
        let ticks: u64 = pids.iter().filter_map(|&p| cpu_ticks(p)).sum();
        before.push((node.clone(), pids, ticks));
    }
    std::thread::sleep(window);
    let mut nodes = Vec::new();
    for (node, pids, ticks) in before {
        let after: u64 = pids.iter().filter_map(|&p| cpu_ticks(p)).sum();
        let rss: u64 = pids.iter().filter_map(|&p| kib(&format!("/proc/{p}/status"), "VmRSS:")).sum();
        let pss: u64 = pids.iter().filter_map(|&p| kib(&format!("/proc/{p}/smaps_rollup"), "Pss:")).sum();
        let cpu = (after.saturating_sub(ticks)) as f64 / hz / window.as_secs_f64() * 100.0;
        nodes.push((node, cpu, rss, pss, pids.len()));
    }
    Ok(Cost { nodes })
}
