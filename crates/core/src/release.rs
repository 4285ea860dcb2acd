//! The guard's release: what it must undo when a lease ends, in which
//! order, and how long each phase may take at worst. A lease's hold is
//! shortened by the sum of the phases a node may have to go through
//! ([`margin`]), so that the guard, starting at the end of the hold, is
//! done before any voter may suspect the node ("How safety is argued" in
//! ARCHITECTURE.md).
//!
//! The budgets are the worst times measured for each phase on this kind of
//! machine (`docs/guard.md`, `baton lab bench --only guard`), rounded up.

use std::time::Duration;

/// Filesystems the guard can shut down at once (`FS_IOC_SHUTDOWN`): not one
/// more write reaches their device after it.
pub const SHUTDOWN_FILESYSTEMS: &[&str] = &["ext4", "ext3", "xfs", "f2fs"];

/// The phases, in the order the guard goes through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Service addresses removed: clients stop reaching this node first.
    Addresses,
    /// Every process of the node's sets killed (`cgroup.kill`).
    Processes,
    /// systemd units killed and stopped.
    Units,
    /// Stop commands of OCF, LSB and exec resources (their daemons are
    /// already dead; this cleans up what is not a process).
    Programs,
    /// NFS exports withdrawn.
    Exports,
    /// Bind mounts (the NFS lock directory) detached.
    Binds,
    /// Filesystems on shared storage shut down and unmounted.
    Mounts,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Addresses,
        Phase::Processes,
        Phase::Units,
        Phase::Programs,
        Phase::Exports,
        Phase::Binds,
        Phase::Mounts,
    ];

    /// The most this phase may take.
    pub fn budget(self) -> Duration {
        let ms = Duration::from_millis;
        match self {
            Phase::Addresses => ms(20),
            Phase::Processes => ms(100),
            Phase::Units => ms(500),
            Phase::Programs => ms(300),
            Phase::Exports => ms(200),
            Phase::Binds => ms(20),
            Phase::Mounts => ms(300),
        }
    }
}

/// The guard's worst release time for a node that may hold things of these
/// phases: the sum of each distinct phase's budget (phases run one after
/// the other; everything within a phase at once).
pub fn margin(phases: impl IntoIterator<Item = Phase>) -> Duration {
    let mut seen: Vec<Phase> = phases.into_iter().collect();
    seen.sort_unstable();
    seen.dedup();
    seen.into_iter().map(Phase::budget).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_counts_each_phase_once() {
        assert_eq!(margin([]), Duration::ZERO);
        assert_eq!(margin([Phase::Addresses, Phase::Processes, Phase::Addresses]), Duration::from_millis(120));
        assert_eq!(margin(Phase::ALL), Phase::ALL.iter().map(|p| p.budget()).sum());
    }
}
