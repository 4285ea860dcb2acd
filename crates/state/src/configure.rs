//! `Command::Configure`: the cluster switches to a new configuration at one
//! point of the log. Set slots are never reordered or reused: a set the new
//! file removes or changes is retired in its slot (no nodes: placement
//! releases it wherever it runs and never places it again), and a set it
//! adds or changes gets a new slot at the end, which waits until no retired
//! set runs. ARCHITECTURE.md, "A configuration change", gives the argument.

use std::time::Duration;

use crate::command::{Applied, Rejected};
use crate::model::{AgreedConfig, AgreedTiming, ClusterState, Phase, SetId, SetRecord};
use crate::model::{Membership, NodeId, NodeRecord};
use crate::spec::{NodeSpec, SetSpec};

/// A `Command::Configure`'s sets and timing, borrowed.
pub(crate) struct Change<'a> {
    pub generation: u64,
    pub digest: &'a str,
    pub text: &'a str,
    pub sets: &'a [SetSpec],
    pub guard_margin: Duration,
    pub timing: Option<AgreedTiming>,
}

impl ClusterState {
    pub(crate) fn configure(&mut self, change: Change, nodes: Option<&[NodeSpec]>) -> Result<Applied, Rejected> {
        let Change { generation, digest, text, sets, guard_margin, timing } = change;
        let have = self.config_generation();
        if generation != have + 1 {
            return Err(Rejected::StaleConfig { have, got: generation });
        }
        let changed = match nodes {
            Some(nodes) => self.check_nodes(nodes)?,
            None => None,
        };
        let node_count = nodes.map_or(self.nodes.len(), <[NodeSpec]>::len);
        // Removed by this change or an earlier one.
        let retired = |n: NodeId| match nodes {
            Some(ns) => ns[usize::from(n)].retired,
            None => self.nodes[usize::from(n)].retired,
        };
        let shape = |why: String| Err(Rejected::ConfigShape(why));
        if sets.len() < self.sets.len() || sets.len() > usize::from(SetId::MAX) {
            return shape(format!("{} sets for {} slots", sets.len(), self.sets.len()));
        }
        for (i, spec) in sets.iter().enumerate() {
            if let Some(&n) = spec.nodes.iter().find(|&&n| usize::from(n) >= node_count) {
                return Err(Rejected::UnknownNode(n));
            }
            if let Some(&n) = spec.nodes.iter().find(|&&n| retired(n)) {
                return Err(Rejected::NodeRetired(n));
            }
            let Some(old) = self.config.as_ref().and_then(|c| c.sets.get(i)) else { continue };
            if old.name != spec.name {
                return shape(format!("slot {i} is set {}, not {}", old.name, spec.name));
            }
            if old.nodes.is_empty() && !spec.nodes.is_empty() {
                return shape(format!("set {} was retired from slot {i} and cannot run there again", spec.name));
            }
        }
        // A set left alone by an operator (or maintenance mode) is not
        // released by a change either: it would stay owned for ever, and
        // no set added by the change could ever start.
        for (i, spec) in sets.iter().enumerate().take(self.sets.len()) {
            let set = i as SetId;
            if spec.nodes.is_empty() && !self.retired(set) && self.set(set).owner.is_some() && self.is_frozen(set) {
                return Err(if self.maintenance { Rejected::Maintenance } else { Rejected::Frozen(set) });
            }
        }
        for (rec, spec) in self.sets.iter_mut().zip(sets) {
            if spec.nodes.is_empty() && rec.retired_at == 0 {
                rec.retired_at = generation;
                // Released to nobody: the set is never placed again. The
                // target of a direct move keeps it (it may run it already)
                // and releases it in turn.
                if let Phase::Releasing { to, direct: false } = &mut rec.phase {
                    *to = None;
                }
                rec.pin = None;
            }
        }
        // Above every generation a stale command about any slot could carry.
        let start = self.applied;
        self.sets.extend(
            (self.sets.len()..sets.len()).map(|_| SetRecord { since: generation, ..SetRecord::unowned(start) }),
        );
        let guard_margin = self.config.as_ref().map_or(guard_margin, |c| c.guard_margin.max(guard_margin));
        let timing = timing.or_else(|| self.config.as_ref().and_then(|c| c.timing));
        let kept = self.config.as_ref().map_or((Vec::new(), 0), |c| (c.nodes.clone(), c.members));
        let agreed_nodes = nodes.map_or(kept.0, <[NodeSpec]>::to_vec);
        let members = if changed.is_some() { generation } else { kept.1 };
        if let Some(node) = changed {
            self.change_node(node);
        }
        self.config = Some(AgreedConfig {
            generation,
            digest: digest.to_string(),
            text: text.to_string(),
            sets: sets.to_vec(),
            guard_margin,
            timing,
            nodes: agreed_nodes,
            members,
        });
        Ok(Applied::Done)
    }

    /// Checks a `Configure`'s node slots against the agreed ones: the same
    /// nodes, or one added at the end, or one retired that runs nothing,
    /// and only once every online node counts by the last membership.
    /// Returns the slot that changes, if one does.
    fn check_nodes(&self, nodes: &[NodeSpec]) -> Result<Option<NodeId>, Rejected> {
        let shape = |why: String| Err(Rejected::NodesShape(why));
        let known = self.config.as_ref().map(|c| c.nodes.as_slice()).filter(|n| !n.is_empty());
        if nodes.len() > usize::from(NodeId::MAX)
            || nodes.len() < self.nodes.len()
            || nodes.len() > self.nodes.len() + 1
        {
            return shape(format!("{} node slots for {}", nodes.len(), self.nodes.len()));
        }
        let mut changed = (nodes.len() > self.nodes.len()).then_some(self.nodes.len() as NodeId);
        if nodes.last().is_some_and(|n| n.retired) && changed.is_some() {
            return shape("a node added retired".into());
        }
        for (i, (spec, rec)) in nodes.iter().zip(&self.nodes).enumerate() {
            let old = known.map(|k| &k[i]);
            if old.is_some_and(|o| o.name != spec.name || o.witness != spec.witness || o.links != spec.links) {
                return shape(format!("slot {i} is not node {} as agreed", spec.name));
            }
            if rec.retired && !spec.retired {
                return shape(format!("node {} was removed from slot {i} and cannot come back there", spec.name));
            }
            if spec.retired && !rec.retired && changed.replace(i as NodeId).is_some() {
                return shape("more than one node changes".into());
            }
        }
        let Some(node) = changed else { return Ok(None) };
        if let Some(&behind) = self.members_behind().first() {
            return Err(Rejected::MembersBehind(behind));
        }
        if usize::from(node) < self.nodes.len() {
            let set = (0..self.sets.len() as SetId)
                .find(|&s| self.set(s).owner == Some(node) || self.set(s).blocked == Some(node));
            if let Some(set) = set {
                return Err(Rejected::Owned { set, owner: node });
            }
            // A direct move's target may run the set before it owns it.
            if let Some(set) = (0..self.sets.len() as SetId).find(|&s| self.set(s).direct_target() == Some(node)) {
                return Err(Rejected::MoveTarget { set, node });
            }
            if self.locks.values().any(|l| l.holder == node) {
                return Err(Rejected::LockHeld { holder: node });
            }
        }
        Ok(Some(node))
    }

    /// Adds the slot `node` (offline, never joined) or retires it.
    fn change_node(&mut self, node: NodeId) {
        let i = usize::from(node);
        if i == self.nodes.len() {
            self.nodes.push(NodeRecord::never_joined());
            self.fence_required.resize(self.nodes.len(), false);
            return;
        }
        let rec = &mut self.nodes[i];
        rec.retired = true;
        rec.membership = Membership::Offline;
        rec.epoch += 1;
        for ((voter, suspected), s) in self.suspicions.iter_mut() {
            if *voter == node || *suspected == node {
                s.active = false;
            }
        }
        for set in &mut self.sets {
            set.excluded.remove(&node);
            set.excluded_at.remove(&node);
            if set.pin == Some(node) {
                set.pin = None;
            }
        }
        // Fewer voters: suspicions that stand may be a majority now. Each
        // was cast after its voter's promise ended, as for any eviction.
        for n in 0..self.nodes.len() as NodeId {
            let votes = self.active_suspects(n).into_iter().filter(|&v| self.votes(v)).count();
            if self.is_online(n) && !self.needs_fence(n) && votes >= self.majority() {
                self.evict(n);
            }
        }
    }

    /// The agreed configuration's generation (0: none agreed yet).
    pub fn config_generation(&self) -> u64 {
        self.config.as_ref().map_or(0, |c| c.generation)
    }

    /// Was the set removed or replaced by a configuration change?
    pub fn retired(&self, set: SetId) -> bool {
        self.set(set).retired_at > 0
    }

    /// A set `set` waits for: retired at or before the change that added
    /// `set`, and still owned or blocked (it may still run).
    pub fn retiring_before(&self, set: SetId) -> Option<SetId> {
        let since = self.set(set).since;
        if since == 0 {
            return None;
        }
        (0..self.sets.len() as SetId).find(|&s| {
            let r = self.set(s);
            (1..=since).contains(&r.retired_at) && (r.owner.is_some() || r.blocked.is_some())
        })
    }
}
