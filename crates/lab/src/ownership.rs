//! The ownership record: which node holds which part of a set at each
//! instant, seen from outside the agents, against the owner the cluster
//! agreed on. It watches the property itself, never a mechanism that
//! should bring it about:
//!
//! - the service address: every add and delete in every node, in the
//!   order the kernel made them ([`Watch`]);
//! - the set's processes: any process in a node's network namespace whose
//!   environment names the set (`BATON_SET`), however it was started — a
//!   daemon that double-forked or called `setsid` is still found;
//! - mounts of the set's disk in each node's own mount namespace;
//! - NFS exports in each node's export table.
//!
//! Processes, mounts and exports are sampled every [`SAMPLE`]; the agreed
//! owner is read from every node before and after each sample (the most
//! advanced view, by applied commands, wins). A violation is a moment at
//! which two nodes hold a part of the set, or a node holds a part while
//! the agreed state gives the set to another node (or to nobody) both just
//! before and just after: a view read only before would blame the new
//! owner for starting as soon as the move was agreed. The lab's nodes share one kernel, so nothing here relies on the
//! kernel refusing a second mount: it looks at each node's mounts.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::bench::watch::{Watch, Window};
use crate::net::Lab;

/// How often processes, mounts, exports and the agreed owner are sampled.
pub const SAMPLE: Duration = Duration::from_millis(20);
/// How old the agreed owner may be for a sample to be judged against it.
const FRESH: Duration = Duration::from_millis(150);

/// What of a set to watch besides its address.
#[derive(Clone, Debug, Default)]
pub struct Parts {
    pub set: String,
    /// The block device of the set's `mount` resource.
    pub disk: Option<String>,
    /// The path of the set's `nfs` export.
    pub export: Option<String>,
}

/// The kinds of part, in report order.
const KINDS: [&str; 3] = ["processes", "mount", "export"];

/// One node's share of the set at one sample: processes, mount, export.
type Held = [bool; 3];

#[derive(Default)]
struct Tally {
    samples: u64,
    /// Per kind: samples with two or more nodes holding it.
    dual: [u64; 3],
    /// Per kind: samples with a node holding it against the agreed owner.
    stale: [u64; 3],
    /// The first few violations, described.
    examples: Vec<String>,
}

/// What the sampler shares with its owner while it runs.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Samples that saw a violation so far.
    violations: AtomicU64,
    /// What is being done to the lab now, named in the examples.
    label: Mutex<String>,
}

impl Tally {
    fn note(&mut self, shared: &Shared, what: String) {
        shared.violations.fetch_add(1, Ordering::SeqCst);
        if self.examples.len() < 30 {
            let label = shared.label.lock().map(|l| l.clone()).unwrap_or_default();
            let example = format!("{} ms [{label}]: {what}", wall_ms());
            println!("ownership: {example}");
            self.examples.push(example);
        }
    }
}

pub struct Record {
    address: Option<Watch>,
    shared: Arc<Shared>,
    sampler: Option<JoinHandle<Tally>>,
}

/// What a record saw.
pub struct Verdict {
    pub window: Window,
    /// Milliseconds with two holders of the address (in the kernel's order).
    pub address_dual_ms: u64,
    /// Per kind (processes, mount, export): milliseconds with two holders.
    pub dual_ms: [u64; 3],
    /// Per kind: milliseconds a node held it against the agreed owner.
    pub stale_ms: [u64; 3],
    pub samples: u64,
    pub examples: Vec<String>,
}

impl Verdict {
    /// No moment with two holders of any part, none against the agreed owner.
    pub fn clean(&self) -> bool {
        self.address_dual_ms == 0 && self.dual_ms == [0; 3] && self.stale_ms == [0; 3]
    }

    pub fn summary(&self) -> String {
        let per_kind =
            |v: &[u64; 3]| KINDS.iter().zip(v).map(|(k, ms)| format!("{k} {ms} ms")).collect::<Vec<_>>().join(", ");
        let mut text = format!(
            "time with two holders of the address: {} ms\n\
             time with two holders of a part (sampled every {} ms, {} samples): {}\n\
             time a node held a part the cluster had given to another: {}\n",
            self.address_dual_ms,
            SAMPLE.as_millis(),
            self.samples,
            per_kind(&self.dual_ms),
            per_kind(&self.stale_ms),
        );
        for e in &self.examples {
            text += &format!("  {e}\n");
        }
        text
    }
}

impl Parts {
    /// The parts of the lab's set `web`: with `--disk`, its mount.
    pub fn web(lab: &Lab) -> Parts {
        Parts { set: "web".into(), disk: lab.disk.clone(), export: None }
    }
}

/// What of the set `node` holds right now, named ("address 10.88.0.100",
/// "processes 4242 4243", "mount /dev/loop0", "export /srv"); empty when
/// it holds nothing.
pub fn held_by(lab: &Lab, node: &str, parts: &Parts) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(ns) = lab.ns(node) else { return out };
    let addrs = std::process::Command::new("ip").args(["-n", &ns, "-o", "addr"]).output();
    if addrs.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("{}/", crate::net::VIP))) {
        out.push(format!("address {}", crate::net::VIP));
    }
    let Ok(inode) = netns_inode(&ns) else { return out };
    let pids = pids_of_set(inode, &format!("BATON_SET={}\0", parts.set));
    if !pids.is_empty() {
        out.push(format!("processes {}", pids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")));
    }
    if let Some(&holder) = lab.holders.get(node) {
        let (mounted, exported) = storage(holder, parts);
        if mounted {
            out.push(format!("mount {}", parts.disk.as_deref().unwrap_or("")));
        }
        if exported {
            out.push(format!("export {}", parts.export.as_deref().unwrap_or("")));
        }
    }
    out
}

/// Is the set's disk mounted, its path exported, in the mount namespace of
/// process `holder`?
fn storage(holder: u32, parts: &Parts) -> (bool, bool) {
    let mounted = parts.disk.as_ref().is_some_and(|disk| {
        let info = std::fs::read_to_string(format!("/proc/{holder}/mountinfo")).unwrap_or_default();
        info.lines().any(|l| l.split(" - ").nth(1).and_then(|r| r.split(' ').nth(1)) == Some(disk))
    });
    let exported = parts.export.as_ref().is_some_and(|path| {
        let etab = std::fs::read_to_string(format!("/proc/{holder}/root/var/lib/nfs/etab")).unwrap_or_default();
        etab.lines().any(|l| l.split_whitespace().next() == Some(path))
    });
    (mounted, exported)
}

impl Record {
    /// Starts watching `parts` of a set in every node of `lab`.
    pub fn start(lab: &Lab, parts: Parts) -> Result<Record, String> {
        let address = Watch::start(lab, &lab.nodes[0].clone())?;
        let shared = Arc::new(Shared::default());
        let nodes = lab.nodes.clone();
        let dir = lab.dir.clone();
        let netns: BTreeMap<u64, String> =
            nodes.iter().map(|n| Ok((netns_inode(&lab.ns(n)?)?, n.clone()))).collect::<Result<_, String>>()?;
        let seen = Arc::clone(&shared);
        let sampler = std::thread::spawn(move || sample(&dir, &nodes, &netns, &parts, &seen));
        Ok(Record { address: Some(address), shared, sampler: Some(sampler) })
    }

    /// Names what is done to the lab from now on, for the examples.
    pub fn label(&self, what: String) {
        if let Ok(mut label) = self.shared.label.lock() {
            *label = what;
        }
    }

    /// How many samples have seen a violation so far.
    pub fn violations(&self) -> u64 {
        self.shared.violations.load(Ordering::SeqCst)
    }

    /// Ends the record: `holding` is who held the address when it began.
    pub fn finish(mut self, holding: std::collections::BTreeSet<String>) -> Result<Verdict, String> {
        self.shared.stop.store(true, Ordering::SeqCst);
        let tally = self.sampler.take().expect("started").join().map_err(|_| "the sampler panicked".to_string())?;
        let window = self.address.take().expect("started").finish()?;
        let ms = |n: u64| n * SAMPLE.as_millis() as u64;
        Ok(Verdict {
            address_dual_ms: window.dual_us(holding) / 1000,
            window,
            dual_ms: tally.dual.map(ms),
            stale_ms: tally.stale.map(ms),
            samples: tally.samples,
            examples: tally.examples,
        })
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// The inode of a named network namespace, as `/proc/PID/ns/net` names it.
fn netns_inode(ns: &str) -> Result<u64, String> {
    std::fs::metadata(Path::new("/run/netns").join(ns)).map(|m| m.ino()).map_err(|e| format!("netns {ns}: {e}"))
}

/// Milliseconds since the epoch, for the examples.
fn wall_ms() -> u64 {
    baton_agent::events::now_ms()
}

fn sample(dir: &Path, nodes: &[String], netns: &BTreeMap<u64, String>, parts: &Parts, shared: &Shared) -> Tally {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let mut tally = Tally::default();
    // The agreed owner as read just before the last holdings were taken.
    let mut before: Option<(Instant, Agreed)> = None;
    let marker = format!("BATON_SET={}\0", parts.set);
    while !shared.stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let (holders, pids) = holdings(dir, nodes, netns, parts, &marker);
        let taken = Instant::now();
        // The agreed owner is read on both sides of the holdings: a node
        // may hold a part while either view gives it the set (it is the
        // new owner starting, or the old one releasing, or the target of a
        // direct move starting once the owner released). Judged only when
        // both views exist and the first is fresh.
        let after = rt.block_on(agreed_owner(dir, nodes, &parts.set)).map(|owner| (Instant::now(), owner));
        let views = match (&before, &after) {
            (Some((at, b)), Some((_, a))) if taken.duration_since(*at) <= FRESH => Some((b.clone(), a.clone())),
            _ => None,
        };
        before = after;
        tally.samples += 1;
        for (k, kind) in KINDS.iter().enumerate() {
            let who: Vec<&String> = holders.iter().filter(|(_, h)| h[k]).map(|(n, _)| n).collect();
            if who.len() > 1 && (k != 0 || held_at_once(&pids, &who, &marker)) {
                tally.dual[k] += 1;
                tally.note(shared, format!("{kind} of {} on {} at once{}", parts.set, names(&who), detail(k, &pids)));
            }
            let Some((was, is)) = &views else { continue };
            let owns = |n: &String| was.may_hold(n) || is.may_hold(n);
            let against: Vec<&String> = who.into_iter().filter(|n| !owns(n)).collect();
            if !against.is_empty() {
                tally.stale[k] += 1;
                let agreed = if was == is { String::new() } else { format!("{was}, then ") };
                tally.note(
                    shared,
                    format!(
                        "{kind} of {} on {} while the cluster gives it to {agreed}{}{}",
                        parts.set,
                        names(&against),
                        is,
                        detail(k, &pids)
                    ),
                );
            }
        }
        std::thread::sleep(SAMPLE.saturating_sub(started.elapsed()));
    }
    tally
}

/// Processes of several nodes seen in one pass over `/proc` may be a move
/// seen across it: the old owner's read before it ended, the new owner's
/// (a higher pid, read later) after it began — a direct move leaves well
/// under a millisecond between them. They ran at once only if each of
/// those nodes still has one of them when read twice over: each such
/// process then lived from its first read to its second, so all of them
/// between the two rounds.
fn held_at_once(pids: &[(String, u32)], nodes: &[&String], marker: &str) -> bool {
    let alive = |pid: u32| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.windows(marker.len()).any(|w| w == marker.as_bytes()))
    };
    let first: Vec<&(String, u32)> = pids.iter().filter(|(n, p)| nodes.contains(&n) && alive(*p)).collect();
    let second: Vec<&&(String, u32)> = first.iter().filter(|(_, p)| alive(*p)).collect();
    nodes.iter().all(|n| second.iter().any(|(m, _)| m == *n))
}

/// For processes: which ones, by node, with their command lines and
/// cgroups, so a report says what escaped.
fn detail(kind: usize, pids: &[(String, u32)]) -> String {
    if kind != 0 {
        return String::new();
    }
    let one = |(node, pid): &(String, u32)| {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()).unwrap_or("?").to_string();
        format!("{node}:{pid} `{}` state {state} in {}", cmd.trim(), cgroup.trim())
    };
    format!(" ({})", pids.iter().map(one).collect::<Vec<_>>().join("; "))
}

fn names(nodes: &[&String]) -> String {
    nodes.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" and ")
}

/// Who may hold a set by an agreed view: its owner, and the target of a
/// direct move under way (ARCHITECTURE.md, "A planned move handed over
/// directly").
#[derive(Clone, PartialEq)]
struct Agreed {
    owner: Option<String>,
    target: Option<String>,
}

impl Agreed {
    fn may_hold(&self, node: &String) -> bool {
        self.owner.as_ref() == Some(node) || self.target.as_ref() == Some(node)
    }
}

impl std::fmt::Display for Agreed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.owner.as_deref().unwrap_or("nobody"))?;
        match &self.target {
            Some(t) => write!(f, " (handing it to {t})"),
            None => Ok(()),
        }
    }
}

/// The set's agreed owner (and direct move target) in the most advanced
/// view among the nodes that answer; `None` if no node answered.
async fn agreed_owner(dir: &Path, nodes: &[String], set: &str) -> Option<Agreed> {
    let mut best: Option<(u64, Agreed)> = None;
    for node in nodes {
        let socket = dir.join(node).join("baton.sock");
        let call = baton_agent::api::call(&socket, &baton_agent::api::Request::Status);
        let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_millis(200), call).await else { continue };
        let Some(doc) = resp.data else { continue };
        let applied = doc["applied"].as_u64().unwrap_or(0);
        let Some(rec) = doc["sets"].as_array().into_iter().flatten().find(|s| s["name"] == set) else { continue };
        let owner = rec["owner"].as_str().map(str::to_string);
        let target = rec["moving_to"].as_str().filter(|_| rec["direct_move"] == true).map(str::to_string);
        if best.as_ref().is_none_or(|(a, _)| applied > *a) {
            best = Some((applied, Agreed { owner, target }));
        }
    }
    best.map(|(_, owner)| owner)
}

/// What each node holds now, and the set's processes by node.
fn holdings(
    dir: &Path,
    nodes: &[String],
    netns: &BTreeMap<u64, String>,
    parts: &Parts,
    marker: &str,
) -> (BTreeMap<String, Held>, Vec<(String, u32)>) {
    let mut held: BTreeMap<String, Held> = nodes.iter().map(|n| (n.clone(), [false; 3])).collect();
    let pids = processes_of_set(netns, marker);
    for (node, _) in &pids {
        if let Some(h) = held.get_mut(node) {
            h[0] = true;
        }
    }
    // Mounts and exports: as each node's own mount namespace sees them.
    let holders = Lab::load(dir).map(|l| l.holders).unwrap_or_default();
    for (node, pid) in holders {
        let Some(h) = held.get_mut(&node) else { continue };
        (h[1], h[2]) = storage(pid, parts);
    }
    (held, pids)
}

/// Every process whose network namespace is one of `netns` and whose
/// environment holds `marker`: (pid, network namespace inode).
fn marked_processes(netns: impl Fn(u64) -> bool, marker: &str) -> Vec<(u32, u64)> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for pid in procs.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/net")) else { continue };
        let inode = link.to_string_lossy().trim_start_matches("net:[").trim_end_matches(']').parse::<u64>();
        let Some(inode) = inode.ok().filter(|&i| netns(i)) else { continue };
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            found.push((pid, inode));
        }
    }
    found
}

/// The set's processes: (node, pid).
fn processes_of_set(netns: &BTreeMap<u64, String>, marker: &str) -> Vec<(String, u32)> {
    marked_processes(|i| netns.contains_key(&i), marker).into_iter().map(|(pid, i)| (netns[&i].clone(), pid)).collect()
}

/// The pids of the set's processes in one network namespace.
fn pids_of_set(inode: u64, marker: &str) -> Vec<u32> {
    marked_processes(|i| i == inode, marker).into_iter().map(|(pid, _)| pid).collect()
}
