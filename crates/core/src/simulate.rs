//! `baton simulate`: what the cluster would do after some faults, from an
//! agreed state — by the same placement and the same `apply` the cluster
//! runs, with every start and release assumed to succeed.

use baton_state::{ClusterState, Command, Phase};

use crate::placement::{self, Liveness};
use crate::time::Time;
use crate::topology::{NodeId, SetId, Topology};

/// A fault to predict the outcome of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The node dies (it is evicted once its lease ends, or fenced).
    Kill(NodeId),
    /// An operator puts the node in standby.
    Standby(NodeId),
}

/// Where one set would run, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prediction {
    pub set: SetId,
    pub before: Option<NodeId>,
    pub after: Option<NodeId>,
    pub why: &'static str,
}

/// How many rounds of placement a prediction may take before it is called
/// unsettled (each round moves every set at most once).
const ROUNDS: usize = 16;

/// The cluster after `faults`, once settled: every set's owner before and
/// after. Failback delays are taken as passed (the long run).
pub fn predict(topo: &Topology, state: &ClusterState, faults: &[Fault]) -> Vec<Prediction> {
    let mut st = state.clone();
    let mut dead = vec![false; topo.nodes.len()];
    for &fault in faults {
        let command = match fault {
            Fault::Kill(node) => {
                dead[usize::from(node)] = true;
                let rec = st.node(node);
                Command::Fenced { node, epoch: rec.epoch, incarnation: rec.incarnation }
            }
            Fault::Standby(node) => Command::Standby { node, standby: true },
        };
        // A node already offline, or already in standby: nothing changes.
        let _ = st.apply(&command);
    }
    // Nothing is pending, and every node alive has been up for long.
    let live: Vec<Liveness> = (0..topo.nodes.len())
        .map(|n| Liveness { alive: !dead[n] && st.is_online(n as NodeId), alive_since: Time(0), pending: false })
        .collect();
    let now = Time(u64::MAX / 2);
    for _ in 0..ROUNDS {
        let commands = placement::plan(topo, &st, &live, now);
        if commands.is_empty() {
            break;
        }
        for command in commands {
            let _ = st.apply(&command);
            // The start or the release succeeds.
            let done = match command {
                Command::Assign { set, node, .. } => Command::Started { set, node, generation: st.set(set).generation },
                Command::Move { set, from, .. } => {
                    Command::Released { set, node: from, generation: st.set(set).generation }
                }
                _ => continue,
            };
            let _ = st.apply(&done);
        }
    }
    (0..topo.sets.len() as SetId)
        .map(|set| {
            let (before, after) = (state.set(set).owner, st.set(set).owner);
            let rec = st.set(set);
            let why = match (before, after) {
                _ if rec.blocked.is_some() => "blocked by a failed stop until its node is fenced",
                _ if st.is_frozen(set) => "frozen (or the cluster is in maintenance mode): left as it is",
                (_, None) if rec.phase != Phase::Stable => "unsettled",
                (_, None) => "no node may run it: every node in its list is dead, in standby, excluded or fenced",
                (Some(b), Some(a)) if a == b => "stays",
                (Some(b), Some(_)) if dead[usize::from(b)] || st.node(b).standby => "its node is lost or in standby",
                (Some(_), Some(_)) => "its policy moves it (failback or a pin)",
                (None, Some(_)) => "it ran nowhere: placed",
            };
            Prediction { set, before, after, why }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::topology::{Failback, NodeSpec, SetSpec, Timing};

    fn topo(failback: Failback) -> Topology {
        let node = |name: &str| NodeSpec { name: name.into(), witness: false, links: 1 };
        Topology {
            nodes: vec![node("a"), node("b"), node("c")],
            links: 1,
            sets: vec![SetSpec {
                name: "web".into(),
                nodes: vec![0, 1],
                failback,
                max_restarts: 1,
                restart_window: Duration::from_secs(60),
                failure_timeout: None,
                resources: Vec::new(),
                hook_timeout: Duration::from_secs(1),
            }],
            timing: Timing {
                heartbeat_interval: Duration::from_millis(100),
                lease: Duration::from_secs(1),
                max_drift_ppm: 0,
                guard_margin: Duration::ZERO,
                probe_interval: None,
                startup_fence: None,
            },
            fenceable: vec![false; 3],
        }
    }

    fn running_on(node: NodeId) -> ClusterState {
        let mut st = ClusterState::new(3, 1);
        for n in 0..3 {
            st.apply(&Command::Join { node: n, epoch: 0, incarnation: 1 }).unwrap();
        }
        st.apply(&Command::Assign { set: 0, node, generation: 0 }).unwrap();
        st
    }

    #[test]
    fn a_dead_owner_s_set_goes_to_the_next_node_in_its_list_and_no_further() {
        let t = topo(Failback::Never);
        let p = predict(&t, &running_on(0), &[Fault::Kill(0)]);
        assert_eq!(p, [Prediction { set: 0, before: Some(0), after: Some(1), why: "its node is lost or in standby" }]);
        let p = predict(&t, &running_on(0), &[Fault::Kill(0), Fault::Standby(1)]);
        assert_eq!(
            (p[0].after, p[0].why),
            (None, "no node may run it: every node in its list is dead, in standby, excluded or fenced")
        );
        let p = predict(&t, &running_on(0), &[Fault::Kill(2)]);
        assert_eq!((p[0].after, p[0].why), (Some(0), "stays"));
    }

    #[test]
    fn auto_failback_is_predicted_once_its_delay_has_passed() {
        let t = topo(Failback::Auto { delay: Duration::from_secs(30) });
        let p = predict(&t, &running_on(1), &[]);
        assert_eq!((p[0].before, p[0].after, p[0].why), (Some(1), Some(0), "its policy moves it (failback or a pin)"));
    }
}
