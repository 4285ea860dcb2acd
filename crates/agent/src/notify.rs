//! Notifications: every event this node records is offered to the
//! configured notifiers whose filter wants its kind. The offer is a
//! non-blocking push onto a bounded queue, so no notifier can delay a
//! takeover; a worker task delivers in order. A notifier's failure, and
//! events lost to a full queue, become events of kind `notify` in the
//! history — which are never notified themselves, so a broken notifier
//! cannot feed on its own failures.
//!
//! Delivered: `exec` (the event as one JSON object on stdin; no shell, a
//! clean environment, 10 s to finish). `webhook` and `email` are not
//! implemented yet: the agent says so when it starts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_config::Notify;
use tokio::sync::mpsc;

use crate::events::{EventLog, Record};

/// Events waiting for delivery before new ones are dropped (and counted).
pub const QUEUE: usize = 1000;
const EXEC_LIMIT: Duration = Duration::from_secs(10);

/// The sending side, held by the event log.
pub struct Outbox {
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
}

impl Outbox {
    /// Offers an event; never waits.
    pub fn offer(&self, record: &Record) {
        if record.kind == "notify" {
            return;
        }
        if self.tx.try_send(record.clone()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the worker (on the current tokio runtime) if any notifier can be
/// delivered, and connects it to `events`.
pub fn start(config: &Notify, events: &Arc<EventLog>) {
    let Some(exec) = config.exec.clone() else { return };
    let (tx, mut rx) = mpsc::channel::<Record>(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    events.connect(Outbox { tx, dropped: Arc::clone(&dropped) });
    let events = Arc::clone(events);
    tokio::spawn(async move {
        while let Some(record) = rx.recv().await {
            if exec.wants(&record.kind) {
                if let Err(why) = deliver_exec(&exec.target, &record).await {
                    events.record("notify", record.set.as_deref(), format!("exec notifier: {why}"), None, None);
                }
            }
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                let msg = format!("{lost} events were not notified: the queue of {QUEUE} was full");
                events.record("notify", None, msg, None, None);
            }
        }
    });
}

async fn deliver_exec(argv: &[String], record: &Record) -> Result<(), String> {
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let json = serde_json::to_string(record).expect("records serialize") + "\n";
    let ran = baton_resources::program::run_with_input(&argv, json.as_bytes(), EXEC_LIMIT).await?;
    if ran.code == 0 {
        return Ok(());
    }
    let said = ran.text.lines().next().map(|l| format!(": {l}")).unwrap_or_default();
    Err(format!("{} exited with {}{said}", argv[0], ran.code))
}
