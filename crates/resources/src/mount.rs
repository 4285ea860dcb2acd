//! The `mount` resource: a real filesystem on shared storage. Start: refuse
//! a device already mounted on this host, fsck it (a failing fsck fails the
//! start, with its output), mount it with its options. Stop: the processes
//! using it get SIGTERM, then SIGKILL after a grace period (as the seeds'
//! `release` did with fuser), then it is unmounted.
//!
//! The guard's way out is [`cut_off`]: users killed at once, the filesystem
//! shut down so that not one more write reaches the shared device (ext4,
//! xfs and f2fs share the ioctl; measured on Linux 6.18: 3 ms, and the
//! device's bytes no longer change while a writer keeps trying), then
//! unmounted. Setting the block device read-only does not do this: Linux
//! only warns about writes to a read-only device from a filesystem already
//! mounted, and lets them through (measured on the same kernel).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroup::Cgroup;
use crate::program::Program;
use crate::resource::{Done, Resource};
use crate::undo::Undo;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    pub device: String,
    pub path: String,
    pub fstype: String,
    pub options: String,
}

/// (source, mount point) of every mount of this host's mount namespace.
fn mounts() -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("reading mountinfo: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let point = fields.get(4)?;
            let dash = fields.iter().position(|f| *f == "-")?;
            Some((unescape(fields.get(dash + 2)?), unescape(point)))
        })
        .collect())
}

/// mountinfo writes spaces and backslashes as octal escapes.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

fn canonical(p: &str) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p))
}

/// Where `device` is mounted on this host, if it is.
pub fn mounted_at(device: &str) -> Result<Option<String>, String> {
    let dev = canonical(device);
    Ok(mounts()?.into_iter().find(|(src, _)| canonical(src) == dev).map(|(_, point)| point))
}

pub fn is_mounted(spec: &MountSpec) -> Result<bool, String> {
    let point = canonical(&spec.path);
    Ok(mounts()?.iter().any(|(src, p)| canonical(p) == point && canonical(src) == canonical(&spec.device)))
}

async fn program(argv: &[&str], cgroup: Option<&Cgroup>, limit: Duration) -> Result<(i32, String), String> {
    Program::new(argv).limit(limit).cgroup(cgroup).run().await.map(|r| (r.code, r.text))
}

/// Checks and mounts the filesystem; fsck and mount run in `cgroup` (the
/// set's), so a guard that kills the set's processes before it unmounts
/// also waits out a mount still under way when the agent died.
pub async fn start(spec: &MountSpec, cgroup: Option<&Cgroup>, limit: Duration) -> Result<(), String> {
    match mounted_at(&spec.device)? {
        Some(point) if canonical(&point) == canonical(&spec.path) => return Ok(()),
        Some(point) => {
            return Err(format!(
                "{} is already mounted at {point} on this host; refusing to mount it twice",
                spec.device
            ))
        }
        None => {}
    }
    // fsck exit codes: 0 clean, 1 errors corrected; anything else is failure.
    let (code, text) = program(&["fsck", "-a", "-T", "-t", &spec.fstype, &spec.device], cgroup, limit).await?;
    if code > 1 {
        return Err(format!("fsck of {} failed (exit {code}): {text}", spec.device));
    }
    std::fs::create_dir_all(&spec.path).map_err(|e| format!("creating {}: {e}", spec.path))?;
    let (code, text) =
        program(&["mount", "-t", &spec.fstype, "-o", &spec.options, &spec.device, &spec.path], cgroup, limit).await?;
    if code != 0 {
        return Err(format!("mounting {} on {} failed (exit {code}): {text}", spec.device, spec.path));
    }
    Ok(())
}

/// Pids whose working directory, root, executable or an open file is under
/// `point` (what `fuser -m` finds), never this process, and only processes
/// of this mount namespace: the same path elsewhere is another mount.
pub fn users(point: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let my_ns = std::fs::read_link("/proc/self/ns/mnt").ok();
    let under = |p: PathBuf| p == point || p.starts_with(point);
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok() == my_ns)
        .filter(|pid| {
            let base = PathBuf::from(format!("/proc/{pid}"));
            let links = ["cwd", "root", "exe"].into_iter().filter_map(|l| std::fs::read_link(base.join(l)).ok());
            let fds = std::fs::read_dir(base.join("fd"))
                .into_iter()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok());
            links.chain(fds).any(under)
        })
        .collect()
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) of a process found using the filesystem being released.
    unsafe { libc::kill(pid, sig) };
}

pub async fn stop(spec: &MountSpec, grace: Duration) -> Result<(), String> {
    if !is_mounted(spec)? {
        return Ok(());
    }
    let point = canonical(&spec.path);
    let users_now = users(&point);
    for &pid in &users_now {
        signal(pid, libc::SIGTERM);
    }
    let start = std::time::Instant::now();
    while !users(&point).is_empty() && start.elapsed() < grace {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in users(&point) {
        signal(pid, libc::SIGKILL);
    }
    let c = CString::new(point.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    for _ in 0..50 {
        // SAFETY: umount2 with a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(format!("unmounting {}: {e}", spec.path));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("unmounting {}: still busy after killing its users", spec.path))
}

/// The `mount` resource.
pub struct Mount {
    pub spec: MountSpec,
    /// The set's cgroup, where its start's programs run.
    pub cgroup: Option<Cgroup>,
}

impl Resource for Mount {
    fn undo(&self) -> Vec<Undo> {
        vec![Undo::Mount { device: self.spec.device.clone(), path: self.spec.path.clone() }]
    }

    fn start(&self, limit: Duration) -> Done<'_> {
        Box::pin(start(&self.spec, self.cgroup.as_ref(), limit))
    }

    /// A quarter of the limit for the users to leave after SIGTERM.
    fn stop(&self, limit: Duration) -> Done<'_> {
        Box::pin(stop(&self.spec, (limit / 4).max(Duration::from_secs(1))))
    }

    fn monitor(&self, _: Duration) -> Done<'_> {
        Box::pin(async move {
            if is_mounted(&self.spec)? {
                Ok(())
            } else {
                Err(format!("{} is not mounted on {}", self.spec.device, self.spec.path))
            }
        })
    }
}

/// Detaches the mount at `path` at once (a bind mount; never a filesystem
/// that must be shut down first).
pub fn detach(path: &str) -> Result<(), String> {
    let c = CString::new(path).map_err(|e| e.to_string())?;
    // SAFETY: umount2 with a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    match std::io::Error::last_os_error() {
        // Not mounted (any more): nothing to undo.
        e if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        e => Err(format!("detaching {path}: {e}")),
    }
}

/// `FS_IOC_SHUTDOWN` (ext4's `EXT4_IOC_SHUTDOWN`, xfs's `XFS_IOC_GOINGDOWN`):
/// `_IOR('X', 125, __u32)`.
const FS_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587d;
/// Shut down without flushing the journal: nothing more is written.
const SHUTDOWN_NOLOGFLUSH: u32 = 2;

/// The guard's release of a mount: every user in this mount namespace
/// SIGKILLed, the filesystem shut down (no more writes reach the device),
/// then unmounted — detached if something still holds it. The next owner
/// finds the filesystem as after a crash: fsck and the journal make it whole.
pub async fn cut_off(device: &str, path: &str, limit: Duration) -> Result<(), String> {
    let spec = MountSpec { device: device.into(), path: path.into(), fstype: String::new(), options: String::new() };
    if !is_mounted(&spec)? {
        return Ok(());
    }
    let point = canonical(path);
    for pid in users(&point) {
        signal(pid, libc::SIGKILL);
    }
    let shut = shutdown(&point);
    let c = CString::new(point.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    loop {
        // SAFETY: umount2 with a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) || start.elapsed() >= limit / 2 {
            // Still busy (a user in another state, a bind mount): detach it;
            // the filesystem is shut down, so nothing more reaches the disk.
            // SAFETY: as above.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(format!("unmounting {path}: {e}"));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shut.map_err(|e| format!("{path} unmounted, but shutting its filesystem down failed first: {e}"))
}

/// Shuts the filesystem mounted at `point` down: no further write reaches
/// its device.
fn shutdown(point: &Path) -> std::io::Result<()> {
    let dir = std::fs::File::open(point)?;
    let flags = SHUTDOWN_NOLOGFLUSH;
    // SAFETY: ioctl on a directory fd we own, with a pointer to a u32.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&dir), FS_IOC_SHUTDOWN, &flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/srv/my\\040data"), "/srv/my data");
        assert!(mounts().unwrap().iter().any(|(_, p)| p == "/"), "the root is mounted");
    }
}
