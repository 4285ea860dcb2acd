//! `/metrics` in the Prometheus text format (prometheus-client). Two kinds
//! of numbers: those this node counts as things happen — events by kind,
//! takeovers, monitor results, fences, lease transitions, and the durations
//! of detections, takeovers and steps — fed by the event log, the shell and
//! the executor; and those read from the status document at each scrape —
//! heartbeats sent, received and rejected per link, the lease left, quorum,
//! maintenance and each set's state.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::Value;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// 1 ms to about 33 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

#[derive(Clone)]
pub struct Metrics {
    events: Family<Labels, Counter>,
    takeovers: Family<Labels, Counter>,
    monitors: Family<Labels, Counter>,
    fences: Family<Labels, Counter>,
    lease: Family<Labels, Counter>,
    steps: Histogram,
    detection: Histogram,
    takeover_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            events: Family::default(),
            takeovers: Family::default(),
            monitors: Family::default(),
            fences: Family::default(),
            lease: Family::default(),
            steps: seconds(),
            detection: seconds(),
            takeover_seconds: seconds(),
        }
    }
}

impl Metrics {
    /// Every event the history records.
    pub fn event(&self, kind: &str, set: Option<&str>, duration_ms: Option<u64>) {
        self.events.get_or_create(&labels(&[("kind", kind)])).inc();
        match kind {
            "step" => {
                if let Some(ms) = duration_ms {
                    self.steps.observe(ms as f64 / 1000.0);
                }
            }
            "takeover" => {
                self.takeovers.get_or_create(&labels(&[("set", set.unwrap_or(""))])).inc();
            }
            _ => {}
        }
    }

    /// A fence device confirmed a node off, or failed to.
    pub fn fence(&self, off: bool) {
        let result = if off { "off" } else { "failed" };
        self.fences.get_or_create(&labels(&[("result", result)])).inc();
    }

    /// This node's lease became held, or was lost.
    pub fn lease(&self, held: bool) {
        let to = if held { "held" } else { "lost" };
        self.lease.get_or_create(&labels(&[("to", to)])).inc();
    }

    pub fn monitor(&self, set: &str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.monitors.get_or_create(&labels(&[("set", set), ("result", result)])).inc();
    }

    /// From a peer's last heartbeat to the moment it was declared silent.
    pub fn detection(&self, seconds: f64) {
        self.detection.observe(seconds);
    }

    /// From the set being given to this node to its last start step done.
    pub fn takeover(&self, seconds: f64) {
        self.takeover_seconds.observe(seconds);
    }

    /// The text exposition, with `status` (the status document) read now.
    pub fn render(&self, status: &Value) -> String {
        let mut r = Registry::with_prefix("baton");
        r.register("events", "Events recorded in this node's history, by kind", self.events.clone());
        r.register("takeovers", "Sets that began running on this node", self.takeovers.clone());
        r.register("monitor_results", "Monitor runs on this node, by set and result", self.monitors.clone());
        r.register("fences", "Fence operations run by this node, by result", self.fences.clone());
        r.register("lease_transitions", "This node's lease became held or was lost", self.lease.clone());
        r.register("step_duration_seconds", "Start and stop steps (hooks, resources)", self.steps.clone());
        r.register("detection_seconds", "From a peer's last heartbeat to declaring it silent", self.detection.clone());
        r.register("takeover_seconds", "From a set assigned here to running here", self.takeover_seconds.clone());
        let sent = Family::<Labels, Counter>::default();
        let received = Family::<Labels, Counter>::default();
        let rejected = Family::<Labels, Counter>::default();
        for hb in status["heartbeats"].as_array().into_iter().flatten() {
            let link = hb["link"].to_string();
            let n = |k: &str| hb[k].as_u64().unwrap_or(0);
            sent.get_or_create(&labels(&[("link", &link)])).inc_by(n("sent"));
            received.get_or_create(&labels(&[("link", &link)])).inc_by(n("accepted"));
            for reason in ["forged", "replayed", "foreign", "malformed"] {
                rejected.get_or_create(&labels(&[("link", &link), ("reason", reason)])).inc_by(n(reason));
            }
        }
        r.register("heartbeats_sent", "Heartbeats sent, per link", sent);
        r.register("heartbeats_received", "Heartbeats accepted, per link", received);
        r.register("heartbeats_rejected", "Heartbeats dropped, per link and reason", rejected);
        let gauge = |v: i64| {
            let g = Gauge::<i64>::default();
            g.set(v);
            g
        };
        r.register(
            "lease_remaining_milliseconds",
            "Lease left on this node",
            gauge(status["lease_ms_left"].as_i64().unwrap_or(0)),
        );
        r.register("quorum", "1 while this node holds a lease", gauge(i64::from(status["quorum"] == true)));
        r.register(
            "maintenance",
            "1 while the cluster is in maintenance mode",
            gauge(i64::from(status["maintenance"] == true)),
        );
        r.register(
            "config_drift",
            "1 while the nodes run configuration files that differ",
            gauge(i64::from(status["config_drift"] == true)),
        );
        r.register(
            "alone",
            "1 while one node of a two-node cluster goes on alone, its peer fenced",
            gauge(i64::from(status["alone"].is_string())),
        );
        let sets = Family::<Labels, Gauge>::default();
        for s in status["sets"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or("");
            let owner = s["owner"].as_str().unwrap_or("");
            let state = s["state"].as_str().unwrap_or("");
            sets.get_or_create(&labels(&[("set", name), ("owner", owner), ("state", state)])).set(1);
        }
        r.register("set_info", "Each set with its owner and state as this node sees them", sets);
        let mut text = String::new();
        encode(&mut text, &r).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn counters_move_with_events_and_the_status_document() {
        let m = Metrics::default();
        m.event("takeover", Some("web"), None);
        m.event("step", Some("web"), Some(12));
        m.fence(true);
        m.lease(false);
        m.monitor("web", false);
        let doc = serde_json::json!({
            "quorum": true, "maintenance": false, "lease_ms_left": 640,
            "heartbeats": [{"link": 0, "sent": 7, "accepted": 5, "forged": 1, "replayed": 0, "foreign": 0, "malformed": 0}],
            "sets": [{"name": "web", "owner": "alpha", "state": "running"}]
        });
        let text = m.render(&doc);
        for line in [
            "baton_takeovers_total{set=\"web\"} 1",
            "baton_events_total{kind=\"step\"} 1",
            "baton_fences_total{result=\"off\"} 1",
            "baton_lease_transitions_total{to=\"lost\"} 1",
            "baton_monitor_results_total{set=\"web\",result=\"failed\"} 1",
            "baton_heartbeats_sent_total{link=\"0\"} 7",
            "baton_heartbeats_rejected_total{link=\"0\",reason=\"forged\"} 1",
            "baton_lease_remaining_milliseconds 640",
            "baton_set_info{set=\"web\",owner=\"alpha\",state=\"running\"} 1",
            "baton_step_duration_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }
}
