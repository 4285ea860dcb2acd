//! From a configuration to the core's [`Topology`]: ids, preference lists,
//! and each resource's limits with the defaults of its type.

use std::time::Duration;

use baton_core::{NodeSpec, ResourceSpec, SetSpec, Timing, Topology};

use crate::model::{Config, FenceMode, Resource, ResourceKind};

/// The clock-rate difference the safety margins assume (1%): far above what
/// any working clock drifts, small enough to cost little lease time.
pub const MAX_DRIFT_PPM: u32 = 10_000;
/// What the guard needs to kill everything once a lease ends.
pub const GUARD_MARGIN: Duration = Duration::from_millis(50);
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

impl Config {
    pub fn topology(&self) -> Topology {
        let nodes = self.nodes.iter().map(|n| NodeSpec { name: n.name.clone(), witness: n.witness }).collect();
        let sets = self
            .sets
            .iter()
            .map(|s| SetSpec {
                name: s.name.clone(),
                nodes: s.nodes.iter().map(|&n| n as u8).collect(),
                failback: s.failback,
                max_restarts: s.max_restarts,
                restart_window: s.restart_window,
                resources: s.resources.iter().map(resource_spec).collect(),
                hook_timeout: HOOK_TIMEOUT,
            })
            .collect();
        let timing = Timing {
            heartbeat_interval: self.cluster.heartbeat_interval,
            lease: self.cluster.lease,
            max_drift_ppm: MAX_DRIFT_PPM,
            guard_margin: GUARD_MARGIN,
        };
        Topology { nodes, links: self.links(), sets, timing, fenceable: self.fenceable() }
    }

    /// Per node: some fence device can cut it off.
    pub fn fenceable(&self) -> Vec<bool> {
        let covered = |i: usize| self.fencing.as_ref().is_some_and(|f| f.devices.iter().any(|d| d.nodes.contains(&i)));
        (0..self.nodes.len()).map(covered).collect()
    }

    /// Per node: only a confirmed fence may evict it (`mode = "required"`).
    pub fn fence_required(&self) -> Vec<bool> {
        let required = self.fencing.as_ref().is_some_and(|f| f.mode == FenceMode::Required);
        self.fenceable().into_iter().map(|f| f && required).collect()
    }

    pub fn links(&self) -> usize {
        self.nodes.first().map_or(0, |n| n.addresses.len())
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
