//! Heartbeats on the wire: one UDP socket per link, bound to this node's
//! address on that link; every heartbeat goes to every peer on every link
//! both are on (a remote witness is on the first links only).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use baton_core::{Heartbeat, Input};
use baton_proto::{heartbeat, Counters, Keys, Verifier};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub struct Links {
    me: usize,
    cluster: u64,
    keys: Keys,
    sockets: Vec<Arc<UdpSocket>>,
    /// Per node, per link: where its heartbeats go.
    peers: Vec<Vec<SocketAddr>>,
    verifier: Arc<Mutex<Verifier>>,
    sent: Vec<u64>,
}

impl Links {
    pub async fn bind(
        me: usize,
        cluster: u64,
        keys: Keys,
        peers: Vec<Vec<SocketAddr>>,
        inputs: mpsc::Sender<Input>,
    ) -> io::Result<Links> {
        let links = peers[me].len();
        let verifier = Arc::new(Mutex::new(Verifier::new(cluster, peers.len(), links, keys.clone())));
        let mut sockets = Vec::with_capacity(links);
        for (link, &addr) in peers[me].iter().enumerate() {
            let socket =
                Arc::new(UdpSocket::bind(addr).await.map_err(|e| {
                    io::Error::new(e.kind(), format!("binding heartbeats on {addr} (link {link}): {e}"))
                })?);
            let (rx, verifier, inputs) = (Arc::clone(&socket), Arc::clone(&verifier), inputs.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; heartbeat::MAX_LEN + 1];
                loop {
                    let Ok((n, _from)) = rx.recv_from(&mut buf).await else { continue };
                    let opened = verifier.lock().expect("not poisoned").open(link as u8, &buf[..n]);
                    if let Ok(hb) = opened {
                        // A full queue means the loop is behind: drop, as the network would.
                        let _ = inputs.try_send(Input::Heartbeat { link, heartbeat: hb });
                    }
                }
            });
            sockets.push(socket);
        }
        Ok(Links { me, cluster, keys, sockets, peers, verifier, sent: vec![0; links] })
    }

    pub fn send(&mut self, hb: &Heartbeat) {
        for (link, socket) in self.sockets.iter().enumerate() {
            let bytes = heartbeat::encode(hb, self.cluster, link as u8, &self.keys);
            for (node, addrs) in self.peers.iter().enumerate() {
                let Some(&to) = addrs.get(link).filter(|_| node != self.me) else { continue };
                // A send error is a link problem; the detector will see it.
                if socket.try_send_to(&bytes, to).is_ok() {
                    self.sent[link] += 1;
                }
            }
        }
    }

    /// Heartbeats go to `peers` from now on, and are taken from each of
    /// them (a node added while the agent runs).
    pub fn set_peers(&mut self, peers: Vec<Vec<SocketAddr>>) {
        self.verifier.lock().expect("not poisoned").set_nodes(peers.len());
        self.peers = peers;
    }

    /// (sent, received counters) per link.
    pub fn counters(&self) -> Vec<(u64, Counters)> {
        let v = self.verifier.lock().expect("not poisoned");
        self.sent.iter().enumerate().map(|(l, &s)| (s, v.counters(l))).collect()
    }
}
