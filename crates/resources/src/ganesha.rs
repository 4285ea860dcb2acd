//! The `nfs` resource with `server = "ganesha"`: nfs-ganesha, a userspace
//! NFSv4 server, run for the set. It serves one export on the set's shared
//! storage, bound to the set's service address, with a fixed `Export_Id`
//! (part of every file handle it gives out, so handles stay valid on
//! whichever node serves next) and its client records in `lock_dir` on the
//! shared storage (`RecoveryBackend = fs`): the next server finds the
//! clients of the last one and gives them the grace period to reclaim
//! their opens and locks, refusing new ones meanwhile. It is a `process`
//! to the guard: its cgroup is killed when the lease ends.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::process::Process;
use crate::resource::{Context, Done, Kept, Resource};
use crate::undo::Undo;

/// NFSv4's one port.
pub const NFS_PORT: u16 = 2049;
/// The longest lease ganesha accepts.
const MAX_LEASE: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GaneshaSpec {
    pub path: String,
    pub export_id: u16,
    /// Who may mount: `*`, a host, a subnet (ganesha's `Clients`).
    pub clients: String,
    /// The kernel-style export options: `ro` and the squash options count.
    pub options: String,
    /// Where the client records live (on the shared storage).
    pub recovery: String,
    pub address: IpAddr,
    pub grace: Duration,
    /// The configuration file this resource writes for ganesha.
    pub conf: PathBuf,
}

impl GaneshaSpec {
    fn option(&self, name: &str) -> bool {
        self.options.split(',').any(|o| o.trim() == name)
    }

    /// ganesha's configuration: NFSv4 only (no rpcbind, no NLM: locks are
    /// part of NFSv4), one export.
    pub fn config_text(&self) -> String {
        let access = if self.option("ro") { "RO" } else { "RW" };
        let squash = if self.option("no_root_squash") {
            "No_Root_Squash"
        } else if self.option("all_squash") {
            "All_Squash"
        } else {
            "Root_Squash"
        };
        // The lease may not outlast the grace period: a client must be able
        // to renew within it.
        let lease = self.grace.min(MAX_LEASE).as_secs().max(1);
        format!(
            "# Written by baton for this set's nfs resource; rewritten at each start.\n\
             NFS_CORE_PARAM {{\n  Protocols = 4;\n  Enable_NLM = false;\n  Enable_RQUOTA = false;\n  \
             Enable_UDP = false;\n  Bind_addr = {address};\n  NFS_Port = {NFS_PORT};\n}}\n\
             NFSV4 {{\n  RecoveryBackend = fs;\n  RecoveryRoot = \"{recovery}\";\n  Grace_Period = {grace};\n  \
             Lease_Lifetime = {lease};\n}}\n\
             EXPORT {{\n  Export_Id = {id};\n  Path = \"{path}\";\n  Pseudo = \"{path}\";\n  Protocols = 4;\n  \
             SecType = sys;\n  Access_Type = None;\n  Squash = {squash};\n  \
             CLIENT {{\n    Clients = {clients};\n    Access_Type = {access};\n  }}\n  FSAL {{\n    Name = VFS;\n  }}\n}}\n",
            address = self.address,
            recovery = self.recovery,
            grace = self.grace.as_secs().max(1),
            id = self.export_id,
            path = self.path,
            clients = self.clients,
        )
    }

    /// ganesha in the foreground, logging to its standard error (which the
    /// agent's log takes in).
    pub fn command(&self) -> Vec<String> {
        let pid = self.conf.with_extension("pid");
        ["ganesha.nfsd", "-F", "-L", "STDERR", "-f"]
            .iter()
            .map(|s| s.to_string())
            .chain([self.conf.display().to_string(), "-p".into(), pid.display().to_string()])
            .collect()
    }

    fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.address, NFS_PORT)
    }
}

/// Does something accept NFS connections at `addr` within `limit`?
async fn serving(addr: SocketAddr, limit: Duration) -> bool {
    matches!(tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
}

pub struct Ganesha {
    pub spec: GaneshaSpec,
    process: Process,
}

impl Ganesha {
    pub fn new(ctx: Context, spec: GaneshaSpec, label: String) -> Ganesha {
        let process = Process::new(ctx, spec.command(), Vec::new(), label);
        Ganesha { spec, process }
    }
}

impl Resource for Ganesha {
    fn undo(&self) -> Vec<Undo> {
        self.process.undo()
    }

    /// Writes the configuration, starts ganesha and returns once it
    /// accepts connections on the service address.
    fn start(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move {
            let began = Instant::now();
            std::fs::create_dir_all(&self.spec.recovery)
                .map_err(|e| format!("creating the NFS recovery directory {}: {e}", self.spec.recovery))?;
            if let Some(dir) = self.spec.conf.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            std::fs::write(&self.spec.conf, self.spec.config_text())
                .map_err(|e| format!("writing {}: {e}", self.spec.conf.display()))?;
            self.process
                .start(limit)
                .await
                .map_err(|e| format!("{e} (is nfs-ganesha installed, with nfs-ganesha-vfs?)"))?;
            while began.elapsed() < limit {
                self.process.monitor(limit).await?;
                if serving(self.spec.listen(), Duration::from_millis(200)).await {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(format!("ganesha did not accept connections on {} within {limit:?}", self.spec.listen()))
        })
    }

    fn stop(&self, limit: Duration) -> Done<'_> {
        self.process.stop(limit)
    }

    /// ganesha runs and accepts connections.
    fn monitor(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move {
            self.process.monitor(limit).await?;
            if serving(self.spec.listen(), limit.min(Duration::from_secs(2))).await {
                Ok(())
            } else {
                Err(format!("ganesha runs but does not accept connections on {}", self.spec.listen()))
            }
        })
    }

    fn keep(&self) -> Option<Kept> {
        self.process.keep()
    }

    fn adopt(&self, kept: Option<Kept>) {
        self.process.adopt(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(options: &str) -> GaneshaSpec {
        GaneshaSpec {
            path: "/srv/home".into(),
            export_id: 17,
            clients: "10.0.0.0/24".into(),
            options: options.into(),
            recovery: "/srv/home/.nfs".into(),
            address: "10.0.0.100".parse().unwrap(),
            grace: Duration::from_secs(10),
            conf: "/var/lib/baton/nfs/home.conf".into(),
        }
    }

    #[test]
    fn the_configuration_serves_one_export_on_the_service_address_with_its_state_on_the_shared_disk() {
        let text = spec("rw,sync,no_subtree_check").config_text();
        for line in [
            "Protocols = 4;",
            "Enable_NLM = false;",
            "Bind_addr = 10.0.0.100;",
            "RecoveryBackend = fs;",
            "RecoveryRoot = \"/srv/home/.nfs\";",
            "Grace_Period = 10;",
            "Lease_Lifetime = 10;",
            "Export_Id = 17;",
            "Path = \"/srv/home\";",
            "Clients = 10.0.0.0/24;",
            "Access_Type = RW;",
            "Squash = Root_Squash;",
            "Name = VFS;",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        let text = spec("ro,no_root_squash").config_text();
        assert!(text.contains("Access_Type = RO;") && text.contains("Squash = No_Root_Squash;"), "{text}");
        let mut long = spec("rw");
        long.grace = Duration::from_secs(300);
        assert!(long.config_text().contains("Lease_Lifetime = 120;"), "ganesha's longest lease");
    }

    #[test]
    fn ganesha_runs_in_the_foreground_with_its_own_pid_file() {
        assert_eq!(
            spec("rw").command(),
            [
                "ganesha.nfsd",
                "-F",
                "-L",
                "STDERR",
                "-f",
                "/var/lib/baton/nfs/home.conf",
                "-p",
                "/var/lib/baton/nfs/home.pid"
            ]
        );
    }
}
