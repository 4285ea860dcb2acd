//! `Command::Configure`: the cluster switches to a new configuration at one
//! point of the log. Set slots are never reordered or reused: a set the new
//! file removes or changes is retired in its slot (no nodes: placement
//! releases it wherever it runs and never places it again), and a set it
//! adds or changes gets a new slot at the end, which waits until no retired
//! set runs. ARCHITECTURE.md, "A configuration change", gives the argument.

use crate::command::{Applied, Rejected};
use crate::model::{AgreedConfig, ClusterState, Phase, SetId, SetRecord};
use crate::spec::SetSpec;

impl ClusterState {
    pub(crate) fn configure(
        &mut self,
        generation: u64,
        digest: &str,
        text: &str,
        sets: &[SetSpec],
    ) -> Result<Applied, Rejected> {
        let have = self.config_generation();
        if generation != have + 1 {
            return Err(Rejected::StaleConfig { have, got: generation });
        }
        let shape = |why: String| Err(Rejected::ConfigShape(why));
        if sets.len() < self.sets.len() || sets.len() > usize::from(SetId::MAX) {
            return shape(format!("{} sets for {} slots", sets.len(), self.sets.len()));
        }
        for (i, spec) in sets.iter().enumerate() {
            if let Some(&n) = spec.nodes.iter().find(|&&n| usize::from(n) >= self.nodes.len()) {
                return Err(Rejected::UnknownNode(n));
            }
            let Some(old) = self.config.as_ref().and_then(|c| c.sets.get(i)) else { continue };
            if old.name != spec.name {
                return shape(format!("slot {i} is set {}, not {}", old.name, spec.name));
            }
            if old.nodes.is_empty() && !spec.nodes.is_empty() {
                return shape(format!("set {} was retired from slot {i} and cannot run there again", spec.name));
            }
        }
        for (rec, spec) in self.sets.iter_mut().zip(sets) {
            if spec.nodes.is_empty() {
                // Released to nobody: the set is never placed again.
                if let Phase::Releasing { to } = &mut rec.phase {
                    *to = None;
                }
                rec.pin = None;
            }
        }
        // Above every generation a stale command about any slot could carry.
        let start = self.applied;
        self.sets.extend((self.sets.len()..sets.len()).map(|_| SetRecord { fresh: true, ..SetRecord::unowned(start) }));
        self.config =
            Some(AgreedConfig { generation, digest: digest.to_string(), text: text.to_string(), sets: sets.to_vec() });
        Ok(Applied::Done)
    }

    /// The agreed configuration's generation (0: none agreed yet).
    pub fn config_generation(&self) -> u64 {
        self.config.as_ref().map_or(0, |c| c.generation)
    }

    /// Was the set removed or replaced by a configuration change?
    pub fn retired(&self, set: SetId) -> bool {
        self.config.as_ref().is_some_and(|c| c.sets[usize::from(set)].nodes.is_empty())
    }

    /// A retired set that still has an owner or a block: it may still run.
    pub fn retiring(&self) -> Option<SetId> {
        (0..self.sets.len() as SetId)
            .find(|&s| self.retired(s) && (self.set(s).owner.is_some() || self.set(s).blocked.is_some()))
    }
}
