//! The event history: what this node saw and did — detections, link events,
//! agreed decisions, every step with its duration, failures with their
//! reasons, fences, operator commands with who asked and why — kept as JSON
//! lines in the state directory, bounded, and merged with the peers' for
//! `baton events`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Records kept per node; the file is rewritten when it grows past a fifth more.
pub const KEEP: usize = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Wall-clock milliseconds since the Unix epoch (for ordering across
    /// nodes and for people; decisions never depend on it).
    pub unix_ms: u64,
    pub node: String,
    /// detection, link, agreed, lease, step, failure, hook, fence, operator, guard
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Wall-clock milliseconds since 1970, for timestamps people read (and
/// filters over them) — never for a decision; clippy.toml forbids
/// `SystemTime::now` everywhere else.
#[allow(clippy::disallowed_methods)]
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A UTC timestamp with milliseconds, e.g. `2026-11-24T02:30:01.123Z`.
pub fn timestamp(unix_ms: u64) -> String {
    let (secs, ms) = (unix_ms / 1000, unix_ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub struct EventLog {
    node: String,
    path: PathBuf,
    records: Mutex<Vec<Record>>,
    /// Where new events are offered for notification, once connected.
    outbox: Mutex<Option<crate::notify::Outbox>>,
    metrics: crate::metrics::Metrics,
}

impl EventLog {
    /// Opens the node's history; unreadable lines are skipped, never fatal.
    pub fn open(state_dir: &Path, node: &str) -> EventLog {
        let path = state_dir.join("events.jsonl");
        let records = std::fs::File::open(&path)
            .map(|f| {
                std::io::BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|l| serde_json::from_str(&l).ok())
                    .collect()
            })
            .unwrap_or_default();
        EventLog {
            node: node.to_string(),
            path,
            records: Mutex::new(records),
            outbox: Mutex::new(None),
            metrics: crate::metrics::Metrics::default(),
        }
    }

    /// The node's metrics, which every recorded event feeds.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Offer every event recorded from now on to these notifiers (those of
    /// an earlier configuration deliver what they have queued, then end).
    pub fn connect(&self, outbox: Option<crate::notify::Outbox>) {
        *self.outbox.lock().expect("not poisoned") = outbox;
    }

    pub fn record(
        &self,
        kind: &str,
        set: Option<&str>,
        message: String,
        duration_ms: Option<u64>,
        user: Option<String>,
    ) {
        let r = Record {
            unix_ms: now_ms(),
            node: self.node.clone(),
            kind: kind.to_string(),
            set: set.map(str::to_string),
            message,
            duration_ms,
            user,
        };
        let line = serde_json::to_string(&r).expect("records serialize");
        self.metrics.event(&r.kind, r.set.as_deref(), r.duration_ms);
        if let Some(outbox) = &*self.outbox.lock().expect("not poisoned") {
            outbox.offer(&r);
        }
        let mut records = self.records.lock().expect("not poisoned");
        records.push(r);
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            tracing::warn!("baton: writing {}: {e}", self.path.display());
        }
        if records.len() > KEEP + KEEP / 5 {
            let drop_n = records.len() - KEEP;
            records.drain(..drop_n);
            let text: String = records.iter().map(|r| serde_json::to_string(r).expect("serializes") + "\n").collect();
            let tmp = self.path.with_extension("jsonl.tmp");
            if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &self.path)) {
                tracing::warn!("baton: trimming {}: {e}", self.path.display());
            }
        }
    }

    /// Records since `since_ms`, about `set` if given.
    pub fn query(&self, since_ms: u64, set: Option<&str>) -> Vec<Record> {
        let records = self.records.lock().expect("not poisoned");
        records
            .iter()
            .filter(|r| r.unix_ms >= since_ms && set.is_none_or(|s| r.set.as_deref() == Some(s)))
            .cloned()
            .collect()
    }
}

/// One line for people.
pub fn human(r: &Record) -> String {
    let set = r.set.as_deref().map(|s| format!(" [{s}]")).unwrap_or_default();
    let took = r.duration_ms.map(|d| format!(" ({d} ms)")).unwrap_or_default();
    let who = r.user.as_deref().map(|u| format!(" by {u}")).unwrap_or_default();
    format!("{} {:<8} {:<9}{set} {}{took}{who}", timestamp(r.unix_ms), r.node, r.kind, r.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_795_480_201_123), "2026-11-24T00:30:01.123Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn records_persist_and_are_bounded() {
        let dir = std::env::temp_dir().join(format!("baton-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = EventLog::open(&dir, "alpha");
        for i in 0..(KEEP + KEEP / 5 + 2) {
            log.record("step", Some(if i % 2 == 0 { "web" } else { "db" }), format!("n{i}"), Some(3), None);
        }
        assert_eq!(log.query(0, None).len(), KEEP + 1);
        let again = EventLog::open(&dir, "alpha");
        assert_eq!(again.query(0, None).len(), KEEP + 1, "kept across restarts");
        assert!(again.query(0, Some("web")).iter().all(|r| r.set.as_deref() == Some("web")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
