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
//! configured) and `email` (a plain-text mail through the SMTP relay named,
//! with lettre: plain, STARTTLS or TLS, with a login if configured); TLS
//! through rustls, trusting the web's roots and any `ca_file`. Webhooks and
//! mails are tried up to five times with doubling pauses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_config::{Email, Notify, SmtpTls, Webhook};
use tokio::sync::mpsc;

use crate::events::{EventLog, Record};

/// Events waiting for delivery, per notifier, before new ones are dropped
/// (and counted).
pub const QUEUE: usize = 1000;
const EXEC_LIMIT: Duration = Duration::from_secs(10);
const ATTEMPTS: u32 = 5;
const ATTEMPT_LIMIT: Duration = Duration::from_secs(5);

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
    Webhook(Webhook),
    Email(Email),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Exec(_) => "exec notifier",
            Target::Webhook(_) => "webhook",
            Target::Email(_) => "email",
        }
    }

    async fn deliver(&self, record: &Record) -> Result<(), String> {
        let json = serde_json::to_string(record).expect("records serialize") + "\n";
        match self {
            Target::Exec(argv) => deliver_exec(argv, &json).await,
            Target::Webhook(hook) => {
                let hook = hook.clone();
                retried(move || deliver_webhook(hook.clone(), json.clone())).await
            }
            Target::Email(email) => {
                let email = email.clone();
                let record = record.clone();
                retried(move || deliver_email(email.clone(), record.clone(), json.clone())).await
            }
        }
    }
}

/// Starts a worker (on the current tokio runtime) per notifier that can be
/// delivered, and connects them to `events`.
pub fn start(config: &Notify, events: &Arc<EventLog>) {
    let mut targets: Vec<(Target, Vec<String>)> = Vec::new();
    if let Some(n) = &config.exec {
        targets.push((Target::Exec(n.target.clone()), n.events.clone()));
    }
    if let Some(n) = &config.webhook {
        targets.push((Target::Webhook(n.target.clone()), n.events.clone()));
    }
    if let Some(n) = &config.email {
        targets.push((Target::Email(n.target.clone()), n.events.clone()));
    }
    if targets.is_empty() {
        return events.connect(None);
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

/// Tries `attempt` up to five times, 0.5 s, 1 s, 2 s and 4 s apart, each
/// within 5 s; the last failure is the error.
async fn retried<F, Fut>(attempt: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut pause = Duration::from_millis(500);
    let mut last = String::new();
    for n in 1..=ATTEMPTS {
        last = match tokio::time::timeout(ATTEMPT_LIMIT, attempt()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {ATTEMPT_LIMIT:?}"),
        };
        if n < ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    Err(format!("gave up after {ATTEMPTS} attempts: {last}"))
}

/// The header a signed webhook carries: `sha256=` and the hex HMAC-SHA256
/// of the body under the webhook's secret (as GitHub's webhooks do).
pub const SIGNATURE: &str = "x-baton-signature";

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let tag = baton_proto::Keys::new(vec![secret.to_vec()]).sign(body);
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The roots a TLS client trusts: the web's, and those of `ca_file`.
fn roots(ca_file: Option<&std::path::Path>) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(file) = ca_file {
        for cert in CertificateDer::pem_file_iter(file).map_err(|e| format!("reading {}: {e}", file.display()))? {
            let cert = cert.map_err(|e| format!("reading {}: {e}", file.display()))?;
            roots.add(cert).map_err(|e| format!("a certificate of {}: {e}", file.display()))?;
        }
    }
    Ok(roots)
}

/// POSTs `json` to the webhook's URL (http or https); a 2xx answer is success.
async fn deliver_webhook(hook: Webhook, json: String) -> Result<(), String> {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let url = &hook.url;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots(hook.ca_file.as_deref())?)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    let client: Client<_, Full<axum::body::Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut req = axum::http::Request::post(url).header(axum::http::header::CONTENT_TYPE, "application/json");
    if let Some(file) = &hook.secret_file {
        let secret = std::fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
        req = req.header(SIGNATURE, signature(&secret, json.as_bytes()));
    }
    let req =
        req.body(Full::new(axum::body::Bytes::from(json))).map_err(|e| format!("{url} is not a usable URL: {e}"))?;
    match client.request(req).await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("{url} answered {}", resp.status())),
        Err(e) => Err(format!("POST {url}: {e:?}")),
    }
}

/// Sends the event as a plain-text mail (a readable line, then the JSON).
async fn deliver_email(email: Email, record: Record, json: String) -> Result<(), String> {
    use lettre::message::Mailbox;
    use lettre::{AsyncTransport, Message};
    let mailbox = |a: &str| a.parse::<Mailbox>().map_err(|e| format!("\"{a}\" is not a mail address: {e}"));
    let mut message = Message::builder().from(mailbox(&email.from)?);
    for to in &email.to {
        message = message.to(mailbox(to)?);
    }
    let what = crate::events::human(&record);
    let subject: String = format!("baton: {} {} on {}", record.kind, record.set.as_deref().unwrap_or(""), record.node);
    let message = message
        .subject(subject.split_whitespace().collect::<Vec<_>>().join(" "))
        .body(format!("{what}\n\n{json}"))
        .map_err(|e| format!("building the mail: {e}"))?;
    let (host, port) = match email.smtp.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| format!("{}: not host:port", email.smtp))?),
        None => (email.smtp.clone(), 25),
    };
    let transport = smtp_transport(&email, host, port)?;
    transport.send(message).await.map(|_| ()).map_err(|e| format!("SMTP {}: {e}", email.smtp))
}

/// The relay as the configuration says: plain, STARTTLS or TLS, with a login.
fn smtp_transport(
    email: &Email,
    host: String,
    port: u16,
) -> Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, String> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, Tokio1Executor};
    let params = || {
        let mut b = TlsParameters::builder(host.clone());
        if let Some(file) = &email.ca_file {
            let pem = std::fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
            b = b.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", file.display()))?);
        }
        b.build_rustls().map_err(|e| format!("TLS for {host}: {e}"))
    };
    let tls = match email.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::StartTls => Tls::Required(params()?),
        SmtpTls::Tls => Tls::Wrapper(params()?),
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone()).port(port).tls(tls);
    if let (Some(user), Some(file)) = (&email.username, &email.password_file) {
        let password = std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
        b = b.credentials(Credentials::new(user.clone(), password.trim_end().to_string()));
    }
    Ok(b.build())
}
