//! The failure detector: for every peer and every link, when was it last
//! heard? A pure function of arrival times, in the manner of TigerBeetle's
//! fault detector: the caller passes `now`, which must never go backwards.
//!
//! A link silent from a peer for `timeout` is down — an event to log, not a
//! failover. A peer is dead only when every link to it is down. Only the
//! links both nodes are on count (a remote witness is on fewer).
//!
//! Each arrival is a promise the node echoes: not to suspect the peer for
//! `timeout` after it. A timeout changed by a configuration never takes a
//! promise back: per link the detector keeps the end of the longest
//! promise given (ARCHITECTURE.md, "A configuration change", point 7).

use std::time::Duration;

use crate::time::Time;
use crate::topology::NodeId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    LinkDown { peer: NodeId, link: usize, last_heard: Time },
    LinkUp { peer: NodeId, link: usize },
    NodeDown { peer: NodeId, last_heard: Time },
    NodeUp { peer: NodeId },
}

#[derive(Clone, Debug)]
struct Peer {
    /// Last arrival per link; starts at the detector's creation, which gives
    /// every peer one timeout of grace after boot.
    last: Vec<Time>,
    /// Per link: the end of the longest promise given for it.
    until: Vec<Time>,
    up: Vec<bool>,
    alive: bool,
    /// Heard at least once since the detector was created.
    heard: bool,
    alive_since: Time,
}

#[derive(Clone, Debug)]
pub struct Detector {
    me: NodeId,
    timeout: Duration,
    peers: Vec<Peer>,
    now: Time,
}

impl Detector {
    /// `links[n]`: how many links node `n` shares with `me`.
    pub fn new(me: NodeId, links: &[usize], timeout: Duration, now: Time) -> Self {
        assert!(usize::from(me) < links.len());
        let mut detector = Detector { me, timeout, peers: Vec::with_capacity(links.len()), now };
        for &shared in links {
            detector.add_peer(shared, now);
        }
        detector
    }

    /// A peer in the next slot (a node a configuration change added),
    /// sharing `shared` links with this node: like every peer at boot, one
    /// timeout of grace before it counts as down.
    pub fn add_peer(&mut self, shared: usize, now: Time) {
        assert!(shared > 0, "a node shares no link with node {}", self.me);
        self.peers.push(Peer {
            last: vec![now; shared],
            until: vec![now + self.timeout; shared],
            up: vec![true; shared],
            alive: true,
            heard: false,
            alive_since: now,
        });
    }

    /// How long a peer is promised after each arrival.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// From now on, promise `timeout` after each arrival. A promise
    /// already given keeps its end; a longer timeout extends every link's
    /// to its last arrival plus the new timeout, since an echo sent from
    /// now on says the new one.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        for p in &mut self.peers {
            for (until, last) in p.until.iter_mut().zip(&p.last) {
                *until = (*until).max(*last + timeout);
            }
        }
    }

    fn advance(&mut self, now: Time) {
        assert!(now >= self.now, "time went backwards: {now} after {}", self.now);
        self.now = now;
    }

    /// A valid packet from `peer` arrived on `link` at `now`.
    pub fn heard(&mut self, now: Time, peer: NodeId, link: usize) -> Vec<Change> {
        self.advance(now);
        assert_ne!(peer, self.me, "heard from myself");
        let p = &mut self.peers[usize::from(peer)];
        assert!(link < p.last.len(), "link {link} out of range");
        p.last[link] = now;
        p.until[link] = p.until[link].max(now + self.timeout);
        p.heard = true;
        let mut changes = Vec::new();
        if !p.alive {
            p.alive = true;
            p.alive_since = now;
            changes.push(Change::NodeUp { peer });
        }
        if !p.up[link] {
            p.up[link] = true;
            changes.push(Change::LinkUp { peer, link });
        }
        changes
    }

    /// A peer (re)joined the cluster: give it one timeout of grace, as at
    /// boot, before its silence counts. Suspecting later is always safe;
    /// suspecting a node that just joined, before its first heartbeat
    /// arrived, would fence or evict it again at once.
    pub fn grace(&mut self, now: Time, peer: NodeId) {
        self.advance(now);
        if peer == self.me {
            return;
        }
        let p = &mut self.peers[usize::from(peer)];
        for link in 0..p.last.len() {
            p.last[link] = p.last[link].max(now);
            p.until[link] = p.until[link].max(now + self.timeout);
            p.up[link] = true;
        }
        p.alive = true;
    }

    /// Notice every link and peer whose silence reached the timeout.
    pub fn poll(&mut self, now: Time) -> Vec<Change> {
        self.advance(now);
        let mut changes = Vec::new();
        for (i, p) in self.peers.iter_mut().enumerate() {
            let peer = i as NodeId;
            if peer == self.me {
                continue;
            }
            for link in 0..p.last.len() {
                if p.up[link] && now >= p.until[link] {
                    p.up[link] = false;
                    changes.push(Change::LinkDown { peer, link, last_heard: p.last[link] });
                }
            }
            if p.alive && p.up.iter().all(|up| !up) {
                p.alive = false;
                let last_heard = p.last.iter().copied().max().unwrap_or(now);
                changes.push(Change::NodeDown { peer, last_heard });
            }
        }
        changes
    }

    /// When `poll` next has something to say.
    pub fn next_deadline(&self) -> Option<Time> {
        self.peers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != usize::from(self.me))
            .flat_map(|(_, p)| p.until.iter().zip(&p.up).filter(|(_, up)| **up).map(|(t, _)| *t))
            .min()
    }

    /// Heard since boot, and not silent on every link for the timeout.
    pub fn is_alive(&self, peer: NodeId) -> bool {
        peer == self.me || {
            let p = &self.peers[usize::from(peer)];
            p.alive && p.heard
        }
    }

    /// Silent on every link for the timeout (a peer never heard counts as
    /// silent once the boot grace has passed).
    pub fn is_dead(&self, peer: NodeId) -> bool {
        peer != self.me && !self.peers[usize::from(peer)].alive
    }

    pub fn alive_since(&self, peer: NodeId) -> Time {
        self.peers[usize::from(peer)].alive_since
    }

    pub fn link_up(&self, peer: NodeId, link: usize) -> bool {
        self.peers[usize::from(peer)].up[link]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_millis(1000);

    fn ms(ms: u64) -> Time {
        Time(ms * 1000)
    }

    #[test]
    fn a_changed_timeout_never_takes_a_promise_back() {
        let mut d = Detector::new(0, &[1, 1], T, ms(0));
        d.heard(ms(100), 1, 0);
        d.set_timeout(Duration::from_millis(300));
        assert_eq!(d.poll(ms(1099)), vec![], "heard at 100 under a 1 s timeout: promised until 1100");
        d.heard(ms(1099), 1, 0);
        assert_eq!(d.next_deadline(), Some(ms(1399)), "a later arrival is promised the new 300 ms");
        d.set_timeout(Duration::from_secs(2));
        assert_eq!(d.next_deadline(), Some(ms(3099)), "a longer timeout covers the last arrival at once");
        assert_eq!(d.poll(ms(3098)), vec![]);
        assert_eq!(d.poll(ms(3099)).len(), 2, "link and node down when the longest promise ended");
    }

    #[test]
    fn one_silent_link_is_a_link_event_not_a_death() {
        let mut d = Detector::new(0, &[2, 2], T, ms(0));
        assert_eq!(d.heard(ms(10), 1, 0), vec![]);
        assert_eq!(d.heard(ms(10), 1, 1), vec![]);
        assert_eq!(d.heard(ms(900), 1, 0), vec![]);
        assert_eq!(d.poll(ms(1010)), vec![Change::LinkDown { peer: 1, link: 1, last_heard: ms(10) }]);
        assert!(d.is_alive(1));
        assert_eq!(d.heard(ms(1020), 1, 1), vec![Change::LinkUp { peer: 1, link: 1 }]);
    }

    #[test]
    fn a_peer_is_dead_when_every_link_is_silent_for_the_timeout() {
        let mut d = Detector::new(0, &[2, 2, 2], T, ms(0));
        d.heard(ms(100), 2, 0);
        d.heard(ms(300), 2, 1);
        assert_eq!(d.next_deadline(), Some(ms(1000)), "peer 1 was never heard: boot grace ends at 1s");
        let changes = d.poll(ms(1100));
        assert!(changes.contains(&Change::NodeDown { peer: 1, last_heard: ms(0) }));
        assert_eq!(d.poll(ms(1299)), vec![]);
        assert_eq!(
            d.poll(ms(1300)),
            vec![
                Change::LinkDown { peer: 2, link: 1, last_heard: ms(300) },
                Change::NodeDown { peer: 2, last_heard: ms(300) }
            ]
        );
        assert!(d.is_dead(2) && !d.is_alive(2));
        assert_eq!(d.heard(ms(1400), 2, 0), vec![Change::NodeUp { peer: 2 }, Change::LinkUp { peer: 2, link: 0 }]);
        assert_eq!(d.alive_since(2), ms(1400));
    }

    #[test]
    fn a_witness_on_one_link_is_judged_on_that_link_alone() {
        let mut d = Detector::new(0, &[2, 2, 1], T, ms(0));
        d.heard(ms(100), 1, 0);
        d.heard(ms(100), 1, 1);
        d.heard(ms(100), 2, 0);
        assert_eq!(d.poll(ms(1099)), vec![], "no event for the link the witness is not on");
        assert_eq!(
            d.poll(ms(1100)),
            vec![
                Change::LinkDown { peer: 1, link: 0, last_heard: ms(100) },
                Change::LinkDown { peer: 1, link: 1, last_heard: ms(100) },
                Change::NodeDown { peer: 1, last_heard: ms(100) },
                Change::LinkDown { peer: 2, link: 0, last_heard: ms(100) },
                Change::NodeDown { peer: 2, last_heard: ms(100) },
            ]
        );
        assert_eq!(d.heard(ms(1200), 2, 0), vec![Change::NodeUp { peer: 2 }, Change::LinkUp { peer: 2, link: 0 }]);
        assert!(d.is_alive(2));
    }

    #[test]
    fn a_peer_never_heard_is_not_alive_for_placement() {
        let d = Detector::new(0, &[1, 1], T, ms(0));
        assert!(!d.is_alive(1) && !d.is_dead(1));
    }

    #[test]
    fn a_peer_that_joins_gets_a_timeout_of_grace() {
        let mut d = Detector::new(0, &[1, 1], T, ms(0));
        d.poll(ms(1000));
        assert!(d.is_dead(1));
        d.grace(ms(5000), 1);
        assert!(!d.is_dead(1) && !d.is_alive(1), "neither dead nor heard");
        assert_eq!(d.poll(ms(5999)), vec![]);
        assert_eq!(
            d.poll(ms(6000)),
            vec![
                Change::LinkDown { peer: 1, link: 0, last_heard: ms(5000) },
                Change::NodeDown { peer: 1, last_heard: ms(5000) }
            ]
        );
    }

    #[test]
    #[should_panic(expected = "time went backwards")]
    fn time_going_backwards_is_a_bug() {
        let mut d = Detector::new(0, &[1, 1], T, ms(5));
        d.poll(ms(4));
    }
}
