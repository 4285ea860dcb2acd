//! The `process` resource: a foreground program baton starts in its own
//! cgroup, watches, and stops with SIGTERM, then SIGKILL — to every process
//! of that cgroup, so whatever it forked goes with it.

use std::io;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::resource::{Context, Done, Resource};
use crate::undo::Undo;

/// Most output a program may put into the log; the rest is dropped, once said.
const OUTPUT_MAX_BYTES: usize = 1 << 20;
const LINE_MAX_CHARS: usize = 1000;

pub struct Process {
    pub ctx: Context,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    /// What its output lines are prefixed with in the log.
    pub label: String,
    child: Mutex<Option<Child>>,
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
            tracing::info!("{label}: {line}");
            if written > OUTPUT_MAX_BYTES {
                tracing::info!("{label}: more than {OUTPUT_MAX_BYTES} bytes of output; the rest is not logged");
            }
        }
    });
}

/// Sends `signal` to each of `pids`.
fn signal_all(pids: &[i32], signal: libc::c_int) {
    for &pid in pids.iter().filter(|&&p| p > 1) {
        // SAFETY: kill(2) of a process in a cgroup baton made for this resource.
        unsafe { libc::kill(pid, signal) };
    }
}

impl Process {
    pub fn new(ctx: Context, command: Vec<String>, env: Vec<(String, String)>, label: String) -> Process {
        Process { ctx, command, env, label, child: Mutex::new(None) }
    }

    fn spawn(&self) -> io::Result<()> {
        let (program, args) = self.command.split_first().ok_or_else(|| io::Error::other("empty command"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(self.ctx.env_with(&self.env))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        self.ctx.cgroup.placement()?.apply(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| io::Error::new(e.kind(), format!("starting {program}: {e}")))?;
        if let Some(out) = child.stdout.take() {
            forward(self.label.clone(), out);
        }
        if let Some(err) = child.stderr.take() {
            forward(self.label.clone(), err);
        }
        *self.child.lock().expect("not poisoned") = Some(child);
        Ok(())
    }
}

impl Resource for Process {
    fn undo(&self) -> Vec<Undo> {
        vec![Undo::Cgroup { path: self.ctx.cgroup.path().to_path_buf() }]
    }

    fn start(&self, _: Duration) -> Done<'_> {
        Box::pin(async move { self.spawn().map_err(|e| e.to_string()) })
    }

    /// SIGTERM to every process of its cgroup, SIGKILL to all after half
    /// the limit.
    fn stop(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move {
            let child = self.child.lock().expect("not poisoned").take();
            signal_all(&self.ctx.cgroup.pids(), libc::SIGTERM);
            let grace = limit / 2;
            let start = std::time::Instant::now();
            while self.ctx.cgroup.populated() && start.elapsed() < grace {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.ctx.cgroup.kill(limit - grace).await.map_err(|e| e.to_string())?;
            if let Some(mut child) = child {
                // Reaped, so it leaves no zombie behind.
                let _ = child.wait().await;
            }
            Ok(())
        })
    }

    /// The program itself still runs.
    fn monitor(&self, _: Duration) -> Done<'_> {
        Box::pin(async move {
            let mut slot = self.child.lock().expect("not poisoned");
            match slot.as_mut().map(|c| c.try_wait()) {
                Some(Ok(None)) => Ok(()),
                Some(Ok(Some(status))) => Err(format!("{} exited ({status})", self.command[0])),
                Some(Err(e)) => Err(format!("checking {}: {e}", self.command[0])),
                None => Err(format!("{} is not running", self.command[0])),
            }
        })
    }
}
