//! The scale benchmark: a large cluster (32 nodes, 1,000 sets by default)
//! in the simulator, one node's machine dies. Measured: the wall time the
//! leader needs to compute placement after the loss, the simulated time
//! until every set the dead node ran is running elsewhere, and the memory
//! of the whole simulation (every node's core and state).

use std::time::{Duration, Instant};

use baton_core::placement::{plan, Liveness};
use baton_core::{Failback, NodeId, NodeSpec, ResourceSpec, SetId, SetSpec, Time, Topology};
use baton_state::{ClusterState, Command};

use crate::scenario::{self, Fault, FenceFaults, Scenario, SECOND};
use crate::Sim;

pub struct ScaleReport {
    pub nodes: usize,
    pub sets: usize,
    /// Sets the dead node ran.
    pub lost: usize,
    /// Median wall time of one placement run over the whole cluster.
    pub plan_us: f64,
    /// Simulated time from the machine's death until its sets run again.
    pub recovered_median_ms: u64,
    pub recovered_max_ms: u64,
    /// Wall time of the whole simulated run and its events.
    pub wall: Duration,
    pub events: u64,
    /// Peak resident memory of this process (VmHWM), in KiB.
    pub peak_rss_kib: u64,
}

impl ScaleReport {
    pub fn summary(&self) -> String {
        format!(
            "{} nodes, {} sets: placement after a node loss {:.0} µs (median of 101); the {} sets of the dead \
             node running again after {} ms (median) / {} ms (max) of simulated time; {} events simulated in \
             {:.1} s; peak resident memory {:.1} MiB",
            self.nodes,
            self.sets,
            self.plan_us,
            self.lost,
            self.recovered_median_ms,
            self.recovered_max_ms,
            self.events,
            self.wall.as_secs_f64(),
            self.peak_rss_kib as f64 / 1024.0
        )
    }
}

/// Set `i` prefers three nodes spread over the cluster.
fn topology(nodes: usize, sets: usize) -> Topology {
    let resource = |label: &str, address| ResourceSpec {
        label: label.into(),
        start_timeout: Duration::from_secs(5),
        stop_timeout: Duration::from_secs(5),
        monitor_interval: Some(Duration::from_secs(5)),
        monitor_timeout: Duration::from_secs(5),
        address,
    };
    Topology {
        nodes: (0..nodes)
            .map(|i| NodeSpec { name: format!("n{i}"), witness: false, links: 2, retired: false })
            .collect(),
        links: 2,
        sets: (0..sets)
            .map(|i| SetSpec {
                name: format!("s{i}"),
                nodes: [0, 1, 7].iter().map(|k| ((i + k) % nodes) as NodeId).collect(),
                failback: Failback::Never,
                max_restarts: 3,
                restart_window: Duration::from_secs(600),
                failure_timeout: None,
                resources: vec![resource("ip", true), resource("process", false)],
                hook_timeout: Duration::from_secs(30),
                definition: String::new(),
            })
            .collect(),
        timing: scenario::timing(),
        fenceable: vec![false; nodes],
    }
}

/// The agreed state right after `dead` was evicted from a cluster where
/// every set ran on its first choice.
fn state_after_loss(topo: &Topology, dead: NodeId) -> Result<ClusterState, String> {
    let mut state = ClusterState::new(topo.nodes.len(), topo.sets.len());
    let mut apply = |c: Command| state.apply(&c).map(|_| ()).map_err(|e| format!("{c:?}: {e:?}"));
    for node in 0..topo.nodes.len() as NodeId {
        apply(Command::Join { node, epoch: 0, incarnation: 1 })?;
    }
    for (i, spec) in topo.sets.iter().enumerate() {
        let set = i as SetId;
        apply(Command::Assign { set, node: spec.nodes[0], generation: 0 })?;
        apply(Command::Started { set, node: spec.nodes[0], generation: 1 })?;
    }
    let voters = (0..topo.nodes.len() as NodeId).filter(|&v| v != dead).take(topo.nodes.len() / 2 + 1);
    for voter in voters {
        apply(Command::Suspect { voter, node: dead, epoch: 0, round: 1 })?;
    }
    Ok(state)
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn run(nodes: usize, sets: usize) -> Result<ScaleReport, String> {
    if nodes < 3 || nodes > usize::from(NodeId::MAX) || sets == 0 || sets > usize::from(SetId::MAX) {
        return Err(format!("scale: {nodes} nodes and {sets} sets are out of range (3..=255 nodes, 1..=65535 sets)"));
    }
    let topo = topology(nodes, sets);
    let dead: NodeId = 0;
    // Placement after the loss, timed on the leader's inputs.
    let state = state_after_loss(&topo, dead)?;
    let now = Time(60 * SECOND);
    let live: Vec<Liveness> = (0..nodes)
        .map(|i| Liveness { alive: i != usize::from(dead), alive_since: Time::ZERO, pending: false })
        .collect();
    let mut runs: Vec<f64> = (0..101)
        .map(|_| {
            let t = Instant::now();
            let commands = plan(&topo, &state, &live, now);
            let took = t.elapsed().as_secs_f64() * 1e6;
            std::hint::black_box(commands);
            took
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    let orphans = topo.sets.iter().filter(|s| s.nodes[0] == dead).count();
    if plan(&topo, &state, &live, now).len() != orphans {
        return Err("placement did not reassign every set of the dead node".into());
    }
    // The same loss, simulated end to end.
    let crash_at = 10 * SECOND;
    let sc = Scenario {
        topo: topo.clone(),
        drift_ppm: (0..nodes).map(|i| (i as i64 % 7 - 3) * 1000).collect(),
        faults: vec![(crash_at, Fault::Crash { node: dead, down_us: None })],
        heal_at_us: 30 * SECOND,
        end_at_us: 30 * SECOND,
        fence_required: vec![false; nodes],
        fences: FenceFaults::default(),
        fence_disk: false,
        late_hold: false,
        spare: None,
    };
    let started = Instant::now();
    let report = Sim::new(sc, 1, false).run().map_err(|f| format!("the scale run failed: {}", f.violation))?;
    let wall = started.elapsed();
    // The sets the dead node ran: their last agreed state before the crash.
    let mut before = vec![(None, false); sets];
    for &(_, s, owner, running) in report.agreed.iter().filter(|a| a.0 <= crash_at) {
        before[usize::from(s)] = (owner, running);
    }
    let mut recovered: Vec<u64> = Vec::new();
    for (i, _) in before.iter().enumerate().filter(|(_, b)| **b == (Some(dead), true)) {
        let back = report.agreed.iter().find(|&&(t, s, owner, running)| {
            t > crash_at && usize::from(s) == i && running && owner.is_some_and(|o| o != dead)
        });
        let Some(&(t, ..)) = back else { return Err(format!("set {} never ran again", topo.sets[i].name)) };
        recovered.push((t - crash_at) / 1000);
    }
    if recovered.is_empty() {
        return Err(format!("node {} ran no set when it died", topo.node_name(dead)));
    }
    recovered.sort_unstable();
    Ok(ScaleReport {
        nodes,
        sets,
        lost: recovered.len(),
        plan_us: runs[runs.len() / 2],
        recovered_median_ms: recovered[recovered.len() / 2],
        recovered_max_ms: recovered[recovered.len() - 1],
        wall,
        events: report.events,
        peak_rss_kib: peak_rss_kib(),
    })
}
