//! The ownership record: which node holds which part of a set at each
//! instant, seen from outside the agents, against the owner the cluster
//! agreed on. It watches the property itself, never a mechanism that
//! should bring it about:
//!
//! - the service address: every add and delete in every node, with the
//!   kernel's timestamps ([`Watch`]);
//! - the set's processes: any process in a node's network namespace whose
//!   environment names the set (`BATON_SET`), however it was started — a
//!   daemon that double-forked or called `setsid` is still found;
//! - mounts of the set's disk in each node's own mount namespace;
//! - NFS exports in each node's export table.
//!
//! Processes, mounts and exports are sampled every [`SAMPLE`]; the agreed
//! owner is read from every node at each sample (the most advanced view,
//! by applied commands, wins). A violation is a moment at which two nodes
//! hold a part of the set, or a node holds a part while the agreed state,
//! as already seen at that moment, gives the set to another node (or to
//! nobody). The lab's nodes share one kernel, so nothing here relies on the
//! kernel refusing a second mount: it looks at each node's mounts.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

impl Tally {
    fn note(&mut self, what: String) {
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }
}

pub struct Record {
    address: Option<Watch>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<Tally>>,
}

/// What a record saw.
pub struct Verdict {
    pub window: Window,
    /// Milliseconds with two holders of the address (kernel-stamped).
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
        let stop = Arc::new(AtomicBool::new(false));
        let nodes = lab.nodes.clone();
        let dir = lab.dir.clone();
        let netns: BTreeMap<u64, String> =
            nodes.iter().map(|n| Ok((netns_inode(&lab.ns(n)?)?, n.clone()))).collect::<Result<_, String>>()?;
        let halt = Arc::clone(&stop);
        let sampler = std::thread::spawn(move || sample(&dir, &nodes, &netns, &parts, &halt));
        Ok(Record { address: Some(address), stop, sampler: Some(sampler) })
    }

    /// Ends the record: `holding` is who held the address when it began.
    pub fn finish(mut self, holding: std::collections::BTreeSet<String>) -> Result<Verdict, String> {
        self.stop.store(true, Ordering::SeqCst);
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
        self.stop.store(true, Ordering::SeqCst);
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

fn sample(dir: &Path, nodes: &[String], netns: &BTreeMap<u64, String>, parts: &Parts, halt: &AtomicBool) -> Tally {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let mut tally = Tally::default();
    let mut agreed: Option<(Instant, Option<String>)> = None;
    let marker = format!("BATON_SET={}\0", parts.set);
    while !halt.load(Ordering::SeqCst) {
        let started = Instant::now();
        if let Some(owner) = rt.block_on(agreed_owner(dir, nodes, &parts.set)) {
            agreed = Some((Instant::now(), owner));
        }
        let holders = holdings(dir, nodes, netns, parts, &marker);
        tally.samples += 1;
        for (k, kind) in KINDS.iter().enumerate() {
            let who: Vec<&String> = holders.iter().filter(|(_, h)| h[k]).map(|(n, _)| n).collect();
            if who.len() > 1 {
                tally.dual[k] += 1;
                tally.note(format!("{} ms: {kind} of {} on {} at once", wall_ms(), parts.set, names(&who)));
            }
            let Some((at, owner)) = &agreed else { continue };
            if at.elapsed() > FRESH {
                continue;
            }
            let against: Vec<&String> = who.into_iter().filter(|n| Some(*n) != owner.as_ref()).collect();
            if !against.is_empty() {
                tally.stale[k] += 1;
                tally.note(format!(
                    "{} ms: {kind} of {} on {} while the cluster gives it to {}",
                    wall_ms(),
                    parts.set,
                    names(&against),
                    owner.as_deref().unwrap_or("nobody")
                ));
            }
        }
        std::thread::sleep(SAMPLE.saturating_sub(started.elapsed()));
    }
    tally
}

fn names(nodes: &[&String]) -> String {
    nodes.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" and ")
}

/// The set's agreed owner in the most advanced view among the nodes that
/// answer (`None` inside: owned by nobody); `None` if no node answered.
async fn agreed_owner(dir: &Path, nodes: &[String], set: &str) -> Option<Option<String>> {
    let mut best: Option<(u64, Option<String>)> = None;
    for node in nodes {
        let socket = dir.join(node).join("baton.sock");
        let call = baton_agent::api::call(&socket, &baton_agent::api::Request::Status);
        let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_millis(200), call).await else { continue };
        let Some(doc) = resp.data else { continue };
        let applied = doc["applied"].as_u64().unwrap_or(0);
        let Some(rec) = doc["sets"].as_array().into_iter().flatten().find(|s| s["name"] == set) else { continue };
        let owner = rec["owner"].as_str().map(str::to_string);
        if best.as_ref().is_none_or(|(a, _)| applied > *a) {
            best = Some((applied, owner));
        }
    }
    best.map(|(_, owner)| owner)
}

/// What each node holds now.
fn holdings(
    dir: &Path,
    nodes: &[String],
    netns: &BTreeMap<u64, String>,
    parts: &Parts,
    marker: &str,
) -> BTreeMap<String, Held> {
    let mut held: BTreeMap<String, Held> = nodes.iter().map(|n| (n.clone(), [false; 3])).collect();
    for node in processes_of_set(netns, marker) {
        if let Some(h) = held.get_mut(&node) {
            h[0] = true;
        }
    }
    // Mounts and exports: as each node's own mount namespace sees them.
    let holders = Lab::load(dir).map(|l| l.holders).unwrap_or_default();
    for (node, pid) in holders {
        let Some(h) = held.get_mut(&node) else { continue };
        (h[1], h[2]) = storage(pid, parts);
    }
    held
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

/// The nodes on which some process of the set runs (each node once per pid).
fn processes_of_set(netns: &BTreeMap<u64, String>, marker: &str) -> Vec<String> {
    marked_processes(|i| netns.contains_key(&i), marker).into_iter().map(|(_, i)| netns[&i].clone()).collect()
}

/// The pids of the set's processes in one network namespace.
fn pids_of_set(inode: u64, marker: &str) -> Vec<u32> {
    marked_processes(|i| i == inode, marker).into_iter().map(|(pid, _)| pid).collect()
}
