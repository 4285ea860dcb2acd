//! The agent's end of the guard: starts `baton-guard` in its own process
//! group (so signals to the agent's group do not reach it) and keeps it
//! told what this node holds and until when — in order, and a hold on the
//! guard's pipe before the thing it undoes exists.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use baton_core::{Input, Time};
use baton_resources::netlink::Netlink;
use baton_resources::process::set_cloexec;
use baton_resources::undo::Undo;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

use crate::guard::{release_all, Held, Order};

/// The guard died under a running agent. Without its guard a node must not
/// hold anything: the agent releases what the guard held, then exits and
/// lets its supervisor restart it.
async fn lost(why: &str, held: &mut Held) -> ! {
    tracing::error!("baton: lost the guard ({why}); releasing everything this node ran and exiting");
    match Netlink::connect() {
        Ok(nl) => release_all(&nl, held, "agent", false).await,
        Err(e) => tracing::error!("baton: netlink for removing the addresses: {e}"),
    }
    std::process::exit(70);
}

/// The guard's watchdog, if the configuration names one.
#[derive(Clone, Debug)]
pub struct WatchdogArgs {
    pub device: PathBuf,
    pub timeout: Duration,
}

/// What the agent needs of its guard: orders in order, and holds that are
/// on the guard's side before the thing they undo exists. The guard
/// process behind [`GuardLink`]; a [`Ledger`] in tests.
pub trait GuardPort: Send + Sync {
    /// Queues an order behind every earlier one, without waiting.
    fn tell(&self, order: Order);
    /// Tells the core's deadline `at`, on the monotonic clock `ms`; the
    /// guard's reports of firing name it by `ms`, the core hears `at`.
    fn deadline(&self, deadline: Option<(u64, Time)>) {
        self.tell(Order::Deadline(deadline.map(|(ms, _)| ms)));
    }
    /// Holds `undo`; returns once the guard has it, even if this agent dies
    /// the next instant.
    fn hold(&self, undo: Vec<Undo>) -> BoxFuture<'_, ()>;

    fn drop_all(&self, undo: Vec<Undo>) {
        for u in undo {
            self.tell(Order::Drop(u));
        }
    }

    /// A handover: every order so far written, the guard's pipes left open
    /// across exec, and what the next program needs to attach to it.
    fn keep(&self) -> BoxFuture<'_, io::Result<Kept>> {
        Box::pin(async { Err(io::Error::new(io::ErrorKind::Unsupported, "this guard cannot be handed over")) })
    }
}

/// A guard that only keeps the books: what a real guard would hold, for
/// agents in tests whose resources are fakes.
#[derive(Default)]
pub struct Ledger(pub std::sync::Mutex<Held>);

impl GuardPort for Ledger {
    fn tell(&self, order: Order) {
        self.0.lock().expect("not poisoned").apply(order);
    }

    fn hold(&self, undo: Vec<Undo>) -> BoxFuture<'_, ()> {
        for u in undo {
            self.tell(Order::Hold(u));
        }
        Box::pin(async {})
    }
}

/// How long a new guard may wait for an earlier one to finish releasing.
const GUARD_READY: Duration = Duration::from_secs(60);

/// What the guard's writer task is asked: an order (and who waits for it
/// to be on the guard's pipe), or — for a handover — what it holds, once
/// every earlier order is written.
enum Line {
    Order(Order, Option<oneshot::Sender<()>>),
    Keep(oneshot::Sender<Held>),
}

/// How many deadlines told the agent remembers for the guard's reports
/// (a report names one told a few seconds ago at most; the core renews its
/// lease a few times a second).
const TOLD: usize = 1024;

/// The deadlines told, oldest first: monotonic ms and the core's time.
type Told = Arc<Mutex<VecDeque<(u64, Time)>>>;

/// The guard process a program hands the next one (a handover): its pid,
/// the two pipes (kept open across the program's replacement), and what
/// it holds as the agent mirrors it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub pid: i32,
    /// The write end of the guard's stdin, and the read end of its stdout.
    pub stdin: i32,
    pub stdout: i32,
    pub deadline_ms: Option<u64>,
    pub fired: bool,
    pub held: Vec<(Undo, u32)>,
}

#[derive(Clone)]
pub struct GuardLink {
    tx: mpsc::UnboundedSender<Line>,
    told: Told,
    /// The guard's pid and pipes, for a handover.
    pid: i32,
    fds: (i32, i32),
    /// The guard found a pill in this node's fence disk slot as it started
    /// (and waited it out before it said `ready pill`).
    pub pill_found: bool,
}

/// The guard's pipes as tokio's, from the descriptors the agent holds.
fn pipes(stdin: OwnedFd, stdout: OwnedFd) -> io::Result<(pipe::Sender, pipe::Receiver)> {
    Ok((pipe::Sender::from_owned_fd(stdin)?, pipe::Receiver::from_owned_fd(stdout)?))
}

impl GuardLink {
    /// Starts the guard and waits until it holds the node's guard lock
    /// (`lock`: an earlier agent's guard may still be releasing); its
    /// "fired" reports arrive on `inputs`. The receiver resolves once the
    /// guard has ended after the agent let it go.
    pub async fn spawn(
        exe: &Path,
        lock: &Path,
        watchdog: Option<&WatchdogArgs>,
        realtime: bool,
        fence_disk: Option<(&Path, &str)>,
        inputs: mpsc::Sender<Input>,
    ) -> io::Result<(GuardLink, oneshot::Receiver<()>)> {
        let mut cmd = Command::new(exe);
        cmd.arg("--lock").arg(lock);
        if realtime {
            cmd.arg("--realtime");
        }
        if let Some((disk, node)) = fence_disk {
            cmd.arg("--fence-disk").arg(disk).arg("--node").arg(node);
        }
        if let Some(w) = watchdog {
            cmd.arg("--watchdog").arg(&w.device).arg("--watchdog-timeout-ms").arg(w.timeout.as_millis().to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting the guard ({}): {e}", exe.display())))?;
        let pid = child.id().ok_or_else(|| io::Error::other("the guard exited at once"))? as i32;
        let stdin = child.stdin.take().expect("piped").into_owned_fd()?;
        let stdout = child.stdout.take().expect("piped").into_owned_fd()?;
        // Reaped by this agent once it has gone (`reap`), not by tokio.
        std::mem::forget(child);
        let (stdin, stdout) = pipes(stdin, stdout)?;
        let mut lines = BufReader::new(stdout).lines();
        let pill_found = match tokio::time::timeout(GUARD_READY, lines.next_line()).await {
            Ok(Ok(Some(l))) if l == "ready" || l == "ready pill" => l == "ready pill",
            Ok(other) => return Err(io::Error::other(format!("the guard did not start: {other:?}"))),
            Err(_) => {
                return Err(io::Error::other(format!(
                    "the guard of an earlier agent is still releasing after {GUARD_READY:?} (it holds {})",
                    lock.display()
                )))
            }
        };
        Ok(Self::run(pid, stdin, lines, Held::default(), Told::default(), pill_found, inputs))
    }

    /// The guard a program before this one handed over: the same process,
    /// holding what it held. The first order asks whether it fired for the
    /// deadline handed over (`Order::Sync`): its report may have been read
    /// by the program before, and lost with it. `deadline` is that deadline
    /// on this program's clock.
    pub fn attach(
        kept: &Kept,
        deadline: Option<Time>,
        inputs: mpsc::Sender<Input>,
    ) -> io::Result<(GuardLink, oneshot::Receiver<()>)> {
        // SAFETY: the descriptors were kept open across exec for this
        // program, which owns them from here on.
        let (stdin, stdout) = unsafe { (OwnedFd::from_raw_fd(kept.stdin), OwnedFd::from_raw_fd(kept.stdout)) };
        for fd in [&stdin, &stdout] {
            set_cloexec(fd.as_raw_fd(), true)?;
        }
        let (stdin, stdout) = pipes(stdin, stdout)?;
        let held = Held { deadline_ms: kept.deadline_ms, fired: kept.fired, undo: kept.held.iter().cloned().collect() };
        let told = Told::default();
        if let Some(pair) = kept.deadline_ms.zip(deadline) {
            told.lock().expect("not poisoned").push_back(pair);
        }
        let lines = BufReader::new(stdout).lines();
        let link = Self::run(kept.pid, stdin, lines, held, told, false, inputs);
        link.0.tell(Order::Sync);
        Ok(link)
    }

    /// The writer task (orders in order; the agent's own release if the
    /// guard dies) and the reader task (the guard's reports).
    fn run(
        pid: i32,
        mut stdin: pipe::Sender,
        mut lines: Lines<BufReader<pipe::Receiver>>,
        mut held: Held,
        told: Told,
        pill_found: bool,
        inputs: mpsc::Sender<Input>,
    ) -> (GuardLink, oneshot::Receiver<()>) {
        let fds = (stdin.as_raw_fd(), lines.get_ref().get_ref().as_raw_fd());
        // Unbounded, so that the core's outputs are queued in order without
        // waiting; the guard's pipe is what bounds it (a guard that stops
        // reading stops the holds, and with them every start).
        let (tx, mut rx) = mpsc::unbounded_channel::<Line>();
        let (ended_tx, ended) = oneshot::channel();
        let (gone_tx, mut gone) = oneshot::channel::<()>();
        tokio::spawn(async move {
            // What the guard holds, mirrored: if it dies, the agent does its job.
            loop {
                tokio::select! {
                    line = rx.recv() => match line {
                        Some(Line::Order(order, written)) => {
                            let text = serde_json::to_string(&order).expect("an order serializes") + "\n";
                            held.apply(order);
                            if let Err(e) = stdin.write_all(text.as_bytes()).await {
                                lost(&format!("writing to it: {e}"), &mut held).await;
                            }
                            if let Some(w) = written {
                                let _ = w.send(());
                            }
                        }
                        Some(Line::Keep(answer)) => {
                            let _ = answer.send(held.clone());
                        }
                        None => {
                            // The agent is done: closing stdin ends the guard.
                            drop(stdin);
                            let _ = tokio::time::timeout(Duration::from_secs(5), gone).await;
                            reap(pid).await;
                            let _ = ended_tx.send(());
                            return;
                        }
                    },
                    _ = &mut gone => {
                        let why = reap(pid).await;
                        lost(&why, &mut held).await;
                    }
                }
            }
        });
        let fired = told.clone();
        tokio::spawn(async move {
            // The last firing reported to this program (`synced` repeats it).
            let mut heard = None;
            while let Ok(Some(line)) = lines.next_line().await {
                let (report, synced) = match line.strip_prefix("synced") {
                    Some("") => continue,
                    Some(rest) => (rest.trim_start(), true),
                    None => (line.as_str(), false),
                };
                let ms = report.strip_prefix("fired ").and_then(|ms| ms.parse::<u64>().ok());
                if synced && ms.is_some() && ms == heard {
                    continue;
                }
                heard = ms;
                let Some(deadline) = reported(report, &fired) else {
                    tracing::warn!("baton: the guard said {line:?}, which names no deadline told to it");
                    continue;
                };
                if inputs.send(Input::GuardFired { deadline }).await.is_err() {
                    return;
                }
            }
            // End of file: the guard has exited.
            let _ = gone_tx.send(());
        });
        (GuardLink { tx, told, pid, fds, pill_found }, ended)
    }
}

/// Reaps the guard once it has exited; says how it ended.
async fn reap(pid: i32) -> String {
    let waited = tokio::task::spawn_blocking(move || {
        let mut status = 0;
        // SAFETY: waitpid on our own child's pid with a status we own.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            format!("exit status {}", std::process::ExitStatus::from_raw(status))
        } else {
            format!("it exited ({})", io::Error::last_os_error())
        }
    });
    waited.await.unwrap_or_else(|e| e.to_string())
}

/// The core's deadline a report (`fired <ms>`) names; the ones told
/// before it are forgotten (the guard fires them in the order told).
fn reported(line: &str, told: &Told) -> Option<Time> {
    let ms: u64 = line.strip_prefix("fired ")?.parse().ok()?;
    let mut told = told.lock().expect("not poisoned");
    let i = told.iter().rposition(|&(m, _)| m == ms)?;
    let at = told[i].1;
    told.drain(..i);
    Some(at)
}

impl GuardPort for GuardLink {
    fn tell(&self, order: Order) {
        // The guard's task exits the process if the guard is gone, so a
        // closed channel only happens during shutdown.
        let _ = self.tx.send(Line::Order(order, None));
    }

    fn keep(&self) -> BoxFuture<'_, io::Result<Kept>> {
        Box::pin(async move {
            let (answer, held) = oneshot::channel();
            self.tx.send(Line::Keep(answer)).map_err(|_| io::Error::other("the guard's writer has stopped"))?;
            let held = held.await.map_err(|_| io::Error::other("the guard's writer has stopped"))?;
            set_cloexec(self.fds.0, false)?;
            set_cloexec(self.fds.1, false)?;
            Ok(Kept {
                pid: self.pid,
                stdin: self.fds.0,
                stdout: self.fds.1,
                deadline_ms: held.deadline_ms,
                fired: held.fired,
                held: held.undo.into_iter().collect(),
            })
        })
    }

    fn deadline(&self, deadline: Option<(u64, Time)>) {
        if let Some(d) = deadline {
            let mut told = self.told.lock().expect("not poisoned");
            if told.len() == TOLD {
                told.pop_front();
            }
            told.push_back(d);
        }
        self.tell(Order::Deadline(deadline.map(|(ms, _)| ms)));
    }

    /// Returns once the orders are on the guard's pipe: bytes in a pipe
    /// reach the reader even if the writer dies.
    fn hold(&self, undo: Vec<Undo>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for u in undo {
                let (written, done) = oneshot::channel();
                if self.tx.send(Line::Order(Order::Hold(u), Some(written))).is_ok() {
                    let _ = done.await;
                }
            }
        })
    }
}
