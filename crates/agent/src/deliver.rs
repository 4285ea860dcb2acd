//! Delivering one notification over the network: a webhook POST (http or
//! https) or a mail through an SMTP relay (plain, STARTTLS or TLS, with a
//! login), with TLS through rustls trusting the web's roots and any
//! `ca_file`. This runs in `baton-notify`, a helper the agent starts for
//! each delivery (`notify.rs`), never in the agent: the TLS stack, the
//! certificate roots, the HTTP client and the mail library would otherwise
//! stay resident on every node for events that are rare. A delivery is
//! tried up to five times with doubling pauses; the helper's exit code and
//! its last line on stderr say how it went.

use std::sync::Arc;
use std::time::Duration;

use baton_config::{Email, SmtpTls, Webhook};
use serde::{Deserialize, Serialize};

const ATTEMPTS: u32 = 5;
const ATTEMPT_LIMIT: Duration = Duration::from_secs(5);
/// The pause after the first failed attempt; each next one is twice as long.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// Every attempt and every pause between them, and 5 s more: how long the
/// agent lets one helper run.
pub const LIMIT: Duration = ATTEMPT_LIMIT
    .saturating_mul(ATTEMPTS)
    .saturating_add(FIRST_PAUSE.saturating_mul((1 << (ATTEMPTS - 1)) - 1))
    .saturating_add(Duration::from_secs(5));

/// One delivery, as the agent hands it to `baton-notify` on its stdin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// POST `body` (the event as JSON) to the webhook.
    Webhook { hook: Webhook, body: String },
    /// Mail `text` under `subject` through the relay.
    Email { email: Email, subject: String, text: String },
}

impl Delivery {
    /// Delivers, retried; the last failure is the error.
    pub async fn send(&self) -> Result<(), String> {
        match self {
            Delivery::Webhook { hook, body } => retried(|| deliver_webhook(hook, body)).await,
            Delivery::Email { email, subject, text } => retried(|| deliver_email(email, subject, text)).await,
        }
    }
}

/// Tries `attempt` up to five times, 0.5 s, 1 s, 2 s and 4 s apart, each
/// within 5 s; the last failure is the error.
async fn retried<F, Fut>(attempt: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut pause = FIRST_PAUSE;
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

/// POSTs `body` to the webhook's URL (http or https); a 2xx answer is success.
async fn deliver_webhook(hook: &Webhook, body: &str) -> Result<(), String> {
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
        req = req.header(SIGNATURE, signature(&secret, body.as_bytes()));
    }
    let req = req
        .body(Full::new(axum::body::Bytes::from(body.to_string())))
        .map_err(|e| format!("{url} is not a usable URL: {e}"))?;
    match client.request(req).await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("{url} answered {}", resp.status())),
        Err(e) => Err(format!("POST {url}: {e:?}")),
    }
}

/// Sends a plain-text mail.
async fn deliver_email(email: &Email, subject: &str, text: &str) -> Result<(), String> {
    use lettre::message::Mailbox;
    use lettre::{AsyncTransport, Message};
    let mailbox = |a: &str| a.parse::<Mailbox>().map_err(|e| format!("\"{a}\" is not a mail address: {e}"));
    let mut message = Message::builder().from(mailbox(&email.from)?);
    for to in &email.to {
        message = message.to(mailbox(to)?);
    }
    let message = message.subject(subject).body(text.to_string()).map_err(|e| format!("building the mail: {e}"))?;
    let (host, port) = match email.smtp.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| format!("{}: not host:port", email.smtp))?),
        None => (email.smtp.clone(), 25),
    };
    let transport = smtp_transport(email, host, port)?;
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
