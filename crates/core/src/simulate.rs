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
    /// One of the node's links (`Some(index)`), or all of them, cut: a node
    /// that a majority of the voters then hears on no link is lost, as if
    /// it died (its lease ends, it is evicted or fenced); one still heard
    /// on another link keeps everything (a link event, no failover).
    Cut(NodeId, Option<usize>),
}

/// Why a prediction cannot be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unpredictable {
    /// Two-node mode split apart: a race of fences decides which survives.
    PairSplit,
}

impl std::fmt::Display for Unpredictable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unpredictable::PairSplit => f.write_str(
                "two-node mode split apart: which node survives is decided by a race of fences (the devices' \
                 delays), not predicted",
            ),
        }
    }
}

/// The nodes the cuts leave unheard by a majority of the voters: per node,
/// lost or not. Two nodes hear each other on a link both have and neither
/// has cut.
fn cut_off(topo: &Topology, faults: &[Fault]) -> Result<Vec<bool>, Unpredictable> {
    let n = topo.nodes.len();
    let mut cut = vec![vec![false; topo.links]; n];
    for &fault in faults {
        if let Fault::Cut(node, link) = fault {
            let links = topo.nodes[usize::from(node)].links;
            for l in (0..links).filter(|&l| link.is_none_or(|x| x == l)) {
                cut[usize::from(node)][l] = true;
            }
        }
    }
    let hears = |a: usize, b: usize| (0..topo.shared_links(a as NodeId, b as NodeId)).any(|l| !cut[a][l] && !cut[b][l]);
    if topo.pair_peer(0).is_some() && !hears(0, 1) {
        return Err(Unpredictable::PairSplit);
    }
    let majority = n / 2 + 1;
    Ok((0..n).map(|a| (0..n).filter(|&b| b != a && !hears(a, b)).count() >= majority).collect())
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
pub fn predict(topo: &Topology, state: &ClusterState, faults: &[Fault]) -> Result<Vec<Prediction>, Unpredictable> {
    let mut st = state.clone();
    let mut dead = cut_off(topo, faults)?;
    for &fault in faults {
        if let Fault::Kill(node) = fault {
            dead[usize::from(node)] = true;
        }
    }
    let lost = (0..topo.nodes.len()).filter(|&n| dead[n]).map(|n| n as NodeId);
    let standby = faults.iter().filter_map(|f| if let Fault::Standby(n) = f { Some(*n) } else { None });
    for node in lost {
        let rec = st.node(node);
        // A node already offline: nothing changes.
        let _ = st.apply(&Command::Fenced { node, epoch: rec.epoch, incarnation: rec.incarnation });
    }
    for node in standby {
        let _ = st.apply(&Command::Standby { node, standby: true });
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
    Ok((0..topo.sets.len() as SetId)
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
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::topology::{Failback, NodeSpec, SetSpec};

    fn topo(failback: Failback) -> Topology {
        let node = |name: &str| NodeSpec { name: name.into(), witness: false, links: 1, retired: false };
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
                definition: String::new(),
            }],
            timing: crate::topology::test_timing(),
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
        let p = predict(&t, &running_on(0), &[Fault::Kill(0)]).unwrap();
        assert_eq!(p, [Prediction { set: 0, before: Some(0), after: Some(1), why: "its node is lost or in standby" }]);
        let p = predict(&t, &running_on(0), &[Fault::Kill(0), Fault::Standby(1)]).unwrap();
        assert_eq!(
            (p[0].after, p[0].why),
            (None, "no node may run it: every node in its list is dead, in standby, excluded or fenced")
        );
        let p = predict(&t, &running_on(0), &[Fault::Kill(2)]).unwrap();
        assert_eq!((p[0].after, p[0].why), (Some(0), "stays"));
    }

    #[test]
    fn a_node_cut_off_from_a_majority_is_lost_one_still_heard_on_a_link_keeps_its_set() {
        let mut t = topo(Failback::Never);
        let p = predict(&t, &running_on(0), &[Fault::Cut(0, None)]).unwrap();
        assert_eq!((p[0].after, p[0].why), (Some(1), "its node is lost or in standby"));
        t.links = 2;
        t.nodes.iter_mut().for_each(|n| n.links = 2);
        let p = predict(&t, &running_on(0), &[Fault::Cut(0, Some(1))]).unwrap();
        assert_eq!((p[0].after, p[0].why), (Some(0), "stays"), "heard on link 0");
        // Link 0 cut on a, link 1 on b and c: a hears nobody.
        let cuts = [Fault::Cut(0, Some(0)), Fault::Cut(1, Some(1)), Fault::Cut(2, Some(1))];
        let p = predict(&t, &running_on(0), &cuts).unwrap();
        assert_eq!(p[0].after, Some(1));
        // Only b cut off: a keeps web, b is lost.
        let p = predict(&t, &running_on(0), &[Fault::Cut(1, None)]).unwrap();
        assert_eq!((p[0].after, p[0].why), (Some(0), "stays"));
    }

    #[test]
    fn a_two_node_split_is_not_predicted() {
        let mut t = topo(Failback::Never);
        t.nodes.truncate(2);
        t.fenceable = vec![true; 2];
        let mut st = ClusterState::new(2, 1);
        for n in 0..2 {
            st.apply(&Command::Join { node: n, epoch: 0, incarnation: 1 }).unwrap();
        }
        assert_eq!(predict(&t, &st, &[Fault::Cut(0, None)]), Err(Unpredictable::PairSplit));
        assert!(predict(&t, &st, &[Fault::Kill(0)]).is_ok());
    }

    #[test]
    fn auto_failback_is_predicted_once_its_delay_has_passed() {
        let t = topo(Failback::Auto { delay: Duration::from_secs(30) });
        let p = predict(&t, &running_on(1), &[]).unwrap();
        assert_eq!((p[0].before, p[0].after, p[0].why), (Some(1), Some(0), "its policy moves it (failback or a pin)"));
    }
}
