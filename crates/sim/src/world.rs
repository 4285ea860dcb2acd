//! The truth the checkers judge by: which resource of which set is running
//! on which node at this instant of true time, whatever the nodes believe.

use baton_core::{NodeId, SetId};

pub struct World {
    /// [node][set][resource]
    held: Vec<Vec<Vec<bool>>>,
    /// (true µs, set, node, holds): every time a node starts or stops
    /// holding a set.
    pub timeline: Vec<(u64, SetId, NodeId, bool)>,
}

impl World {
    pub fn new(nodes: usize, resources_per_set: &[usize]) -> Self {
        let sets: Vec<Vec<bool>> = resources_per_set.iter().map(|&r| vec![false; r]).collect();
        World { held: vec![sets; nodes], timeline: Vec::new() }
    }

    /// Set slots a configuration change added (`resources_per_set` names
    /// every slot, the old ones too).
    pub fn grow(&mut self, resources_per_set: &[usize]) {
        for sets in &mut self.held {
            let old = sets.len();
            sets.extend(resources_per_set[old..].iter().map(|&r| vec![false; r]));
        }
    }

    /// A node holds a set while any of its resources may be running there.
    pub fn holds(&self, node: NodeId, set: SetId) -> bool {
        self.held[usize::from(node)][usize::from(set)].iter().any(|h| *h)
    }

    pub fn resource(&self, node: NodeId, set: SetId, resource: usize) -> bool {
        self.held[usize::from(node)][usize::from(set)][resource]
    }

    pub fn all_running(&self, node: NodeId, set: SetId) -> bool {
        self.held[usize::from(node)][usize::from(set)].iter().all(|h| *h)
    }

    pub fn holders(&self, set: SetId) -> Vec<NodeId> {
        (0..self.held.len() as NodeId).filter(|&n| self.holds(n, set)).collect()
    }

    pub fn set(&mut self, now: u64, node: NodeId, set: SetId, resource: usize, running: bool) {
        let before = self.holds(node, set);
        self.held[usize::from(node)][usize::from(set)][resource] = running;
        let after = self.holds(node, set);
        if before != after {
            self.timeline.push((now, set, node, after));
        }
    }

    /// The machine died or the guard killed everything.
    pub fn clear_node(&mut self, now: u64, node: NodeId) {
        for set in 0..self.held[usize::from(node)].len() {
            for r in 0..self.held[usize::from(node)][set].len() {
                self.set(now, node, set as SetId, r, false);
            }
        }
    }
}
