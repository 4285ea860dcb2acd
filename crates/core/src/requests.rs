//! Operator requests: what an operator (through the API) or `baton lock`
//! asks of this node. Each is admitted or refused here, turned into the
//! command it needs, proposed again for as long as the agreed state does
//! not show it done, and answered — with a [`Reply`] the node emits as an
//! output — once it is done, refused, or out of time. A lost proposal costs
//! a retry, never a silently ignored request.

use std::time::Duration;

use baton_state::{ClusterState, Command, Phase};

use crate::time::Time;
use crate::topology::{NodeId, SetId, Topology};

/// How long a request may take to be agreed before it is answered as failed.
pub const AGREE_WAIT: Duration = Duration::from_secs(10);
/// How long a move or a standby may take to finish.
pub const MOVE_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A planned move, to `to` or to the next preferred node.
    Move {
        set: SetId,
        to: Option<NodeId>,
    },
    Freeze {
        set: SetId,
        frozen: bool,
    },
    Standby {
        node: NodeId,
        standby: bool,
    },
    /// Forget the set's exclusions.
    Cleanup {
        set: SetId,
    },
    Maintenance {
        on: bool,
    },
    /// Take the cluster-wide lock `name` for this node, waiting at most `wait`.
    Lock {
        name: String,
        wait: Duration,
    },
    /// Give the lock back.
    Unlock {
        name: String,
        token: u64,
    },
    /// Who holds the lock, and may this node act on it now?
    LockState {
        name: String,
    },
    /// Does the set run on this node?
    IsActive {
        set: SetId,
    },
    /// Two-node mode, on an operator's word instead of a fence device's:
    /// the peer is off, and whatever it may have agreed alone is given up.
    /// This node becomes the only voter and runs the sets.
    Alone,
    /// Replace this agent's program without stopping anything: answered
    /// with what the next program needs (`Reply::HandedOver`), after which
    /// this node does nothing more.
    Handover,
    /// Agree on this configuration (`baton config apply`, SIGHUP).
    Configure(Box<crate::reconfigure::Proposal>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Agreed (a move: the set runs on `to`; a standby: the node is empty).
    Done,
    /// A move finished: the set runs on this node.
    Moved {
        to: NodeId,
    },
    /// The lock is this node's, with this fencing token, and may be acted
    /// on for `valid_for` more (unless a later answer says longer).
    Locked {
        token: u64,
        valid_for: Duration,
    },
    /// Who holds the lock; whether this node may act on it, and for how long.
    LockState {
        holder: Option<NodeId>,
        token: Option<u64>,
        valid: bool,
        valid_for: Duration,
    },
    Active(bool),
    /// The next program may carry on from this.
    HandedOver(crate::node::Handover),
    Refused(Refusal),
    /// Admitted, but not done in time; says what the state was.
    Failed(String),
}

/// Why a request is refused, before anything is proposed (or, for a move,
/// given up once a later pin replaced its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Maintenance,
    Frozen {
        set: SetId,
    },
    Witness {
        node: NodeId,
    },
    NotInList {
        set: SetId,
        node: NodeId,
    },
    Ineligible {
        set: SetId,
        node: NodeId,
        why: &'static str,
    },
    NoTarget {
        set: SetId,
    },
    LockName,
    Superseded {
        set: SetId,
    },
    TargetLost {
        set: SetId,
        node: NodeId,
    },
    NotPair,
    PeerAlive {
        node: NodeId,
    },
    /// A handover waits for the set to be running or stopped, as agreed.
    Unsettled {
        set: SetId,
    },
    NoHandover(&'static str),
    /// A configuration that cannot be applied live, or lost to another.
    Config(String),
    /// The set was removed or replaced by a configuration change.
    Retired {
        set: SetId,
    },
    /// No node in that slot, or one a configuration change removed.
    NoNode {
        node: NodeId,
    },
}

impl Refusal {
    /// In words, with the names of `topo`.
    pub fn describe(&self, topo: &Topology) -> String {
        let (n, s) = (|n: NodeId| topo.node_name(n).to_string(), |s: SetId| topo.set_name(s).to_string());
        match self {
            Refusal::Maintenance => "the cluster is in maintenance mode: `baton maintenance off` first".into(),
            Refusal::Frozen { set } => format!("{} is frozen: unfreeze it first", s(*set)),
            Refusal::Witness { node } => format!("{} is a witness and never runs sets", n(*node)),
            Refusal::NotInList { set, node } => format!("{} is not in {}'s node list", n(*node), s(*set)),
            Refusal::Ineligible { set, node, why } => format!("{} cannot run {} now: {why}", n(*node), s(*set)),
            Refusal::NoTarget { set } => format!("no other node can run {} now", s(*set)),
            Refusal::LockName => "a lock name is 1 to 128 printable characters".into(),
            Refusal::Superseded { set } => format!("a later move of {} replaced this one", s(*set)),
            Refusal::TargetLost { set, node } => {
                format!("{} was lost (or excluded, or put in standby) before {} ran there", n(*node), s(*set))
            }
            Refusal::NotPair => {
                "only a node of a two-node cluster (two nodes, no witness, a fence device for each) goes on alone"
                    .into()
            }
            Refusal::PeerAlive { node } => format!("{} is alive: its heartbeats arrive", n(*node)),
            Refusal::Unsettled { set } => {
                format!("{} is starting, stopping or moving here: hand over once it has settled", s(*set))
            }
            Refusal::NoHandover(why) => format!("no handover now: {why}"),
            Refusal::Config(why) => why.clone(),
            Refusal::Retired { set } => format!("{} was removed or replaced by a configuration change", s(*set)),
            Refusal::NoNode { node } => match topo.nodes.get(usize::from(*node)) {
                Some(spec) => format!("{} was removed by a configuration change", spec.name),
                None => format!("there is no node {node}"),
            },
        }
    }
}

/// A request admitted and waiting for the agreed state to show it done.
#[derive(Clone, Debug)]
pub struct Pending {
    pub id: u64,
    pub work: Work,
    pub deadline: Time,
}

/// What an admitted request waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// The set runs on `to`: its pin is proposed until agreed (`pinned`),
    /// never again after: a later pin (another move) replaces it.
    Move {
        set: SetId,
        to: NodeId,
        pinned: bool,
    },
    Freeze {
        set: SetId,
        frozen: bool,
    },
    Standby {
        node: NodeId,
        standby: bool,
    },
    Cleanup {
        set: SetId,
    },
    Maintenance {
        on: bool,
    },
    /// `after`: the token of the grant this node held when asked, if any.
    /// A grant is answered only with a later token: a second `baton lock`
    /// on the holding node waits for the first to give the lock back,
    /// rather than share its grant (the simulator's seed 6184: asked while
    /// the first holder's unlock was being agreed, answered with its token).
    Lock {
        name: String,
        after: Option<u64>,
    },
    Unlock {
        name: String,
        token: u64,
    },
    /// This node goes on alone (two-node mode): done once agreed.
    Alone,
    /// The configuration with this digest is agreed as `generation`.
    Configure {
        generation: u64,
        digest: String,
        text: String,
        sets: Vec<baton_state::SetSpec>,
        guard_margin: std::time::Duration,
        timing: baton_state::AgreedTiming,
        nodes: Option<Vec<baton_state::NodeSpec>>,
        /// A node it removes, put in standby first: the change is proposed
        /// once it runs nothing.
        drain: Option<NodeId>,
    },
}

/// Why `node` may not be given `set` now, if it may not.
pub fn ineligible(state: &ClusterState, set: SetId, node: NodeId) -> Option<&'static str> {
    state.check_eligible(set, node).err()?;
    let rec = state.node(node);
    Some(if !state.is_online(node) {
        "it is not online (not joined yet, or evicted)"
    } else if rec.standby {
        "it is in standby"
    } else {
        "it is excluded for this set (a veto or a failure); clear it first"
    })
}

impl Work {
    /// The command that makes it happen, if one is still needed. `me` is
    /// this node (locks are taken for it).
    pub fn command(&self, state: &ClusterState, me: NodeId) -> Option<Command> {
        match self {
            Work::Move { set, to, pinned } => {
                (!pinned && state.set(*set).pin != Some(*to)).then_some(Command::Pin { set: *set, node: Some(*to) })
            }
            Work::Freeze { set, frozen } => Some(Command::Freeze { set: *set, frozen: *frozen }),
            Work::Standby { node, standby } => Some(Command::Standby { node: *node, standby: *standby }),
            Work::Cleanup { set } => Some(Command::Clear { set: *set }),
            Work::Maintenance { on } => Some(Command::Maintenance { on: *on }),
            Work::Lock { name, .. } => {
                // Only a free lock is asked for; a held one is waited for.
                (!state.locks.contains_key(name)).then(|| Command::Lock {
                    name: name.clone(),
                    node: me,
                    epoch: state.node(me).epoch,
                })
            }
            Work::Unlock { name, token } => Some(Command::Unlock { name: name.clone(), node: me, token: *token }),
            // Proposed by two-node mode itself, once the peer is evicted.
            Work::Alone => None,
            Work::Configure { drain: Some(node), generation, .. }
                if state.config_generation() < *generation && drains(state, *node) =>
            {
                (!state.node(*node).standby).then_some(Command::Standby { node: *node, standby: true })
            }
            Work::Configure { generation, digest, text, sets, guard_margin, timing, nodes, .. } => {
                (state.config_generation() < *generation).then(|| Command::Configure {
                    generation: *generation,
                    digest: digest.clone(),
                    text: text.clone(),
                    sets: sets.clone(),
                    guard_margin: *guard_margin,
                    timing: Some(*timing),
                    nodes: nodes.clone(),
                })
            }
        }
    }

    /// The reply, once the agreed state shows it done; `valid_for` is how
    /// long this node may act on a lock it holds (see `Node::lock_valid_for`).
    pub fn done(&mut self, state: &ClusterState, me: NodeId, valid_for: Duration) -> Option<Reply> {
        let ok = |done: bool| done.then_some(Reply::Done);
        match self {
            Work::Move { set, to, pinned } => {
                let rec = state.set(*set);
                if rec.pin == Some(*to) {
                    *pinned = true;
                } else if *pinned {
                    // Two operators moving one set: the later pin wins, the
                    // earlier request is told (rather than both retried in
                    // turn). No pin: the target was lost before the set ran there.
                    return Some(Reply::Refused(match rec.pin {
                        Some(_) => Refusal::Superseded { set: *set },
                        None => Refusal::TargetLost { set: *set, node: *to },
                    }));
                }
                (rec.owner == Some(*to) && rec.running && rec.phase == Phase::Stable)
                    .then_some(Reply::Moved { to: *to })
            }
            Work::Freeze { set, frozen } => ok(state.set(*set).frozen == *frozen),
            Work::Standby { node, standby: true } => {
                ok(state.node(*node).standby && state.owned_by(*node).next().is_none())
            }
            Work::Standby { node, standby: false } => ok(!state.node(*node).standby),
            Work::Cleanup { set } => ok(state.set(*set).excluded.is_empty()),
            Work::Maintenance { on } => ok(state.maintenance == *on),
            Work::Lock { name, after } => state
                .locks
                .get(name)
                .filter(|l| l.holder == me && !valid_for.is_zero() && Some(l.token) > *after)
                .map(|l| Reply::Locked { token: l.token, valid_for }),
            Work::Unlock { name, token } => {
                ok(state.locks.get(name).is_none_or(|l| l.holder != me || l.token != *token))
            }
            Work::Alone => ok(state.alone == Some(me)),
            Work::Configure { generation, digest, .. } => {
                let agreed = state.config.as_ref().filter(|c| c.generation >= *generation)?;
                Some(if agreed.generation == *generation && agreed.digest == *digest {
                    Reply::Done
                } else {
                    Reply::Refused(Refusal::Config(format!(
                        "another configuration ({}) was agreed first, as generation {}: compare with `baton config \
                         diff` and apply again",
                        agreed.digest, agreed.generation
                    )))
                })
            }
        }
    }

    /// What the state was when the request ran out of time.
    pub fn failure(&self, state: &ClusterState, topo: &Topology) -> String {
        let node = |n: Option<NodeId>| n.map_or("nobody".to_string(), |n| topo.node_name(n).to_string());
        match self {
            Work::Move { set, to, .. } => {
                let rec = state.set(*set);
                format!(
                    "the move of {} to {} did not finish within {}s: owned by {}, {}",
                    topo.set_name(*set),
                    topo.node_name(*to),
                    MOVE_WAIT.as_secs(),
                    node(rec.owner),
                    if rec.running { "running" } else { "not running" }
                )
            }
            Work::Standby { node: n, standby: true } => {
                let left: Vec<&str> = state.owned_by(*n).map(|s| topo.set_name(s)).collect();
                format!(
                    "{} was not emptied within {}s: it still owns {}",
                    topo.node_name(*n),
                    MOVE_WAIT.as_secs(),
                    left.join(", ")
                )
            }
            Work::Lock { name, .. } => {
                format!("the lock {name} stayed with {}", node(state.locks.get(name).map(|l| l.holder)))
            }
            Work::Alone => format!(
                "this node was not agreed to go on alone within {}s (alone: {})",
                AGREE_WAIT.as_secs(),
                node(state.alone)
            ),
            Work::Configure { drain: Some(n), .. } if drains(state, *n) => {
                let left: Vec<&str> = state.owned_by(*n).map(|s| topo.set_name(s)).collect();
                format!(
                    "{} still runs {} after {}s in standby: the change that removes it was not proposed",
                    topo.node_name(*n),
                    left.join(", "),
                    MOVE_WAIT.as_secs()
                )
            }
            Work::Configure { generation, .. } => format!(
                "configuration generation {generation} was not agreed within {}s: is a majority of the cluster up? \
                 (or a set it removes was frozen, or maintenance began, meanwhile: `baton events` says)",
                AGREE_WAIT.as_secs()
            ),
            _ => format!("not agreed within {}s (is a majority of the cluster up?)", AGREE_WAIT.as_secs()),
        }
    }

    /// How long it may take.
    pub fn wait(&self) -> Duration {
        match self {
            Work::Move { .. } | Work::Standby { standby: true, .. } | Work::Configure { drain: Some(_), .. } => {
                MOVE_WAIT
            }
            _ => AGREE_WAIT,
        }
    }
}

/// Does `node` still own or block a set (a node to be removed waits)?
fn drains(state: &ClusterState, node: NodeId) -> bool {
    state.sets.iter().any(|s| s.owner == Some(node) || s.blocked == Some(node))
}

/// A lock name is 1 to 128 printable characters.
pub fn lock_name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && !name.chars().any(char::is_control)
}
