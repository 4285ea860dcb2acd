//! The simulated network: per link and per direction it can be cut; every
//! packet may be lost, duplicated or delayed (and so reordered). A node is
//! on its first links only (a remote witness is on fewer): nothing passes
//! on a link one end is not on, whatever is healed.

use crate::rng::Rng;

pub struct Net {
    nodes: usize,
    links: usize,
    /// Per node: how many of the first links it is on.
    on: Vec<usize>,
    /// [link][from][to]: packets from → to on that link are dropped.
    cut: Vec<bool>,
    pub loss_per_mille: u32,
    pub dup_per_mille: u32,
    pub delay_us: (u64, u64),
}

impl Net {
    pub fn new(on: Vec<usize>) -> Self {
        let (nodes, links) = (on.len(), on.iter().copied().max().unwrap_or(0));
        Net {
            nodes,
            links,
            on,
            cut: vec![false; links * nodes * nodes],
            loss_per_mille: 0,
            dup_per_mille: 0,
            delay_us: (200, 2_000),
        }
    }

    fn at(&self, link: usize, from: usize, to: usize) -> usize {
        (link * self.nodes + from) * self.nodes + to
    }

    pub fn set_cut(&mut self, link: usize, from: usize, to: usize, cut: bool) {
        let i = self.at(link, from, to);
        self.cut[i] = cut;
    }

    pub fn heal(&mut self) {
        self.cut.iter_mut().for_each(|c| *c = false);
        self.loss_per_mille = 0;
        self.dup_per_mille = 0;
        self.delay_us = (200, 2_000);
    }

    pub fn open(&self, link: usize, from: usize, to: usize) -> bool {
        link < self.on[from].min(self.on[to]) && !self.cut[self.at(link, from, to)]
    }

    /// Can `a` and `b` hold a conversation (both directions on one link)?
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        a == b || (0..self.links).any(|l| self.open(l, a, b) && self.open(l, b, a))
    }

    /// The delays of the copies of one packet that arrive (none if lost).
    pub fn fate(&self, rng: &mut Rng, link: usize, from: usize, to: usize) -> Vec<u64> {
        if !self.open(link, from, to) || rng.chance(self.loss_per_mille) {
            return Vec::new();
        }
        let mut copies = vec![rng.range(self.delay_us.0, self.delay_us.1)];
        if rng.chance(self.dup_per_mille) {
            copies.push(rng.range(self.delay_us.0, self.delay_us.1 * 2));
        }
        copies
    }
}
