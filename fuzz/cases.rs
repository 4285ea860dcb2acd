//! The fuzz targets' bodies, one function each: the targets in
//! `fuzz_targets/` call them under libFuzzer, and `tests/fuzz_corpus.rs`
//! replays every committed corpus input through them on stable, so an input
//! that once crashed stays a regression test.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request as HttpRequest;
use baton_agent::api::History;
use baton_agent::events::EventLog;
use baton_agent::raft::net::{Peers, Reply, Request as PeerRequest, Seal};
use baton_proto::heartbeat::Verifier;
use baton_proto::Keys;
use tower::ServiceExt;

const CLUSTER: u64 = 0x6261_746f_6e21_2121;
const SECRET: &[u8] = b"fuzzing secret, 32 bytes or more";
const TOKEN: &[u8] = b"fuzzing token, 32 bytes or more!";

/// Heartbeat datagrams: raw bytes as they arrive (first byte even), and
/// bodies signed with the cluster's key (odd) so the fields behind the MAC
/// are reached too. The same datagram is never accepted twice.
pub fn heartbeat(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let keys = Keys::new(vec![SECRET.to_vec()]);
    let mut verifier = Verifier::new(CLUSTER, 3, 2, keys.clone());
    let mut datagram = rest.to_vec();
    if mode & 1 == 1 {
        if datagram.len() >= 13 {
            datagram[5..13].copy_from_slice(&CLUSTER.to_be_bytes());
        }
        let tag = keys.sign(&datagram);
        datagram.extend_from_slice(&tag);
    }
    let link = mode >> 1 & 3;
    if verifier.open(link, &datagram).is_ok() {
        assert!(verifier.open(link, &datagram).is_err(), "a heartbeat was accepted twice");
    }
}

/// Frames between peers' agents: signed by a peer holding the key (so every
/// Raft message's JSON decoder is reached) or raw, read as either side.
pub fn peer_frame(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else { return };
    let keys = Keys::new(vec![SECRET.to_vec()]);
    let nonces = [7u8; 32];
    let mut theirs = Seal::new(keys.clone(), nonces, 1 - (mode & 1));
    let mut mine = Seal::new(keys, nonces, mode & 1);
    let frame = if mode & 2 == 0 { theirs.seal(body)[4..].to_vec() } else { body.to_vec() };
    if mode & 1 == 0 {
        let _ = mine.open::<Reply>(&frame);
    } else {
        let _ = mine.open::<PeerRequest>(&frame);
    }
    if let Some(prefix) = body.get(..4) {
        let _ = Seal::frame_len(prefix.try_into().expect("four bytes"));
    }
}

/// A request at the agent's two doors: as a Unix socket line, and as an
/// HTTP request (method from the first byte, then `path\nbody`) through the
/// whole axum router with no agent behind it.
pub fn api_request(data: &[u8]) {
    const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
    let Some((&mode, rest)) = data.split_first() else { return };
    if let Ok(line) = std::str::from_utf8(rest) {
        let _ = baton_agent::api::parse_line(line);
    }
    let text = String::from_utf8_lossy(rest);
    let (path, body) = text.split_once('\n').unwrap_or((&text, ""));
    let bearer = if mode & 4 == 0 { TOKEN } else { b"x".as_slice() };
    let Ok(req) = HttpRequest::builder()
        .method(METHODS[usize::from(mode & 3)])
        .uri(path)
        .header("authorization", [b"Bearer ".as_slice(), bearer].concat())
        .body(Body::from(body.to_string()))
    else {
        return;
    };
    let history = History {
        log: Arc::new(EventLog::open(Path::new("/nonexistent"), "fuzz")),
        peers: Peers::new(1, Keys::new(vec![b"k".to_vec()]), vec![]),
        me: 0,
    };
    // No agent: every call the router makes is answered "shutting down".
    let (calls, _) = tokio::sync::mpsc::channel(1);
    let router = baton_agent::http::router(calls, history, Some(TOKEN.to_vec()))
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let _ = rt.block_on(router.oneshot(req));
}

/// The configuration file, as `baton config check` and the agent read it.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = baton_config::parse_str(Path::new("fuzz.toml"), text);
    }
}

/// The meta-data XML an OCF agent prints, read for its advised timeouts.
pub fn ocf_metadata(data: &[u8]) {
    if let Ok(xml) = std::str::from_utf8(data) {
        let _ = baton_resources::ocf::parse_actions(xml);
    }
}
