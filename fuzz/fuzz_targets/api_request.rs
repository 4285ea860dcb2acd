//! Requests to the agent's two doors: a line on the Unix socket, and an
//! HTTP request (method, path with query, bearer token, body) through the
//! whole axum router, with no agent behind it.
#![no_main]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request as HttpRequest;
use baton_agent::api::{History, Request};
use baton_agent::events::EventLog;
use baton_agent::raft::net::Peers;
use baton_proto::Keys;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let _ = serde_json_line(rest);
    let text = String::from_utf8_lossy(rest);
    let (path, body) = text.split_once('\n').unwrap_or((&text, ""));
    let Ok(req) = HttpRequest::builder()
        .method(METHODS[usize::from(mode & 3)])
        .uri(path)
        .header("authorization", if mode & 4 == 0 { "Bearer fuzzing token, 32 bytes or more!" } else { "Bearer x" })
        .body(Body::from(body.to_string()))
    else {
        return;
    };
    let history = History {
        log: Arc::new(EventLog::open(Path::new("/nonexistent"), "fuzz")),
        peers: Peers { cluster: 1, keys: Keys::new(vec![b"k".to_vec()]), addrs: vec![] },
        me: 0,
    };
    // No agent: every call the router makes is answered "shutting down".
    let (calls, _) = tokio::sync::mpsc::channel(1);
    let router = baton_agent::http::router(calls, history, Some(b"fuzzing token, 32 bytes or more!".to_vec()))
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let _ = rt.block_on(router.oneshot(req));
});

fn serde_json_line(line: &[u8]) -> Option<Request> {
    baton_agent::api::parse_line(std::str::from_utf8(line).ok()?).ok()
}
