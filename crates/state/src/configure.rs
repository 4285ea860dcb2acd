//! `Command::Configure`: the cluster switches to a new configuration at one
//! point of the log. Set slots are never reordered or reused: a set the new
//! file removes or changes is retired in its slot (no nodes: placement
//! releases it wherever it runs and never places it again), and a set it
//! adds or changes gets a new slot at the end, which waits until no retired
//! set runs. ARCHITECTURE.md, "A configuration change", gives the argument.

use std::time::Duration;

use crate::command::{Applied, Rejected};
use crate::model::{AgreedConfig, AgreedTiming, ClusterState, Phase, SetId, SetRecord};
use crate::spec::SetSpec;

impl ClusterState {
    pub(crate) fn configure(
        &mut self,
        generation: u64,
        digest: &str,
        text: &str,
        sets: &[SetSpec],
        guard_margin: Duration,
        timing: Option<AgreedTiming>,
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
        // A set left alone by an operator (or maintenance mode) is not
        // released by a change either: it would stay owned for ever, and
        // no set added by the change could ever start.
        for (i, spec) in sets.iter().enumerate().take(self.sets.len()) {
            let set = i as SetId;
            if spec.nodes.is_empty() && !self.retired(set) && self.set(set).owner.is_some() && self.is_frozen(set) {
                return Err(if self.maintenance { Rejected::Maintenance } else { Rejected::Frozen(set) });
            }
        }
        for (rec, spec) in self.sets.iter_mut().zip(sets) {
            if spec.nodes.is_empty() && rec.retired_at == 0 {
                rec.retired_at = generation;
                // Released to nobody: the set is never placed again.
                if let Phase::Releasing { to } = &mut rec.phase {
                    *to = None;
                }
                rec.pin = None;
            }
        }
        // Above every generation a stale command about any slot could carry.
        let start = self.applied;
        self.sets.extend(
            (self.sets.len()..sets.len()).map(|_| SetRecord { since: generation, ..SetRecord::unowned(start) }),
        );
        let guard_margin = self.config.as_ref().map_or(guard_margin, |c| c.guard_margin.max(guard_margin));
        let timing = timing.or_else(|| self.config.as_ref().and_then(|c| c.timing));
        self.config = Some(AgreedConfig {
            generation,
            digest: digest.to_string(),
            text: text.to_string(),
            sets: sets.to_vec(),
            guard_margin,
            timing,
        });
        Ok(Applied::Done)
    }

    /// The agreed configuration's generation (0: none agreed yet).
    pub fn config_generation(&self) -> u64 {
        self.config.as_ref().map_or(0, |c| c.generation)
    }

    /// Was the set removed or replaced by a configuration change?
    pub fn retired(&self, set: SetId) -> bool {
        self.set(set).retired_at > 0
    }

    /// A set `set` waits for: retired at or before the change that added
    /// `set`, and still owned or blocked (it may still run).
    pub fn retiring_before(&self, set: SetId) -> Option<SetId> {
        let since = self.set(set).since;
        if since == 0 {
            return None;
        }
        (0..self.sets.len() as SetId).find(|&s| {
            let r = self.set(s);
            (1..=since).contains(&r.retired_at) && (r.owner.is_some() || r.blocked.is_some())
        })
    }
}
