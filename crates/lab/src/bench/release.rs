//! `baton-lab release-bench`: how long the guard takes to undo each kind of
//! resource when a lease ends under a paused agent — the numbers behind the
//! budgets in `baton_core::release`. One lab whose `web` set holds one of
//! each kind the lab can run (a shared-disk mount, the address, a process,
//! a double-forking daemon under `exec`, an OCF Dummy, an LSB script with a
//! daemon, an NFS export with its lock directory); each trial pauses the
//! owner's agent past its lease and reads the phase times the guard logs.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::chaos::scenarios::settle;
use crate::net::{Lab, DISK_MOUNT};
use crate::{wait_until, DirArg, UpArgs};

#[derive(Args, Debug, Clone)]
pub struct ReleaseArgs {
    /// Pauses of the owner, each one release measured.
    #[arg(long, default_value_t = 10)]
    pub trials: usize,
    /// Where the results go.
    #[arg(long, default_value = "docs/guard.md")]
    pub out: PathBuf,
    #[command(flatten)]
    pub dir: DirArg,
}

/// An init script whose daemon forks away from it.
const LSB_SCRIPT: &str = r#"#!/bin/sh
# A test init script: start forks a daemon, status and stop find it by pid file.
PID=/run/baton-lab-lsb-$BATON_NODE.pid
case "$1" in
  start) setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $! > "$PID" ;;
  stop) [ -s "$PID" ] && kill "$(cat "$PID")" 2>/dev/null; rm -f "$PID" ;;
  status) [ -s "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null || exit 3 ;;
  *) exit 2 ;;
esac
"#;

/// The kinds the lab's `web` gets besides its disk, address, web server
/// and daemon.
fn extra(dir: &Path, script: &Path) -> String {
    let data = dir.join(DISK_MOUNT);
    format!(
        "\n[[sets.web.resources]]\ntype = \"ocf\"\nagent = \"heartbeat:Dummy\"\n\
         params = {{ state = \"{}/dummy.state\" }}\n\
         \n[[sets.web.resources]]\ntype = \"lsb\"\nscript = \"{}\"\n\
         \n[[sets.web.resources]]\ntype = \"nfs\"\npath = \"{}\"\nfsid = 17\nclients = \"10.88.0.0/24\"\n\
         lock_dir = \"{}/.nfs\"\n",
        dir.display(),
        script.display(),
        data.display(),
        data.display()
    )
}

/// "Addresses 1 ms, Processes 12 ms" → phase → ms, from the guard's log line.
fn phases(line: &str) -> BTreeMap<String, u64> {
    let inner = line.rsplit_once('(').map_or("", |(_, r)| r.trim_end_matches(')'));
    inner
        .split(", ")
        .filter_map(|p| {
            let (name, ms) = p.rsplit_once(' ').map(|(a, _)| a)?.rsplit_once(' ')?;
            Some((name.to_string(), ms.parse().ok()?))
        })
        .collect()
}

pub fn run(args: &ReleaseArgs) -> Result<(), String> {
    let tools = std::env::temp_dir().join(format!("baton-release-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tools).map_err(|e| e.to_string())?;
    let script = tools.join("lsb-web");
    std::fs::write(&script, LSB_SCRIPT).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let extra_file = tools.join("extra.toml");
    std::fs::write(&extra_file, extra(&args.dir.dir, &script)).map_err(|e| e.to_string())?;
    let up =
        UpArgs { disk: true, extra: Some(extra_file), ..UpArgs::plain(args.dir.clone(), crate::net::PREFIX.into()) };
    let mut lab = Lab::up(&up)?;
    let result = trials(&mut lab, args.trials);
    let down = Lab::down(&lab.dir);
    let _ = std::fs::remove_dir_all(&tools);
    let samples = result?;
    down?;
    let text = report(&samples, args.trials);
    std::fs::write(&args.out, &text).map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    println!("{text}");
    Ok(())
}

/// Per phase, the times measured.
fn trials(lab: &mut Lab, n: usize) -> Result<BTreeMap<String, Vec<u64>>, String> {
    let mut samples: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for trial in 1..=n {
        let owner = settle(lab, Duration::from_secs(60))?;
        let log = lab.dir.join(format!("{owner}.log"));
        let before = std::fs::read_to_string(&log).unwrap_or_default().len();
        let pid = lab.agent_pid(&owner).ok_or("the owner's agent is not running")? as i32;
        // SAFETY: kill(2) of the lab's own agent.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let released = || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.get(before..).and_then(|t| t.lines().find(|l| l.contains("baton guard: released")).map(str::to_string))
        };
        let line = wait_until(Duration::from_secs(30), || released().is_some()).then(released).flatten();
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        let line = line.ok_or_else(|| format!("trial {trial}: {owner}'s guard never released"))?;
        println!("trial {trial} on {owner}: {line}");
        for (phase, ms) in phases(&line) {
            samples.entry(phase).or_default().push(ms);
        }
    }
    Ok(samples)
}

fn report(samples: &BTreeMap<String, Vec<u64>>, trials: usize) -> String {
    let budget =
        |name: &str| baton_core::release::Phase::ALL.iter().find(|p| format!("{p:?}") == name).map(|p| p.budget());
    let mut text = format!(
        "# The guard's release, measured\n\nWritten by `baton-lab release-bench --trials {trials}` on {}: a lab whose \
         set holds a shared-disk mount (ext4 on a loop device, a daemon writing to it), the address, a web \
         server, a double-forking daemon, an OCF Dummy, an LSB script with a daemon and an NFS export; each \
         trial pauses the owner's agent past its lease and reads the slowest undo of each phase from the \
         guard's log. The budgets are `baton_core::release::Phase::budget`, the sum of which every lease \
         sets aside.\n\n| phase | budget | median | max | within budget |\n|---|---:|---:|---:|---|\n",
        baton_agent::events::timestamp(baton_agent::events::now_ms())
    );
    for p in baton_core::release::Phase::ALL {
        let name = format!("{p:?}");
        let Some(ms) = samples.get(&name) else {
            text += &format!("| {name} | {} ms | - | - | not measured here |\n", p.budget().as_millis());
            continue;
        };
        let mut ms = ms.clone();
        ms.sort_unstable();
        let max = *ms.last().expect("measured");
        let within = budget(&name).is_some_and(|b| u128::from(max) <= b.as_millis());
        text += &format!(
            "| {name} | {} ms | {} ms | {max} ms | {} |\n",
            p.budget().as_millis(),
            ms[ms.len() / 2],
            if within { "yes" } else { "NO" }
        );
    }
    text += "\nUnits (systemd) are not measured: the lab's nodes have no systemd (see the issue on machine labs).\n";
    text
}

#[cfg(test)]
mod tests {
    use super::phases;

    #[test]
    fn the_guard_s_phase_times_are_read_from_its_line() {
        let line = "baton guard: released 6 thing(s) in 311 ms (Addresses 1 ms, Processes 12 ms, Mounts 140 ms)";
        let p = phases(line);
        assert_eq!(p.get("Addresses"), Some(&1));
        assert_eq!(p.get("Processes"), Some(&12));
        assert_eq!(p.get("Mounts"), Some(&140));
    }
}
