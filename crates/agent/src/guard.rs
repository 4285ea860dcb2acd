//! The guard: a small process beside the agent that holds the lease
//! deadline and everything this node runs — addresses, the cgroups of its
//! sets, units, the stop commands of OCF, LSB and exec resources, exports,
//! filesystems (see [`Undo`]). When the deadline passes — the agent may be
//! paused — or the agent dies, the guard undoes all of it, alone. A `kill
//! -9` of the agent therefore cannot leave any part of a set running.
//!
//! With a watchdog device it also keeps the machine alive, petting the
//! watchdog only while it could still undo everything before the deadline:
//! a machine whose agent and guard are both stuck is reset before its lease
//! ends (the model of SBD's watchdog).
//!
//! The agent speaks to it in JSON lines on its stdin ([`Order`]); the guard
//! answers `fired` on its stdout each time it released everything.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use baton_resources::fence_disk::{Disk, Header, Message};
use baton_resources::netlink::Netlink;
use baton_resources::undo::{self, Undo};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Milliseconds on CLOCK_MONOTONIC, the clock the agent and guard share.
pub fn monotonic_ms() -> u64 {
    monotonic_us() / 1000
}

/// Microseconds on CLOCK_MONOTONIC (what a handover writes its times in).
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// One line from the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Release everything at this CLOCK_MONOTONIC millisecond (`None`: no
    /// deadline, the node runs nothing that needs one).
    Deadline(Option<u64>),
    /// Something is about to start: hold how to undo it.
    Hold(Undo),
    /// It stopped cleanly: forget it.
    Drop(Undo),
    /// The agent's program was replaced (a handover) and the new one asks
    /// what it may have missed: answered `synced fired <ms>` if the last
    /// deadline told has fired, else `synced`.
    Sync,
}

/// What the guard holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub deadline_ms: Option<u64>,
    /// The deadline passed and everything was released (and reported).
    pub fired: bool,
    /// Each undo with how many holds it has (two holds, two drops).
    pub undo: BTreeMap<Undo, u32>,
}

impl Held {
    /// Applies one line from the agent; returns the order.
    pub fn update(&mut self, line: &str) -> Result<Order, String> {
        let order: Order = serde_json::from_str(line).map_err(|e| format!("guard: cannot understand {line:?}: {e}"))?;
        self.apply(order.clone());
        Ok(order)
    }

    /// The answer to `Order::Sync`.
    pub fn synced(&self) -> String {
        match self.deadline_ms.filter(|_| self.fired) {
            Some(ms) => format!("synced fired {ms}"),
            None => "synced".into(),
        }
    }

    pub fn apply(&mut self, order: Order) {
        match order {
            Order::Deadline(d) => {
                // Only a deadline still to come ends the fired state: the
                // agent tells one before it starts anything again. Told
                // none (the node runs nothing now), the guard goes on
                // undoing what it holds, since a start in flight when the
                // lease ended, which the agent has forgotten, may finish
                // late (a mount whose mount(8) was past its syscall).
                if d.is_some_and(|d| d > monotonic_ms()) {
                    self.fired = false;
                }
                self.deadline_ms = d;
            }
            Order::Hold(u) => *self.undo.entry(u).or_default() += 1,
            Order::Sync => {}
            Order::Drop(u) => {
                if let Some(n) = self.undo.get_mut(&u) {
                    *n -= 1;
                    if *n == 0 {
                        self.undo.remove(&u);
                    }
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.undo.is_empty()
    }

    /// A deadline that had passed already when it came, to a fired guard:
    /// everything is undone (and undone again), so the guard reports it at
    /// once as fired. The agent counts on a report for every deadline told
    /// that passes, and this one would otherwise never have one (a lab
    /// cluster at heartbeat 10 ms waited for it for ever, starting nothing).
    fn passed_on_arrival(&self, order: &Order) -> Option<u64> {
        match order {
            Order::Deadline(Some(d)) if self.fired => Some(*d),
            _ => None,
        }
    }

    /// How long until the guard must act at `now_ms`: before firing, at the
    /// deadline; fired, again and again while anything is held; otherwise
    /// never.
    fn wait(&self, now_ms: u64) -> Option<Duration> {
        match self.deadline_ms {
            Some(d) if !self.fired => Some(Duration::from_millis(d.saturating_sub(now_ms))),
            _ if self.fired && !self.is_empty() => Some(RELEASE_AGAIN),
            _ => None,
        }
    }
}

/// Undoes everything held, in [`Undo`]'s order; logs what failed and how
/// long the whole release took. The holds stay: after a lease ended, the
/// guard undoes the repeatable ones (`again`) until the agent drops them or
/// tells a new deadline (a start under way when the lease ended may finish
/// after the first release), and on the agent's death everything is undone
/// anyway.
pub async fn release_all(nl: &Netlink, held: &Held, who: &str, again: bool) {
    let all: Vec<Undo> = held.undo.keys().filter(|u| !again || u.repeatable()).cloned().collect();
    if all.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let results = undo::release(nl, all).await;
    for r in &results {
        if let Err(e) = &r.result {
            tracing::error!("baton {who}: releasing {:?}: {e} (after {} ms)", r.what, r.took.as_millis());
        }
    }
    if again {
        return;
    }
    tracing::info!(
        "baton {who}: released {} thing(s) in {} ms ({})",
        results.len(),
        started.elapsed().as_millis(),
        phase_times(&results)
    );
}

/// "Addresses 1 ms, Processes 12 ms, ...": each phase's slowest undo, in
/// release order (what `baton-lab release-bench` reads).
fn phase_times(results: &[undo::Undone]) -> String {
    let mut phases: Vec<(baton_core::release::Phase, u128)> = Vec::new();
    for r in results {
        let ms = r.took.as_millis();
        match phases.iter_mut().find(|(p, _)| *p == r.what.phase()) {
            Some((_, worst)) => *worst = (*worst).max(ms),
            None => phases.push((r.what.phase(), ms)),
        }
    }
    phases.iter().map(|(p, ms)| format!("{p:?} {ms} ms")).collect::<Vec<_>>().join(", ")
}

/// May the watchdog be petted now? Only if, were the guard to stop right
/// after, the reset would come before the deadline.
pub fn may_pet(now_ms: u64, deadline_ms: Option<u64>, timeout_ms: u64) -> bool {
    deadline_ms.is_none_or(|d| now_ms + timeout_ms < d)
}

/// A watchdog device (`/dev/watchdog`), or any file standing in for one.
pub struct Watchdog {
    file: std::fs::File,
    timeout_ms: u64,
}

/// `WDIOC_SETTIMEOUT`: `_IOWR('W', 6, int)`.
const WDIOC_SETTIMEOUT: libc::c_ulong = 0xc004_5706;

impl Watchdog {
    /// Opens the device and sets its timeout (a plain file, a test's stand-in,
    /// has none to set).
    pub fn open(path: &Path, timeout: Duration) -> io::Result<Watchdog> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("opening the watchdog {}: {e}", path.display())))?;
        let secs = timeout.as_secs().max(1) as libc::c_int;
        if file.metadata()?.file_type().is_char_device() {
            // SAFETY: ioctl on the watchdog fd we own with a pointer to an int.
            if unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&file), WDIOC_SETTIMEOUT, &secs) } != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(e.kind(), format!("setting {}'s timeout to {secs} s: {e}", path.display())));
            }
        }
        Ok(Watchdog { file, timeout_ms: timeout.as_millis() as u64 })
    }

    fn pet(&mut self) {
        if let Err(e) = self.file.write_all(b"p") {
            tracing::warn!("baton guard: petting the watchdog: {e}");
        }
    }

    /// The magic close: the guard is leaving with nothing held.
    fn disarm(&mut self) {
        let _ = self.file.write_all(b"V");
    }
}

/// Takes the node's guard lock: one guard at a time per node. A guard
/// whose agent died may still be releasing what that agent ran; the next
/// agent's guard waits for it, so that nothing the new agent claims about
/// its sets (a release done, a start to make) can be overtaken by the old
/// release. The lock lives as long as the returned file.
pub fn lock(path: &Path) -> io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("opening the guard lock {}: {e}", path.display())))?;
    // SAFETY: flock on a file descriptor we own; it blocks until granted.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("locking {}: {e}", path.display())));
    }
    Ok(file)
}

/// The lease ended: release everything, then say so, naming the deadline
/// (once per deadline).
async fn fire(nl: &Netlink, held: &mut Held, stdout: &mut tokio::io::Stdout) -> io::Result<()> {
    tracing::warn!("baton guard: the lease ended; releasing everything this node ran");
    release_all(nl, held, "guard", false).await;
    held.fired = true;
    let deadline = held.deadline_ms.expect("only a deadline fires");
    stdout.write_all(format!("fired {deadline}\n").as_bytes()).await?;
    stdout.flush().await
}

/// How often a fired guard undoes again what it still holds.
const RELEASE_AGAIN: Duration = Duration::from_millis(100);

/// What the guard's reader thread saw in this node's slot of a fence disk.
enum Read {
    Clear,
    Pill { from: String },
}

/// Reads this node's slot of a fence disk: once now (a node that cannot
/// read it must not run anything, and a pill left there is cleared after
/// `msgwait` — ARCHITECTURE.md, "The shared disk as the fence device"),
/// then every `watch` on a thread of its own, so that a read stuck in the
/// kernel stalls nothing but the reads. Returns the disk's header, the
/// reads as they come, and whether a pill was found (and waited out).
type Watched = (Header, tokio::sync::mpsc::UnboundedReceiver<Read>, bool);

fn watch_slot(path: &Path, node: &str) -> io::Result<Watched> {
    let disk = Disk::open(path)?;
    let mut slot = disk.slot(node)?;
    let pill = slot.message == Message::Off;
    if pill {
        // The fencer counts this node off `msgwait` after writing the pill:
        // the node stays down until then — and `watch` more, and until no
        // new pill came meanwhile — so that every fence is agreed against
        // the incarnation it was meant for (the simulator: a node back
        // sooner was fenced again and again).
        loop {
            tracing::warn!(
                "baton guard: {} fenced this node through {}; waiting msgwait ({:?}), then clearing the pill",
                slot.from,
                path.display(),
                disk.header.msgwait
            );
            std::thread::sleep(disk.header.msgwait + disk.header.watch);
            let again = disk.slot(node)?;
            if again.nonce == slot.nonce {
                break;
            }
            slot = again;
        }
        disk.write(node, Message::Clear, node)?;
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (header, node) = (disk.header.clone(), node.to_string());
    std::thread::Builder::new().name("fence-disk".into()).spawn(move || {
        let mut failing = false;
        loop {
            std::thread::sleep(disk.header.watch);
            let read = match disk.slot(&node) {
                Ok(slot) if slot.message == Message::Off => Read::Pill { from: slot.from },
                Ok(_) => Read::Clear,
                Err(e) => {
                    if !failing {
                        tracing::error!("baton guard: {e}");
                    }
                    failing = true;
                    continue;
                }
            };
            failing = false;
            if tx.send(read).is_err() {
                return;
            }
        }
    })?;
    Ok((header, rx, pill))
}

/// A pill, or a fence disk unread for too long: the node goes down as if
/// powered off — its agent killed first, so that nothing starts again, then
/// everything it held undone.
async fn take_down(nl: &Netlink, held: &Held, agent: libc::pid_t, why: &str) {
    tracing::error!("baton guard: {why}; killing the agent and releasing everything this node ran");
    // SAFETY: getppid and kill have no memory preconditions; the parent is
    // checked to be the agent still, not whoever adopted this guard.
    if unsafe { libc::getppid() } == agent {
        unsafe { libc::kill(agent, libc::SIGKILL) };
    }
    release_all(nl, held, "guard", held.fired).await;
}

/// The agent's orders: stdin, read through epoll where it is a pipe (the
/// agent starts the guard with one), so that an order wakes the guard's one
/// thread alone; anything else (a terminal, a file) through tokio's blocking
/// threads, which woke a second thread for every order.
fn orders() -> io::Result<Box<dyn tokio::io::AsyncRead + Unpin + Send>> {
    use std::os::fd::AsFd;
    let stdin = io::stdin().as_fd().try_clone_to_owned()?;
    Ok(match tokio::net::unix::pipe::Receiver::from_owned_fd(stdin) {
        Ok(pipe) => Box::new(pipe),
        Err(_) => Box::new(tokio::io::stdin()),
    })
}

/// The guard's main loop (`baton-guard`), until the agent closes stdin. It
/// says `ready` once it holds the node's guard lock (and, with a fence
/// disk, has read this node's slot; `ready pill` if it found a pill there).
pub async fn run(
    mut watchdog: Option<Watchdog>,
    lock_file: Option<&Path>,
    disk: Option<(&Path, &str)>,
) -> io::Result<()> {
    let nl = Netlink::connect()?;
    let _lock = lock_file.map(lock).transpose()?;
    // SAFETY: getppid has no preconditions.
    let agent = unsafe { libc::getppid() };
    let (disk_header, mut reads, pill) = match disk {
        Some((path, node)) => {
            let (header, reads, pill) = watch_slot(path, node)?;
            (Some(header), Some(reads), pill)
        }
        None => (None, None, false),
    };
    let mut last_read_ms = monotonic_ms();
    let disk_fresh = |last_read_ms: u64| {
        disk_header.as_ref().is_none_or(|h| monotonic_ms() - last_read_ms < h.unread_limit().as_millis() as u64)
    };
    let mut disk_checks = tokio::time::interval(disk_header.as_ref().map_or(Duration::from_secs(3600), |h| h.watch));
    let mut lines = BufReader::new(orders()?).lines();
    let mut stdout = tokio::io::stdout();
    // "ready pill": this node was fenced through the disk, and every
    // earlier agent of it is off (the agent says so before it joins).
    stdout.write_all(if pill { b"ready pill\n" } else { b"ready\n" }).await?;
    stdout.flush().await?;
    let mut held = Held::default();
    let pet_every = watchdog.as_ref().map_or(Duration::from_secs(3600), |w| Duration::from_millis(w.timeout_ms / 4));
    let mut pets = tokio::time::interval(pet_every);
    loop {
        let wait = held.wait(monotonic_ms());
        let deadline = async {
            match wait {
                Some(w) => tokio::time::sleep(w).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) => {
                    // A deadline that has passed fires before any later
                    // order applies: the agent counts on a firing once its
                    // clock is past the deadline it told.
                    if !held.fired && held.deadline_ms.is_some_and(|d| monotonic_ms() >= d) {
                        fire(&nl, &mut held, &mut stdout).await?;
                    }
                    let answer = match held.update(&line) {
                        Ok(Order::Sync) => Some(held.synced()),
                        Ok(order) => held.passed_on_arrival(&order).map(|d| format!("fired {d}")),
                        Err(e) => {
                            tracing::error!("{e}");
                            None
                        }
                    };
                    if let Some(answer) = answer {
                        stdout.write_all(format!("{answer}\n").as_bytes()).await?;
                        stdout.flush().await?;
                    }
                }
                None => {
                    // The agent is gone, whatever the deadline says.
                    if !held.is_empty() {
                        tracing::warn!("baton guard: the agent died; releasing everything it ran");
                    }
                    // Fired, the stop programs, units and exports were
                    // undone once already, and the set may run elsewhere
                    // by now: only the repeatable undos run again (the
                    // soak caught a stop command run beside the owner).
                    release_all(&nl, &held, "guard", held.fired).await;
                    if let Some(w) = watchdog.as_mut() {
                        w.disarm();
                    }
                    return Ok(());
                }
            },
            () = deadline => {
                if held.fired {
                    release_all(&nl, &held, "guard", true).await;
                } else {
                    fire(&nl, &mut held, &mut stdout).await?;
                }
            }
            _ = pets.tick() => {
                if let Some(w) = watchdog.as_mut() {
                    // Fired, everything is released (and released again
                    // while anything is held): a reset would add nothing.
                    // A fence disk unread lately: let the machine reset.
                    let pet = held.fired || may_pet(monotonic_ms(), held.deadline_ms, w.timeout_ms);
                    if pet && disk_fresh(last_read_ms) {
                        w.pet();
                    }
                }
            }
            Some(read) = async { reads.as_mut()?.recv().await } => match read {
                Read::Clear => last_read_ms = monotonic_ms(),
                Read::Pill { from } => {
                    take_down(&nl, &held, agent, &format!("{from} fenced this node through the fence disk")).await;
                    return Ok(());
                }
            },
            _ = disk_checks.tick(), if disk_header.is_some() => {
                if !disk_fresh(last_read_ms) {
                    take_down(&nl, &held, agent, "the fence disk could not be read for msgwait/2").await;
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(o: Order) -> String {
        serde_json::to_string(&o).unwrap()
    }

    #[test]
    fn lines_update_what_is_held() {
        let ip = Undo::Address { ip: "10.0.0.100".parse().unwrap() };
        let cg = Undo::Cgroup { path: "/sys/fs/cgroup/baton-a/set-web".into() };
        let mut h = Held::default();
        for o in [
            Order::Deadline(Some(1234)),
            Order::Hold(ip.clone()),
            Order::Hold(cg.clone()),
            Order::Hold(cg.clone()),
            Order::Drop(cg.clone()),
            Order::Drop(ip.clone()),
        ] {
            h.update(&line(o)).unwrap();
        }
        assert_eq!(h.deadline_ms, Some(1234));
        assert_eq!(h.undo.keys().collect::<Vec<_>>(), [&cg], "held twice, dropped once");
        h.update(&line(Order::Deadline(None))).unwrap();
        assert_eq!(h.deadline_ms, None);
        assert_eq!(h.update(&line(Order::Sync)), Ok(Order::Sync));
        assert_eq!(h.synced(), "synced");
        h.apply(Order::Deadline(Some(77)));
        h.fired = true;
        assert_eq!(h.synced(), "synced fired 77", "a new program hears of a firing it may have missed");
        assert!(h.update("hold ip 10.0.0.1").is_err(), "the old text protocol is refused");
        assert!(h.update(r#"{"hold":{"kind":"bogus"}}"#).is_err());
        assert!(h.update("rm -rf /").is_err());
    }

    #[test]
    fn a_fired_guard_undoes_again_until_a_deadline_to_come() {
        let cg = Undo::Cgroup { path: "/sys/fs/cgroup/baton-a/set-web".into() };
        let mut h = Held::default();
        h.apply(Order::Hold(cg));
        assert_eq!(h.wait(5_000), None, "no deadline: nothing to do");
        h.apply(Order::Deadline(Some(1)));
        assert_eq!(h.wait(5_000), Some(Duration::ZERO), "past: fire now");
        h.fired = true;
        assert_eq!(h.wait(5_000), Some(RELEASE_AGAIN));
        h.apply(Order::Deadline(None));
        assert!(h.fired, "the agent stopped everything, but a late start may still finish");
        assert_eq!(h.wait(5_000), Some(RELEASE_AGAIN));
        let passed = Order::Deadline(Some(2));
        h.apply(passed.clone());
        assert!(h.fired, "a deadline already passed keeps the guard fired");
        assert_eq!(h.passed_on_arrival(&passed), Some(2), "and is reported at once, as if fired");
        let next = Order::Deadline(Some(monotonic_ms() + 60_000));
        h.apply(next.clone());
        assert!(!h.fired, "a new lease: the node may run things again");
        assert_eq!(h.passed_on_arrival(&next), None);
        assert!(h.wait(monotonic_ms()).is_some_and(|w| w > RELEASE_AGAIN));
    }

    #[test]
    fn the_watchdog_is_petted_only_while_a_reset_would_come_before_the_deadline() {
        assert!(may_pet(1_000, None, 5_000), "nothing to guard: keep the machine up");
        assert!(may_pet(1_000, Some(6_001), 5_000));
        assert!(!may_pet(1_000, Some(6_000), 5_000), "a stop now would reset exactly at the deadline");
        assert!(!may_pet(9_000, Some(6_000), 5_000), "past the deadline");
    }

    #[test]
    fn a_stand_in_watchdog_records_pets_and_the_magic_close() {
        let path = std::env::temp_dir().join(format!("baton-wd-{}", std::process::id()));
        std::fs::write(&path, "").unwrap();
        let mut w = Watchdog::open(&path, Duration::from_secs(5)).unwrap();
        w.pet();
        w.pet();
        w.disarm();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "ppV");
        let _ = std::fs::remove_file(&path);
    }
}
