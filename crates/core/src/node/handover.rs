//! A handover: the agent's program is replaced (an upgrade, `baton
//! handover`) while its guard keeps holding everything, and the new
//! program carries on as the same incarnation with the sets still running.
//! The old program's core decides whether it may ([`Node::handover`]
//! answers a `Request::Handover`) and writes down what the new one needs
//! ([`Handover`]); the new one starts from it ([`Node::resume`]).
//! ARCHITECTURE.md, "A handover", gives the safety argument.

use super::{Node, Output, Persisted};
use crate::lifecycle::Phase;
use crate::requests::{Refusal, Reply};
use crate::time::Time;
use crate::topology::{NodeId, SetId, Topology};
use baton_state::{ClusterState, Phase as SetPhase};

/// What a program hands the next one of the same node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    /// The incarnation both programs are.
    pub incarnation: u64,
    /// The node's epoch, and the end of its lease in it: the deadline the
    /// guard holds (`None`: nothing runs, nothing is guarded).
    pub epoch: u64,
    pub lease_end: Option<Time>,
    /// The sequence number the next heartbeat carries.
    pub next_seq: u64,
    /// The sets running here, each with the generation it runs at.
    pub running: Vec<(SetId, u64)>,
    /// The index of the last command the agreed state had applied: the new
    /// program replays at least this far before it decides anything.
    pub applied: u64,
}

impl Node {
    /// The program after a handover: the node `handover` describes, with
    /// the agreed state replayed at least to `handover.applied`, at `now`
    /// on the same clock the handover's times are on.
    pub fn resume(
        topo: Topology,
        me: NodeId,
        state: ClusterState,
        persisted: Persisted,
        handover: &Handover,
        now: Time,
    ) -> Self {
        assert!(state.applied >= handover.applied, "resumed from a state behind the handover's");
        let mut node = Node::new(topo, me, state, persisted, handover.incarnation, now);
        node.lease = crate::lease::Lease::new(me, &node.topo.voters(), handover.next_seq);
        if let Some(end) = handover.lease_end {
            node.lease.inherit(handover.epoch, end);
        }
        for &(set, _) in &handover.running {
            node.sets[usize::from(set)].adopt(now, &node.topo.sets[usize::from(set)]);
        }
        // The guard holds the old program's deadline: it is this one's.
        node.guard = handover.lease_end;
        node
    }

    /// Why this node may not hand over now, if it may not: it must hold
    /// its lease, not be firing or stopping or alone, and every set here
    /// must be stopped, or running as its own with nothing in flight.
    fn handover_refusal(&self, now: Time) -> Option<Refusal> {
        let why = if self.leaving.is_some() {
            "the agent is stopping"
        } else if self.state.alone == Some(self.me) || self.sole_voter() {
            "this node runs alone (two-node mode): hand over once its peer votes again"
        } else if self.firing(now) {
            "this node's guard is undoing everything (the lease ended)"
        } else if self.sets.iter().any(|lc| lc.phase() != Phase::Stopped) && !self.holds_lease(now) {
            "this node holds no lease now"
        } else {
            let unsettled = self.sets.iter().enumerate().find(|(i, lc)| {
                let rec = self.state.set(*i as SetId);
                let own = rec.owner == Some(self.me) && rec.phase == SetPhase::Stable;
                !lc.settled() || lc.phase() == Phase::Running && (!own || self.state.retired(*i as SetId))
            });
            return unsettled.map(|(set, _)| Refusal::Unsettled { set: set as SetId });
        };
        Some(Refusal::NoHandover(why))
    }

    /// Answers a handover asked for in this input, once the node has
    /// reconciled (so that the deadline written down is the one the guard
    /// was told last). Once handed over, the node does nothing more.
    pub(super) fn hand_over(&mut self, now: Time, out: &mut Vec<Output>) {
        let Some(id) = self.handover_asked.take() else { return };
        let reply = match self.handover_refusal(now) {
            Some(why) => Reply::Refused(why),
            None => {
                self.handed_over = true;
                let running = (0..self.sets.len() as SetId)
                    .filter(|&s| self.sets[usize::from(s)].phase() == Phase::Running)
                    .map(|s| (s, self.state.set(s).generation))
                    .collect();
                Reply::HandedOver(Handover {
                    incarnation: self.incarnation,
                    epoch: self.my_epoch(),
                    lease_end: self.guard,
                    next_seq: self.lease.next_seq(),
                    running,
                    applied: self.state.applied,
                })
            }
        };
        out.push(Output::Reply { id, reply });
    }
}
