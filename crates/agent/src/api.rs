//! The local API the command line uses: one JSON request and one JSON
//! response per connection on a Unix socket of mode 0600.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::events::{EventLog, Record};
use crate::raft::net::{self as raftnet, Peers};

/// The longest request line accepted.
const REQUEST_MAX: usize = 64 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    /// The agreed state as this node has applied it (for `baton simulate`).
    AgreedState,
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
    /// Two-node mode: this node goes on alone on the operator's word that
    /// its peer is off (what the peer may have agreed alone is given up).
    Alone {
        #[serde(default)]
        reason: Option<String>,
    },
    /// Replace this agent's program with the binary at its path, the sets
    /// left running (`baton handover`).
    Handover {
        #[serde(default)]
        reason: Option<String>,
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
    /// `baton config apply`: propose this file's text as the cluster's
    /// configuration; answered once agreed, with its generation.
    ConfigApply {
        text: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// `baton config diff`: what applying this text would do, set by set.
    ConfigDiff {
        text: String,
    },
    /// `baton config show`: the agreed configuration and its generation.
    ConfigShow,
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
        for peer in (0..self.peers.addrs().len()).filter(|&p| p != self.me) {
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

/// The user behind a connection: its uid's name through the system's name
/// service (LDAP and SSSD users too), else `uid N`.
async fn user_of(stream: &UnixStream) -> Option<String> {
    let uid = stream.peer_cred().ok()?.uid();
    // The name service may ask a server: not on the agent's threads.
    let name = tokio::task::spawn_blocking(move || user_name(uid)).await.ok().flatten();
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

/// `getpwuid_r(3)`: the name of `uid`, if the name service knows it.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: an all-zero passwd is a valid out-parameter; getpwuid_r
        // fills it with pointers into `buf`, which outlives their use here.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the length given.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() || pw.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name is a NUL-terminated string inside `buf`.
        return Some(unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }.to_string_lossy().into_owned());
    }
}

/// The user a root caller came from through sudo (`SUDO_USER`, which the
/// command line sends beside its request), kept beside the caller's name.
#[derive(Deserialize)]
struct Via {
    #[serde(default)]
    sudo_user: Option<String>,
}

/// "root (sudo from alice)": the caller's name, and the sudo user when the
/// request names a plausible one.
fn with_sudo_user(user: Option<String>, line: &str) -> Option<String> {
    let sudo = serde_json::from_str::<Via>(line).ok().and_then(|v| v.sudo_user).filter(|s| {
        (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@$".contains(&b))
    });
    match (user, sudo) {
        (Some(u), Some(s)) => Some(format!("{u} (sudo from {s})")),
        (user, _) => user,
    }
}

/// Serves the socket at `path`, handing each request to the agent's loop.
pub async fn serve(path: &Path, calls: mpsc::Sender<Call>, history: History) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    // Created 0600 (no window in which others could connect), owned by
    // whoever runs the agent — root, as it must be for netlink.
    // SAFETY: umask only sets the process's file creation mask.
    let old_mask = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old_mask) };
    let listener = bound.map_err(|e| io::Error::new(e.kind(), format!("binding {}: {e}", path.display())))?;
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

/// One request line of the Unix socket.
pub fn parse_line(line: &str) -> Result<Request, String> {
    serde_json::from_str::<Request>(line).map_err(|e| format!("a malformed request: {e}"))
}

async fn handle(stream: UnixStream, calls: mpsc::Sender<Call>, history: History) {
    let user = user_of(&stream).await;
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(REQUEST_MAX as u64);
    let response = match reader.read_line(&mut line).await {
        Err(e) => Response::err(format!("reading the request: {e}")),
        Ok(_) => match parse_line(&line) {
            Err(e) => Response::err(e),
            Ok(req) => dispatch(&calls, &history, req, with_sudo_user(user, &line)).await,
        },
    };
    let mut text = serde_json::to_string(&response).expect("responses serialize");
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}

/// Answers one request, whichever door it came in by (this socket or the
/// HTTP API): `events` from the history, the rest from the agent's loop,
/// whose core answers once the cluster has done it (a move: the set runs
/// on its target; a standby: the node is empty; a lock: it is granted).
pub async fn dispatch(calls: &mpsc::Sender<Call>, history: &History, req: Request, user: Option<String>) -> Response {
    if let Request::Events { since_ms, set } = req {
        let records = history.gather(since_ms, set).await;
        return Response::ok(Some(serde_json::to_value(records).expect("records serialize")));
    }
    ask(calls, req, user).await
}

/// Whether the command line may talk to a socket owned by `uid` with
/// `mode`: it must be root's (or the caller's own) and closed to others, as
/// the agent makes it — anything else may be someone's trap for commands.
pub fn trusted_socket(path: &Path, uid: u32, mode: u32, euid: u32) -> Result<(), String> {
    if uid != 0 && uid != euid {
        return Err(format!("{} is owned by uid {uid}, not root: refusing to talk to it", path.display()));
    }
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} has mode {:04o}, open to others (the agent makes it 0600): refusing to talk to it",
            path.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

/// The command line's side: one request, one response.
/// How long a caller waits for the agent's answer: a stopped or hung agent
/// must not hang the command line.
fn answer_within(req: &Request) -> Duration {
    let extra = match req {
        Request::Move { .. } | Request::Standby { .. } => baton_core::requests::MOVE_WAIT,
        Request::Lock { wait_ms, .. } => Duration::from_millis(*wait_ms),
        Request::Events { .. } => Duration::from_secs(20),
        _ => Duration::ZERO,
    };
    Duration::from_secs(10).saturating_add(extra)
}

pub async fn call(path: &Path, req: &Request) -> Result<Response, String> {
    let limit = answer_within(req);
    tokio::time::timeout(limit, exchange(path, req)).await.unwrap_or_else(|_| {
        Err(format!("the agent at {} did not answer within {limit:?} (is it stopped or hung?)", path.display()))
    })
}

async fn exchange(path: &Path, req: &Request) -> Result<Response, String> {
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        trusted_socket(path, meta.uid(), meta.mode(), unsafe { libc::geteuid() })?;
    }
    let stream = UnixStream::connect(path).await.map_err(|e| {
        format!("cannot reach the agent at {}: {e} (is `baton agent` running on this node?)", path.display())
    })?;
    let (read, mut write) = stream.into_split();
    let mut doc = serde_json::to_value(req).expect("requests serialize");
    if let Some(sudo) = std::env::var("SUDO_USER").ok().filter(|s| !s.is_empty()) {
        doc["sudo_user"] = Value::String(sudo);
    }
    let mut text = doc.to_string();
    text.push('\n');
    write.write_all(text.as_bytes()).await.map_err(|e| format!("talking to the agent: {e}"))?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await.map_err(|e| format!("talking to the agent: {e}"))?;
    if line.is_empty() {
        return Err("the agent closed the connection without answering".into());
    }
    serde_json::from_str(&line).map_err(|e| format!("the agent answered something unreadable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_come_from_the_name_service_and_sudo_is_named_beside_them() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(user_name(4_000_000_000), None);
        let line = r#"{"cmd":"status","sudo_user":"alice"}"#;
        assert_eq!(parse_line(line), Ok(Request::Status), "the field beside the request is not part of it");
        assert_eq!(with_sudo_user(Some("root".into()), line).as_deref(), Some("root (sudo from alice)"));
        assert_eq!(with_sudo_user(Some("root".into()), r#"{"cmd":"status"}"#).as_deref(), Some("root"));
        let forged = r#"{"cmd":"status","sudo_user":"a\nb"}"#;
        assert_eq!(with_sudo_user(Some("root".into()), forged).as_deref(), Some("root"), "not a user name");
    }

    #[test]
    fn only_a_closed_socket_of_root_or_the_caller_is_trusted() {
        let p = Path::new("/run/baton.sock");
        assert!(trusted_socket(p, 0, 0o140600, 1000).is_ok());
        assert!(trusted_socket(p, 1000, 0o140600, 1000).is_ok());
        let other = trusted_socket(p, 1001, 0o140600, 1000).unwrap_err();
        assert!(other.contains("uid 1001"), "{other}");
        let open = trusted_socket(p, 0, 0o140666, 0).unwrap_err();
        assert!(open.contains("mode 0666"), "{open}");
    }
}
