//! The `process` resource: a foreground program baton starts in its own
//! process group, watches, and stops with SIGTERM, then SIGKILL.

use std::collections::BTreeMap;
use std::io;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Most output a program may put into the log; the rest is dropped, once said.
const OUTPUT_MAX_BYTES: usize = 1 << 20;
const LINE_MAX_CHARS: usize = 1000;

pub type Key = (u16, usize);

#[derive(Default)]
pub struct Processes {
    running: Mutex<BTreeMap<Key, (Child, i32)>>,
}

/// Sends `signal` to process group `pgid`.
pub fn signal_group(pgid: i32, signal: libc::c_int) {
    assert!(pgid > 1, "refusing to signal process group {pgid}");
    // SAFETY: kill(2) on a negative pid signals that process group only.
    unsafe { libc::kill(-pgid, signal) };
}

fn forward(label: String, stream: impl AsyncRead + Unpin + Send + 'static) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        let mut written = 0;
        while let Ok(Some(line)) = lines.next_line().await {
            if written > OUTPUT_MAX_BYTES {
                continue;
            }
            written += line.len();
            let line: String = line.chars().take(LINE_MAX_CHARS).collect();
            eprintln!("{label}: {line}");
            if written > OUTPUT_MAX_BYTES {
                eprintln!("{label}: more than {OUTPUT_MAX_BYTES} bytes of output; the rest is not logged");
            }
        }
    });
}

impl Processes {
    /// Starts `command` in a new process group; returns the group id.
    pub fn start(&self, key: Key, label: &str, command: &[String], env: &[(String, String)]) -> io::Result<i32> {
        let (program, args) = command.split_first().ok_or_else(|| io::Error::other("empty command"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|e| io::Error::new(e.kind(), format!("starting {program}: {e}")))?;
        let pid = child.id().ok_or_else(|| io::Error::other(format!("{program} exited at once")))? as i32;
        if let Some(out) = child.stdout.take() {
            forward(label.to_string(), out);
        }
        if let Some(err) = child.stderr.take() {
            forward(label.to_string(), err);
        }
        self.running.lock().expect("not poisoned").insert(key, (child, pid));
        Ok(pid)
    }

    /// Is the program still running?
    pub fn check(&self, key: Key) -> bool {
        let mut map = self.running.lock().expect("not poisoned");
        match map.get_mut(&key) {
            Some((child, _)) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace`; done when it has exited.
    /// Returns the group it stopped, if one was running.
    pub async fn stop(&self, key: Key, grace: Duration) -> io::Result<Option<i32>> {
        let Some((mut child, pgid)) = self.running.lock().expect("not poisoned").remove(&key) else {
            return Ok(None);
        };
        signal_group(pgid, libc::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            signal_group(pgid, libc::SIGKILL);
            child.wait().await?;
        }
        // Children the program left behind in its group go too.
        signal_group(pgid, libc::SIGKILL);
        Ok(Some(pgid))
    }
}
