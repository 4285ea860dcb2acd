//! The lab's fence device: a fence agent speaking the fence-agents stdin
//! protocol. `off` powers the node off — its links cut and every process in
//! it killed at once, agent, guard, sets and the mount namespace alike;
//! `status` says off (exit 2) once nothing runs in the node's namespace;
//! `on` restores its links. It writes what it was asked
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
    let args: BTreeMap<&str, &str> = input.lines().filter_map(|l| l.split_once('=')).collect();
    let action = args.get("action").copied().unwrap_or("");
    let node = args.get("plug").or(args.get("nodename")).copied().unwrap_or("");
    if let Some(log_file) = args.get("log") {
        let password = match args.get("password") {
            Some(&p) if p == PASSWORD => "checked",
            Some(_) => "wrong",
            None => "missing",
        };
        log(Path::new(log_file), action, node, args.get("nodename").unwrap_or(&""), password);
    }
    if args.get("password") != Some(&PASSWORD) {
        return 1;
    }
    let Some(lab) = args.get("lab").and_then(|d| Lab::load(Path::new(d)).ok()) else { return 1 };
    act(&lab, action, node)
}

/// Appends what the device was asked to `file` (the password only as
/// checked, wrong or missing).
pub fn log(file: &Path, action: &str, plug: &str, nodename: &str, password: &str) {
    let line = format!("action={action} plug={plug} nodename={nodename} password={password}\n");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(file) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Carries out `action` on `node` with the fence-agents exit codes: 0 done
/// (`status`: on), 2 `status` off, 1 failed.
pub fn act(lab: &Lab, action: &str, node: &str) -> i32 {
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
        "monitor" | "list" => 0,
        _ => 1,
    }
}
