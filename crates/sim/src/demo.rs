//! A scripted failover in the simulator: three nodes (alpha, beta and the
//! witness arbiter), one set, the owner's machine dies; the timeline shows
//! the detection, the eviction and the takeover, and the outage.

use std::time::Duration;

use baton_core::{Failback, NodeSpec, ResourceSpec, SetSpec, Topology};

use crate::scenario::{self, Fault, FenceFaults, Scenario, SECOND};
use crate::Sim;

/// The demo's cluster: alpha and beta, witness arbiter; web = an address and a web server.
pub fn topology() -> Topology {
    let node = |name: &str, witness| NodeSpec { name: name.into(), witness, links: 2, retired: false };
    let resource = |label: &str| ResourceSpec {
        label: label.into(),
        start_timeout: Duration::from_secs(5),
        stop_timeout: Duration::from_secs(5),
        monitor_interval: Some(Duration::from_secs(2)),
        monitor_timeout: Duration::from_secs(5),
        address: label.starts_with("ip "),
    };
    Topology {
        nodes: vec![node("alpha", false), node("beta", false), node("arbiter", true)],
        links: 2,
        sets: vec![SetSpec {
            name: "web".into(),
            nodes: vec![0, 1],
            failback: Failback::Never,
            max_restarts: 3,
            restart_window: Duration::from_secs(600),
            failure_timeout: None,
            resources: vec![resource("ip 10.0.0.100/24"), resource("process httpd")],
            hook_timeout: Duration::from_secs(30),
            definition: String::new(),
        }],
        timing: scenario::timing(),
        fenceable: vec![false; 3],
    }
}

fn at(us: u64) -> String {
    format!("{:>3}.{:03}s", us / SECOND, (us / 1000) % 1000)
}

/// Runs the demo and returns what it prints.
pub fn run() -> Result<String, String> {
    let topo = topology();
    let crash_at = 5 * SECOND;
    let sc = Scenario {
        topo: topo.clone(),
        drift_ppm: vec![3_000, -2_000, 500],
        faults: vec![(crash_at, Fault::Crash { node: 0, down_us: Some(8 * SECOND) })],
        heal_at_us: 15 * SECOND,
        end_at_us: 20 * SECOND,
        fence_required: vec![false; 3],
        fences: FenceFaults::default(),
        fence_disk: false,
        late_hold: false,
        spare: None,
    };
    let report = Sim::new(sc, 1, true).run().map_err(|f| f.violation.to_string())?;
    let mut out = vec![
        "baton demo (simulator): nodes alpha and beta, witness arbiter; set web = ip 10.0.0.100/24 + httpd".to_string(),
        "every node runs the real decision core; clocks drift; heartbeats every 100ms, lease 1s".to_string(),
        String::new(),
    ];
    let name = |n: Option<u8>| n.map_or("nobody", |n| topo.node_name(n));
    let mut events: Vec<(u64, String)> = report
        .agreed
        .iter()
        .map(|&(t, _, owner, running)| {
            let what = if running { "runs on" } else { "is assigned to" };
            (t, format!("cluster agrees: web {what} {}", name(owner)))
        })
        .collect();
    events.push((crash_at, "alpha's machine dies (and everything on it)".into()));
    for line in &report.trace {
        if line.contains("Evicted(0)") && line.contains("commit") {
            let t = line.split_whitespace().next().and_then(|s| s.trim_end_matches('s').parse::<f64>().ok());
            if let Some(t) = t {
                events.push(((t * 1e6) as u64, "a majority stopped promising alpha a lease: alpha is evicted".into()));
            }
        }
    }
    events.sort();
    out.extend(events.into_iter().map(|(t, e)| format!("{}  {e}", at(t))));
    let back = report.agreed.iter().find(|&&(t, _, owner, running)| t > crash_at && running && owner == Some(1));
    match back {
        Some(&(t, ..)) => out.push(format!(
            "\noutage: web was down {} ms (from alpha's death to beta running it)",
            (t - crash_at) / 1000
        )),
        None => return Err("web never came back on beta".into()),
    }
    out.push("\nthis is the simulator: `baton lab demo` runs the same on real interfaces once the agent exists".into());
    Ok(out.join("\n"))
}
