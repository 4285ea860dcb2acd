//! The lab's fence device: a fence agent speaking the fence-agents stdin
//! protocol. `off` powers the node off — its links cut and every process in
//! it killed at once, agent, guard, sets and the mount namespace alike;
//! `status` says off (exit 2) once nothing runs in the node's namespace;
//! `on` restores its links; `reboot` is `off` then `on` (the machine is not
//! booted again: nothing runs until the lab starts it). It writes what it was asked
//! (the password only as checked or not) to the file named by `log`, and
//! fails `off` while a file `fence-fail` exists in the lab directory.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use super::net::Lab;

pub const PASSWORD: &str = "lab-fence-password";

pub fn agent() -> i32 {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        return 1;
    }
    act(&input.lines().filter_map(|l| l.split_once('=')).collect())
}

/// One request of the fence-agents protocol (`key=value` arguments), with
/// its exit code: 0 done (or on), 2 off, 1 failed.
pub fn act(args: &BTreeMap<&str, &str>) -> i32 {
    let action = args.get("action").copied().unwrap_or("");
    // Pacemaker names the target `port` (older fence-agents) or `plug`.
    let node = args.get("plug").or(args.get("port")).or(args.get("nodename")).copied().unwrap_or("");
    if let Some(log) = args.get("log") {
        let password = match args.get("password") {
            Some(&p) if p == PASSWORD => "checked",
            Some(_) => "wrong",
            None => "missing",
        };
        let line = format!(
            "action={action} plug={node} nodename={} password={password}\n",
            args.get("nodename").unwrap_or(&"")
        );
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = f.write_all(line.as_bytes());
        }
    }
    if args.get("password") != Some(&PASSWORD) {
        return 1;
    }
    let Some(lab) = args.get("lab").and_then(|d| Lab::load(Path::new(d)).ok()) else { return 1 };
    match action {
        "off" => {
            if lab.dir.join("fence-fail").exists() || lab.power_off(node).is_err() {
                return 1;
            }
            0
        }
        "status" => {
            if lab.empty(node) {
                2
            } else {
                0
            }
        }
        "on" => i32::from(lab.restore(node).is_err()),
        "reboot" => {
            if lab.dir.join("fence-fail").exists() || lab.power_off(node).is_err() {
                return 1;
            }
            i32::from(lab.restore(node).is_err())
        }
        "monitor" | "list" => 0,
        _ => 1,
    }
}
