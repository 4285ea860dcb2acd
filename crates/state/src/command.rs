//! The commands the cluster agrees on, and `apply`: the one function that
//! changes [`ClusterState`].

use std::fmt;
use std::time::Duration;

use crate::model::{AgreedTiming, ClusterState, Membership, NodeId, Phase, SetId, Suspicion};
use crate::spec::{NodeSpec, SetSpec};

/// Why a node may not run a set until an operator clears it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Exclusion {
    /// The set's `Test` hook declined on this node.
    Vetoed,
    /// A start failed, or monitors failed more than `max_restarts` times.
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// `node` is up in `epoch`, its agent in `incarnation`, and may own
    /// sets again. An online node joins again after every agent restart.
    Join {
        node: NodeId,
        epoch: u64,
        #[serde(default)]
        incarnation: u64,
    },
    /// `voter` has not heard `node` for a whole lease and stopped promising it
    /// leases for `epoch`. A majority of these evicts the node.
    Suspect {
        voter: NodeId,
        node: NodeId,
        epoch: u64,
        round: u64,
    },
    /// `voter` hears `node` again and withdraws its suspicion `round`.
    Unsuspect {
        voter: NodeId,
        node: NodeId,
        round: u64,
    },
    /// A fence device confirmed `node` off: evict it without waiting —
    /// unless its agent has joined again in a newer incarnation since the
    /// fence was asked for (the node was powered on again: what the
    /// confirmation said is no longer true).
    Fenced {
        node: NodeId,
        epoch: u64,
        #[serde(default)]
        incarnation: u64,
    },
    /// Give an unowned set to `node`.
    Assign {
        set: SetId,
        node: NodeId,
        generation: u64,
    },
    /// Ask the owner `from` to release the set, handing it to `to`.
    /// `direct`: `to` starts it once `from` says it stopped, without waiting
    /// for `Released` (only with a `to`).
    Move {
        set: SetId,
        from: NodeId,
        to: Option<NodeId>,
        generation: u64,
        #[serde(default)]
        direct: bool,
    },
    /// The owner stopped the set after a `Move`.
    Released {
        set: SetId,
        node: NodeId,
        generation: u64,
    },
    /// The owner finished every start step.
    Started {
        set: SetId,
        node: NodeId,
        generation: u64,
    },
    /// The owner could not start or keep the set and stopped it cleanly.
    StartFailed {
        set: SetId,
        node: NodeId,
        generation: u64,
        exclusion: Exclusion,
    },
    /// The owner's stop failed: the set may still run there.
    StopFailed {
        set: SetId,
        node: NodeId,
        generation: u64,
    },
    Freeze {
        set: SetId,
        frozen: bool,
    },
    Standby {
        node: NodeId,
        standby: bool,
    },
    /// A node's agent is stopping: standby, marked as its own doing.
    Leave {
        node: NodeId,
    },
    /// A node whose agent stopped (see `Leave`) runs again and takes sets.
    Back {
        node: NodeId,
    },
    /// The digest of the configuration file `node`'s agent runs.
    Config {
        node: NodeId,
        digest: String,
    },
    /// An operator's preferred node for the set (`None` forgets it).
    Pin {
        set: SetId,
        node: Option<NodeId>,
    },
    /// An operator clears the set's exclusions (vetoes and failures). A
    /// block from a failed stop is only lifted by fencing its node.
    Clear {
        set: SetId,
    },
    /// The set's `failure_timeout` passed since `node` was excluded at
    /// generation `since` (by the leader's clock): the exclusion lapses.
    Expire {
        set: SetId,
        node: NodeId,
        since: u64,
    },
    /// Cluster-wide maintenance mode: while on, nothing is placed, moved,
    /// started or restarted (every set is left alone as if frozen); a node
    /// that loses its lease still stops its sets, because safety comes first.
    Maintenance {
        on: bool,
    },
    /// `node` (in `epoch`) takes the cluster-wide lock `name` if it is free;
    /// the grant carries a new fencing token.
    Lock {
        name: String,
        node: NodeId,
        epoch: u64,
    },
    /// The holder gives the lock back.
    Unlock {
        name: String,
        node: NodeId,
        token: u64,
    },
    /// A node saw the set's address answer from `strangers` while the set
    /// was at `generation`. Accepted only if the set is still at that
    /// generation — then the strangers held it while the agreed owner was
    /// another node, whatever the seeing node's view was; a stale view is
    /// rejected. Changes nothing but the record; the leader fences.
    Duplicate {
        set: SetId,
        generation: u64,
        strangers: Vec<Stranger>,
    },
    /// Two-node mode: a fence device confirmed `node`'s peer off, and
    /// `node` made itself the agreement layer's only voter. Until
    /// `Together`, a majority is `node` alone. Accepted only while every
    /// other node is offline.
    Alone {
        node: NodeId,
    },
    /// Two-node mode: the peer is a voter of the agreement layer again, so
    /// a majority is both nodes again.
    Together,
    /// The cluster's configuration, generation `generation` (one above the
    /// agreed one): the file's text and its digest, and the sets as the
    /// core knows them, by slot. `sets` extends the agreed sets: a slot
    /// keeps its place for ever; a set the file no longer has, or whose
    /// resources changed, keeps its slot with no nodes (retired: released
    /// wherever it runs, never placed again), and a changed or new set gets
    /// a slot at the end. `guard_margin` is the guard's release budget
    /// for everything the file may run (what every lease sets aside); the
    /// agreed budget only grows. `timing` is the file's heartbeat interval
    /// and lease (`None`: unchanged). `nodes` is every node slot when the
    /// file adds or removes a node (`None`: unchanged): one node per
    /// change, a removed one retired in its slot. ARCHITECTURE.md, "A
    /// configuration change" and "Nodes added and removed".
    Configure {
        generation: u64,
        digest: String,
        text: String,
        sets: Vec<SetSpec>,
        #[serde(default)]
        guard_margin: Duration,
        #[serde(default)]
        timing: Option<AgreedTiming>,
        #[serde(default)]
        nodes: Option<Vec<NodeSpec>>,
    },
    /// `node` (in `epoch`) applied the change of nodes agreed as
    /// configuration `generation` and counts its lease by that membership
    /// from now on. No node is added or removed until every online node
    /// has said so about the last change.
    Members {
        node: NodeId,
        epoch: u64,
        generation: u64,
    },
}

/// A holder of a set's address that is not its owner: its hardware
/// address, and the node it belongs to when that is known.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stranger {
    pub mac: [u8; 6],
    pub node: Option<NodeId>,
}

/// Why `apply` left the state unchanged.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Rejected {
    UnknownNode(NodeId),
    UnknownSet(SetId),
    StaleEpoch {
        node: NodeId,
        have: u64,
        got: u64,
    },
    StaleGeneration {
        set: SetId,
        have: u64,
        got: u64,
    },
    StaleRound {
        voter: NodeId,
        node: NodeId,
        have: u64,
        got: u64,
    },
    StaleIncarnation {
        node: NodeId,
        have: u64,
        got: u64,
    },
    SelfSuspicion(NodeId),
    NotOnline(NodeId),
    AlreadyOnline(NodeId),
    NotOwner {
        set: SetId,
        node: NodeId,
        owner: Option<NodeId>,
    },
    Owned {
        set: SetId,
        owner: NodeId,
    },
    NotReleasing(SetId),
    AlreadyReleasing(SetId),
    /// `node` is the target of the set's direct move: it may run the set
    /// before it owns it.
    MoveTarget {
        set: SetId,
        node: NodeId,
    },
    Frozen(SetId),
    Maintenance,
    LockHeld {
        holder: NodeId,
    },
    NotLockHolder(NodeId),
    Blocked {
        set: SetId,
        node: NodeId,
    },
    Ineligible {
        set: SetId,
        node: NodeId,
    },
    NotExcluded {
        set: SetId,
        node: NodeId,
        since: u64,
    },
    PeerOnline {
        node: NodeId,
        peer: NodeId,
    },
    NotAlone,
    /// A `Configure` for another generation than the next one.
    StaleConfig {
        have: u64,
        got: u64,
    },
    /// A `Configure` whose sets do not extend the agreed ones.
    ConfigShape(String),
    /// The set was removed or replaced by a configuration change.
    Retired(SetId),
    /// A set added by a configuration change is not placed while a retired
    /// set still runs, or may (`set`).
    Retiring {
        set: SetId,
    },
    /// A `Configure` whose nodes are not the agreed ones with one added or
    /// one removed.
    NodesShape(String),
    /// A change of nodes while an online node has not acknowledged the
    /// last one (`Command::Members`).
    MembersBehind(NodeId),
    /// The node was removed by a configuration change.
    NodeRetired(NodeId),
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Rejected::*;
        match self {
            UnknownNode(n) => write!(f, "no node {n}"),
            UnknownSet(s) => write!(f, "no set {s}"),
            StaleEpoch { node, have, got } => write!(f, "node {node} is in epoch {have}, not {got}"),
            StaleGeneration { set, have, got } => write!(f, "set {set} is at generation {have}, not {got}"),
            StaleRound { voter, node, have, got } => {
                write!(f, "voter {voter} on node {node} is at round {have}, {got} is stale")
            }
            StaleIncarnation { node, have, got } => {
                write!(f, "node {node} joined in incarnation {have}, not {got}")
            }
            SelfSuspicion(n) => write!(f, "node {n} cannot suspect itself"),
            NotOnline(n) => write!(f, "node {n} is not online"),
            AlreadyOnline(n) => write!(f, "node {n} is already online"),
            NotOwner { set, node, owner } => write!(f, "set {set} is owned by {owner:?}, not node {node}"),
            Owned { set, owner } => write!(f, "set {set} is owned by node {owner}"),
            NotReleasing(s) => write!(f, "set {s} is not being released"),
            AlreadyReleasing(s) => write!(f, "set {s} is already being released"),
            MoveTarget { set, node } => write!(f, "node {node} may run set {set}: it is its direct move's target"),
            Frozen(s) => write!(f, "set {s} is frozen"),
            Maintenance => write!(f, "the cluster is in maintenance mode"),
            LockHeld { holder } => write!(f, "the lock is held by node {holder}"),
            NotLockHolder(n) => write!(f, "node {n} does not hold that lock with that token"),
            Blocked { set, node } => write!(f, "set {set} is blocked by a failed stop on node {node}"),
            Ineligible { set, node } => write!(f, "node {node} may not run set {set}"),
            NotExcluded { set, node, since } => {
                write!(f, "node {node} is not excluded from set {set} since generation {since}")
            }
            PeerOnline { node, peer } => write!(f, "node {node} cannot go on alone: node {peer} is online"),
            NotAlone => write!(f, "no node goes on alone"),
            StaleConfig { have, got } => {
                write!(f, "the agreed configuration is generation {have}; {got} is not the next")
            }
            ConfigShape(why) => write!(f, "the configuration's sets do not extend the agreed ones: {why}"),
            Retired(s) => write!(f, "set {s} was retired by a configuration change"),
            Retiring { set } => write!(f, "retired set {set} still runs, or may"),
            NodesShape(why) => write!(f, "the configuration's nodes are not the agreed ones with one changed: {why}"),
            MembersBehind(n) => write!(f, "node {n} has not acknowledged the last change of nodes yet"),
            NodeRetired(n) => write!(f, "node {n} was removed by a configuration change"),
        }
    }
}

/// What an accepted command did beyond its obvious effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Applied {
    Done,
    /// The command completed a majority of suspicions (or was a fence) and
    /// the node was evicted: its sets are unowned and its epoch bumped.
    Evicted(NodeId),
}

impl ClusterState {
    /// Apply one committed command. Every node applies the same commands in
    /// the same order and so reaches the same state.
    pub fn apply(&mut self, cmd: &Command) -> Result<Applied, Rejected> {
        self.applied += 1;
        self.check_ids(cmd)?;
        match *cmd {
            Command::Join { node, epoch, incarnation } => {
                self.check_epoch(node, epoch)?;
                let rec = &mut self.nodes[usize::from(node)];
                if incarnation < rec.incarnation {
                    return Err(Rejected::StaleIncarnation { node, have: rec.incarnation, got: incarnation });
                }
                if rec.membership == Membership::Online && incarnation == rec.incarnation {
                    return Err(Rejected::AlreadyOnline(node));
                }
                if rec.retired {
                    return Err(Rejected::NodeRetired(node));
                }
                // It joins from everything before: the latest membership.
                rec.members = self.config.as_ref().map_or(0, |c| c.members);
                rec.membership = Membership::Online;
                rec.fenced = false;
                rec.incarnation = incarnation;
                Ok(Applied::Done)
            }
            Command::Suspect { voter, node, epoch, round } => self.suspect(voter, node, epoch, round),
            Command::Unsuspect { voter, node, round } => {
                let have = self.suspicion_round(voter, node);
                if round < have {
                    return Err(Rejected::StaleRound { voter, node, have, got: round });
                }
                let epoch = self.nodes[usize::from(node)].epoch;
                self.suspicions.insert((voter, node), Suspicion { round, active: false, epoch });
                Ok(Applied::Done)
            }
            Command::Fenced { node, epoch, incarnation } => {
                self.check_epoch(node, epoch)?;
                let have = self.nodes[usize::from(node)].incarnation;
                if incarnation != have {
                    return Err(Rejected::StaleIncarnation { node, have, got: incarnation });
                }
                self.evict(node);
                self.nodes[usize::from(node)].fenced = true;
                for set in &mut self.sets {
                    if set.blocked == Some(node) {
                        set.blocked = None;
                    }
                }
                Ok(Applied::Evicted(node))
            }
            Command::Assign { set, node, generation } => {
                self.check_generation(set, generation)?;
                let rec = &self.sets[usize::from(set)];
                if let Some(owner) = rec.owner {
                    return Err(Rejected::Owned { set, owner });
                }
                self.check_movable(set)?;
                self.check_eligible(set, node)?;
                if let Some(busy) = self.retiring_before(set) {
                    return Err(Rejected::Retiring { set: busy });
                }
                let rec = &mut self.sets[usize::from(set)];
                rec.owner = Some(node);
                rec.generation += 1;
                rec.running = false;
                rec.phase = Phase::Stable;
                Ok(Applied::Done)
            }
            Command::Move { set, from, to, generation, direct } => {
                self.check_owner(set, from, generation)?;
                self.check_movable(set)?;
                if self.set(set).phase != Phase::Stable {
                    return Err(Rejected::AlreadyReleasing(set));
                }
                if let Some(to) = to {
                    if to == from {
                        return Err(Rejected::Owned { set, owner: from });
                    }
                    self.check_eligible(set, to)?;
                }
                let direct = direct && to.is_some();
                self.sets[usize::from(set)].phase = Phase::Releasing { to, direct };
                Ok(Applied::Done)
            }
            Command::Released { set, node, generation } => {
                self.check_owner(set, node, generation)?;
                let Phase::Releasing { to, direct } = self.set(set).phase else {
                    return Err(Rejected::NotReleasing(set));
                };
                // The target of a direct move may run the set already: it
                // gets it whatever happened since (placement moves it on).
                let to = to.filter(|&to| direct || self.check_eligible(set, to).is_ok());
                let rec = &mut self.sets[usize::from(set)];
                rec.owner = to;
                rec.generation += 1;
                rec.running = false;
                rec.phase = Phase::Stable;
                Ok(Applied::Done)
            }
            Command::Started { set, node, generation } => {
                self.check_owner(set, node, generation)?;
                self.sets[usize::from(set)].running = true;
                Ok(Applied::Done)
            }
            Command::StartFailed { set, node, generation, exclusion } => {
                self.check_owner(set, node, generation)?;
                let rec = &mut self.sets[usize::from(set)];
                // Stopped cleanly: a direct move's target keeps the set.
                rec.owner = rec.direct_target();
                rec.generation += 1;
                rec.running = false;
                rec.phase = Phase::Stable;
                rec.excluded.insert(node, exclusion);
                rec.excluded_at.insert(node, generation);
                if rec.pin == Some(node) {
                    rec.pin = None;
                }
                Ok(Applied::Done)
            }
            Command::StopFailed { set, node, generation } => {
                self.check_owner(set, node, generation)?;
                let rec = &mut self.sets[usize::from(set)];
                rec.blocked = Some(node);
                rec.running = false;
                Ok(Applied::Done)
            }
            Command::Freeze { set, frozen } => {
                if frozen && self.retired(set) {
                    return Err(Rejected::Retired(set));
                }
                self.sets[usize::from(set)].frozen = frozen;
                Ok(Applied::Done)
            }
            Command::Standby { node, standby } => {
                let n = &mut self.nodes[usize::from(node)];
                (n.standby, n.leaving) = (standby, false);
                if standby {
                    self.unpin(node);
                }
                Ok(Applied::Done)
            }
            Command::Leave { node } => {
                let n = &mut self.nodes[usize::from(node)];
                (n.standby, n.leaving) = (true, true);
                self.unpin(node);
                Ok(Applied::Done)
            }
            Command::Back { node } => {
                let n = &mut self.nodes[usize::from(node)];
                if n.leaving {
                    (n.standby, n.leaving) = (false, false);
                }
                Ok(Applied::Done)
            }
            Command::Pin { set, node } => {
                self.sets[usize::from(set)].pin = node;
                Ok(Applied::Done)
            }
            Command::Config { node, ref digest } => {
                self.nodes[usize::from(node)].config = Some(digest.clone());
                Ok(Applied::Done)
            }
            Command::Clear { set } => {
                let rec = &mut self.sets[usize::from(set)];
                rec.excluded.clear();
                rec.excluded_at.clear();
                Ok(Applied::Done)
            }
            Command::Expire { set, node, since } => {
                let rec = &mut self.sets[usize::from(set)];
                if rec.excluded_at.get(&node) != Some(&since) {
                    return Err(Rejected::NotExcluded { set, node, since });
                }
                rec.excluded.remove(&node);
                rec.excluded_at.remove(&node);
                Ok(Applied::Done)
            }
            Command::Maintenance { on } => {
                self.maintenance = on;
                Ok(Applied::Done)
            }
            Command::Alone { node } => {
                let online = (0..self.nodes.len() as NodeId).find(|&n| n != node && self.is_online(n));
                if let Some(peer) = online {
                    return Err(Rejected::PeerOnline { node, peer });
                }
                self.alone = Some(node);
                Ok(Applied::Done)
            }
            Command::Configure { generation, ref digest, ref text, ref sets, guard_margin, timing, ref nodes } => {
                let change = super::configure::Change { generation, digest, text, sets, guard_margin, timing };
                self.configure(change, nodes.as_deref())
            }
            Command::Members { node, epoch, generation } => {
                self.check_epoch(node, epoch)?;
                if !self.is_online(node) {
                    return Err(Rejected::NotOnline(node));
                }
                let have = self.members();
                if generation > have {
                    return Err(Rejected::StaleConfig { have, got: generation });
                }
                let rec = &mut self.nodes[usize::from(node)];
                rec.members = rec.members.max(generation);
                Ok(Applied::Done)
            }
            Command::Together => {
                if self.alone.take().is_none() {
                    return Err(Rejected::NotAlone);
                }
                Ok(Applied::Done)
            }
            Command::Lock { ref name, node, epoch } => {
                self.check_epoch(node, epoch)?;
                if !self.is_online(node) {
                    return Err(Rejected::NotOnline(node));
                }
                match self.locks.get(name) {
                    Some(l) if l.holder == node => Ok(Applied::Done),
                    Some(l) => Err(Rejected::LockHeld { holder: l.holder }),
                    None => {
                        self.lock_tokens += 1;
                        let token = self.lock_tokens;
                        self.locks.insert(name.clone(), crate::model::LockRecord { holder: node, token });
                        Ok(Applied::Done)
                    }
                }
            }
            Command::Duplicate { set, generation, ref strangers } => {
                self.check_generation(set, generation)?;
                // The target of a direct move may hold the set's address
                // once the owner released it: no stranger.
                if let Some(node) = self.set(set).direct_target() {
                    if strangers.iter().all(|s| s.node == Some(node)) {
                        return Err(Rejected::MoveTarget { set, node });
                    }
                }
                Ok(Applied::Done)
            }
            Command::Unlock { ref name, node, token } => match self.locks.get(name) {
                Some(l) if l.holder == node && l.token == token => {
                    self.locks.remove(name);
                    Ok(Applied::Done)
                }
                _ => Err(Rejected::NotLockHolder(node)),
            },
        }
    }

    fn suspect(&mut self, voter: NodeId, node: NodeId, epoch: u64, round: u64) -> Result<Applied, Rejected> {
        if voter == node {
            return Err(Rejected::SelfSuspicion(node));
        }
        let have = self.suspicion_round(voter, node);
        if round <= have {
            return Err(Rejected::StaleRound { voter, node, have, got: round });
        }
        self.check_epoch(node, epoch)?;
        if !self.is_online(node) {
            return Err(Rejected::NotOnline(node));
        }
        self.suspicions.insert((voter, node), Suspicion { round, active: true, epoch });
        let votes = self.active_suspects(node).into_iter().filter(|&v| self.votes(v)).count();
        if votes >= self.majority() && !self.needs_fence(node) {
            self.evict(node);
            return Ok(Applied::Evicted(node));
        }
        Ok(Applied::Done)
    }

    /// A majority of voters stopped promising `node` a lease in its epoch
    /// (or a fence confirmed it off), so nothing can run there any more:
    /// take its sets away and move it to a new epoch.
    /// A move's pin lasts while its node can keep the set: once the node is
    /// lost, put in standby, leaves or is excluded, the set follows its
    /// policy again (so a returning node does not pull it back).
    fn unpin(&mut self, node: NodeId) {
        for set in self.sets.iter_mut().filter(|s| s.pin == Some(node)) {
            set.pin = None;
        }
    }

    pub(crate) fn evict(&mut self, node: NodeId) {
        self.unpin(node);
        let rec = &mut self.nodes[usize::from(node)];
        rec.epoch += 1;
        rec.membership = Membership::Offline;
        for ((_, n), s) in self.suspicions.iter_mut() {
            if *n == node {
                s.active = false;
            }
        }
        // Its lease has ended, and so has every lock it held.
        self.locks.retain(|_, l| l.holder != node);
        for set in &mut self.sets {
            if set.owner == Some(node) {
                // A direct move's target may run the set already: it goes
                // there, never to nobody (the evicted owner holds nothing).
                set.owner = set.direct_target();
                set.generation += 1;
                set.running = false;
                set.phase = Phase::Stable;
            } else if let Phase::Releasing { to, .. } = &mut set.phase {
                if *to == Some(node) {
                    set.phase = Phase::Releasing { to: None, direct: false };
                }
            }
        }
    }

    fn check_ids(&self, cmd: &Command) -> Result<(), Rejected> {
        let (nodes, set): (&[NodeId], Option<SetId>) = match cmd {
            Command::Join { node, .. }
            | Command::Fenced { node, .. }
            | Command::Standby { node, .. }
            | Command::Leave { node }
            | Command::Back { node }
            | Command::Alone { node }
            | Command::Config { node, .. }
            | Command::Members { node, .. } => (std::slice::from_ref(node), None),
            Command::Suspect { voter, node, .. } | Command::Unsuspect { voter, node, .. } => {
                return [*voter, *node].iter().try_for_each(|&n| self.check_node(n));
            }
            Command::Assign { set, node, .. }
            | Command::Released { set, node, .. }
            | Command::Started { set, node, .. }
            | Command::StartFailed { set, node, .. }
            | Command::StopFailed { set, node, .. } => (std::slice::from_ref(node), Some(*set)),
            Command::Move { set, from, to, .. } => {
                to.iter().chain(std::iter::once(from)).try_for_each(|&n| self.check_node(n))?;
                (&[], Some(*set))
            }
            Command::Pin { set, node } => (node.as_slice(), Some(*set)),
            Command::Expire { set, node, .. } => (std::slice::from_ref(node), Some(*set)),
            Command::Freeze { set, .. } | Command::Clear { set } | Command::Duplicate { set, .. } => (&[], Some(*set)),
            Command::Maintenance { .. } | Command::Together | Command::Configure { .. } => (&[], None),
            Command::Lock { node, .. } | Command::Unlock { node, .. } => (std::slice::from_ref(node), None),
        };
        nodes.iter().try_for_each(|&n| self.check_node(n))?;
        match set {
            Some(s) if usize::from(s) >= self.sets.len() => Err(Rejected::UnknownSet(s)),
            _ => Ok(()),
        }
    }

    fn check_node(&self, node: NodeId) -> Result<(), Rejected> {
        if usize::from(node) < self.nodes.len() {
            Ok(())
        } else {
            Err(Rejected::UnknownNode(node))
        }
    }

    fn check_epoch(&self, node: NodeId, got: u64) -> Result<(), Rejected> {
        let have = self.nodes[usize::from(node)].epoch;
        if have == got {
            Ok(())
        } else {
            Err(Rejected::StaleEpoch { node, have, got })
        }
    }

    fn check_generation(&self, set: SetId, got: u64) -> Result<(), Rejected> {
        let have = self.set(set).generation;
        if have == got {
            Ok(())
        } else {
            Err(Rejected::StaleGeneration { set, have, got })
        }
    }

    fn check_owner(&self, set: SetId, node: NodeId, generation: u64) -> Result<(), Rejected> {
        self.check_generation(set, generation)?;
        let owner = self.set(set).owner;
        if owner == Some(node) {
            Ok(())
        } else {
            Err(Rejected::NotOwner { set, node, owner })
        }
    }

    fn check_movable(&self, set: SetId) -> Result<(), Rejected> {
        let rec = self.set(set);
        if self.maintenance {
            return Err(Rejected::Maintenance);
        }
        if rec.frozen {
            return Err(Rejected::Frozen(set));
        }
        match rec.blocked {
            Some(node) => Err(Rejected::Blocked { set, node }),
            None => Ok(()),
        }
    }

    /// May `node` be given `set`? Placement decides the preference; this is
    /// only the safety floor that a stale proposal must not get past.
    pub fn check_eligible(&self, set: SetId, node: NodeId) -> Result<(), Rejected> {
        if self.retired(set) {
            return Err(Rejected::Retired(set));
        }
        let rec = self.node(node);
        if rec.retired {
            return Err(Rejected::NodeRetired(node));
        }
        if rec.membership != Membership::Online {
            return Err(Rejected::NotOnline(node));
        }
        if rec.standby || self.set(set).excluded.contains_key(&node) {
            return Err(Rejected::Ineligible { set, node });
        }
        Ok(())
    }
}
