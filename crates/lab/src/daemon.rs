//! The lab's disk writer: a daemon the way old daemons are written — it
//! forks twice and calls `setsid`, so it leaves its starter's process group
//! and session — that appends a line to a file on the set's shared disk
//! every [`PERIOD`]: `UNIX_MS NODE PID.STARTED_MS` (the start time tells two
//! writers apart that had the same pid: an hour of a soak wraps the lab's
//! pids many times). Each running writer's lines must
//! form one unbroken block: a line of one writer between two lines of
//! another means the disk was written from two places at once. Its pid file lives outside the shared
//! disk, one per node (the lab's nodes share one kernel, so a pid read from
//! another node's file would be another node's process).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the daemon writes.
pub const PERIOD: Duration = Duration::from_millis(50);

#[derive(clap::Subcommand, Debug)]
pub enum DaemonCommand {
    /// Start the writer (returns once it has detached).
    Start {
        /// The file on the shared disk it appends to.
        #[arg(long)]
        log: PathBuf,
        /// Where each node keeps its pid file (`DIR/NODE.daemon.pid`).
        #[arg(long)]
        run: PathBuf,
    },
    /// Stop this node's writer (SIGTERM, then SIGKILL).
    Stop {
        #[arg(long)]
        run: PathBuf,
    },
    /// Exit 0 if this node's writer runs.
    Status {
        #[arg(long)]
        run: PathBuf,
    },
}

fn node() -> String {
    std::env::var("BATON_NODE").unwrap_or_else(|_| "unknown".into())
}

fn pid_file(run: &Path) -> PathBuf {
    run.join(format!("{}.daemon.pid", node()))
}

fn running(run: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(run)).ok()?.trim().parse().ok()?;
    // SAFETY: signal 0 only asks whether the process exists.
    let exists = pid > 1 && unsafe { libc::kill(pid, 0) } == 0;
    // A killed daemon waits as a zombie until whoever adopted it reaps it
    // (here, this machine's init, which may take its time): it runs no more.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
    (exists && !zombie).then_some(pid)
}

pub fn run(command: DaemonCommand) -> Result<(), String> {
    match command {
        DaemonCommand::Start { log, run } => start(&log, &run),
        DaemonCommand::Stop { run } => {
            let Some(pid) = running(&run) else { return Ok(()) };
            // SAFETY: kill(2) of this node's writer, named by its pid file.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            for _ in 0..50 {
                if running(&run).is_none() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            Ok(())
        }
        DaemonCommand::Status { run } => running(&run).map(|_| ()).ok_or_else(|| "not running".to_string()),
    }
}

fn start(log: &Path, run: &Path) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("opening {}: {e}", log.display()))?;
    // SAFETY: fork(2) in a single-threaded program; the child only calls
    // async-signal-safe functions until its second fork, then runs on.
    match unsafe { libc::fork() } {
        -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {}
        _ => {
            // The starter returns at once, as a daemon's starter does.
            return Ok(());
        }
    }
    // SAFETY: setsid in the child: a session of its own, no terminal.
    unsafe { libc::setsid() };
    // SAFETY: as above; the first child exits and the grandchild runs on.
    if unsafe { libc::fork() } != 0 {
        std::process::exit(0);
    }
    let _ = std::fs::write(pid_file(run), std::process::id().to_string());
    let me = format!("{} {}.{}", node(), std::process::id(), baton_agent::events::now_ms());
    loop {
        let line = format!("{} {me}\n", baton_agent::events::now_ms());
        if file.write_all(line.as_bytes()).and_then(|()| file.sync_data()).is_err() {
            // The filesystem was shut down under it: keep trying, as a
            // program that does not know would.
        }
        std::thread::sleep(PERIOD);
    }
}

/// Lines of a writer that came after another writer had started: ("NODE
/// PID", unix ms) of each. Empty when the writers took turns.
pub fn interleaved(log: &Path) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut done: Vec<&str> = Vec::new();
    let mut current: Option<&str> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((ms, writer)) = line.split_once(' ') else { continue };
        let Ok(ms) = ms.parse::<u64>() else { continue };
        if current == Some(writer) {
            continue;
        }
        if done.contains(&writer) {
            out.push((writer.to_string(), ms));
        }
        if let Some(prev) = current.replace(writer) {
            done.push(prev);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_a_node_that_handed_over_are_found() {
        let dir = std::env::temp_dir().join(format!("baton-daemon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        std::fs::write(&log, "1 alpha 10\n2 alpha 10\n3 beta 20\n4 beta 20\n5 alpha 10\n").unwrap();
        assert_eq!(interleaved(&log), [("alpha 10".to_string(), 5)]);
        std::fs::write(&log, "1 alpha 10\n2 beta 20\n3 alpha 30\n").unwrap();
        assert!(interleaved(&log).is_empty(), "hand-overs only, back to alpha with a new writer");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
