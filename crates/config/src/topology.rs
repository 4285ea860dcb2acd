//! From a configuration to the core's [`Topology`]: ids, preference lists,
//! and each resource's limits with the defaults of its type.

use std::time::Duration;

use baton_core::release::{self, Phase};
use baton_core::{NodeSpec, ResourceSpec, SetSpec, Timing, Topology};

use crate::model::{Address, Config, FenceKind, FenceMode, Resource, ResourceKind};

/// The clock-rate difference the safety margins assume (1%): far above what
/// any working clock drifts, small enough to cost little lease time.
pub const MAX_DRIFT_PPM: u32 = 10_000;
/// How often a node asks who holds the addresses of the sets it does not own.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// The limit on each hook step of a set.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// (start/stop limit, monitor interval) a resource type gets by default.
fn defaults(kind: &ResourceKind) -> (Duration, Option<Duration>) {
    let s = Duration::from_secs;
    match kind {
        ResourceKind::Ip { .. } => (s(5), Some(s(2))),
        ResourceKind::Process { .. } => (s(10), Some(s(2))),
        ResourceKind::Exec { monitor, .. } => (s(20), monitor.as_ref().map(|_| s(10))),
        ResourceKind::Mount { .. } => (s(60), Some(s(10))),
        ResourceKind::Systemd { .. }
        | ResourceKind::Lsb { .. }
        | ResourceKind::Ocf { .. }
        | ResourceKind::Nfs { .. } => (s(20), Some(s(10))),
    }
}

fn resource_spec(r: &Resource) -> ResourceSpec {
    let (timeout, interval) = defaults(&r.kind);
    let timeout = r.timeout.unwrap_or(timeout);
    ResourceSpec {
        label: r.kind.label(),
        start_timeout: timeout,
        stop_timeout: timeout,
        monitor_interval: r.interval.or(interval),
        monitor_timeout: timeout,
        address: matches!(r.kind, ResourceKind::Ip { .. }),
    }
}

/// A digest of what a set runs: each resource's kind and limit, and the
/// hooks (how often its monitors run is policy, changed in place).
fn definition(set: &crate::model::SetConfig) -> String {
    let started: Vec<_> = set.resources.iter().map(|r| (&r.kind, r.timeout)).collect();
    crate::digest(format!("{started:?} {:?}", set.hooks).as_bytes())
}

/// The shortest timing the bench measured free of false failovers (`lab
/// bench`, the quiet phase): below it `config check` warns.
const MEASURED_HEARTBEAT: Duration = Duration::from_millis(10);
const MEASURED_LEASE: Duration = Duration::from_millis(100);

impl Config {
    pub fn topology(&self) -> Topology {
        let nodes = self
            .nodes
            .iter()
            .map(|n| NodeSpec { name: n.name.clone(), witness: n.witness, links: n.addresses.len(), retired: false })
            .collect();
        let sets = self
            .sets
            .iter()
            .map(|s| SetSpec {
                name: s.name.clone(),
                nodes: s.nodes.iter().map(|&n| n as u8).collect(),
                failback: s.failback,
                max_restarts: s.max_restarts,
                restart_window: s.restart_window,
                failure_timeout: s.failure_timeout.or(self.cluster.failure_timeout),
                resources: s.resources.iter().map(resource_spec).collect(),
                hook_timeout: HOOK_TIMEOUT,
                definition: definition(s),
            })
            .collect();
        Topology { nodes, links: self.links(), sets, timing: self.timing(), fenceable: self.fenceable() }
    }

    /// The core's timing: the lease, less the guard's release budget.
    pub fn timing(&self) -> Timing {
        Timing {
            heartbeat_interval: self.cluster.heartbeat_interval,
            lease: self.cluster.lease,
            max_drift_ppm: MAX_DRIFT_PPM,
            guard_margin: release::margin(self.release_phases()),
            probe_interval: Some(PROBE_INTERVAL),
            startup_fence: self.startup_fence(),
        }
    }

    /// What is valid but hazardous, for `config check` and the agent's log.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let (heartbeat, lease) = (self.cluster.heartbeat_interval, self.cluster.lease);
        if heartbeat < MEASURED_HEARTBEAT || lease < MEASURED_LEASE {
            // A full node heartbeats every other node on each link it is on.
            let per_round = self.nodes.iter().map(|n| n.addresses.len()).sum::<usize>() - self.links();
            let sent = per_round * 1000 / heartbeat.as_millis().max(1) as usize;
            out.push(format!(
                "cluster: heartbeat_interval {heartbeat:?} and lease {lease:?} are below the shortest setting measured \
                 free of false failovers (heartbeat {MEASURED_HEARTBEAT:?}, lease {MEASURED_LEASE:?}: no set moved in \
                 ten minutes with both cores busy and 5 % of the packets lost, docs/bench-fast.md); each node sends {sent} \
                 heartbeats a second and receives as many, and a busy machine or a lossy network may move sets \
                 without a fault"
            ));
        }
        let protected = self.fencing.is_some() || self.cluster.watchdog.is_some();
        for set in &self.sets {
            for (i, r) in set.resources.iter().enumerate() {
                let key = format!("sets.{}.resources[{i}]", set.name);
                match &r.kind {
                    ResourceKind::Mount { .. } | ResourceKind::Nfs { .. } if !protected => out.push(format!(
                        "{key}: {} on shared storage in a cluster with neither [fencing] nor cluster.watchdog: \
                         if this node's agent and guard both hang, nothing stops it from writing to the disk \
                         after its lease ended and another node took the set; configure a fence device or a watchdog",
                        r.kind.type_name()
                    )),
                    _ => {}
                }
                if let ResourceKind::Mount { fstype, .. } = &r.kind {
                    if !release::SHUTDOWN_FILESYSTEMS.contains(&fstype.as_str()) {
                        out.push(format!(
                            "{key}: the guard cannot cut a {fstype} filesystem off at once (it can for {}): \
                             released by the guard, it is only detached, and writes in flight may reach the disk \
                             after the lease",
                            release::SHUTDOWN_FILESYSTEMS.join(", ")
                        ));
                    }
                }
            }
        }
        out
    }

    /// Every phase the guard may go through on a node of this cluster: the
    /// sets' cgroups where a set has hooks (they run in them), and what
    /// each resource needs (addresses alone run no program).
    pub fn release_phases(&self) -> Vec<Phase> {
        let mut phases: Vec<Phase> = self
            .sets
            .iter()
            .flat_map(|s| s.resources.iter().flat_map(|r| r.kind.release_phases().iter().copied()))
            .chain(self.sets.iter().any(|s| s.hooks.is_some()).then_some(Phase::Processes))
            .collect();
        phases.sort_unstable();
        phases.dedup();
        phases
    }

    /// Per node: some fence device can cut it off.
    pub fn fenceable(&self) -> Vec<bool> {
        let covered = |i: usize| self.fencing.as_ref().is_some_and(|f| f.devices.iter().any(|d| d.nodes.contains(&i)));
        (0..self.nodes.len()).map(covered).collect()
    }

    /// Two-node mode with one fence disk fencing both nodes: the disk
    /// that records who went on alone, read by a node booting alone.
    pub fn alone_record(&self) -> Option<&std::path::Path> {
        // Two nodes, neither a witness; the disk fences both, so this is
        // two-node mode (`Topology::pair_peer`).
        if self.nodes.len() != 2 || self.nodes.iter().any(|n| n.witness) {
            return None;
        }
        let devices = &self.fencing.as_ref()?.devices;
        fn disk(d: &crate::model::FenceDevice) -> Option<&std::path::Path> {
            match &d.kind {
                FenceKind::Disk { path } => Some(path.as_path()),
                FenceKind::Agent { .. } => None,
            }
        }
        // One disk fences both (as one device or one device per node).
        let path = devices.iter().find_map(disk)?;
        let covers = |i: usize| devices.iter().any(|d| disk(d) == Some(path) && d.nodes.contains(&i));
        (covers(0) && covers(1)).then_some(path)
    }

    /// How long a node booting alone waits before it fences its peer, where
    /// a fence disk records who went on alone (else it waits for the peer).
    pub fn startup_fence(&self) -> Option<Duration> {
        self.alone_record()?;
        self.fencing.as_ref()?.startup_fence_after
    }

    /// Per node: only a confirmed fence may evict it (`mode = "required"`).
    pub fn fence_required(&self) -> Vec<bool> {
        let required = self.fencing.as_ref().is_some_and(|f| f.mode == FenceMode::Required);
        self.fenceable().into_iter().map(|f| f && required).collect()
    }

    /// The link a service address lives on: the one whose subnet holds it
    /// (from the nodes' prefixes, else from the address's own).
    pub fn link_of(&self, address: &Address) -> Option<usize> {
        let subnets = crate::parse::link_subnets(&self.nodes);
        let mine = self.nodes.iter().find(|n| !n.witness)?;
        (0..self.links())
            .find(|&l| subnets[l].is_some_and(|s| s.contains(address.ip)) || address.contains(mine.addresses[l].ip))
    }

    /// How many links every full node is on (a witness may be on fewer).
    pub fn links(&self) -> usize {
        self.nodes.iter().find(|n| !n.witness).map_or(0, |n| n.addresses.len())
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The one-line summary `baton config check` prints for a valid file.
    pub fn summary(&self) -> String {
        let witnesses = self.nodes.iter().filter(|n| n.witness).count();
        let resources: usize = self.sets.iter().map(|s| s.resources.len()).sum();
        format!(
            "cluster \"{}\": {} nodes ({} witness{}), {} link{}, {} set{}, {} resource{}",
            self.cluster.name,
            self.nodes.len(),
            witnesses,
            if witnesses == 1 { "" } else { "es" },
            self.links(),
            if self.links() == 1 { "" } else { "s" },
            self.sets.len(),
            if self.sets.len() == 1 { "" } else { "s" },
            resources,
            if resources == 1 { "" } else { "s" },
        )
    }
}
