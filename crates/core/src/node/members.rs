//! Nodes added and removed while the cluster runs, on one node: the agreed
//! node slots become this node's voters at once, this node says it counts
//! by them (`Command::Members`), and a node that was removed exits.
//! ARCHITECTURE.md, "Nodes added and removed while the cluster runs".

use baton_state::Command;

use super::{Denial, Node};

impl Node {
    /// The agreed node slots changed (a `Configure` applied, or a snapshot
    /// restored): the lease counts a majority of the new voters from now
    /// on, and the detector hears a new peer. Slots are only ever added or
    /// retired, never removed.
    pub(super) fn follow_nodes(&mut self) {
        let Some(agreed) = self.state.config.as_ref().filter(|c| !c.nodes.is_empty()) else { return };
        if agreed.nodes == self.topo.nodes {
            return;
        }
        assert!(agreed.nodes.len() >= self.topo.nodes.len(), "an agreed configuration dropped node slots");
        let old = self.topo.nodes.len();
        self.topo.nodes.clone_from(&agreed.nodes);
        let n = self.topo.nodes.len();
        self.topo.fenceable.resize(n, false);
        for peer in old..n {
            let shared = self.topo.shared_links(self.me, peer as u8);
            self.detector.add_peer(shared, self.now);
        }
        self.lease.set_voters(&self.topo.voters());
        self.persisted.denials.resize(n, Denial::default());
        self.last_seq.resize(n, None);
        self.says_promise.resize(n, false);
        self.says_members.resize(n, false);
        self.says_direct.resize(n, false);
        self.fence_asked.resize(n, None);
        self.fence_confirmed.resize(n, None);
        self.unfenceable_said.resize(n, false);
        assert_eq!(self.state.nodes.len(), n, "the agreed state does not fit its configuration");
    }

    /// What this node owes the cluster about the agreed membership: that
    /// it counts by it (it applied the change, so it does).
    pub(super) fn members_owed(&self) -> Option<Command> {
        let (rec, generation) = (self.state.node(self.me), self.state.members());
        (rec.members < generation && !rec.retired).then_some(Command::Members {
            node: self.me,
            epoch: rec.epoch,
            generation,
        })
    }

    /// This node was removed by a configuration change and runs nothing
    /// (a node is removed only once it owns nothing): its agent exits,
    /// once. True the first time.
    pub(super) fn retired_out(&mut self) -> bool {
        let done = self.sets.iter().all(|lc| lc.phase() == crate::lifecycle::Phase::Stopped);
        let out = self.state.node(self.me).retired && done && !self.exited;
        self.exited |= out;
        out
    }
}
