//! The `nfs` resource: an export that survives a takeover. The lock-state
//! directory (what rpc.statd keeps in /var/lib/nfs: the clients holding
//! locks) lives on the set's shared storage and is bind-mounted over
//! /var/lib/nfs while the set runs here; the export carries a fixed `fsid`,
//! so file handles are the same on every server (the modern answer to the
//! seeds' identical major/minor device numbers); after the export, sm-notify
//! tells the clients that held locks to reclaim them. Release unexports,
//! then unbinds.

use std::path::Path;
use std::time::Duration;

use crate::cgroup::Cgroup;
use crate::program::Program;
use crate::resource::{Done, Resource};
use crate::undo::Undo;

/// Where the NFS utilities keep their state.
pub const STATE_DIR: &str = "/var/lib/nfs";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfsSpec {
    pub path: String,
    pub fsid: String,
    pub clients: String,
    pub options: String,
    pub lock_dir: String,
}

impl NfsSpec {
    /// `exportfs -i -o OPTIONS,fsid=N CLIENTS:PATH`
    pub fn export_command(&self) -> Vec<String> {
        vec![
            "exportfs".into(),
            "-i".into(),
            "-o".into(),
            format!("{},fsid={}", self.options, self.fsid),
            format!("{}:{}", self.clients, self.path),
        ]
    }

    pub fn unexport_command(&self) -> Vec<String> {
        vec!["exportfs".into(), "-u".into(), format!("{}:{}", self.clients, self.path)]
    }
}

async fn program(argv: &[String], cgroup: Option<&Cgroup>, limit: Duration) -> Result<String, String> {
    let ran = Program::new(argv)
        .limit(limit)
        .cgroup(cgroup)
        .run()
        .await
        .map_err(|e| format!("{e} (is nfs-kernel-server installed?)"))?;
    ran.success(&argv.join(" ")).map(|r| r.stdout)
}

/// Is /var/lib/nfs the lock directory (bind-mounted)? Same device, same inode.
fn bound(lock_dir: &str) -> Result<bool, String> {
    use std::os::unix::fs::MetadataExt;
    let a = std::fs::metadata(STATE_DIR).map_err(|e| format!("{STATE_DIR}: {e}"))?;
    let b = std::fs::metadata(lock_dir).map_err(|e| format!("{lock_dir}: {e}"))?;
    Ok((a.dev(), a.ino()) == (b.dev(), b.ino()))
}

/// Binds the lock directory and exports the path; the programs run in
/// `cgroup` (the set's), so the guard waits them out before it undoes.
pub async fn start(spec: &NfsSpec, cgroup: Option<&Cgroup>, limit: Duration) -> Result<(), String> {
    for sub in ["sm", "sm.bak"] {
        let dir = Path::new(&spec.lock_dir).join(sub);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    // The export tables the NFS utilities expect, on first use.
    for table in ["etab", "rmtab"] {
        let file = Path::new(&spec.lock_dir).join(table);
        if !file.exists() {
            std::fs::write(&file, "").map_err(|e| format!("creating {}: {e}", file.display()))?;
        }
    }
    if !bound(&spec.lock_dir)? {
        let argv: Vec<String> = ["mount", "--bind", &spec.lock_dir, STATE_DIR].iter().map(|s| s.to_string()).collect();
        program(&argv, cgroup, limit).await?;
    }
    program(&spec.export_command(), cgroup, limit).await?;
    // Clients that held locks on the previous server reclaim them now;
    // sm-notify goes to the background and retries on its own, so a slow
    // client never holds up the takeover.
    let notify: Vec<String> = ["sm-notify", "-f", "-P", STATE_DIR].iter().map(|s| s.to_string()).collect();
    program(&notify, cgroup, limit).await.map(|_| ())
}

pub async fn stop(spec: &NfsSpec, limit: Duration) -> Result<(), String> {
    if check(spec, limit).await {
        program(&spec.unexport_command(), None, limit).await?;
    }
    if bound(&spec.lock_dir)? {
        let argv: Vec<String> = ["umount", STATE_DIR].iter().map(|s| s.to_string()).collect();
        program(&argv, None, limit).await?;
    }
    Ok(())
}

/// The path is exported (and so is served while nfsd runs).
pub async fn check(spec: &NfsSpec, limit: Duration) -> bool {
    let argv = vec!["exportfs".to_string(), "-v".to_string()];
    program(&argv, None, limit)
        .await
        .is_ok_and(|out| out.lines().any(|l| l.split_whitespace().next() == Some(&spec.path)))
}

/// The `nfs` resource.
pub struct Nfs {
    pub spec: NfsSpec,
    /// The set's cgroup, where its start's programs run.
    pub cgroup: Option<Cgroup>,
}

impl Resource for Nfs {
    fn undo(&self) -> Vec<Undo> {
        vec![
            Undo::Export { clients: self.spec.clients.clone(), path: self.spec.path.clone() },
            Undo::Unbind { path: STATE_DIR.into() },
        ]
    }

    fn start(&self, limit: Duration) -> Done<'_> {
        Box::pin(start(&self.spec, self.cgroup.as_ref(), limit))
    }

    fn stop(&self, limit: Duration) -> Done<'_> {
        Box::pin(stop(&self.spec, limit))
    }

    fn monitor(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move {
            if check(&self.spec, limit).await {
                Ok(())
            } else {
                Err(format!("{} is not exported", self.spec.path))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_carries_its_fsid() {
        let spec = NfsSpec {
            path: "/srv/home".into(),
            fsid: "17".into(),
            clients: "10.0.0.0/24".into(),
            options: "rw,sync,no_subtree_check".into(),
            lock_dir: "/srv/home/.nfs".into(),
        };
        assert_eq!(
            spec.export_command(),
            ["exportfs", "-i", "-o", "rw,sync,no_subtree_check,fsid=17", "10.0.0.0/24:/srv/home"]
        );
        assert_eq!(spec.unexport_command(), ["exportfs", "-u", "10.0.0.0/24:/srv/home"]);
    }
}
