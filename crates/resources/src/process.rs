//! The `process` resource: a foreground program baton starts in its own
//! cgroup, watches, and stops with SIGTERM, then SIGKILL — to every process
//! of that cgroup, so whatever it forked goes with it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};

use crate::resource::{Context, Done, Kept, Resource};
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
    /// The program as a handover gave it (no `Child` of this agent
    /// program's own): its pid.
    adopted: Mutex<Option<i32>>,
    /// The descriptors its output is read from, while it is.
    output: Arc<Mutex<Vec<i32>>>,
}

/// Logs the program's output lines as they come on `stream`, whose
/// descriptor `fd` is listed in `open` while the stream is read (a
/// handover keeps those open for the next program).
fn forward(label: String, stream: impl AsyncRead + Unpin + Send + 'static, fd: i32, open: Arc<Mutex<Vec<i32>>>) {
    open.lock().expect("not poisoned").push(fd);
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
        // Before the stream (and its descriptor) is dropped.
        open.lock().expect("not poisoned").retain(|&f| f != fd);
    });
}

/// Sets or clears `FD_CLOEXEC` on `fd`: what a handover keeps open
/// across exec, and only then.
pub fn set_cloexec(fd: i32, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process holds.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    let flags = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Has `pid`, a child of this process, exited? Reaps it if so.
fn exited(pid: i32) -> Option<String> {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG on a pid with a status we own.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        0 => None,
        r if r == pid => Some(format!(
            "exited ({})",
            <std::process::ExitStatus as std::os::unix::process::ExitStatusExt>::from_raw(status)
        )),
        _ => Some(format!("is gone ({})", io::Error::last_os_error())),
    }
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
        Process { ctx, command, env, label, child: Mutex::new(None), adopted: Mutex::new(None), output: Arc::default() }
    }

    async fn spawn(&self) -> io::Result<()> {
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
        crate::program::inherit_nothing(&mut cmd);
        let started = crate::program::spawn(cmd).await;
        let mut child = started.map_err(|e| io::Error::new(e.kind(), format!("starting {program}: {e}")))?;
        if let Some(out) = child.stdout.take() {
            let fd = out.as_raw_fd();
            forward(self.label.clone(), out, fd, Arc::clone(&self.output));
        }
        if let Some(err) = child.stderr.take() {
            let fd = err.as_raw_fd();
            forward(self.label.clone(), err, fd, Arc::clone(&self.output));
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
        Box::pin(async move { self.spawn().await.map_err(|e| e.to_string()) })
    }

    /// SIGTERM to every process of its cgroup, SIGKILL to all after half
    /// the limit.
    fn stop(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move {
            let child = self.child.lock().expect("not poisoned").take();
            let adopted = self.adopted.lock().expect("not poisoned").take();
            signal_all(&self.ctx.cgroup.pids(), libc::SIGTERM);
            let grace = limit / 2;
            self.ctx.cgroup.emptied(grace).await;
            self.ctx.cgroup.kill(limit - grace).await.map_err(|e| e.to_string())?;
            if let Some(mut child) = child {
                // Reaped, so it leaves no zombie behind.
                let _ = child.wait().await;
            }
            if let Some(pid) = adopted {
                let _ = exited(pid);
            }
            Ok(())
        })
    }

    /// The program itself still runs.
    fn monitor(&self, _: Duration) -> Done<'_> {
        Box::pin(async move {
            if let Some(pid) = *self.adopted.lock().expect("not poisoned") {
                return exited(pid).map_or(Ok(()), |how| Err(format!("{} {how}", self.command[0])));
            }
            let mut slot = self.child.lock().expect("not poisoned");
            match slot.as_mut().map(|c| c.try_wait()) {
                Some(Ok(None)) => Ok(()),
                Some(Ok(Some(status))) => Err(format!("{} exited ({status})", self.command[0])),
                Some(Err(e)) => Err(format!("checking {}: {e}", self.command[0])),
                None => Err(format!("{} is not running", self.command[0])),
            }
        })
    }

    /// The program's pid and its output pipes, left open across exec.
    fn keep(&self) -> Option<Kept> {
        let pid = match self.child.lock().expect("not poisoned").as_ref() {
            Some(child) => child.id()? as i32,
            None => (*self.adopted.lock().expect("not poisoned"))?,
        };
        let fds = self.output.lock().expect("not poisoned").clone();
        let fds = fds.into_iter().filter(|&fd| set_cloexec(fd, false).is_ok()).collect();
        Some(Kept { pid, fds })
    }

    /// Watches the program a handover gave (a child of this process still:
    /// exec keeps the process) and logs its output again.
    fn adopt(&self, kept: Option<Kept>) {
        let Some(kept) = kept else { return };
        *self.adopted.lock().expect("not poisoned") = Some(kept.pid);
        for fd in kept.fds {
            // SAFETY: the descriptor was kept open across exec for this
            // program, which owns it from here on.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let _ = set_cloexec(fd, true);
            match pipe::Receiver::from_owned_fd(owned) {
                Ok(stream) => forward(self.label.clone(), stream, fd, Arc::clone(&self.output)),
                Err(e) => tracing::warn!("{}: its output after the handover: {e}", self.label),
            }
        }
    }
}
