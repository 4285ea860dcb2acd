//! Notifications: every event this node records is offered to each
//! configured notifier whose filter wants its kind. The offer is a
//! non-blocking push onto that notifier's bounded queue, so no notifier can
//! delay a takeover, nor another notifier; a worker task per notifier
//! delivers in order. A notifier's failure, and events lost to a full
//! queue, become events of kind `notify` in the history — which are never
//! notified themselves, so a broken notifier cannot feed on its own
//! failures.
//!
//! Delivered: `exec` (the event as one JSON object on stdin; no shell, a
//! clean environment, 10 s to finish), `webhook` (the event POSTed as JSON
//! to an http:// or https:// URL, signed with HMAC-SHA256 when a secret is
//! configured) and `email` (a plain-text mail through the SMTP relay named:
//! plain, STARTTLS or TLS, with a login if configured). Webhooks and mails
//! go out through `baton-notify`, a helper started for each delivery and
//! installed beside `baton` (`deliver.rs`), so that the agent carries no
//! TLS, HTTP client or mail code; the helper tries up to five times with
//! doubling pauses.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_config::{Email, Notify, Webhook};
use tokio::sync::mpsc;

use crate::deliver::Delivery;
use crate::events::{EventLog, Record};

/// Events waiting for delivery, per notifier, before new ones are dropped
/// (and counted).
pub const QUEUE: usize = 1000;
const EXEC_LIMIT: Duration = Duration::from_secs(10);
/// The helper that delivers webhooks and mails, installed beside `baton`.
pub const HELPER_EXE: &str = "baton-notify";

/// One notifier's queue.
struct Queue {
    events: Vec<String>,
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
}

/// The sending side, held by the event log.
pub struct Outbox {
    queues: Vec<Queue>,
}

impl Outbox {
    /// Offers an event to every notifier that wants it; never waits.
    pub fn offer(&self, record: &Record) {
        if record.kind == "notify" {
            return;
        }
        for q in &self.queues {
            let wanted = q.events.is_empty() || q.events.contains(&record.kind);
            if wanted && q.tx.try_send(record.clone()).is_err() {
                q.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How one notifier delivers.
enum Target {
    Exec(Vec<String>),
    /// Through the helper program named.
    Webhook(Webhook, Arc<PathBuf>),
    Email(Email, Arc<PathBuf>),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Exec(_) => "exec notifier",
            Target::Webhook(..) => "webhook",
            Target::Email(..) => "email",
        }
    }

    async fn deliver(&self, record: &Record) -> Result<(), String> {
        let json = serde_json::to_string(record).expect("records serialize") + "\n";
        let (delivery, helper) = match self {
            Target::Exec(argv) => return deliver_exec(argv, &json).await,
            Target::Webhook(hook, helper) => (Delivery::Webhook { hook: hook.clone(), body: json }, helper),
            Target::Email(email, helper) => {
                let subject =
                    format!("baton: {} {} on {}", record.kind, record.set.as_deref().unwrap_or(""), record.node);
                let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
                let text = format!("{}\n\n{json}", crate::events::human(record));
                (Delivery::Email { email: email.clone(), subject, text }, helper)
            }
        };
        let input = serde_json::to_vec(&delivery).expect("deliveries serialize");
        let ran = baton_resources::program::Program::new(&[helper.as_os_str()])
            .input(&input)
            .limit(crate::deliver::LIMIT)
            .run()
            .await?;
        match ran.code {
            0 => Ok(()),
            _ => Err(ran.text.lines().last().unwrap_or("the helper said nothing").to_string()),
        }
    }
}

/// Starts a worker (on the current tokio runtime) per notifier that can be
/// delivered, and connects them to `events`; `helper` is `baton-notify`.
pub fn start(config: &Notify, helper: &Path, events: &Arc<EventLog>) {
    let helper = Arc::new(helper.to_path_buf());
    let mut targets: Vec<(Target, Vec<String>)> = Vec::new();
    if let Some(n) = &config.exec {
        targets.push((Target::Exec(n.target.clone()), n.events.clone()));
    }
    if let Some(n) = &config.webhook {
        targets.push((Target::Webhook(n.target.clone(), Arc::clone(&helper)), n.events.clone()));
    }
    if let Some(n) = &config.email {
        targets.push((Target::Email(n.target.clone(), Arc::clone(&helper)), n.events.clone()));
    }
    if targets.is_empty() {
        return events.connect(None);
    }
    if (config.webhook.is_some() || config.email.is_some()) && !helper.is_file() {
        let msg = format!("webhooks and mails go out through {}, which is missing", helper.display());
        tracing::warn!("baton: {msg}");
        events.record("notify", None, msg, None, None);
    }
    let mut queues = Vec::new();
    for (target, kinds) in targets {
        let (tx, mut rx) = mpsc::channel::<Record>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        queues.push(Queue { events: kinds, tx, dropped: Arc::clone(&dropped) });
        let events = Arc::clone(events);
        tokio::spawn(async move {
            while let Some(record) = rx.recv().await {
                if let Err(why) = target.deliver(&record).await {
                    let msg = format!("{}: {why}", target.name());
                    events.record("notify", record.set.as_deref(), msg, None, None);
                }
                let lost = dropped.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    let msg = format!("{}: {lost} events were dropped, its queue of {QUEUE} was full", target.name());
                    events.record("notify", None, msg, None, None);
                }
            }
        });
    }
    events.connect(Some(Outbox { queues }));
}

async fn deliver_exec(argv: &[String], json: &str) -> Result<(), String> {
    let ran = baton_resources::program::Program::new(argv).input(json.as_bytes()).limit(EXEC_LIMIT).run().await?;
    if ran.code == 0 {
        return Ok(());
    }
    let said = ran.text.lines().next().map(|l| format!(": {l}")).unwrap_or_default();
    Err(format!("{} exited with {}{said}", argv[0], ran.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A webhook configured on a node without `baton-notify`: the agent
    /// says so once, as it starts the notifier.
    #[test]
    fn a_missing_helper_is_named_when_a_webhook_is_configured() {
        let dir = std::env::temp_dir().join(format!("baton-notify-missing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hook = Webhook { url: "http://127.0.0.1:9/hook".into(), secret_file: None, ca_file: None };
        let config =
            Notify { webhook: Some(baton_config::Notifier { target: hook, events: vec![] }), ..Notify::default() };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let said = rt.block_on(async {
            let log = Arc::new(EventLog::open(&dir, "alpha"));
            start(&config, Path::new("/nonexistent/baton-notify"), &log);
            log.query(0, None).into_iter().filter(|r| r.kind == "notify").map(|r| r.message).collect::<Vec<_>>()
        });
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(said, vec!["webhooks and mails go out through /nonexistent/baton-notify, which is missing"]);
    }
}
