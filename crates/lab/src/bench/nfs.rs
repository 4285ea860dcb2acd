//! The NFS trial: `web` with the lab's shared disk and an NFS server
//! (nfs-ganesha, `server = "ganesha"`) exporting it on the service address;
//! the lab's NFS client (`baton-lab nfs-client`) looks a file up once and
//! writes and reads it back by that handle ten times a second while the
//! owner's machine is lost (agent SIGKILLed, links cut) and then while
//! the set is moved on. Its pauses are the outages users of the files see.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{on_lab, BenchArgs, Row, System};
use crate::net::{Lab, DISK_MOUNT, VIP};

/// The grace period of the lab's NFS server: clients reclaim their locks
/// within it, and new locks wait for it after every move.
pub const GRACE: &str = "10s";

pub const SYSTEM: System = System {
    name: "baton + nfs-ganesha (heartbeat 100ms, lease 2s with the disk, grace 10s)",
    heartbeat: "100ms",
    lease: "2s",
    keepalived: None,
    default: false,
    nodes: 3,
    fencing: None,
    nfs: true,
    address_only: false,
};

/// The TOML that adds the NFS server to `web` (after its mount and its
/// address), written beside the lab's directory.
pub fn extra(dir: &Path) -> Result<std::path::PathBuf, String> {
    let mnt = dir.join(DISK_MOUNT);
    let text = format!(
        "\n[[sets.web.resources]]\ntype = \"nfs\"\nserver = \"ganesha\"\npath = \"{mnt}\"\nfsid = 1\n\
         clients = \"10.88.0.0/24\"\noptions = \"rw,no_root_squash\"\nlock_dir = \"{mnt}/.nfs-state\"\n\
         grace = \"{GRACE}\"\ninterval = \"2s\"\n",
        mnt = mnt.display()
    );
    let file = dir.with_extension("nfs.toml");
    std::fs::write(&file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
    Ok(file)
}

/// One trial on a lab that is up: (crash pause, move pause) in ms.
fn trial(lab: &mut Lab) -> Result<(u64, u64), String> {
    lab.wait_running(Duration::from_secs(30))?;
    let owner = lab.wait_vip_holder(Duration::from_secs(10)).ok_or("web runs nowhere")?;
    let file = lab.dir.join(DISK_MOUNT).join("nfs-data");
    let touched = lab.inside(&owner)?.arg("touch").arg(&file).status().map_err(|e| e.to_string())?;
    if !touched.success() {
        return Err(format!("touch {} on {owner} failed", file.display()));
    }
    let client = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client")?])
        .arg(crate::lab_exe())
        .args(["nfs-client", "--server", VIP, "--path"])
        .arg(&file)
        .args(["--seconds", "16"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the NFS client: {e}"))?;
    std::thread::sleep(Duration::from_secs(3));
    lab.kill(&owner)?;
    lab.cut(&owner, None)?;
    std::thread::sleep(Duration::from_secs(7));
    let next = lab.vip_holder().ok_or("web failed over nowhere")?;
    lab.planned_move(&next)?;
    let out = client.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|e| format!("the NFS client said {text:?}: {e}"))?;
    let pauses: Vec<u64> = summary["outages_ms"].as_array().into_iter().flatten().filter_map(|v| v.as_u64()).collect();
    match (summary["mismatches"].as_u64(), &pauses[..]) {
        (Some(0), &[crash, moved]) => Ok((crash, moved)),
        _ => Err(format!("the NFS client saw {summary}")),
    }
}

/// `nfs_trials` trials; crash pauses in `crash`, move pauses in `moves`.
pub fn measure(args: &BenchArgs, system: &System) -> Row {
    let mut row = Row::default();
    for i in 0..args.nfs_trials {
        match on_lab(args, system, trial) {
            Ok((crash, moved)) => {
                eprintln!("{}: NFS {}: crash {crash} ms, move {moved} ms", system.name, i + 1);
                row.crash.push(crash);
                row.moves.push(moved);
            }
            Err(e) => {
                eprintln!("{}: NFS {}: {e}", system.name, i + 1);
                row.crash_failed += 1;
                row.moves_failed += 1;
            }
        }
    }
    row.crash.sort_unstable();
    row.moves.sort_unstable();
    row
}
