//! What the core knows of a set: its preference order, policies and
//! resources. Part of the agreed state since the configuration is agreed
//! (`Command::Configure` carries every set's spec), so that every node
//! switches to the same sets at the same point of the log.

use std::time::Duration;

use crate::NodeId;

/// What the core knows of a node. Part of the agreed configuration once a
/// change of nodes was agreed (`Command::Configure` carries every slot), so
/// that every node counts the same voters from the same point of the log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeSpec {
    pub name: String,
    /// A witness votes but never runs a set.
    pub witness: bool,
    /// It is on the first `links` links: every link for a full node, one
    /// or more for a witness (a remote witness, ARCHITECTURE.md).
    pub links: usize,
    /// Removed by a configuration change: its slot is kept (never reused,
    /// never renumbered), but it votes, runs and is heard no more.
    #[serde(default)]
    pub retired: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Failback {
    /// A recovered preferred node becomes the standby (Fusion's policy).
    Never,
    /// The set returns to a more preferred node once it has been up for
    /// `delay` (AFM's and Apple's policy).
    Auto { delay: Duration },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetSpec {
    pub name: String,
    /// Preference order; never contains a witness. Empty: the set was
    /// retired by a configuration change and runs nowhere.
    pub nodes: Vec<NodeId>,
    pub failback: Failback,
    /// Local restarts allowed within `restart_window` before failing over.
    pub max_restarts: u32,
    pub restart_window: Duration,
    /// An exclusion from this set lapses this long after the leader saw it
    /// agreed; `None`: it lasts until an operator clears it.
    pub failure_timeout: Option<Duration>,
    pub resources: Vec<ResourceSpec>,
    /// The limit for each hook step (Test, PreAcq*, PostAcq*, PreRel*, PostRel*).
    pub hook_timeout: Duration,
    /// A digest of how the set's resources and hooks are configured, in
    /// full: a configuration change that alters it restarts the set.
    #[serde(default)]
    pub definition: String,
}

impl SetSpec {
    /// Would switching from `self` to `new` restart the set? Its resources
    /// or hooks changed; the rest (preference order, failback, restart
    /// limits, failure timeout, how often and how long monitors run) is
    /// policy, which changes in place.
    pub fn restarts_for(&self, new: &SetSpec) -> bool {
        let started = |r: &ResourceSpec| (r.label.clone(), r.start_timeout, r.stop_timeout, r.address);
        self.resources.len() != new.resources.len()
            || self.resources.iter().map(started).ne(new.resources.iter().map(started))
            || self.definition != new.definition
            || self.hook_timeout != new.hook_timeout
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceSpec {
    /// What the logs and events call it, e.g. `ip 10.0.0.100/24`.
    pub label: String,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
    /// `None`: the resource has no monitor.
    pub monitor_interval: Option<Duration>,
    pub monitor_timeout: Duration,
    /// A service address: when a lease ends, addresses go first, so that
    /// clients stop reaching this node before anything else is torn down.
    pub address: bool,
}
