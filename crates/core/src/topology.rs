//! The static description of a cluster that the core decides over: nodes,
//! links, sets with their resources and policies, and the timing. It is built
//! from a validated configuration (or by the simulator) and never changes
//! while a core runs.

use std::time::Duration;

pub use baton_state::{Failback, NodeId, NodeSpec, ResourceSpec, SetId, SetSpec};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub nodes: Vec<NodeSpec>,
    /// How many networks every full node is on; heartbeats go on each.
    pub links: usize,
    pub sets: Vec<SetSpec>,
    pub timing: Timing,
    /// Per node: a fence device can cut it off. The leader fences a silent
    /// node that has one, and its sets move as soon as the fence is confirmed.
    pub fenceable: Vec<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub heartbeat_interval: Duration,
    /// How long a voter waits, unhearing, before it suspects a node.
    pub lease: Duration,
    /// The largest rate difference between any node's clock and true time,
    /// in parts per million.
    pub max_drift_ppm: u32,
    /// How long the guard needs to kill everything once the lease ends.
    pub guard_margin: Duration,
    /// How often a node that does not own a set asks the network who holds
    /// the set's addresses (`None`: never).
    pub probe_interval: Option<Duration>,
    /// Two-node mode: how long a node that boots and hears its peer on no
    /// link waits before it fences the peer to go on alone (`None`: it
    /// waits for the peer). Only where a fence disk records who went on
    /// alone (`Node::alone_record`).
    pub startup_fence: Option<Duration>,
}

impl Timing {
    /// How long after sending a heartbeat a node may count on the promise a
    /// voter gives when it echoes that heartbeat. The voter waits `lease` on
    /// its clock before suspecting; measured on the holder's clock that is at
    /// least `lease·(1−ε)/(1+ε)`, less the guard's margin.
    pub fn hold(&self) -> Duration {
        self.hold_for(self.lease)
    }

    /// How long a node may count on a voter's promise of `promise` (the
    /// voter's lease, which a configuration change may have made other
    /// than this node's), measured from the echoed heartbeat's sending.
    pub fn hold_for(&self, promise: Duration) -> Duration {
        let ppm = u128::from(self.max_drift_ppm);
        let us = promise.as_micros() * (1_000_000 - ppm) / (1_000_000 + ppm);
        Duration::from_micros(us as u64).saturating_sub(self.guard_margin)
    }

    /// Takes the heartbeat interval, lease and startup fence an agreed
    /// configuration sets.
    pub fn agree(&mut self, t: &baton_state::AgreedTiming) {
        self.heartbeat_interval = t.heartbeat_interval;
        self.lease = t.lease;
        self.startup_fence = t.startup_fence;
    }

    /// A node starts releasing its sets this long before its lease ends, so
    /// that a graceful stop usually finishes before the guard must act.
    pub fn release_lead(&self) -> Duration {
        self.hold() / 3
    }

    /// Raft's election timeout range and heartbeat, in milliseconds. They
    /// follow the lease: a new leader must be able to commit an eviction
    /// about when the lease of a dead owner ends, so with a lease shorter
    /// than 600 ms the election timeout shrinks with it (half the lease,
    /// never below 50 ms); longer leases keep 300–600 ms. The leader's
    /// heartbeat is a third of the shortest election timeout. (A voter
    /// refuses votes while it heard its leader within the longest timeout,
    /// so an owner that led Raft is replaced up to twice the longest
    /// timeout after it died: at lease 100 ms a floor of 100 ms made that
    /// 370–450 ms, against 100–110 ms for an owner that did not lead.)
    pub fn raft_timers_ms(&self) -> (u64, u64, u64) {
        let election_min = (self.lease.as_millis() as u64 / 2).clamp(50, 300);
        (election_min, election_min * 2, (election_min / 3).max(15))
    }

    /// Checks the relationships the safety argument relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_drift_ppm >= 100_000 {
            return Err(format!("clock drift bound {} ppm is not a bound", self.max_drift_ppm));
        }
        if self.lease < self.heartbeat_interval * 3 {
            return Err(format!(
                "lease {:?} is shorter than 3 heartbeat intervals ({:?})",
                self.lease, self.heartbeat_interval
            ));
        }
        // A promise comes back with a voter's next heartbeat, up to an
        // interval after the one it answers, and the next one an interval
        // later. Shorter, the lease is lost and won again between renewals.
        if self.hold() <= self.release_lead() + self.heartbeat_interval * 2 {
            return Err(format!("lease {:?} leaves no time to hold sets between renewals", self.lease));
        }
        Ok(())
    }
}

/// The timing the core's unit tests run with: heartbeat 100 ms, lease 1 s,
/// perfect clocks, no guard margin, no probes.
#[cfg(test)]
pub(crate) fn test_timing() -> Timing {
    Timing {
        heartbeat_interval: Duration::from_millis(100),
        lease: Duration::from_secs(1),
        max_drift_ppm: 0,
        guard_margin: Duration::ZERO,
        probe_interval: None,
        startup_fence: None,
    }
}

impl Topology {
    /// Two-node mode: exactly two nodes, neither a witness, and a fence
    /// device for each. The other node, for `me`.
    pub fn pair_peer(&self, me: NodeId) -> Option<NodeId> {
        let pair = self.nodes.len() == 2 && self.nodes.iter().all(|n| !n.witness) && self.fenceable.iter().all(|&f| f);
        pair.then(|| 1 - me)
    }

    /// Per node slot: does it vote (a slot a configuration change retired
    /// does not)?
    pub fn voters(&self) -> Vec<bool> {
        self.nodes.iter().map(|n| !n.retired).collect()
    }

    pub fn node_name(&self, node: NodeId) -> &str {
        &self.nodes[usize::from(node)].name
    }

    /// The set of that name, if the configuration has it (never a slot
    /// retired by a configuration change).
    pub fn set_by_name(&self, name: &str) -> Option<SetId> {
        self.sets.iter().position(|s| s.name == name && !s.nodes.is_empty()).map(|i| i as SetId)
    }

    /// The sets the configuration has, with their slots (not the retired).
    pub fn live_sets(&self) -> impl Iterator<Item = (SetId, &SetSpec)> + '_ {
        self.sets.iter().enumerate().filter(|(_, s)| !s.nodes.is_empty()).map(|(i, s)| (i as SetId, s))
    }

    pub fn set_name(&self, set: SetId) -> &str {
        &self.sets[usize::from(set)].name
    }

    /// The links two nodes are both on (the first ones): heartbeats
    /// between them go on these, and silence is judged on these.
    pub fn shared_links(&self, a: NodeId, b: NodeId) -> usize {
        self.nodes[usize::from(a)].links.min(self.nodes[usize::from(b)].links)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.timing.validate()?;
        if self.nodes.is_empty() || self.nodes.len() > usize::from(NodeId::MAX) {
            return Err(format!("{} nodes; 1 to {} are supported", self.nodes.len(), NodeId::MAX));
        }
        if self.links == 0 {
            return Err("no links".into());
        }
        for n in &self.nodes {
            let ok = if n.witness { (1..=self.links).contains(&n.links) } else { n.links == self.links };
            if !ok {
                return Err(format!("node {} is on {} of {} links", n.name, n.links, self.links));
            }
        }
        if self.fenceable.len() != self.nodes.len() {
            return Err(format!("fenceable has {} entries for {} nodes", self.fenceable.len(), self.nodes.len()));
        }
        for set in &self.sets {
            for &n in &set.nodes {
                match self.nodes.get(usize::from(n)) {
                    None => return Err(format!("set {} prefers unknown node {n}", set.name)),
                    Some(spec) if spec.witness => {
                        return Err(format!("set {} prefers witness {}", set.name, spec.name))
                    }
                    Some(spec) if spec.retired => {
                        return Err(format!("set {} prefers {}, which was removed", set.name, spec.name))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_timers_follow_a_short_lease_and_keep_their_defaults_for_long_ones() {
        let t = |lease_ms| Timing {
            heartbeat_interval: Duration::from_millis(10),
            lease: Duration::from_millis(lease_ms),
            max_drift_ppm: 0,
            guard_margin: Duration::ZERO,
            probe_interval: None,
            startup_fence: None,
        };
        assert_eq!(t(1000).raft_timers_ms(), (300, 600, 100));
        assert_eq!(t(300).raft_timers_ms(), (150, 300, 50));
        assert_eq!(t(100).raft_timers_ms(), (50, 100, 16));
        assert_eq!(t(60).raft_timers_ms(), (50, 100, 16));
    }
}
