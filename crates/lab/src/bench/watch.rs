//! The service address as every node's kernel sees it: each add and delete
//! in every node namespace, with the kernel's timestamps (`ip -ts monitor
//! address`), over a window bracketed by marker events on the same clock.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::net::{Lab, VIP};

/// A throw-away address whose add and delete mark the window.
const MARKER: &str = "10.88.0.249";
const DAY_US: u64 = 86_400_000_000;

type Changes = Arc<Mutex<Vec<(u64, String, bool)>>>;

pub struct Watch {
    monitors: Vec<Child>,
    changes: Changes,
    marker_ns: String,
    /// Lists the monitors as instruments, which a node's power-off spares.
    instruments: std::path::PathBuf,
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

impl Watch {
    /// Starts a monitor in every node namespace and marks the start on
    /// `marker_node`'s loopback (a node that stays up).
    pub fn start(lab: &Lab, marker_node: &str) -> Result<Watch, String> {
        let changes: Changes = Arc::default();
        let mut monitors = Vec::new();
        for node in lab.nodes.clone() {
            let mut child = Command::new("ip")
                .args(["-n", &lab.ns(&node)?, "-ts", "monitor", "address"])
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("ip monitor: {e}"))?;
            let out = child.stdout.take().expect("piped");
            let changes = Arc::clone(&changes);
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    let who = if line.contains(MARKER) {
                        "marker".to_string()
                    } else if line.contains(&format!("{VIP}/")) {
                        node.clone()
                    } else {
                        continue;
                    };
                    if let Some(t) = stamp_us(&line) {
                        changes.lock().expect("not poisoned").push((t, who, !line.contains("Deleted")));
                    }
                }
            });
            monitors.push(child);
        }
        let instruments = crate::net::instruments_file(&lab.dir);
        let pids: Vec<String> = monitors.iter().map(|m| m.id().to_string()).collect();
        std::fs::write(&instruments, pids.join("\n")).map_err(|e| format!("writing {}: {e}", instruments.display()))?;
        std::thread::sleep(Duration::from_millis(300));
        let watch = Watch { monitors, changes, marker_ns: lab.ns(marker_node)?, instruments };
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

    fn stop_monitors(&mut self) {
        for m in &mut self.monitors {
            let _ = m.kill();
            let _ = m.wait();
        }
        let _ = std::fs::remove_file(&self.instruments);
    }

    /// Marks the end and returns what was seen in between.
    pub fn finish(mut self) -> Result<Window, String> {
        self.marker("del")?;
        std::thread::sleep(Duration::from_millis(300));
        self.stop_monitors();
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
        all.sort();
        Ok(Window { start, end, changes: all })
    }
}

impl Drop for Watch {
    /// A run that ends early leaves no monitor behind.
    fn drop(&mut self) {
        self.stop_monitors();
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
}
