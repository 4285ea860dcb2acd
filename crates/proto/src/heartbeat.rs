//! The heartbeat datagram (version 1), big-endian:
//!
//! ```text
//! "BTNH" | version u8 = 1 | cluster u64 | link u8 | from u8 | epoch u64 | seq u64
//!        | echo count u8 | (to u8, epoch u64, seq u64) × count | HMAC-SHA256 (32)
//! ```
//!
//! The MAC covers every byte before it. A receiver accepts a heartbeat from
//! a sender on a link only if its sequence number is above the last one it
//! accepted there: a replay (or a network duplicate) is dropped.
//!
//! An echo to node 255 (no node has that id) is an option, not a promise:
//! its epoch says which, its seq the value. Option 1 is how long the
//! sender's promises are, in microseconds (`Heartbeat::promise`); option 2
//! which membership it counts by (`Heartbeat::members`); option 3 (value 0)
//! that the sender knows direct moves (`Heartbeat::direct`); option
//! 4 + 256 × set that the sender released that set for its direct move's
//! target, its value the set's generation (`Heartbeat::released`). A baton
//! that does not know options finds no echo to itself there and reads the
//! rest as before; one that knows them skips an option it does not know.

use std::collections::BTreeMap;
use std::time::Duration;

use baton_core::{Echo, Heartbeat, NodeId};

use crate::auth::{Keys, MAC_LEN};

const MAGIC: &[u8; 4] = b"BTNH";
const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 8 + 1 + 1 + 8 + 8 + 1;
const ECHO: usize = 1 + 8 + 8;
/// The `to` of an echo that carries an option.
const OPTION: u8 = 255;
/// The option that says how long the sender's promises are.
const OPTION_PROMISE: u64 = 1;
/// The option that says which membership (the last change of nodes) the
/// sender counts by.
const OPTION_MEMBERS: u64 = 2;
/// The option that says the sender knows direct moves.
const OPTION_DIRECT: u64 = 3;
/// The option, plus 256 × the set, that says the sender released the set
/// for its direct move's target.
const OPTION_RELEASED: u64 = 4;
/// The largest heartbeat: 255 echoes. Anything longer is malformed.
pub const MAX_LEN: usize = HEADER + 255 * ECHO + MAC_LEN;

pub fn encode(hb: &Heartbeat, cluster: u64, link: u8, keys: &Keys) -> Vec<u8> {
    let promise = hb.promise.map(|d| Echo { to: OPTION, epoch: OPTION_PROMISE, seq: d.as_micros() as u64 });
    let members = hb.members.map(|m| Echo { to: OPTION, epoch: OPTION_MEMBERS, seq: m });
    let direct = hb.direct.then_some(Echo { to: OPTION, epoch: OPTION_DIRECT, seq: 0 });
    let released: Vec<Echo> = (hb.released.iter())
        .map(|&(set, generation)| Echo { to: OPTION, epoch: OPTION_RELEASED + (u64::from(set) << 8), seq: generation })
        .collect();
    let echoes: Vec<&Echo> = hb.echoes.iter().chain(&promise).chain(&members).chain(&direct).chain(&released).collect();
    assert!(echoes.len() <= 255, "at most 255 echoes fit a heartbeat");
    let mut b = Vec::with_capacity(HEADER + echoes.len() * ECHO + MAC_LEN);
    b.extend_from_slice(MAGIC);
    b.push(VERSION);
    b.extend_from_slice(&cluster.to_be_bytes());
    b.push(link);
    b.push(hb.from);
    b.extend_from_slice(&hb.epoch.to_be_bytes());
    b.extend_from_slice(&hb.seq.to_be_bytes());
    b.push(echoes.len() as u8);
    for e in echoes {
        b.push(e.to);
        b.extend_from_slice(&e.epoch.to_be_bytes());
        b.extend_from_slice(&e.seq.to_be_bytes());
    }
    let tag = keys.sign(&b);
    b.extend_from_slice(&tag);
    b
}

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not a baton heartbeat of a version we speak, or cut short.
    Malformed,
    /// A heartbeat of another cluster.
    Foreign,
    /// The MAC does not match: not signed with our secret.
    Forged,
    /// Claims a link other than the one it arrived on, or a node we do not have.
    Misaddressed,
    /// Not newer than the last one accepted from that sender on that link.
    Replayed,
}

/// Per-link counts of what arrived, for status and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub accepted: u64,
    pub malformed: u64,
    pub foreign: u64,
    pub forged: u64,
    pub misaddressed: u64,
    pub replayed: u64,
}

impl Counters {
    pub fn rejected(&self) -> u64 {
        self.malformed + self.foreign + self.forged + self.misaddressed + self.replayed
    }

    fn count(&mut self, r: Result<(), Reject>) {
        let slot = match r {
            Ok(()) => &mut self.accepted,
            Err(Reject::Malformed) => &mut self.malformed,
            Err(Reject::Foreign) => &mut self.foreign,
            Err(Reject::Forged) => &mut self.forged,
            Err(Reject::Misaddressed) => &mut self.misaddressed,
            Err(Reject::Replayed) => &mut self.replayed,
        };
        *slot += 1;
    }
}

/// The receiving side: checks, authenticates and de-duplicates.
pub struct Verifier {
    cluster: u64,
    nodes: usize,
    keys: Keys,
    last: BTreeMap<(NodeId, u8), u64>,
    counters: Vec<Counters>,
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().expect("slices of 8 bytes"))
}

impl Verifier {
    pub fn new(cluster: u64, nodes: usize, links: usize, keys: Keys) -> Self {
        Verifier { cluster, nodes, keys, last: BTreeMap::new(), counters: vec![Counters::default(); links] }
    }

    /// Accepts heartbeats from `nodes` nodes from now on (a node added).
    pub fn set_nodes(&mut self, nodes: usize) {
        self.nodes = nodes;
    }

    pub fn counters(&self, link: usize) -> Counters {
        self.counters[link]
    }

    /// A datagram that arrived on `link`.
    pub fn open(&mut self, link: u8, bytes: &[u8]) -> Result<Heartbeat, Reject> {
        let r = self.check(link, bytes);
        if let Some(c) = self.counters.get_mut(usize::from(link)) {
            c.count(r.as_ref().map(|_| ()).map_err(|e| *e));
        }
        r
    }

    fn check(&mut self, link: u8, b: &[u8]) -> Result<Heartbeat, Reject> {
        if b.len() < HEADER + MAC_LEN || b.len() > MAX_LEN || &b[..4] != MAGIC || b[4] != VERSION {
            return Err(Reject::Malformed);
        }
        let count = usize::from(b[HEADER - 1]);
        if b.len() != HEADER + count * ECHO + MAC_LEN {
            return Err(Reject::Malformed);
        }
        if be64(&b[5..13]) != self.cluster {
            return Err(Reject::Foreign);
        }
        let (body, tag) = b.split_at(b.len() - MAC_LEN);
        if !self.keys.verify(body, tag) {
            return Err(Reject::Forged);
        }
        let (claimed_link, from) = (b[13], b[14]);
        if claimed_link != link || usize::from(from) >= self.nodes {
            return Err(Reject::Misaddressed);
        }
        let seq = be64(&b[23..31]);
        if self.last.get(&(from, link)).is_some_and(|&last| seq <= last) {
            return Err(Reject::Replayed);
        }
        self.last.insert((from, link), seq);
        let (mut echoes, mut promise, mut members) = (Vec::with_capacity(count), None, None);
        let (mut direct, mut released) = (false, Vec::new());
        for i in 0..count {
            let e = &body[HEADER + i * ECHO..HEADER + (i + 1) * ECHO];
            let echo = Echo { to: e[0], epoch: be64(&e[1..9]), seq: be64(&e[9..17]) };
            match (echo.to, echo.epoch) {
                (OPTION, OPTION_PROMISE) => promise = Some(Duration::from_micros(echo.seq)),
                (OPTION, OPTION_MEMBERS) => members = Some(echo.seq),
                (OPTION, OPTION_DIRECT) => direct = true,
                (OPTION, option) if option & 0xff == OPTION_RELEASED => {
                    if let Ok(set) = u16::try_from(option >> 8) {
                        released.push((set, echo.seq));
                    }
                }
                (OPTION, _) => {}
                _ => echoes.push(echo),
            }
        }
        Ok(Heartbeat { from, epoch: be64(&b[15..23]), seq, echoes, promise, members, direct, released })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::cluster_id;

    fn keys(k: &[u8]) -> Keys {
        Keys::new(vec![k.to_vec()])
    }

    fn hb(seq: u64) -> Heartbeat {
        Heartbeat {
            from: 1,
            epoch: 3,
            seq,
            echoes: vec![Echo { to: 0, epoch: 2, seq: 99 }],
            promise: Some(Duration::from_millis(1500)),
            members: Some(3),
            direct: true,
            released: vec![(0, 7), (300, 1 << 40)],
        }
    }

    /// A heartbeat from a baton before promises said their length (and
    /// their membership) reads as one without; an option this version does
    /// not know is skipped.
    #[test]
    fn the_promise_rides_as_an_option_older_and_newer_senders_are_read() {
        let k = keys(b"0123456789abcdef0123456789abcdef");
        let mut v = Verifier::new(cluster_id("lab"), 3, 1, k.clone());
        let old = Heartbeat { promise: None, members: None, direct: false, released: vec![], ..hb(1) };
        let bytes = encode(&old, cluster_id("lab"), 0, &k);
        assert_eq!(bytes.len(), HEADER + ECHO + MAC_LEN, "no option: the format of before");
        assert_eq!(v.open(0, &bytes), Ok(old));
        let newer = Heartbeat {
            echoes: vec![Echo { to: 0, epoch: 2, seq: 99 }, Echo { to: OPTION, epoch: 7, seq: 1 }],
            promise: None,
            ..hb(2)
        };
        assert_eq!(v.open(0, &encode(&newer, cluster_id("lab"), 0, &k)), Ok(Heartbeat { promise: None, ..hb(2) }));
        assert_eq!(v.open(0, &encode(&hb(3), cluster_id("lab"), 0, &k)), Ok(hb(3)));
    }

    /// Found by the `heartbeat` fuzz target: a heartbeat with sequence
    /// number 0 was accepted again and again, as 0 stood for "none yet".
    #[test]
    fn sequence_zero_is_accepted_once() {
        let k = keys(b"0123456789abcdef0123456789abcdef");
        let mut v = Verifier::new(cluster_id("lab"), 3, 2, k.clone());
        let bytes = encode(&hb(0), cluster_id("lab"), 0, &k);
        assert_eq!(v.open(0, &bytes), Ok(hb(0)));
        assert_eq!(v.open(0, &bytes), Err(Reject::Replayed));
    }

    #[test]
    fn round_trip() {
        let k = keys(b"0123456789abcdef0123456789abcdef");
        let mut v = Verifier::new(cluster_id("lab"), 3, 2, k.clone());
        let bytes = encode(&hb(5), cluster_id("lab"), 1, &k);
        assert_eq!(v.open(1, &bytes), Ok(hb(5)));
        assert_eq!(v.counters(1).accepted, 1);
    }

    #[test]
    fn forged_foreign_replayed_misaddressed_and_malformed_are_counted() {
        let k = keys(b"0123456789abcdef0123456789abcdef");
        let cluster = cluster_id("lab");
        let mut v = Verifier::new(cluster, 3, 2, k.clone());
        let good = encode(&hb(5), cluster, 0, &k);
        assert_eq!(v.open(0, &good), Ok(hb(5)));
        assert_eq!(v.open(0, &good), Err(Reject::Replayed));
        assert_eq!(v.open(0, &encode(&hb(4), cluster, 0, &k)), Err(Reject::Replayed));
        let other_secret = keys(b"not the secret, not the secret!!");
        assert_eq!(v.open(0, &encode(&hb(6), cluster, 0, &other_secret)), Err(Reject::Forged));
        assert_eq!(v.open(0, &encode(&hb(6), cluster_id("prod"), 0, &k)), Err(Reject::Foreign));
        assert_eq!(v.open(1, &encode(&hb(6), cluster, 0, &k)), Err(Reject::Misaddressed));
        let mut flipped = encode(&hb(7), cluster, 0, &k);
        flipped[24] ^= 1;
        assert_eq!(v.open(0, &flipped), Err(Reject::Forged));
        assert_eq!(v.open(0, &good[..good.len() - 1]), Err(Reject::Malformed));
        assert_eq!(v.open(0, b"GET / HTTP/1.0\r\n\r\n"), Err(Reject::Malformed));
        let c = v.counters(0);
        assert_eq!((c.accepted, c.replayed, c.forged, c.foreign, c.malformed), (1, 2, 2, 1, 2));
        assert_eq!(v.counters(1).misaddressed, 1);
        assert_eq!(v.open(0, &encode(&hb(8), cluster, 0, &k)), Ok(hb(8)), "nothing was lost by the bad ones");
    }

    #[test]
    fn a_rotated_secret_is_accepted_alongside_the_old_one() {
        let old = b"old-secret-old-secret-old-secret".to_vec();
        let new = b"new-secret-new-secret-new-secret".to_vec();
        let cluster = cluster_id("lab");
        let mut v = Verifier::new(cluster, 3, 1, Keys::new(vec![new.clone(), old.clone()]));
        assert!(v.open(0, &encode(&hb(1), cluster, 0, &Keys::new(vec![old]))).is_ok());
        assert!(v.open(0, &encode(&hb(2), cluster, 0, &Keys::new(vec![new]))).is_ok());
    }

    #[test]
    fn truncations_and_garbage_never_panic() {
        let k = keys(b"0123456789abcdef0123456789abcdef");
        let cluster = cluster_id("lab");
        let mut v = Verifier::new(cluster, 3, 1, k.clone());
        let good = encode(&hb(5), cluster, 0, &k);
        for n in 0..good.len() {
            assert!(v.open(0, &good[..n]).is_err());
        }
        let mut x: u64 = 1;
        for _ in 0..2000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = (x >> 33) as usize % 200;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
            let _ = v.open(0, &bytes);
        }
    }
}
