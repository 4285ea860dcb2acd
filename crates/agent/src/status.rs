//! `baton status --json`: the document docs/reference.md describes (and a little more),
//! built from the core's view at one instant.

use std::collections::BTreeSet;

use baton_config::Config;
use baton_core::lifecycle::Phase as Local;
use baton_core::{Node, NodeId, SetId, Time};
use baton_proto::Counters;
use baton_state::Phase;
use serde_json::{json, Value};

fn node_state(node: &Node, n: NodeId) -> &'static str {
    let st = node.state();
    let rec = st.node(n);
    if rec.retired {
        "removed"
    } else if rec.fenced {
        "fenced"
    } else if !st.is_online(n) || (n != node.me() && !node.detector().is_alive(n)) {
        "offline"
    } else if rec.standby {
        "standby"
    } else {
        "online"
    }
}

fn set_state(node: &Node, set: SetId, now: Time) -> &'static str {
    let rec = node.state().set(set);
    if rec.frozen {
        return "frozen";
    }
    if rec.blocked.is_some() {
        return "failed";
    }
    let Some(owner) = rec.owner else { return "stopped" };
    if owner == node.me() {
        return match node.lifecycle(set).phase() {
            Local::Running if rec.phase == Phase::Stable => "running",
            Local::Running | Local::Stopping => "stopping",
            Local::Starting => "starting",
            Local::Blocked => "failed",
            Local::Stopped if node.lease_expiry().is_some_and(|e| e > now) => "starting",
            Local::Stopped => "stopped",
        };
    }
    if !node.detector().is_alive(owner) {
        // A silent owner's lease is gone, so it runs nothing.
        return "stopped";
    }
    match (rec.phase, rec.running) {
        (Phase::Releasing { .. }, _) => "stopping",
        (Phase::Stable, true) => "running",
        (Phase::Stable, false) => "starting",
    }
}

/// One line for `systemctl status` (`STATUS=`): quorum, the leader, and
/// the sets this node runs.
pub fn line(config: &Config, node: &Node, leader: Option<u64>, now: Time) -> String {
    let me = node.me();
    let name = |n: u64| config.nodes.get(n as usize).map_or("?", |c| c.name.as_str());
    let here: Vec<&str> = (0..config.sets.len() as SetId)
        .filter(|&s| node.state().set(s).owner == Some(me) && set_state(node, s, now) == "running")
        .map(|s| config.sets[usize::from(s)].name.as_str())
        .collect();
    let quorum = node.lease_expiry().is_some_and(|end| end > now);
    let sets = node.topology().live_sets().count();
    format!(
        "{}; leader {}; runs {} of {} set{}{}",
        if quorum { "quorum" } else { "no quorum" },
        leader.map_or("none", name),
        here.len(),
        sets,
        if sets == 1 { "" } else { "s" },
        if here.is_empty() { String::new() } else { format!(": {}", here.join(", ")) },
    )
}

/// `voters`: the nodes that vote in Raft now (a node brought back by `baton
/// rejoin` is a learner until it has caught up).
pub fn document(
    config: &Config,
    node: &Node,
    (leader, voters): (Option<u64>, &BTreeSet<u64>),
    links: &[(u64, Counters)],
    now: Time,
) -> Value {
    let me = node.me();
    let name = |n: NodeId| config.nodes[usize::from(n)].name.clone();
    let nodes: Vec<Value> = (0..config.nodes.len() as NodeId)
        .map(|n| {
            let shared = node.topology().shared_links(me, n);
            let links: Vec<Value> = config.nodes[usize::from(n)]
                .addresses
                .iter()
                .enumerate()
                .map(|(l, a)| {
                    // "none": the two nodes do not share that link (a remote witness).
                    let state = if l >= shared {
                        "none"
                    } else if n == me || node.detector().is_alive(n) && node.detector().link_up(n, l) {
                        "up"
                    } else {
                        "down"
                    };
                    json!({"address": a.ip.to_string(), "state": state})
                })
                .collect();
            let rec = node.state().node(n);
            json!({
                "name": name(n),
                "state": node_state(node, n),
                "witness": config.nodes[usize::from(n)].witness,
                "epoch": rec.epoch,
                "voter": voters.contains(&u64::from(n)),
                "config": rec.config,
                "config_drift": node.state().node_drifts(n),
                "links": links,
            })
        })
        .collect();
    // A set retired by a configuration change is shown while it still has
    // an owner (it is being stopped there), then no more.
    let shown = |s: &SetId| !node.state().retired(*s) || node.state().set(*s).owner.is_some();
    let sets: Vec<Value> = (0..config.sets.len() as SetId)
        .filter(shown)
        .map(|s| {
            let rec = node.state().set(s);
            let state = set_state(node, s, now);
            let resources: Vec<Value> = config.sets[usize::from(s)]
                .resources
                .iter()
                .map(|r| json!({"type": r.kind.type_name(), "label": r.kind.label(), "state": state}))
                .collect();
            json!({
                "name": config.sets[usize::from(s)].name,
                "owner": rec.owner.map(name),
                "state": state,
                "frozen": rec.frozen,
                "pinned": rec.pin.map(name),
                "moving_to": match rec.phase {
                    Phase::Releasing { to, .. } => to.map(name),
                    Phase::Stable => None,
                },
                "direct_move": rec.direct_target().is_some(),
                "excluded": rec.excluded.keys().map(|&n| name(n)).collect::<Vec<_>>(),
                "retired": node.state().retired(s),
                "resources": resources,
            })
        })
        .collect();
    let heartbeats: Vec<Value> = links
        .iter()
        .enumerate()
        .map(|(l, (sent, c))| {
            json!({"link": l, "sent": sent, "accepted": c.accepted, "rejected": c.rejected(),
                   "forged": c.forged, "replayed": c.replayed, "foreign": c.foreign, "malformed": c.malformed})
        })
        .collect();
    let lease_ms = node.lease_expiry().map(|e| e.0.saturating_sub(now.0) / 1000);
    json!({
        "cluster": config.cluster.name,
        "node": name(me),
        "leader": leader.map(|l| name(l as NodeId)),
        "quorum": lease_ms.is_some_and(|ms| ms > 0),
        "maintenance": node.state().maintenance,
        "config_drift": node.state().config_drift(),
        "config_generation": node.state().config_generation(),
        "alone": node.state().alone.map(name),
        "lease_ms_left": lease_ms,
        "timing": {
            "heartbeat_interval_ms": node.topology().timing.heartbeat_interval.as_millis() as u64,
            "lease_ms": node.topology().timing.lease.as_millis() as u64,
        },
        "applied": node.state().applied,
        "nodes": nodes,
        "sets": sets,
        "heartbeats": heartbeats,
    })
}
