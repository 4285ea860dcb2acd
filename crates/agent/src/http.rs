//! The HTTP API on `cluster.http` (loopback by default): JSON mirrors of
//! `status` and `events` (also as Server-Sent Events), the operator
//! commands, `/metrics` (see `metrics.rs`), and at `/` the status page: one
//! self-contained HTML file (`status.html`: nodes, links, sets, an SVG
//! ownership timeline of the last hour with the events on it), refreshed
//! every two seconds from the JSON routes. Reads are open; writes need `Authorization: Bearer TOKEN`, the
//! token being the content of `cluster.http_token_file`, compared in
//! constant time. Every request goes through the same dispatcher as the
//! Unix socket, so both doors behave alike. `docs/openapi.json` describes
//! [`ROUTES`]; a test holds the two together.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::api::{dispatch, Call, History, Request, Response};
use crate::events::now_ms;

/// Every route: (method, path). `docs/openapi.json` lists exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/api/v1/status"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/events/stream"),
    ("post", "/api/v1/sets/{set}/move"),
    ("post", "/api/v1/sets/{set}/freeze"),
    ("post", "/api/v1/sets/{set}/unfreeze"),
    ("post", "/api/v1/sets/{set}/cleanup"),
    ("post", "/api/v1/nodes/{node}/standby"),
    ("post", "/api/v1/nodes/{node}/online"),
    ("post", "/api/v1/maintenance"),
    ("post", "/api/v1/alone"),
    ("post", "/api/v1/handover"),
    ("get", "/api/v1/config"),
    ("post", "/api/v1/config"),
    ("post", "/api/v1/config/diff"),
    ("get", "/metrics"),
];

#[derive(Clone)]
struct Http {
    calls: mpsc::Sender<Call>,
    history: History,
    token: Option<Arc<Vec<u8>>>,
}

/// Equal, looking at every byte whatever the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type Reply = (StatusCode, Json<serde_json::Value>);

fn error(status: StatusCode, why: impl Into<String>) -> Reply {
    (status, Json(json!({ "ok": false, "error": why.into() })))
}

impl Http {
    /// The caller may write, or the reply saying why not.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Box<HttpResponse>> {
        let Some(token) = &self.token else {
            let why = "writes are disabled: the cluster has no cluster.http_token_file";
            return Err(Box::new(error(StatusCode::FORBIDDEN, why).into_response()));
        };
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        match given {
            Some(given) if same(given, token) => Ok(()),
            _ => {
                let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is needed to change anything")
                    .into_response();
                r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                Err(Box::new(r))
            }
        }
    }

    async fn answer(&self, req: Request, from: SocketAddr) -> Reply {
        let r: Response = dispatch(&self.calls, &self.history, req, Some(format!("http {from}"))).await;
        match r.error {
            None => (StatusCode::OK, Json(json!({ "ok": true, "data": r.data }))),
            Some(why) if why.starts_with("no set named") || why.starts_with("no node named") => {
                error(StatusCode::NOT_FOUND, why)
            }
            Some(why) => error(StatusCode::CONFLICT, why),
        }
    }
}

/// An optional JSON body: empty means every field at its default.
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, Reply> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("the request body is not what this route takes: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Why {
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    node: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceBody {
    on: bool,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    text: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigText {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    since: Option<String>,
    set: Option<String>,
}

fn since_ms(q: &EventsQuery) -> Result<u64, Reply> {
    match &q.since {
        None => Ok(0),
        Some(text) => baton_config::parse_duration(text)
            .map(|d| now_ms().saturating_sub(d.as_millis() as u64))
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("since: {e}"))),
    }
}

/// What each write route asks of the agent, from its path and body.
fn write_request(route: &str, name: String, bytes: &Bytes) -> Result<Request, Reply> {
    Ok(match route {
        "move" => {
            let b: MoveBody = body(bytes)?;
            Request::Move { set: name, node: b.node, reason: b.reason }
        }
        "freeze" | "unfreeze" => {
            Request::Freeze { set: name, frozen: route == "freeze", reason: body::<Why>(bytes)?.reason }
        }
        "cleanup" => Request::Cleanup { set: name, reason: body::<Why>(bytes)?.reason },
        "standby" | "online" => {
            Request::Standby { node: name, standby: route == "standby", reason: body::<Why>(bytes)?.reason }
        }
        other => unreachable!("no write route {other}"),
    })
}

fn write_route(action: &str) -> axum::routing::MethodRouter<Http> {
    let action = action.to_string();
    post(
        move |State(h): State<Http>,
              ConnectInfo(from): ConnectInfo<SocketAddr>,
              headers: HeaderMap,
              UrlPath(name): UrlPath<String>,
              bytes: Bytes| async move {
            if let Err(refused) = h.authorize(&headers) {
                return *refused;
            }
            match write_request(&action, name, &bytes) {
                Ok(req) => h.answer(req, from).await.into_response(),
                Err(bad) => bad.into_response(),
            }
        },
    )
}

async fn status(State(h): State<Http>, ConnectInfo(from): ConnectInfo<SocketAddr>) -> Reply {
    h.answer(Request::Status, from).await
}

async fn events(
    State(h): State<Http>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Query(q): Query<EventsQuery>,
) -> Reply {
    match since_ms(&q) {
        Ok(since_ms) => h.answer(Request::Events { since_ms, set: q.set }, from).await,
        Err(bad) => bad,
    }
}

async fn maintenance(
    State(h): State<Http>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> HttpResponse {
    if let Err(refused) = h.authorize(&headers) {
        return *refused;
    }
    match serde_json::from_slice::<MaintenanceBody>(&bytes) {
        Ok(b) => h.answer(Request::Maintenance { on: b.on, reason: b.reason }, from).await.into_response(),
        Err(e) => {
            error(StatusCode::BAD_REQUEST, format!("the body must be {{\"on\": true|false}}: {e}")).into_response()
        }
    }
}

/// A write whose body is a JSON object of type `T` (the token required).
async fn write_with<T: DeserializeOwned>(
    h: Http,
    from: SocketAddr,
    headers: HeaderMap,
    bytes: Bytes,
    make: fn(T) -> Request,
) -> HttpResponse {
    if let Err(refused) = h.authorize(&headers) {
        return *refused;
    }
    match serde_json::from_slice::<T>(&bytes) {
        Ok(b) => h.answer(make(b), from).await.into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("the request body is not what this route takes: {e}"))
            .into_response(),
    }
}

/// `GET` the agreed configuration, `POST` a file to agree on.
fn config() -> axum::routing::MethodRouter<Http> {
    get(|State(h): State<Http>, ConnectInfo(from): ConnectInfo<SocketAddr>| async move {
        h.answer(Request::ConfigShow, from).await
    })
    .post(
        |State(h): State<Http>, ConnectInfo(from): ConnectInfo<SocketAddr>, headers: HeaderMap, bytes: Bytes| {
            write_with(h, from, headers, bytes, |b: ConfigFile| Request::ConfigApply { text: b.text, reason: b.reason })
        },
    )
}

async fn metrics(State(h): State<Http>) -> HttpResponse {
    let r = dispatch(&h.calls, &h.history, Request::Status, None).await;
    let Some(doc) = r.data else {
        return error(StatusCode::SERVICE_UNAVAILABLE, r.error.unwrap_or_default()).into_response();
    };
    let text = h.history.log.metrics().render(&doc);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// A write about this node as a whole (`alone`, `handover`): an optional
/// reason in the body, the token required.
fn this_node(make: fn(Option<String>) -> Request) -> axum::routing::MethodRouter<Http> {
    post(
        move |State(h): State<Http>, ConnectInfo(from): ConnectInfo<SocketAddr>, headers: HeaderMap, bytes: Bytes| async move {
            if let Err(refused) = h.authorize(&headers) {
                return *refused;
            }
            match body::<Why>(&bytes) {
                Ok(b) => h.answer(make(b.reason), from).await.into_response(),
                Err(bad) => bad.into_response(),
            }
        },
    )
}

/// The handler of each path in [`ROUTES`].
fn handler(path: &str) -> axum::routing::MethodRouter<Http> {
    match path {
        "/api/v1/status" => get(status),
        "/api/v1/events" => get(events),
        "/api/v1/events/stream" => get(stream),
        "/api/v1/maintenance" => post(maintenance),
        "/api/v1/alone" => this_node(|reason| Request::Alone { reason }),
        "/api/v1/handover" => this_node(|reason| Request::Handover { reason }),
        "/api/v1/config" => config(),
        "/api/v1/config/diff" => post(
            |State(h): State<Http>, ConnectInfo(from): ConnectInfo<SocketAddr>, headers: HeaderMap, bytes: Bytes| {
                write_with(h, from, headers, bytes, |b: ConfigText| Request::ConfigDiff { text: b.text })
            },
        ),
        "/metrics" => get(metrics),
        "/" => get(|| async { axum::response::Html(include_str!("status.html")) }),
        // /api/v1/sets/{set}/ACTION and /api/v1/nodes/{node}/ACTION
        p => write_route(p.rsplit('/').next().expect("a path has segments")),
    }
}

/// The router, built from [`ROUTES`] so that the list is the truth.
pub fn router(calls: mpsc::Sender<Call>, history: History, token: Option<Vec<u8>>) -> Router {
    let state = Http { calls, history, token: token.map(Arc::new) };
    let paths: std::collections::BTreeSet<&str> = ROUTES.iter().map(|&(_, path)| path).collect();
    paths.into_iter().fold(Router::new(), |r, path| r.route(path, handler(path))).with_state(state)
}

/// New events as Server-Sent Events, from the moment of the request (or
/// `since`), each named by its kind, its data the JSON record.
async fn stream(State(h): State<Http>, Query(q): Query<EventsQuery>) -> HttpResponse {
    let start = match since_ms(&q) {
        Ok(0) => now_ms(),
        Ok(ms) => ms,
        Err(bad) => return bad.into_response(),
    };
    let events = futures_util::stream::unfold((h, q.set, start), |(h, set, since)| async move {
        loop {
            let mut records = h.history.gather(since, set.clone()).await;
            if records.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let next = records.iter().map(|r| r.unix_ms + 1).max().unwrap_or(since);
            let batch: Vec<Result<Event, std::convert::Infallible>> = records
                .drain(..)
                .map(|r| Ok(Event::default().event(r.kind.clone()).data(serde_json::to_string(&r).expect("json"))))
                .collect();
            return Some((futures_util::stream::iter(batch), (h, set, next)));
        }
    });
    Sse::new(futures_util::StreamExt::flatten(events)).keep_alive(KeepAlive::default()).into_response()
}

/// Binds `addr` and serves in the background.
pub async fn serve(
    addr: SocketAddr,
    token_file: Option<&Path>,
    calls: mpsc::Sender<Call>,
    history: History,
) -> Result<(), String> {
    let token = match token_file {
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let end = text.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
            Some(text[..end].to_vec())
        }
        None => None,
    };
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("binding the HTTP API to {addr}: {e}"))?;
    let app = router(calls, history, token).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("baton: the HTTP API stopped: {e}");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
