//! The shape of the agreed state: nodes with their epochs and suspicions,
//! sets with their owners, and the queries every node asks of them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::spec::SetSpec;

/// A node's index in the configuration's node list (file order).
pub type NodeId = u8;
/// A set's index in the configuration's set list (file order).
pub type SetId = u16;

/// Whether the cluster counts a node as a member that may own sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Membership {
    /// The node has joined in its current epoch.
    Online,
    /// The node never joined, or was evicted and has not joined again.
    Offline,
}

/// Who holds a cluster-wide lock (`baton lock`), with its fencing token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockRecord {
    pub holder: NodeId,
    /// Grows with every grant of any lock: a later holder always has a
    /// larger token than every earlier one.
    pub token: u64,
}

/// One voter's standing suspicion that a node is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Suspicion {
    /// The voter's own counter; a command with a round not above the last
    /// one recorded for this (voter, node) pair is stale and rejected.
    pub round: u64,
    /// True between an applied `Suspect` and the matching `Unsuspect`.
    pub active: bool,
    /// The epoch of the suspected node this suspicion is about.
    pub epoch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeRecord {
    /// Bumped by every eviction. A node's lease is only ever about one epoch,
    /// so an evicted node can never renew the lease it lost.
    pub epoch: u64,
    pub membership: Membership,
    pub standby: bool,
    pub fenced: bool,
    /// In standby because its own agent is stopping (SIGTERM); the agent's
    /// next incarnation asks to be back. An operator's standby is not this.
    #[serde(default)]
    pub leaving: bool,
    /// The agent incarnation the node last joined with. An agent that
    /// starts again runs nothing until the cluster has agreed on its new
    /// incarnation, and a fence confirmed for an older one is void.
    #[serde(default)]
    pub incarnation: u64,
    /// The digest of the configuration file this node's agent runs, as it
    /// last said: nodes whose digests differ show configuration drift.
    #[serde(default)]
    pub config: Option<String>,
    /// The membership (the generation of the last change of nodes) this
    /// node counts its lease by, as it last acknowledged (`Members`, or
    /// its `Join`). ARCHITECTURE.md, "Nodes added and removed", point 3.
    #[serde(default)]
    pub members: u64,
    /// Removed by a configuration change: no voter, never online again.
    #[serde(default)]
    pub retired: bool,
}

impl NodeRecord {
    /// A node offline in epoch 0 that never joined.
    pub fn never_joined() -> Self {
        NodeRecord {
            epoch: 0,
            membership: Membership::Offline,
            standby: false,
            fenced: false,
            leaving: false,
            incarnation: 0,
            config: None,
            members: 0,
            retired: false,
        }
    }
}

/// Where an owned set is in its hand-over protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    /// The owner should run the set.
    Stable,
    /// The owner must stop the set and confirm with `Released`; the set then
    /// goes to `to` (or nowhere). `direct`: `to` may start it as soon as the
    /// owner says it stopped, before `Released` (ARCHITECTURE.md, "A planned
    /// move handed over directly"); `to` is then kept until it changes hands.
    Releasing {
        to: Option<NodeId>,
        #[serde(default)]
        direct: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetRecord {
    pub owner: Option<NodeId>,
    pub phase: Phase,
    /// Bumped by every change of owner; commands about an ownership carry the
    /// generation they were decided under.
    pub generation: u64,
    /// The owner reported that every start step finished.
    pub running: bool,
    pub frozen: bool,
    /// An operator's `move SET NODE`: placement prefers this node while it is
    /// eligible, until the node is lost, put in standby, leaves or is
    /// excluded from the set.
    pub pin: Option<NodeId>,
    /// Nodes that may not run this set until an operator clears them, or
    /// the set's `failure_timeout` lets the exclusion lapse.
    pub excluded: BTreeMap<NodeId, crate::Exclusion>,
    /// The set's generation when each exclusion was recorded: what an
    /// `Expire` names, so it can only end that exclusion, not a later one.
    #[serde(default)]
    pub excluded_at: BTreeMap<NodeId, u64>,
    /// A node whose stop of this set failed: the set may be running there, so
    /// it must not start anywhere until that node is fenced or cleared.
    pub blocked: Option<NodeId>,
    /// The configuration generation that added this slot (0: the first
    /// file's), and the one that retired it (0: not retired). A slot is
    /// not assigned while a slot retired at or before its own generation
    /// still runs or may: that one could hold what this one would take.
    #[serde(default)]
    pub since: u64,
    #[serde(default)]
    pub retired_at: u64,
}

impl SetRecord {
    /// The target of the direct move under way, if one is: it may run the
    /// set before it owns it, and gets it whenever the owner gives it up
    /// (ARCHITECTURE.md, "A planned move handed over directly").
    pub fn direct_target(&self) -> Option<NodeId> {
        match self.phase {
            Phase::Releasing { to, direct: true } => to,
            _ => None,
        }
    }

    /// A set that runs nowhere, at `generation`.
    pub fn unowned(generation: u64) -> Self {
        SetRecord {
            owner: None,
            phase: Phase::Stable,
            generation,
            running: false,
            frozen: false,
            pin: None,
            excluded: BTreeMap::new(),
            excluded_at: BTreeMap::new(),
            blocked: None,
            since: 0,
            retired_at: 0,
        }
    }
}

/// The configuration the cluster runs, as agreed (`Command::Configure`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgreedConfig {
    pub generation: u64,
    /// The digest of `text`, as `Command::Config` reports a node's file.
    pub digest: String,
    /// The configuration file, as proposed.
    pub text: String,
    /// Every set slot's spec; a retired slot has no nodes.
    pub sets: Vec<SetSpec>,
    /// The guard's release budget every lease sets aside from this
    /// configuration on: the largest any agreed file asked for (a set
    /// retired by it may still be releasing what an earlier file ran).
    #[serde(default)]
    pub guard_margin: Duration,
    /// The timing from this configuration on (`None`: the one every node
    /// started with; a log from before timing was agreed).
    #[serde(default)]
    pub timing: Option<AgreedTiming>,
    /// Every node slot, once a change of nodes was agreed (empty: the
    /// nodes every file started with).
    #[serde(default)]
    pub nodes: Vec<crate::NodeSpec>,
    /// The generation of the last change of nodes (0: none).
    #[serde(default)]
    pub members: u64,
}

/// The timing a configuration sets, agreed with it. ARCHITECTURE.md, "A
/// configuration change", point 7: why it may change while leases run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgreedTiming {
    pub heartbeat_interval: Duration,
    pub lease: Duration,
    /// Two-node mode: how long a node that boots alone waits before it
    /// fences its peer (`None`: it waits for the peer).
    pub startup_fence: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterState {
    pub nodes: Vec<NodeRecord>,
    pub sets: Vec<SetRecord>,
    /// (voter, suspected node) → the voter's latest suspicion round.
    #[serde(with = "pairs")]
    pub suspicions: BTreeMap<(NodeId, NodeId), Suspicion>,
    /// The index of the last command applied (accepted or rejected).
    pub applied: u64,
    /// Cluster-wide maintenance mode (`Command::Maintenance`).
    #[serde(default)]
    pub maintenance: bool,
    /// Cluster-wide locks by name; a lock dies with its holder's epoch.
    #[serde(default)]
    pub locks: BTreeMap<String, LockRecord>,
    /// The last fencing token given out.
    #[serde(default)]
    pub lock_tokens: u64,
    /// Per node: with `[fencing] mode = "required"`, suspicions never evict
    /// the node; only a confirmed fence (`Fenced`) does.
    #[serde(default)]
    pub fence_required: Vec<bool>,
    /// Two-node mode: the node that fenced its peer and went on as the only
    /// voter (`Command::Alone`), until the peer votes again (`Together`).
    #[serde(default)]
    pub alone: Option<NodeId>,
    /// The agreed configuration; `None` until the first `Configure`, while
    /// every node runs its own file (set slots in file order).
    #[serde(default)]
    pub config: Option<AgreedConfig>,
}

impl ClusterState {
    /// Configuration drift: a node's file differs from the agreed
    /// configuration, or (none agreed yet) from another node's file.
    pub fn config_drift(&self) -> bool {
        (0..self.nodes.len() as NodeId).any(|n| self.node_drifts(n))
    }

    /// Does this node's file differ from the agreed configuration (or,
    /// none agreed yet, from the first file any node reported)?
    pub fn node_drifts(&self, node: NodeId) -> bool {
        let Some(mine) = &self.node(node).config else { return false };
        let reference = match &self.config {
            Some(c) => Some(&c.digest),
            None => self.nodes.iter().find_map(|n| n.config.as_ref()),
        };
        reference.is_some_and(|r| r != mine)
    }

    /// The state of a cluster that has just been created: every node offline
    /// in epoch 0 (each joins when its agent starts), every set stopped.
    pub fn new(nodes: usize, sets: usize) -> Self {
        assert!((1..=usize::from(NodeId::MAX)).contains(&nodes), "node count {nodes} out of range");
        assert!(sets <= usize::from(SetId::MAX), "set count {sets} out of range");
        let set = SetRecord::unowned(0);
        ClusterState {
            nodes: vec![NodeRecord::never_joined(); nodes],
            sets: vec![set; sets],
            suspicions: BTreeMap::new(),
            applied: 0,
            maintenance: false,
            locks: BTreeMap::new(),
            lock_tokens: 0,
            fence_required: vec![false; nodes],
            alone: None,
            config: None,
        }
    }

    /// The same, where the nodes marked `true` are evicted only by a fence.
    pub fn requiring_fence(mut self, required: Vec<bool>) -> Self {
        assert_eq!(required.len(), self.nodes.len());
        self.fence_required = required;
        self
    }

    /// Left alone: frozen by an operator, or the cluster in maintenance.
    pub fn is_frozen(&self, set: SetId) -> bool {
        self.maintenance || self.set(set).frozen
    }

    pub fn needs_fence(&self, node: NodeId) -> bool {
        self.fence_required.get(usize::from(node)).copied().unwrap_or(false)
    }

    /// How many voters make a majority. Every configured node votes,
    /// witnesses included — but while one node goes on alone, it is the
    /// only voter.
    pub fn majority(&self) -> usize {
        if self.alone.is_some() {
            1
        } else {
            self.nodes.iter().filter(|n| !n.retired).count() / 2 + 1
        }
    }

    /// Does `node`'s suspicion count towards an eviction?
    pub fn votes(&self, node: NodeId) -> bool {
        self.alone.is_none_or(|a| a == node) && !self.node(node).retired
    }

    /// The membership every node counts its lease by: the generation of
    /// the last agreed change of nodes (0: the nodes it started with).
    pub fn members(&self) -> u64 {
        self.config.as_ref().map_or(0, |c| c.members)
    }

    /// The online nodes that have not acknowledged the agreed membership
    /// (`Command::Members`): until none is left, no node is added or
    /// removed (ARCHITECTURE.md, "Nodes added and removed", point 3).
    pub fn members_behind(&self) -> Vec<NodeId> {
        let members = self.members();
        (0..self.nodes.len() as NodeId)
            .filter(|&n| self.is_online(n) && !self.node(n).retired && self.node(n).members < members)
            .collect()
    }

    pub fn is_online(&self, node: NodeId) -> bool {
        self.nodes[usize::from(node)].membership == Membership::Online
    }

    /// The voters whose suspicion of `node` in its current epoch stands.
    pub fn active_suspects(&self, node: NodeId) -> Vec<NodeId> {
        let epoch = self.nodes[usize::from(node)].epoch;
        self.suspicions
            .iter()
            .filter(|((_, n), s)| *n == node && s.active && s.epoch == epoch)
            .map(|((v, _), _)| *v)
            .collect()
    }

    /// The last round recorded for `voter` about `node`, 0 if none.
    pub fn suspicion_round(&self, voter: NodeId, node: NodeId) -> u64 {
        self.suspicions.get(&(voter, node)).map_or(0, |s| s.round)
    }

    /// The sets `node` owns, in set order.
    pub fn owned_by(&self, node: NodeId) -> impl Iterator<Item = SetId> + '_ {
        self.sets.iter().enumerate().filter(move |(_, s)| s.owner == Some(node)).map(|(i, _)| i as SetId)
    }

    pub fn set(&self, set: SetId) -> &SetRecord {
        &self.sets[usize::from(set)]
    }

    pub fn node(&self, node: NodeId) -> &NodeRecord {
        &self.nodes[usize::from(node)]
    }
}

/// A map with tuple keys, written as a list of pairs (JSON keys are strings).
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, K: Serialize, V: Serialize>(m: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
