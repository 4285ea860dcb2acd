//! Leases: how long a node may keep running its sets without hearing from
//! the cluster.
//!
//! baton's leases are granted by a majority of voters, not by the leader, so
//! no leader change can ever leave two valid leases behind. Each voter that
//! hears a heartbeat echoes its sequence number back; by echoing, the voter
//! promises not to suspect the sender for `lease` (its clock) after it last
//! heard it. A node's lease is the time until which a majority of voters —
//! itself included, since a node never suspects itself — are bound by such a
//! promise, measured conservatively from when it *sent* the echoed heartbeat
//! and shortened for clock drift ([`Timing::hold_for`] of the lease that
//! voter promised: a lease changed by a configuration is counted by what
//! each voter promised, whichever side switched first).
//!
//! The other half of the rule lives in the replicated state: a node is
//! evicted only when a majority of voters have committed a suspicion, and a
//! voter stops echoing (denies) before it proposes one. Any two majorities
//! share a voter, so by the time an eviction is applied the evicted node's
//! lease has ended, and it can never renew it. This is the rule that lets the
//! leader hand a silent node's sets on: it needs no timer of its own, and a
//! new leader has nothing to wait out, because leases never depended on it.
//!
//! [`Timing::hold_for`]: crate::topology::Timing::hold_for

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Time;
use crate::topology::NodeId;

/// Enough send times to resolve any echo that could still extend the lease.
const SENT_MAX: usize = 256;

/// The holder's side: heartbeats sent, promises received.
#[derive(Clone, Debug)]
pub struct Lease {
    me: NodeId,
    majority: usize,
    next_seq: u64,
    sent: VecDeque<(u64, Time)>,
    /// Per voter: (epoch, promise end on my clock).
    promises: Vec<Option<(u64, Time)>>,
    /// A lease an earlier program of this node held (a handover): its
    /// epoch and end. ARCHITECTURE.md, "A handover", point 3.
    inherited: Option<(u64, Time)>,
}

impl Lease {
    /// `first_seq` must exceed every sequence number this node used before
    /// (the shell derives it from a persisted incarnation), so that an echo
    /// of a heartbeat sent before a restart can never be mistaken for one
    /// sent after it.
    /// `voters[n]`: node `n` votes (a slot a configuration change
    /// retired does not).
    pub fn new(me: NodeId, voters: &[bool], first_seq: u64) -> Self {
        let mut lease = Lease {
            me,
            majority: 1,
            next_seq: first_seq,
            sent: VecDeque::with_capacity(SENT_MAX),
            promises: Vec::new(),
            inherited: None,
        };
        lease.set_voters(voters);
        lease
    }

    /// Counts a majority of `voters` from now on (a node added or retired
    /// by a configuration change): a retired voter's promise is dropped, a
    /// new voter has promised nothing yet. ARCHITECTURE.md, "Nodes added
    /// and removed", point 5.
    pub fn set_voters(&mut self, voters: &[bool]) {
        self.promises.resize(voters.len(), None);
        for (promise, _) in self.promises.iter_mut().zip(voters).filter(|(_, &v)| !v) {
            *promise = None;
        }
        self.majority = voters.iter().filter(|&&v| v).count() / 2 + 1;
    }

    /// Counts `end` as this node's lease for `epoch` until its own
    /// heartbeats earn a later one: the lease the program before a
    /// handover held, promised to the node, not to a program.
    pub fn inherit(&mut self, epoch: u64, end: Time) {
        self.inherited = Some((epoch, end));
    }

    /// Holds every lease already earned `by` less: the guard needs that
    /// much more time to release (the holds counted from now on are
    /// shorter too: the caller's margin grew).
    pub fn shorten(&mut self, by: Duration) {
        let earlier = |t: &mut Time| *t = Time(t.0.saturating_sub(by.as_micros() as u64));
        self.promises.iter_mut().flatten().for_each(|(_, t)| earlier(t));
        self.inherited.iter_mut().for_each(|(_, t)| earlier(t));
    }

    /// The sequence number the next heartbeat will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Records a heartbeat about to be sent at `now`; returns its sequence.
    pub fn on_send(&mut self, now: Time) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.sent.len() == SENT_MAX {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, now));
        seq
    }

    /// `voter` echoed heartbeat `seq`, granting a promise for `epoch` this
    /// node may count on for `hold` from the heartbeat's sending.
    pub fn on_echo(&mut self, voter: NodeId, epoch: u64, seq: u64, hold: Duration) {
        if voter == self.me {
            return;
        }
        let Some(&(_, sent_at)) = self.sent.iter().find(|(s, _)| *s == seq) else {
            return; // Too old to matter, or not ours.
        };
        let end = sent_at + hold;
        let slot = &mut self.promises[usize::from(voter)];
        match slot {
            Some((e, t)) if *e == epoch && *t >= end => {}
            _ => *slot = Some((epoch, end)),
        }
    }

    /// When the lease for `epoch` ends, if a majority is bound at all (or
    /// an inherited lease for it has not ended yet, whichever is later).
    pub fn expiry(&self, epoch: u64) -> Option<Time> {
        let inherited = self.inherited.filter(|(e, _)| *e == epoch).map(|(_, t)| t);
        self.earned(epoch).max(inherited)
    }

    /// When the lease its own heartbeats earned for `epoch` ends.
    fn earned(&self, epoch: u64) -> Option<Time> {
        let mut ends: Vec<Time> = self
            .promises
            .iter()
            .enumerate()
            .filter(|(v, _)| *v != usize::from(self.me))
            .filter_map(|(_, p)| p.filter(|(e, _)| *e == epoch).map(|(_, t)| t))
            .collect();
        // I am one promise myself; I need `majority - 1` more.
        let need = self.majority - 1;
        if need == 0 {
            return Some(Time(u64::MAX));
        }
        if ends.len() < need {
            return None;
        }
        ends.sort_unstable_by(|a, b| b.cmp(a));
        Some(ends[need - 1])
    }

    /// Is the lease for `epoch` valid at `now`?
    pub fn valid(&self, epoch: u64, now: Time) -> bool {
        self.expiry(epoch).is_some_and(|end| now < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Time {
        Time(ms * 1000)
    }

    const HOLD: Duration = Duration::from_millis(900);

    #[test]
    fn the_lease_runs_from_the_send_time_of_the_echoed_heartbeat() {
        let mut l = Lease::new(0, &[true; 3], 100);
        let s1 = l.on_send(ms(0));
        let s2 = l.on_send(ms(100));
        assert_eq!(l.expiry(0), None, "no promise yet");
        l.on_echo(1, 0, s1, HOLD);
        assert_eq!(l.expiry(0), Some(ms(900)), "with three voters, me and one more are a majority");
        l.on_echo(2, 0, s2, HOLD);
        assert_eq!(l.expiry(0), Some(ms(1000)), "the best majority counts");
        assert!(l.valid(0, ms(999)) && !l.valid(0, ms(1000)));
        assert_eq!(l.expiry(1), None, "promises are for one epoch only");
    }

    #[test]
    fn five_voters_need_two_promises_and_the_weaker_one_counts() {
        let mut l = Lease::new(4, &[true; 5], 0);
        let a = l.on_send(ms(0));
        let b = l.on_send(ms(500));
        l.on_echo(0, 7, b, HOLD);
        assert_eq!(l.expiry(7), None);
        l.on_echo(1, 7, a, HOLD);
        assert_eq!(l.expiry(7), Some(ms(900)));
        l.on_echo(2, 7, b, HOLD);
        assert_eq!(l.expiry(7), Some(ms(1400)));
    }

    #[test]
    fn unknown_or_self_echoes_are_ignored_and_promises_never_shrink() {
        let mut l = Lease::new(0, &[true; 3], 50);
        let a = l.on_send(ms(0));
        let b = l.on_send(ms(100));
        l.on_echo(1, 0, 49, HOLD); // Sent before a restart: not ours.
        l.on_echo(0, 0, a, HOLD);
        assert_eq!(l.expiry(0), None);
        l.on_echo(1, 0, b, HOLD);
        l.on_echo(1, 0, a, HOLD); // A reordered older echo.
        assert_eq!(l.expiry(0), Some(ms(1000)));
    }

    #[test]
    fn an_inherited_lease_counts_for_its_epoch_until_a_later_one_is_earned() {
        let mut l = Lease::new(0, &[true; 3], 1000);
        l.inherit(4, ms(500));
        assert_eq!(l.expiry(4), Some(ms(500)), "before any echo, the handed-over lease holds");
        assert_eq!(l.expiry(5), None, "evicted meanwhile: the inherited lease is void");
        let s = l.on_send(ms(0));
        l.on_echo(1, 4, s, HOLD);
        assert_eq!(l.expiry(4), Some(ms(900)), "earned later");
        let mut k = Lease::new(0, &[true; 3], 1000);
        k.inherit(4, ms(2000));
        let s = k.on_send(ms(0));
        k.on_echo(1, 4, s, HOLD);
        assert_eq!(k.expiry(4), Some(ms(2000)), "an earlier earned end does not shorten it");
        assert_eq!(k.next_seq(), 1001);
    }

    #[test]
    fn each_promise_counts_for_its_own_hold_and_a_shortening_moves_what_was_earned() {
        let mut l = Lease::new(0, &[true; 3], 0);
        let a = l.on_send(ms(0));
        l.on_echo(1, 0, a, Duration::from_millis(300));
        assert_eq!(l.expiry(0), Some(ms(300)), "a voter whose promise holds 300 ms (a shorter lease)");
        let b = l.on_send(ms(100));
        l.on_echo(2, 0, b, Duration::from_millis(1900));
        assert_eq!(l.expiry(0), Some(ms(2000)), "one whose promise holds 1.9 s");
        l.shorten(Duration::from_millis(50));
        assert_eq!(l.expiry(0), Some(ms(1950)), "a larger guard margin shortens what was earned");
    }

    #[test]
    fn a_single_voter_cluster_holds_its_own_lease() {
        let l = Lease::new(0, &[true; 1], 0);
        assert!(l.valid(0, ms(1_000_000)));
    }
}
