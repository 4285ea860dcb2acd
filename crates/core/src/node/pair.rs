//! Two-node mode: two servers, no witness, a fence device for each. With
//! two voters each is the other's only majority, so a node that lost its
//! peer can agree nothing until the device has confirmed the peer off;
//! then it makes itself the agreement layer's only voter (`Output::Alone`)
//! and carries on alone until the peer votes again. Where a fence disk
//! records who went on alone, a node that boots alone may do the same.
//! ARCHITECTURE.md, "Two servers without a witness", gives the safety
//! argument.

use std::time::Duration;

use baton_state::Command;

use super::{retry_after, Node, Output};
use crate::requests::Refusal;
use crate::time::Time;
use crate::topology::NodeId;

/// Where this incarnation stands in two-node mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Pair {
    /// This incarnation made itself the only voter. Only then does an
    /// agreed `Alone` naming this node give it a lease of its own.
    forced: bool,
    /// The fence confirmed for the peer (epoch, incarnation), until agreed.
    fenced: Option<(u64, u64)>,
    /// The agreement layer's voters, as the shell last said.
    voters: Vec<NodeId>,
    /// Since it forced, the voters have been this node alone.
    single: bool,
    /// When the peer was last asked back into the agreement layer.
    readmit_asked: Option<Time>,
    /// `Output::Alone` is owed (an operator's `baton alone`).
    alone_asked: bool,
    /// The fence disk, as last read, says nobody but this node went on
    /// alone since the two last voted together (`Input::AloneRecord`).
    record_clean: bool,
    /// Booting alone: the peer's fence was confirmed (epoch, incarnation)
    /// and the record is being read again before this node goes on alone.
    boot_confirmed: Option<(u64, u64)>,
}

impl Node {
    /// The peer, in two-node mode.
    pub(super) fn pair_peer(&self) -> Option<NodeId> {
        self.topo.pair_peer(self.me)
    }

    /// The lease a node that went on alone holds by itself: it runs from
    /// its last heartbeat, as if it echoed itself, so that its guard still
    /// fires if the agent stops.
    pub(super) fn alone_lease(&self) -> Option<Time> {
        let mine = self.state.alone == Some(self.me) && self.pair.forced;
        let last_sent = self.next_heartbeat - self.topo.timing.heartbeat_interval;
        mine.then(|| last_sent + self.topo.timing.hold())
    }

    /// Is this node the agreement layer's only voter (two-node mode)?
    pub(super) fn sole_voter(&self) -> bool {
        self.pair.voters == [self.me]
    }

    /// What the fence disk's record of who went on alone says (`None`:
    /// nobody), read as the agent starts and again when asked. Only a
    /// record that names nobody or this node lets it boot alone: one that
    /// names the peer means the peer may have agreed what this node's log
    /// lacks. Read after the peer was confirmed off, it is final: the peer
    /// writes it only while its agent runs.
    pub(super) fn pair_record(&mut self, holder: Option<NodeId>, out: &mut Vec<Output>) {
        self.pair.record_clean = holder.is_none_or(|n| n == self.me);
        let Some((epoch, incarnation)) = self.pair.boot_confirmed.take() else { return };
        let rec = self.pair_peer().map(|peer| self.state.node(peer));
        let current = rec.is_some_and(|r| (r.epoch, r.incarnation) == (epoch, incarnation));
        if current && !self.pair.forced && self.may_go_alone(self.now) {
            self.pair.forced = true;
            self.pair.fenced = Some((epoch, incarnation));
            out.push(Output::Alone);
        }
    }

    /// May this node fence its peer to go on alone? Only if its log holds
    /// every entry ever committed: this incarnation joined, and its log
    /// says it is a voter. A commit needs every voter of two, and a node
    /// taken back catches up before it votes, so such a log misses
    /// nothing. A node that went on alone fenced this one first (ending
    /// its incarnation), and this one's next `Join` is agreed only after
    /// the membership without it, so a stale log can never pass. A node
    /// that boots and never hears its peer therefore waits for it — unless
    /// the fence disk's record says nobody else went on alone since both
    /// last voted, and it has waited `startup_fence` (ARCHITECTURE.md,
    /// "Booting alone, with a fence disk").
    fn may_go_alone(&self, now: Time) -> bool {
        let voter = self.pair.voters.contains(&self.me);
        let waited = self.topo.timing.startup_fence.is_some_and(|wait| now.since(self.booted) >= wait);
        let lone_boot = waited && self.pair.record_clean && self.pair.voters.len() == 2;
        voter && (self.joined() || lone_boot)
    }

    /// A fence of the peer was confirmed: go on alone, unless this node did
    /// already or the confirmation is about an incarnation gone since. A
    /// node booting alone reads the fence disk's record again first: read
    /// at start, it may predate the peer going on alone on a confirmation
    /// of this node's last incarnation (simulator, seed 24372: the peer's
    /// agent paused across that confirmation).
    pub(super) fn pair_fenced(&mut self, node: NodeId, epoch: u64, incarnation: u64, out: &mut Vec<Output>) {
        let rec = self.state.node(node);
        let current = (rec.epoch, rec.incarnation) == (epoch, incarnation);
        if self.pair_peer() != Some(node) || self.pair.forced || !current || !self.may_go_alone(self.now) {
            return;
        }
        if self.joined() {
            self.pair.forced = true;
            self.pair.fenced = Some((epoch, incarnation));
            out.push(Output::Alone);
        } else {
            self.pair.boot_confirmed = Some((epoch, incarnation));
            out.push(Output::ReadAloneRecord);
        }
    }

    /// An operator's word instead of a device's (`baton alone`): the peer
    /// is off and what it may have agreed alone is given up, so neither the
    /// confirmation nor a complete log is asked for. A peer still heard is
    /// refused: it is not off.
    pub(super) fn pair_confirmed(&mut self) -> Result<(), Refusal> {
        let peer = self.pair_peer().ok_or(Refusal::NotPair)?;
        if self.detector.is_alive(peer) {
            return Err(Refusal::PeerAlive { node: peer });
        }
        if !self.pair.forced {
            let rec = self.state.node(peer);
            self.pair.forced = true;
            self.pair.fenced = Some((rec.epoch, rec.incarnation));
            self.pair.alone_asked = true;
        }
        Ok(())
    }

    /// The agreement layer's voters changed.
    pub(super) fn pair_voters(&mut self, voters: Vec<NodeId>) {
        self.pair.voters = voters;
    }

    /// Every reconcile in two-node mode: fence a silent peer; once alone,
    /// get the eviction and `Alone` agreed; take the peer back into the
    /// agreement layer when it is heard, and end the mode once it votes.
    pub(super) fn pair(&mut self, now: Time, out: &mut Vec<Output>) {
        let Some(peer) = self.pair_peer() else { return };
        if std::mem::take(&mut self.pair.alone_asked) {
            out.push(Output::Alone);
        }
        let retry = retry_after(&self.topo);
        if !self.pair.forced && self.detector.is_dead(peer) && self.may_go_alone(now) {
            self.ask_fence(now, peer, retry, out);
        }
        if let Some((epoch, incarnation)) = self.pair.fenced {
            let rec = self.state.node(peer);
            if rec.epoch == epoch && rec.incarnation == incarnation && self.state.is_online(peer) {
                self.propose(now, Command::Fenced { node: peer, epoch, incarnation }, out);
            } else {
                self.pair.fenced = None;
            }
        }
        let peer_votes = self.pair.voters.contains(&peer);
        // (Also when it was the only voter already: forced again after a
        // restart, the voters do not change. And a node that went on alone
        // and restarted is the only voter by its own log, forced or not:
        // with its peer back it ends the mode too.)
        let went_alone = self.pair.forced || self.state.alone == Some(self.me);
        self.pair.single |= went_alone && self.sole_voter();
        let evicted = self.pair.fenced.is_none() && !self.state.is_online(peer);
        if self.pair.forced && evicted && !peer_votes && self.state.alone != Some(self.me) {
            self.propose(now, Command::Alone { node: self.me }, out);
        }
        // The peer votes again. Only the node that went on alone knows the
        // voters for sure (a node left out reads them from a log that
        // stopped when it was): it ends the mode, and with it this
        // incarnation's lease of its own.
        if self.pair.single && peer_votes {
            if self.state.alone == Some(self.me) {
                self.propose(now, Command::Together, out);
            } else {
                let voters = std::mem::take(&mut self.pair.voters);
                self.pair = Pair { voters, record_clean: self.pair.record_clean, ..Pair::default() };
                out.push(Output::Together);
            }
        }
        let heard = self.detector.is_alive(peer);
        if self.leader && !peer_votes && heard && self.pair.readmit_asked.is_none_or(|at| now.since(at) >= retry) {
            self.pair.readmit_asked = Some(now);
            out.push(Output::Readmit { node: peer });
        }
    }

    /// Asks a device to fence `node`, unless a fence is under way or was
    /// asked less than `retry` ago. A node a device confirmed off as it is
    /// now is not fenced again: the confirmation is proposed again instead.
    pub(super) fn ask_fence(&mut self, now: Time, node: NodeId, retry: Duration, out: &mut Vec<Output>) {
        let rec = self.state.node(node);
        let (epoch, incarnation) = (rec.epoch, rec.incarnation);
        if self.fence_confirmed[usize::from(node)] == Some((epoch, incarnation)) {
            return self.propose(now, Command::Fenced { node, epoch, incarnation }, out);
        }
        let asked = &mut self.fence_asked[usize::from(node)];
        if !self.fencing.contains(&node) && asked.is_none_or(|at| now.since(at) >= retry) {
            *asked = Some(now);
            self.fencing.push(node);
            out.push(Output::Fence { node, epoch, incarnation });
        }
    }
}
