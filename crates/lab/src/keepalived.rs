//! keepalived in the lab, for side-by-side measurements: the same nodes,
//! links and client, the same address and web server; VRRP on link 0 with
//! priorities in the lab's preference order.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::net::VIP;

/// The priority of the lab's node `index`: preference order, like baton's.
pub fn priority(index: usize) -> usize {
    200 - 10 * index
}

/// `advert` is keepalived's advert_int in seconds; below one second needs
/// VRRPv3, which is what "tuned" means here.
pub fn config(node: &str, priority: usize, advert: &str) -> String {
    let v3 = advert.parse::<f64>().is_ok_and(|a| a < 1.0);
    format!(
        "# Written by `baton lab up --keepalived {advert}`.\nglobal_defs {{\n  router_id {node}\n{}}}\n\n\
         vrrp_instance web {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {}\n  \
         advert_int {advert}\n  virtual_ipaddress {{\n    {VIP}/24 dev eth0\n  }}\n}}\n",
        if v3 { "  vrrp_version 3\n" } else { "" },
        priority
    )
}

/// keepalived's planned move: the master's priority lowered below every
/// backup's, the config reloaded (SIGHUP to the parent, `pid`).
pub fn demote(dir: &Path, node: &str, advert: &str, pid: u32) -> Result<(), String> {
    let path = dir.join(format!("keepalived-{node}.conf"));
    std::fs::write(&path, config(node, 50, advert)).map_err(|e| format!("writing {}: {e}", path.display()))?;
    // SAFETY: kill(2) of the keepalived this lab started.
    if unsafe { libc::kill(pid as i32, libc::SIGHUP) } != 0 {
        return Err(format!("keepalived of {node} (pid {pid}) is not running"));
    }
    Ok(())
}

/// Starts keepalived (VRRP only, in the foreground, in its own process
/// group) and the lab's web server in `ns`; returns keepalived's pid.
pub fn start(dir: &Path, ns: &str, node: &str, log: File) -> Result<u32, String> {
    let file = |suffix: &str| dir.join(format!("keepalived-{node}{suffix}"));
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "keepalived", "--dont-fork", "--log-console", "--vrrp", "-f"])
        .arg(file(".conf"))
        .arg("-p")
        .arg(file(".pid"))
        .arg("-r")
        .arg(file("-vrrp.pid"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log.try_clone().map_err(|e| e.to_string())?)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting keepalived on {node} (is it installed?): {e}"))?;
    super::web::start_server(ns, node, log)?;
    Ok(child.id())
}
