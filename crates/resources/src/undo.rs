//! What the guard must undo, without the agent, for a node to hold nothing:
//! one [`Undo`] per thing a resource puts into the world, told to the guard
//! before the resource starts, and [`release`] to undo them all at once.
//!
//! The order is fixed by kind, and it is the order of the variants:
//! addresses first (clients stop reaching this node), then every process
//! of the node's sets (cgroups), then systemd units, then the stop programs
//! of OCF, LSB and exec resources (their daemons are dead by then; the stop
//! cleans up what is not a process), then NFS exports and their bind
//! mounts, then filesystems (cut off at once, then unmounted). Within a phase everything goes at
//! once. Each phase has a budget ([`Phase::budget`]): the worst time
//! measured for it; the core reserves their sum before a lease ends.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use baton_core::release::Phase;
use serde::{Deserialize, Serialize};

use crate::cgroup::Cgroup;
use crate::netlink::Netlink;
use crate::program::Program;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Undo {
    /// A service address: removed.
    Address { ip: IpAddr },
    /// Every process of a set: `cgroup.kill`.
    Cgroup { path: PathBuf },
    /// A systemd unit: SIGKILL to all its processes, then stopped.
    Unit { unit: String },
    /// The stop action of an OCF, LSB or exec resource, with its environment.
    Program { argv: Vec<String>, env: Vec<(String, String)> },
    /// An NFS export of the kernel server: unexported.
    Export { clients: String, path: String },
    /// A bind mount (the NFS lock directory over /var/lib/nfs): detached.
    Unbind { path: String },
    /// A filesystem on shared storage: its users killed, the filesystem
    /// shut down (no write reaches the device after that), then unmounted.
    Mount { device: String, path: String },
}

impl Undo {
    /// The guard's phase for this undo (the release order).
    pub fn phase(&self) -> Phase {
        match self {
            Undo::Address { .. } => Phase::Addresses,
            Undo::Cgroup { .. } => Phase::Processes,
            Undo::Unit { .. } => Phase::Units,
            Undo::Program { .. } => Phase::Programs,
            Undo::Export { .. } => Phase::Exports,
            Undo::Unbind { .. } => Phase::Binds,
            Undo::Mount { .. } => Phase::Mounts,
        }
    }

    /// May it be undone again and again while a fired guard waits for the
    /// agent? Only what a syscall undoes, at once and harmlessly when there
    /// is nothing left: a late-finishing start may have added an address,
    /// a process or a mount after the first release. Units, programs and
    /// exports run a command each; they are undone once per firing.
    pub fn repeatable(&self) -> bool {
        matches!(self, Undo::Address { .. } | Undo::Cgroup { .. } | Undo::Unbind { .. } | Undo::Mount { .. })
    }

    /// Undoes this one thing within `limit`.
    pub async fn undo(&self, nl: &Netlink, limit: Duration) -> Result<(), String> {
        match self {
            Undo::Address { ip } => match nl.del_address(*ip).await {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("removing {ip}: {e}")),
            },
            Undo::Cgroup { path } => Cgroup(path.clone()).kill(limit).await.map_err(|e| e.to_string()),
            Undo::Unit { unit } => {
                let kill = Program::new(&["systemctl", "kill", "--signal=SIGKILL", unit]).limit(limit).run().await;
                let stop = Program::new(&["systemctl", "stop", unit]).limit(limit).run().await?;
                kill.and(stop.success(&format!("systemctl stop {unit}"))).map(|_| ())
            }
            Undo::Program { argv, env } => {
                Program::new(argv).env(env).limit(limit).run().await?.success(&argv.join(" ")).map(|_| ())
            }
            Undo::Export { clients, path } => {
                let target = format!("{clients}:{path}");
                Program::new(&["exportfs", "-u", &target])
                    .limit(limit)
                    .run()
                    .await?
                    .success(&format!("exportfs -u {target}"))
                    .map(|_| ())
            }
            Undo::Unbind { path } => crate::mount::detach(path),
            Undo::Mount { device, path } => crate::mount::cut_off(device, path, limit).await,
        }
    }
}

/// How one undo went.
#[derive(Debug)]
pub struct Undone {
    pub what: Undo,
    pub result: Result<(), String>,
    pub took: Duration,
}

/// Undoes everything in `held`, phase by phase (each phase at once), each
/// phase within its budget; says how each went. Nothing is skipped because
/// an earlier phase failed: a node that must hold nothing tries everything.
pub async fn release(nl: &Netlink, mut held: Vec<Undo>) -> Vec<Undone> {
    held.sort();
    held.dedup();
    let mut out = Vec::with_capacity(held.len());
    let mut rest = held.as_slice();
    while let Some(first) = rest.first() {
        let n = rest.iter().take_while(|u| u.phase() == first.phase()).count();
        let (phase, later) = rest.split_at(n);
        rest = later;
        let runs = phase.iter().map(|u| async move {
            let started = Instant::now();
            let result = u.undo(nl, u.phase().budget()).await;
            Undone { what: u.clone(), result, took: started.elapsed() }
        });
        out.extend(futures::future::join_all(runs).await);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_order_is_addresses_processes_units_programs_exports_mounts() {
        let mut all = [
            Undo::Mount { device: "/dev/sdb1".into(), path: "/srv".into() },
            Undo::Unbind { path: "/var/lib/nfs".into() },
            Undo::Export { clients: "*".into(), path: "/srv".into() },
            Undo::Program { argv: vec!["stop".into()], env: vec![] },
            Undo::Unit { unit: "x.service".into() },
            Undo::Cgroup { path: "/sys/fs/cgroup/x".into() },
            Undo::Address { ip: "10.0.0.1".parse().unwrap() },
        ];
        all.sort();
        let phases: Vec<Phase> = all.iter().map(Undo::phase).collect();
        assert_eq!(phases, Phase::ALL);
    }

    #[test]
    fn an_undo_is_one_json_object() {
        let u = Undo::Mount { device: "/dev/sdb1".into(), path: "/srv/db".into() };
        let text = serde_json::to_string(&u).unwrap();
        assert_eq!(text, r#"{"kind":"mount","device":"/dev/sdb1","path":"/srv/db"}"#);
        assert_eq!(serde_json::from_str::<Undo>(&text).unwrap(), u);
    }
}
