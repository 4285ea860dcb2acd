//! ucarp in the lab, for side-by-side measurements: the same nodes, links
//! and client, the same address and web server; CARP on link 0, each node's
//! advertisement skew in the lab's preference order. Started as Debian's
//! `/etc/network/if-up.d/ucarp` starts it (`-z`: the down script at exit),
//! in the foreground, with up and down scripts that add and remove the
//! address as Debian's example scripts do.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::net::{Lab, VIP};

/// CARP's virtual host id and password in the lab.
const VHID: &str = "51";
const PASSWORD: &str = "lab-carp";

/// `lab up --ucarp ADVBASE[:DEADRATIO]`: whole seconds between
/// advertisements (or 0 for sub-second ones, the skew alone, in 1/256 s),
/// and how many intervals without one make a backup take over (ucarp's
/// default 3).
pub fn settings(setting: &str) -> Result<(u32, u32), String> {
    let (base, ratio) = setting.split_once(':').unwrap_or((setting, "3"));
    match (base.parse::<u32>(), ratio.parse::<u32>()) {
        (Ok(b), Ok(r)) if b <= 255 && (1..=255).contains(&r) => Ok((b, r)),
        _ => Err(format!(
            "--ucarp {setting}: ADVBASE[:DEADRATIO], an advbase of 0 to 255 (seconds), a ratio of 1 to 255"
        )),
    }
}

/// The advertisement skew of the lab's node `index`: 0, 10, 20, ... at
/// whole seconds (as Debian's example, `ucarp-advskew 0`, for the first);
/// with advbase 0 the skew is the whole interval, so 26, 52, 78, ... (about
/// 100 ms, 200 ms, 300 ms).
pub fn advskew(advbase: u32, index: usize) -> usize {
    if advbase == 0 {
        26 * (index + 1)
    } else {
        10 * index
    }
}

/// The up and down scripts, in the lab directory.
pub fn write_scripts(dir: &Path) -> Result<(), String> {
    for (name, verb) in [("ucarp-up", "add"), ("ucarp-down", "del")] {
        let path = dir.join(name);
        let text = format!("#!/bin/sh\n# Written by `baton lab up --ucarp`: $1 is the interface, $2 the address.\nexec ip addr {verb} \"$2\"/24 dev \"$1\"\n");
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Starts ucarp (in its own process group) and the lab's web server on
/// node `index`; returns ucarp's pid.
pub fn start(lab: &Lab, node: &str, setting: &str, log: File) -> Result<u32, String> {
    let (base, ratio) = settings(setting)?;
    let index = lab.nodes.iter().position(|n| n == node).ok_or_else(|| format!("no lab node named {node}"))?;
    let ns = lab.ns(node)?;
    let child = Command::new("ip")
        .args(["netns", "exec", &ns, "ucarp", "-i", "eth0", "-s", &Lab::address(index, 0), "-z", "-v", VHID])
        .args(["-p", PASSWORD, "-a", VIP, "-b", &base.to_string(), "-k", &advskew(base, index).to_string()])
        .args(["-r", &ratio.to_string()])
        .arg("-u")
        .arg(lab.dir.join("ucarp-up"))
        .arg("-d")
        .arg(lab.dir.join("ucarp-down"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log.try_clone().map_err(|e| e.to_string())?)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting ucarp on {node} (is it installed?): {e}"))?;
    super::web::start_server(&ns, node, log)?;
    Ok(child.id())
}

/// A planned move: SIGUSR2 makes a master ucarp demote itself to backup
/// (ucarp(8): it pauses 3 s, then listens for masters again), so that
/// another node takes over.
pub fn demote(node: &str, pid: u32) -> Result<String, String> {
    // SAFETY: kill(2) of the ucarp this lab started on `node`.
    if unsafe { libc::kill(pid as i32, libc::SIGUSR2) } != 0 {
        return Err(format!("ucarp of {node} (pid {pid}) is not running"));
    }
    Ok(format!("SIGUSR2 sent to {node}'s ucarp (demote to backup)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_an_advbase_and_a_deadratio_that_defaults_to_three() {
        assert_eq!(settings("1"), Ok((1, 3)));
        assert_eq!(settings("1:1"), Ok((1, 1)));
        assert!(settings("1:0").is_err() && settings("256").is_err() && settings("x").is_err());
    }

    #[test]
    fn skews_follow_the_preference_order() {
        assert_eq!((0..3).map(|i| advskew(1, i)).collect::<Vec<_>>(), [0, 10, 20]);
        assert_eq!((0..3).map(|i| advskew(0, i)).collect::<Vec<_>>(), [26, 52, 78]);
    }
}
