//! The service address as every node's kernel sees it: each add and delete
//! in every node namespace, in the order the kernel made them, stamped by
//! one monitor (`ip -ts monitor address all-nsid` in this machine's own
//! namespace), over a window bracketed by marker events on the same clock.
//!
//! One monitor, not one per namespace: each monitor stamps a change when
//! its process reads it, and two of them can disagree by more than the
//! moment between one node's delete and the next node's add in a direct
//! move (a few hundred microseconds): a move would read as two holders.
//! One socket receives every namespace's changes in the order they were
//! made.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::net::{Lab, VIP};

/// A throw-away address whose add and delete mark the window.
const MARKER: &str = "10.88.0.249";
const DAY_US: u64 = 86_400_000_000;

type Changes = Arc<Mutex<Vec<(u64, String, bool)>>>;

/// Lives in this machine's namespace, so a node's power-off never kills it.
pub struct Watch {
    monitor: Child,
    changes: Changes,
    marker_ns: String,
}

/// What happened to the service address between the markers: (µs, node,
/// added?) in time order.
pub struct Window {
    pub start: u64,
    pub end: u64,
    pub changes: Vec<(u64, String, bool)>,
}

/// Microseconds since midnight from `ip -ts`'s `[YYYY-MM-DDTHH:MM:SS.uuuuuu]`.
fn stamp_us(line: &str) -> Option<u64> {
    let t = line.strip_prefix('[')?.split(']').next()?.split('T').nth(1)?;
    let mut parts = t.split(':');
    let (h, m, s) = (parts.next()?.parse::<u64>().ok()?, parts.next()?.parse::<u64>().ok()?, parts.next()?);
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let us: u64 = format!("{frac:0<6}")[..6].parse().ok()?;
    Some(((h * 60 + m) * 60 + secs.parse::<u64>().ok()?) * 1_000_000 + us)
}

/// Watches the addresses of the network namespaces `namespaces` (each
/// given an id in this one, if it has none) through one `ip -ts monitor
/// address all-nsid`: `seen(stamp, namespace, change)` for each change, in
/// the order the kernel made them (stamp: microseconds since midnight;
/// change: the monitor's line after the namespace, `Deleted …` for a
/// delete). The monitor runs until the child is killed.
pub fn monitor_namespaces(
    namespaces: &[String],
    mut seen: impl FnMut(u64, &str, &str) + Send + 'static,
) -> Result<Child, String> {
    for ns in namespaces {
        // Fails harmlessly when the namespace has an id here already.
        let _ = Command::new("ip").args(["netns", "set", ns, "auto"]).stderr(Stdio::null()).status();
    }
    let ids = Command::new("ip").args(["netns", "list-id"]).output().map_err(|e| format!("ip netns list-id: {e}"))?;
    // "nsid 3 (iproute2 netns name: btnl-alpha)"
    let ids: BTreeMap<String, String> = String::from_utf8_lossy(&ids.stdout)
        .lines()
        .filter_map(|l| {
            let (id, name) = l.strip_prefix("nsid ")?.split_once(" (iproute2 netns name: ")?;
            let name = name.strip_suffix(')')?;
            namespaces.iter().any(|n| n == name).then(|| (id.to_string(), name.to_string()))
        })
        .collect();
    if let Some(missing) = namespaces.iter().find(|n| !ids.values().any(|v| v == *n)) {
        return Err(format!("network namespace {missing} has no id here (`ip netns set {missing} auto` failed)"));
    }
    let mut child = Command::new("ip")
        .args(["-ts", "monitor", "address", "all-nsid"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip monitor: {e}"))?;
    let out = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            // "[2026-12-02T16:11:19.576868] [nsid 0]Deleted 2: eth0 inet …"
            let Some(t) = stamp_us(&line) else { continue };
            let Some((id, change)) = line.split_once("[nsid ").and_then(|(_, r)| r.split_once(']')) else { continue };
            if let Some(ns) = ids.get(id) {
                seen(t, ns, change);
            }
        }
    });
    Ok(child)
}

impl Watch {
    /// Starts the monitor of every node namespace and marks the start on
    /// `marker_node`'s loopback (a node that stays up).
    pub fn start(lab: &Lab, marker_node: &str) -> Result<Watch, String> {
        let changes: Changes = Arc::default();
        let nodes: BTreeMap<String, String> =
            lab.nodes.iter().map(|n| Ok((lab.ns(n)?, n.clone()))).collect::<Result<_, String>>()?;
        let namespaces: Vec<String> = nodes.keys().cloned().collect();
        let recorded = Arc::clone(&changes);
        let monitor = monitor_namespaces(&namespaces, move |t, ns, change| {
            let who = if change.contains(MARKER) {
                "marker".to_string()
            } else if change.contains(&format!("{VIP}/")) {
                nodes[ns].clone()
            } else {
                return;
            };
            recorded.lock().expect("not poisoned").push((t, who, !change.starts_with("Deleted")));
        })?;
        std::thread::sleep(Duration::from_millis(300));
        let watch = Watch { monitor, changes, marker_ns: lab.ns(marker_node)? };
        watch.marker("add")?;
        Ok(watch)
    }

    fn marker(&self, verb: &str) -> Result<(), String> {
        let ok = Command::new("ip")
            .args(["-n", &self.marker_ns, "addr", verb, &format!("{MARKER}/32"), "dev", "lo"])
            .status()
            .map_err(|e| e.to_string())?
            .success();
        ok.then_some(()).ok_or_else(|| format!("ip addr {verb} {MARKER} failed"))
    }

    fn stop_monitor(&mut self) {
        let _ = self.monitor.kill();
        let _ = self.monitor.wait();
    }

    /// Marks the end and returns what was seen in between.
    pub fn finish(mut self) -> Result<Window, String> {
        self.marker("del")?;
        std::thread::sleep(Duration::from_millis(300));
        self.stop_monitor();
        let mut all = std::mem::take(&mut *self.changes.lock().expect("not poisoned"));
        let marks: Vec<u64> = all.iter().filter(|e| e.1 == "marker").map(|e| e.0).collect();
        let [start, end] = marks[..] else { return Err(format!("expected two marker events, saw {}", marks.len())) };
        // Stamps are times of day: a window across midnight wraps.
        let end = if end < start { end + DAY_US } else { end };
        for c in &mut all {
            if c.0 < start && start - c.0 > DAY_US / 2 {
                c.0 += DAY_US;
            }
        }
        all.retain(|c| c.1 != "marker" && c.0 >= start && c.0 <= end);
        // By time, and in the order seen within the same microsecond.
        all.sort_by_key(|c| c.0);
        Ok(Window { start, end, changes: all })
    }
}

impl Drop for Watch {
    /// A run that ends early leaves no monitor behind.
    fn drop(&mut self) {
        self.stop_monitor();
    }
}

impl Window {
    /// Microseconds during which two or more nodes held the address, given
    /// who held it at the start.
    pub fn dual_us(&self, mut holding: BTreeSet<String>) -> u64 {
        let (mut t, mut dual) = (self.start, 0);
        for (at, node, added) in &self.changes {
            if holding.len() > 1 {
                dual += at - t;
            }
            t = *at;
            if *added {
                holding.insert(node.clone());
            } else {
                holding.remove(node);
            }
        }
        if holding.len() > 1 {
            dual += self.end - t;
        }
        dual
    }

    /// From `from`'s first delete of the address to `to`'s add nearest to
    /// it, in µs (negative: the add came first, both held it).
    pub fn gap_us(&self, from: &str, to: &str) -> Option<i64> {
        let deleted = self.changes.iter().find(|c| c.1 == from && !c.2)?.0 as i64;
        let adds = self.changes.iter().filter(|c| c.1 == to && c.2).map(|c| c.0 as i64 - deleted);
        adds.min_by_key(|gap| gap.abs())
    }

    /// How many times a node took the address.
    pub fn takeovers(&self) -> usize {
        self.changes.iter().filter(|c| c.2).count()
    }
}

#[cfg(test)]
mod tests {
    use super::{stamp_us, Window};

    #[test]
    fn kernel_stamps_are_read_to_the_microsecond() {
        assert_eq!(stamp_us("[2026-11-24T01:02:03.000456] 3: eth0 inet 10.88.0.100/24"), Some(3_723_000_456));
        assert_eq!(stamp_us("no stamp"), None);
    }

    #[test]
    fn two_holders_are_counted_only_while_both_hold() {
        let w = Window {
            start: 0,
            end: 10_000,
            changes: vec![(1_000, "beta".into(), true), (4_000, "alpha".into(), false), (6_000, "alpha".into(), true)],
        };
        // alpha and beta from 1 000 to 4 000, again from 6 000 to the end.
        assert_eq!(w.dual_us(["alpha".to_string()].into()), 3_000 + 4_000);
        assert_eq!(w.takeovers(), 2);
    }

    #[test]
    fn a_moves_gap_runs_from_the_old_holders_delete_to_the_next_holders_nearest_add() {
        let change = |t, node: &str, added| (t, node.to_string(), added);
        let w = Window {
            start: 0,
            end: 10_000,
            changes: vec![
                change(100, "beta", true),
                change(200, "beta", false),
                change(5_000, "alpha", false),
                change(5_400, "beta", true),
                change(5_450, "gamma", true),
            ],
        };
        assert_eq!(w.gap_us("alpha", "beta"), Some(400), "the settling add at 100 µs is not the move's");
        assert_eq!(w.gap_us("beta", "alpha"), None, "alpha never added it");
        let overlap = Window { changes: vec![change(4_000, "beta", true), change(5_000, "alpha", false)], ..w };
        assert_eq!(overlap.gap_us("alpha", "beta"), Some(-1_000));
    }
}
