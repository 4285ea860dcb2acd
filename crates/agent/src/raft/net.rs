//! Peer traffic over TCP, trying each link in order. A connection opens
//! with both sides' random nonces and the cluster id; every frame after that
//! carries an HMAC over both nonces, its direction, a counter and its body,
//! so frames can be neither forged nor replayed, in or across connections.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use baton_proto::Keys;
use baton_state::Command;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{NodeId, Raft, TypeConfig};
use crate::events::EventLog;

const MAX_FRAME: usize = 16 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const MAC_LEN: usize = 32;
const HELLO_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
pub enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A node asks the leader to commit a command.
    Propose(Command),
    /// A node gathers the cluster's event history.
    Events {
        since_ms: u64,
        set: Option<String>,
    },
    /// `baton rejoin` on a node whose state is lost: take it out of the
    /// voters (see [`super::membership`]); the answer is the shape of the
    /// cluster's first state, which its new store replays from.
    Rejoin {
        node: NodeId,
        /// The node's name: once a change of nodes was agreed, its slot is
        /// looked up by it (a file without a removed node numbers its
        /// nodes otherwise).
        #[serde(default)]
        name: Option<String>,
    },
}

/// The leader's answer to `Rejoin`: the node's slot, the shape of the
/// cluster's first state, and the node slots (empty: no change of nodes
/// agreed).
#[derive(Serialize, Deserialize)]
pub struct Rejoined {
    pub node: NodeId,
    pub genesis: super::machine::Genesis,
    pub slots: Vec<crate::local::Slot>,
}

#[derive(Serialize, Deserialize)]
pub enum Reply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Propose(Result<(), String>),
    Events(Vec<crate::events::Record>),
    Rejoin(Result<Rejoined, String>),
}

fn random16() -> io::Result<[u8; 16]> {
    let mut b = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut b)?;
    Ok(b)
}

/// The signing state of one connection, apart from its socket: both
/// sides' nonces, which side this is and each direction's frame counter.
pub struct Seal {
    keys: Keys,
    nonces: [u8; 32],
    /// 0 for the side that connected, 1 for the side that accepted.
    me: u8,
    sent: u64,
    received: u64,
}

impl Seal {
    pub fn new(keys: Keys, nonces: [u8; 32], me: u8) -> Seal {
        Seal { keys, nonces, me: me & 1, sent: 0, received: 0 }
    }

    fn signed(&self, dir: u8, counter: u64, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(41 + body.len());
        m.extend_from_slice(&self.nonces);
        m.push(dir);
        m.extend_from_slice(&counter.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// The next frame to send: length, body, MAC.
    pub fn seal(&mut self, body: &[u8]) -> Vec<u8> {
        self.sent += 1;
        let tag = self.keys.sign(&self.signed(self.me, self.sent, body));
        let mut frame = ((body.len() + MAC_LEN) as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        frame.extend_from_slice(&tag);
        frame
    }

    /// Checks a frame's length prefix: the bytes that follow it.
    pub fn frame_len(prefix: [u8; 4]) -> io::Result<usize> {
        let len = u32::from_be_bytes(prefix) as usize;
        if !(MAC_LEN..=MAX_FRAME).contains(&len) {
            return Err(io::Error::other(format!("a frame of {len} bytes")));
        }
        Ok(len)
    }

    /// Verifies and decodes the next received frame (without its length
    /// prefix). Every frame counts, so a dropped or replayed one fails the
    /// ones after it too.
    pub fn open<T: for<'de> Deserialize<'de>>(&mut self, frame: &[u8]) -> io::Result<T> {
        if frame.len() < MAC_LEN {
            return Err(io::Error::other(format!("a frame of {} bytes", frame.len())));
        }
        let (body, tag) = frame.split_at(frame.len() - MAC_LEN);
        self.received += 1;
        if !self.keys.verify(&self.signed(1 - self.me, self.received, body), tag) {
            return Err(io::Error::other("a frame that is not signed with the cluster secret"));
        }
        serde_json::from_slice(body).map_err(|e| io::Error::other(format!("a malformed frame: {e}")))
    }
}

/// One authenticated connection.
pub struct Session {
    stream: TcpStream,
    seal: Seal,
}

impl Session {
    pub async fn connect(addr: SocketAddr, cluster: u64, keys: Keys) -> io::Result<Session> {
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr}: timed out")))??;
        stream.set_nodelay(true)?;
        let mine = random16()?;
        let mut hello = cluster.to_be_bytes().to_vec();
        hello.extend_from_slice(&mine);
        stream.write_all(&hello).await?;
        let mut theirs = [0u8; 16];
        stream.read_exact(&mut theirs).await?;
        let mut nonces = [0u8; 32];
        nonces[..16].copy_from_slice(&mine);
        nonces[16..].copy_from_slice(&theirs);
        Ok(Session { stream, seal: Seal::new(keys, nonces, 0) })
    }

    /// The accepting side of the handshake; a peer that does not say hello
    /// within [`HELLO_TIMEOUT`] is dropped, so idle connections cannot pile up.
    pub async fn accept(mut stream: TcpStream, cluster: u64, keys: Keys) -> io::Result<Session> {
        stream.set_nodelay(true)?;
        let mut hello = [0u8; 24];
        tokio::time::timeout(HELLO_TIMEOUT, stream.read_exact(&mut hello))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no hello"))??;
        if hello[..8] != cluster.to_be_bytes() {
            return Err(io::Error::other("a peer of another cluster"));
        }
        let mine = random16()?;
        stream.write_all(&mine).await?;
        let mut nonces = [0u8; 32];
        nonces[..16].copy_from_slice(&hello[8..]);
        nonces[16..].copy_from_slice(&mine);
        Ok(Session { stream, seal: Seal::new(keys, nonces, 1) })
    }

    pub async fn send<T: Serialize>(&mut self, msg: &T) -> io::Result<()> {
        let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
        let frame = self.seal.seal(&body);
        self.stream.write_all(&frame).await
    }

    pub async fn recv<T: for<'de> Deserialize<'de>>(&mut self) -> io::Result<T> {
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix).await?;
        let mut frame = vec![0u8; Seal::frame_len(prefix)?];
        self.stream.read_exact(&mut frame).await?;
        self.seal.open(&frame)
    }
}

/// The keys of the cluster: `secret_file` (which signs), then every
/// `accept_secret_files` entry. Errors name the file, never its content.
pub fn secrets(cluster: &baton_config::Cluster) -> Result<Vec<Vec<u8>>, String> {
    std::iter::once(&cluster.secret_file)
        .chain(&cluster.accept_secret_files)
        .map(|f| std::fs::read(f).map_err(|e| format!("reading {}: {e}", f.display())))
        .collect()
}

/// Where each node listens, link by link. Shared by every clone (Raft's
/// transport, the API's history): a node added while the agent runs is
/// reached by all of them (`set`).
#[derive(Clone)]
pub struct Peers {
    pub cluster: u64,
    pub keys: Keys,
    /// Per node, one address per link, in link order.
    addrs: Arc<std::sync::RwLock<Vec<Vec<SocketAddr>>>>,
}

impl Peers {
    /// The cluster's peers and keys as `config` gives them.
    pub fn of(config: &baton_config::Config) -> Result<Peers, String> {
        let cluster = baton_proto::cluster_id(&config.cluster.name);
        Ok(Peers::new(cluster, Keys::new(secrets(&config.cluster)?), Peers::addresses(config)))
    }

    pub fn new(cluster: u64, keys: Keys, addrs: Vec<Vec<SocketAddr>>) -> Peers {
        Peers { cluster, keys, addrs: Arc::new(std::sync::RwLock::new(addrs)) }
    }

    /// Per node of `config`, its address on each link at the cluster's port.
    pub fn addresses(config: &baton_config::Config) -> Vec<Vec<SocketAddr>> {
        let port = config.cluster.port;
        config.nodes.iter().map(|n| n.addresses.iter().map(|a| SocketAddr::new(a.ip, port)).collect()).collect()
    }

    /// Every node's addresses now.
    pub fn addrs(&self) -> Vec<Vec<SocketAddr>> {
        self.addrs.read().expect("not poisoned").clone()
    }

    /// From now on, for every clone.
    pub fn set(&self, addrs: Vec<Vec<SocketAddr>>) {
        *self.addrs.write().expect("not poisoned") = addrs;
    }

    /// Connect to `node`, trying each link in order.
    pub async fn connect(&self, node: NodeId) -> io::Result<Session> {
        let mut last = io::Error::other(format!("node {node} has no address"));
        let addrs = self.addrs().get(node as usize).cloned().unwrap_or_default();
        for addr in addrs {
            match Session::connect(addr, self.cluster, self.keys.clone()).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// One request, one reply, on a fresh or kept connection.
    pub async fn call(
        &self,
        node: NodeId,
        kept: &mut Option<Session>,
        req: &Request,
        ttl: Duration,
    ) -> io::Result<Reply> {
        let attempt = async {
            if kept.is_none() {
                *kept = Some(self.connect(node).await?);
            }
            let s = kept.as_mut().expect("just connected");
            s.send(req).await?;
            s.recv::<Reply>().await
        };
        match tokio::time::timeout(ttl, attempt).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                *kept = None;
                Err(e)
            }
            Err(_) => {
                *kept = None;
                Err(io::Error::new(io::ErrorKind::TimedOut, format!("node {node} did not answer within {ttl:?}")))
            }
        }
    }
}

pub struct Client {
    peers: Peers,
    target: NodeId,
    session: Option<Session>,
}

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = Client;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Client {
        Client { peers: self.clone(), target, session: None }
    }
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

fn unreachable<E: std::error::Error>(e: io::Error) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    if e.kind() == io::ErrorKind::TimedOut {
        RPCError::Network(NetworkError::new(&e))
    } else {
        RPCError::Unreachable(Unreachable::new(&e))
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    RPCError::Network(NetworkError::new(&io::Error::other("a reply of the wrong kind")))
}

impl Client {
    async fn call(&mut self, req: Request, option: &RPCOption) -> io::Result<Reply> {
        self.peers.call(self.target, &mut self.session, &req, option.hard_ttl()).await
    }
}

impl RaftNetwork<TypeConfig> for Client {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.call(Request::Append(rpc), &option).await.map_err(unreachable)? {
            Reply::Append(r) => r.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e))),
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.call(Request::Snapshot(rpc), &option).await.map_err(unreachable)? {
            Reply::Snapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(Request::Vote(rpc), &option).await.map_err(unreachable)? {
            Reply::Vote(r) => r.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e))),
            _ => Err(unexpected()),
        }
    }
}

/// Serves peers on `listener` until the process ends, each request with
/// the Raft instance `raft` holds then (two-node mode starts a new one).
pub async fn serve(
    listener: TcpListener,
    cluster: u64,
    keys: Keys,
    raft: watch::Receiver<Raft>,
    events: Arc<EventLog>,
    genesis: super::machine::Genesis,
    slots: watch::Receiver<Vec<crate::local::Slot>>,
) {
    loop {
        let Ok((stream, from)) = listener.accept().await else { continue };
        let (keys, current, events, genesis) = (keys.clone(), raft.clone(), Arc::clone(&events), genesis.clone());
        let slots = slots.clone();
        tokio::spawn(async move {
            let mut session = match Session::accept(stream, cluster, keys).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("baton: refused a peer connection from {from}: {e}");
                    return;
                }
            };
            loop {
                let req = match session.recv::<Request>().await {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return,
                    Err(e) => {
                        tracing::warn!("baton: dropped a peer connection from {from}: {e}");
                        return;
                    }
                };
                let raft = current.borrow().clone();
                let reply = match req {
                    Request::Append(r) => Reply::Append(raft.append_entries(r).await),
                    Request::Vote(r) => Reply::Vote(raft.vote(r).await),
                    Request::Snapshot(r) => Reply::Snapshot(raft.install_snapshot(r).await),
                    Request::Propose(c) => {
                        Reply::Propose(raft.client_write(c).await.map(|_| ()).map_err(|e| e.to_string()))
                    }
                    Request::Events { since_ms, set } => Reply::Events(events.query(since_ms, set.as_deref())),
                    Request::Rejoin { node, name } => {
                        let slots = slots.borrow().clone();
                        let by_name = name.and_then(|n| slots.iter().position(|s| s.name == n && !s.retired));
                        let node = by_name.map_or(node, |s| s as NodeId);
                        let genesis = genesis.clone();
                        let removed = super::membership::remove_voter(&raft, node).await;
                        Reply::Rejoin(removed.map(|()| Rejoined { node, genesis, slots }))
                    }
                };
                if session.send(&reply).await.is_err() {
                    return;
                }
            }
        });
    }
}
