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
use std::sync::{Arc, RwLock};
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
use tokio::sync::{mpsc, oneshot};

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
    token: Token,
}

/// The token writes need, read on every request: a configuration change
/// replaces it while the API runs (`None`: writes are refused).
type Token = Arc<RwLock<Option<Arc<Vec<u8>>>>>;

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
        let token = self.token.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(token) = token else {
            let why = "writes are disabled: this node has no readable cluster.http_token_file";
            return Err(Box::new(error(StatusCode::FORBIDDEN, why).into_response()));
        };
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        match given {
            Some(given) if same(given, &token) => Ok(()),
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
    routes(Http { calls, history, token: Arc::new(RwLock::new(token.map(Arc::new))) })
}

fn routes(state: Http) -> Router {
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

/// The HTTP API as it runs on this node: where it listens and the token
/// writes need, both followed live when the agreed configuration changes
/// them (and the token read again at SIGHUP).
pub struct Api {
    state: Http,
    /// Where it listens, and what stops that server.
    listening: Option<(SocketAddr, oneshot::Sender<()>)>,
}

impl Api {
    /// Not serving yet: [`Api::follow`] starts it.
    pub fn new(calls: mpsc::Sender<Call>, history: History) -> Api {
        let state = Http { calls, history, token: Arc::new(RwLock::new(None)) };
        Api { state, listening: None }
    }

    /// Where it listens now, if anywhere.
    pub fn address(&self) -> Option<SocketAddr> {
        self.listening.as_ref().map(|(addr, _)| *addr)
    }

    /// Serves on `addr` with the token `token_file` holds, read again now.
    /// A new address is bound before the old one is let go: if it cannot
    /// be, the API stays where it was. A token file that cannot be read
    /// leaves no token (writes refused) rather than an old one. Returns
    /// what could not be done, each as a sentence.
    pub fn follow(&mut self, addr: SocketAddr, token_file: Option<&Path>) -> Vec<String> {
        let mut problems = Vec::new();
        let token = match token_file {
            Some(path) => match read_token(path) {
                Ok(token) => Some(Arc::new(token)),
                Err(e) => {
                    problems.push(format!("{e}; writes over HTTP are refused until it can be read"));
                    None
                }
            },
            None => None,
        };
        *self.state.token.write().unwrap_or_else(|e| e.into_inner()) = token;
        if self.address() != Some(addr) {
            match self.listen(addr) {
                Ok(stop) => {
                    if let Some((_, old)) = self.listening.replace((addr, stop)) {
                        let _ = old.send(());
                    }
                }
                Err(e) => problems.push(match self.address() {
                    Some(old) => format!("binding the HTTP API to {addr}: {e}; it stays on {old}"),
                    None => format!("binding the HTTP API to {addr}: {e}"),
                }),
            }
        }
        problems
    }

    /// A server on `addr` in the background, and what stops it (it then
    /// accepts nothing more; requests under way finish).
    fn listen(&self, addr: SocketAddr) -> std::io::Result<oneshot::Sender<()>> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = routes(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serving.await {
                tracing::warn!("baton: the HTTP API on {addr} stopped: {e}");
            }
        });
        Ok(stop)
    }
}

/// The token in `path`, without trailing whitespace.
fn read_token(path: &Path) -> Result<Vec<u8>, String> {
    let mut text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let end = text.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    text.truncate(end);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventLog;
    use crate::raft::net::Peers;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn api() -> Api {
        let history = History {
            log: Arc::new(EventLog::open(Path::new("/nonexistent"), "test")),
            peers: Peers::new(1, baton_proto::Keys::new(vec![b"k".to_vec()]), vec![]),
            me: 0,
        };
        // No agent behind it: an authorized write is answered "shutting down".
        let (calls, _) = mpsc::channel(1);
        Api::new(calls, history)
    }

    /// A port free a moment ago on loopback.
    fn free() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    /// The status code of a write with `token` to `addr`, or `None` when
    /// nothing answers there.
    async fn write(addr: SocketAddr, token: &str) -> Option<u16> {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!(
            "POST /api/v1/handover HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).await.ok()?;
        reply.split_whitespace().nth(1)?.parse().ok()
    }

    #[test]
    fn the_address_and_the_token_follow_the_configuration_while_it_runs() {
        let dir = std::env::temp_dir().join(format!("baton-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (first, second) = (dir.join("first"), dir.join("second"));
        let (a, b) = ("a".repeat(32), "b".repeat(32));
        std::fs::write(&first, format!("{a}\n")).unwrap();
        std::fs::write(&second, &b).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut api = api();
            let one = free();
            assert_eq!(api.follow(one, Some(&first)), Vec::<String>::new());
            assert_eq!(write(one, &a).await, Some(409), "authorized: the missing agent answers");
            assert_eq!(write(one, &b).await, Some(401));

            // Another address and another token: the old address is let go.
            let two = free();
            assert_eq!(api.follow(two, Some(&second)), Vec::<String>::new());
            assert_eq!(write(two, &b).await, Some(409));
            assert_eq!(write(two, &a).await, Some(401), "the old token no longer writes");
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(write(one, &a).await, None, "nothing listens on the old address");

            // An address that cannot be bound: it stays where it was.
            let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let three = taken.local_addr().unwrap();
            let problems = api.follow(three, Some(&second));
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains(&format!("it stays on {two}")), "{problems:?}");
            assert_eq!(api.address(), Some(two));
            assert_eq!(write(two, &b).await, Some(409));

            // A token file that cannot be read: no token, writes refused.
            std::fs::remove_file(&second).unwrap();
            let problems = api.follow(two, Some(&second));
            assert!(problems[0].contains("writes over HTTP are refused"), "{problems:?}");
            assert_eq!(write(two, &b).await, Some(403));
            // No token file at all: read-only.
            assert_eq!(api.follow(two, None), Vec::<String>::new());
            assert_eq!(write(two, &a).await, Some(403));
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
