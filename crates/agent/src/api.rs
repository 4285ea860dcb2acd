//! The local API the command line uses: one JSON request and one JSON
//! response per connection on a Unix socket of mode 0600.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::events::{EventLog, Record};
use crate::raft::net::{self as raftnet, Peers};

/// The longest request line accepted.
const REQUEST_MAX: usize = 64 * 1024;
/// How long `move` and `standby` wait for the cluster to finish.
pub const MOVE_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    Move {
        set: String,
        node: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    },
    Freeze {
        set: String,
        frozen: bool,
        #[serde(default)]
        reason: Option<String>,
    },
    Standby {
        node: String,
        standby: bool,
        #[serde(default)]
        reason: Option<String>,
    },
    IsActive {
        set: String,
    },
    /// Take the cluster-wide lock `name` for this node, waiting at most
    /// `wait_ms` for it; answers the fencing token.
    Lock {
        name: String,
        wait_ms: u64,
    },
    /// Who holds `name`, its token, and whether this node may act on it now.
    LockState {
        name: String,
    },
    /// Give `name` back.
    Unlock {
        name: String,
        token: u64,
    },
    /// Cluster-wide maintenance mode on or off.
    Maintenance {
        on: bool,
        #[serde(default)]
        reason: Option<String>,
    },
    Cleanup {
        set: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// The merged event history of every reachable node.
    Events {
        since_ms: u64,
        set: Option<String>,
    },
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `status`: the status document; others: extra facts (the move target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl Response {
    pub fn ok(data: Option<Value>) -> Self {
        Response { ok: true, error: None, data }
    }

    pub fn err(why: impl Into<String>) -> Self {
        Response { ok: false, error: Some(why.into()), data: None }
    }
}

/// A request, who sent it (from the socket's peer credentials), where to answer.
pub type Call = (Request, Option<String>, oneshot::Sender<Response>);

/// Where `events` requests find the history: this node's, and its peers'.
#[derive(Clone)]
pub struct History {
    pub log: Arc<EventLog>,
    pub peers: Peers,
    pub me: usize,
}

impl History {
    pub async fn gather(&self, since_ms: u64, set: Option<String>) -> Vec<Record> {
        let mut all = self.log.query(since_ms, set.as_deref());
        for peer in (0..self.peers.addrs.len()).filter(|&p| p != self.me) {
            let req = raftnet::Request::Events { since_ms, set: set.clone() };
            if let Ok(raftnet::Reply::Events(mut theirs)) =
                self.peers.call(peer as u64, &mut None, &req, Duration::from_secs(2)).await
            {
                all.append(&mut theirs);
            }
        }
        all.sort_by(|a, b| (a.unix_ms, &a.node).cmp(&(b.unix_ms, &b.node)));
        all
    }
}

/// The user behind a connection: its uid's name in /etc/passwd, else `uid N`.
fn user_of(stream: &UnixStream) -> Option<String> {
    let uid = stream.peer_cred().ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f[0].to_string())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

/// Serves the socket at `path`, handing each request to the agent's loop.
pub async fn serve(path: &Path, calls: mpsc::Sender<Call>, history: History) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).map_err(|e| io::Error::new(e.kind(), format!("binding {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(handle(stream, calls.clone(), history.clone()));
        }
    });
    Ok(())
}

async fn ask(calls: &mpsc::Sender<Call>, req: Request, user: Option<String>) -> Response {
    let (tx, rx) = oneshot::channel();
    if calls.send((req, user, tx)).await.is_err() {
        return Response::err("the agent is shutting down");
    }
    rx.await.unwrap_or_else(|_| Response::err("the agent is shutting down"))
}

fn set_of<'a>(status: &'a Value, set: &str) -> Option<&'a Value> {
    status["sets"].as_array()?.iter().find(|s| s["name"] == set)
}

/// Polls the status until `done` holds, or says what the status was.
async fn wait_for(calls: &mpsc::Sender<Call>, what: &str, done: impl Fn(&Value) -> Option<String>) -> Response {
    let start = Instant::now();
    loop {
        let status = ask(calls, Request::Status, None).await;
        let Some(doc) = status.data else { return status };
        match done(&doc) {
            None => return Response::ok(None),
            Some(state) if start.elapsed() > MOVE_WAIT => {
                return Response::err(format!("{what} did not finish within {}s: {state}", MOVE_WAIT.as_secs()))
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn handle(stream: UnixStream, calls: mpsc::Sender<Call>, history: History) {
    let user = user_of(&stream);
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(REQUEST_MAX as u64);
    let response = match reader.read_line(&mut line).await {
        Err(e) => Response::err(format!("reading the request: {e}")),
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Err(e) => Response::err(format!("a malformed request: {e}")),
            Ok(req) => dispatch(&calls, &history, req, user).await,
        },
    };
    let mut text = serde_json::to_string(&response).expect("responses serialize");
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}

/// Answers one request, whichever door it came in by (this socket or the
/// HTTP API): `events` from the history, the rest from the agent's loop;
/// `move` and `standby` wait until the cluster has done it.
pub async fn dispatch(calls: &mpsc::Sender<Call>, history: &History, req: Request, user: Option<String>) -> Response {
    if let Request::Events { since_ms, set } = req {
        let records = history.gather(since_ms, set).await;
        return Response::ok(Some(serde_json::to_value(records).expect("records serialize")));
    }
    let first = ask(calls, req.clone(), user).await;
    match (&req, first.ok) {
        (Request::Move { set, .. }, true) => {
            let target = first.data.as_ref().and_then(|d| d["target"].as_str()).unwrap_or("").to_string();
            let r = wait_for(calls, &format!("moving {set} to {target}"), |doc| {
                let s = set_of(doc, set)?;
                (s["owner"] == target.as_str() && s["state"] == "running")
                    .then_some(())
                    .map_or_else(|| Some(format!("{set} is {} on {}", s["state"], s["owner"])), |_| None)
            })
            .await;
            if r.ok {
                first
            } else {
                r
            }
        }
        (Request::Standby { node, standby: true, .. }, true) => {
            wait_for(calls, &format!("emptying {node}"), |doc| {
                let held: Vec<String> = doc["sets"]
                    .as_array()?
                    .iter()
                    .filter(|s| s["owner"] == node.as_str())
                    .map(|s| s["name"].as_str().unwrap_or("?").to_string())
                    .collect();
                (!held.is_empty()).then(|| format!("{node} still runs {}", held.join(", ")))
            })
            .await
        }
        (Request::Lock { name, wait_ms }, true) => {
            let start = Instant::now();
            loop {
                let state = ask(calls, Request::LockState { name: name.clone() }, None).await;
                let d = state.data.unwrap_or_default();
                if d["valid"] == true {
                    return Response::ok(Some(serde_json::json!({ "token": d["token"] })));
                }
                if start.elapsed() >= Duration::from_millis(*wait_ms) {
                    let who = d["holder"].as_str().unwrap_or("nobody (not granted yet)").to_string();
                    return Response::err(format!("the lock {name} is held by {who}"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                // Ask again: the holder may have let go, or been evicted.
                let again = ask(calls, req.clone(), None).await;
                if !again.ok {
                    return again;
                }
            }
        }
        _ => first,
    }
}

/// The command line's side: one request, one response.
pub async fn call(path: &Path, req: &Request) -> Result<Response, String> {
    let stream = UnixStream::connect(path).await.map_err(|e| {
        format!("cannot reach the agent at {}: {e} (is `baton agent` running on this node?)", path.display())
    })?;
    let (read, mut write) = stream.into_split();
    let mut text = serde_json::to_string(req).expect("requests serialize");
    text.push('\n');
    write.write_all(text.as_bytes()).await.map_err(|e| format!("talking to the agent: {e}"))?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await.map_err(|e| format!("talking to the agent: {e}"))?;
    if line.is_empty() {
        return Err("the agent closed the connection without answering".into());
    }
    serde_json::from_str(&line).map_err(|e| format!("the agent answered something unreadable: {e}"))
}
