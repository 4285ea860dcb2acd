//! cgroup v2: one cgroup per set, so that every process a set starts — its
//! programs, the daemons its OCF and LSB agents fork, the children of its
//! hooks — can be found and killed at once, by the agent or by the guard,
//! whatever it did to escape (`setsid`, a double fork).
//!
//! A process is placed in its cgroup between `fork` and `exec` (see
//! [`Placement`]), so there is no instant at which it runs outside it. The
//! cgroups of a node live under its base: the agent's own cgroup when it
//! has one of its own (systemd's `Delegate=yes` gives `baton.service` one),
//! else `baton-NODE` under the hierarchy's root. No controller is enabled:
//! only `cgroup.procs`, `cgroup.events` and `cgroup.kill` are used.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The mount point of the cgroup2 hierarchy, from this process's mountinfo.
pub fn hierarchy() -> io::Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    hierarchy_in(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no cgroup2 filesystem is mounted (cgroup v2 is needed to contain each set's processes; \
             mount one, e.g. `mount -t cgroup2 none /sys/fs/cgroup`)",
        )
    })
}

fn hierarchy_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        (fields.get(dash + 1) == Some(&"cgroup2")).then(|| PathBuf::from(fields[4]))
    })
}

/// This process's cgroup in the v2 hierarchy ("/" for the root).
fn own() -> io::Result<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    own_in(&text).ok_or_else(|| io::Error::other("/proc/self/cgroup has no cgroup v2 line (0::)"))
}

fn own_in(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_string)
}

/// Where a node's set cgroups live: its agent's own cgroup, or `baton-NODE`
/// under the root when the agent runs in the root cgroup.
pub fn base(node: &str) -> io::Result<PathBuf> {
    let root = hierarchy()?;
    let own = own()?;
    let base = if own == "/" { root.join(format!("baton-{node}")) } else { root.join(own.trim_start_matches('/')) };
    std::fs::create_dir_all(&base)
        .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", base.display())))?;
    // cgroup.kill appeared in Linux 5.14; the guard relies on it.
    let probe = base.join("cgroup.kill");
    if !probe.exists() {
        return Err(io::Error::other(format!("{} is missing: Linux 5.14 or later is needed", probe.display())));
    }
    Ok(base)
}

/// One cgroup, by its directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Cgroup(pub PathBuf);

impl Cgroup {
    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn child(&self, name: &str) -> Cgroup {
        Cgroup(self.0.join(name))
    }

    pub fn create(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.0)
            .map_err(|e| io::Error::new(e.kind(), format!("creating cgroup {}: {e}", self.0.display())))
    }

    /// A way to put a child process into this cgroup before it runs.
    pub fn placement(&self) -> io::Result<Placement> {
        self.create()?;
        let procs = self.0.join("cgroup.procs");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&procs)
            .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", procs.display())))?;
        Ok(Placement(OwnedFd::from(file)))
    }

    /// Does any process live in this cgroup or below it?
    pub fn populated(&self) -> bool {
        match std::fs::read_to_string(self.0.join("cgroup.events")) {
            Ok(text) => text.lines().any(|l| l == "populated 1"),
            Err(_) => false,
        }
    }

    /// Waits, at most `limit`, until no process is left; true if none is.
    /// Looks again after 1 ms, then twice as long each time up to 20 ms: a
    /// program that exits at once is seen gone at once (a planned move
    /// waits for it), a slow one is not looked at a thousand times.
    pub async fn emptied(&self, limit: Duration) -> bool {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        while self.populated() {
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                return false;
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        true
    }

    /// The processes directly in this cgroup.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.0.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILL to every process in this cgroup and below (`cgroup.kill`),
    /// then waits, at most `limit`, until none is left.
    pub async fn kill(&self, limit: Duration) -> io::Result<()> {
        if !self.0.exists() {
            return Ok(());
        }
        std::fs::write(self.0.join("cgroup.kill"), "1")
            .map_err(|e| io::Error::new(e.kind(), format!("killing cgroup {}: {e}", self.0.display())))?;
        if self.emptied(limit).await {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("cgroup {} still has processes {limit:?} after SIGKILL", self.0.display()),
        ))
    }

    /// Kills everything in it, then removes it and every cgroup below it.
    pub async fn remove(&self, limit: Duration) -> io::Result<()> {
        self.kill(limit).await?;
        remove_tree(&self.0)
    }
}

fn remove_tree(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io::Error::new(e.kind(), format!("removing cgroup {}: {e}", dir.display())))
        }
        _ => Ok(()),
    }
}

/// An open `cgroup.procs` (close-on-exec): a child writes `0` to it between
/// fork and exec, which moves the child itself.
#[derive(Debug)]
pub struct Placement(OwnedFd);

impl Placement {
    /// Moves the calling process into the cgroup. Only async-signal-safe
    /// calls: it runs in the child between fork and exec.
    pub fn enter(&self) -> io::Result<()> {
        // SAFETY: write(2) of two bytes from a static buffer to an fd we own.
        let n = unsafe { libc::write(self.0.as_raw_fd(), b"0\n".as_ptr().cast(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Arranges for `cmd`'s child to enter the cgroup before it runs.
    pub fn apply(self, cmd: &mut tokio::process::Command) {
        // SAFETY: the closure only calls write(2), which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || self.enter());
        }
    }
}

/// A name usable as one cgroup directory: what a set or resource is called,
/// with anything but letters, digits, '-', '_' and '.' replaced.
pub fn dir_name(name: &str) -> String {
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    // "cgroup." names are the kernel's own files.
    if clean.starts_with("cgroup.") || clean.starts_with('.') || clean.is_empty() {
        format!("x{clean}")
    } else {
        clean
    }
}

/// Is `path` a usable cgroup2 directory we may write to?
pub fn writable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.join("cgroup.procs").as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: access(2) with a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hierarchy_and_own_cgroup_are_read_from_proc() {
        let info = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                    32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n";
        assert_eq!(hierarchy_in(info), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(hierarchy_in("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu"), None);
        assert_eq!(
            own_in("4:memory:/x\n0::/system.slice/baton.service\n").as_deref(),
            Some("/system.slice/baton.service")
        );
        assert_eq!(own_in("4:memory:/x\n"), None);
    }

    #[test]
    fn names_become_safe_directory_names() {
        assert_eq!(dir_name("web"), "web");
        assert_eq!(dir_name("a/b c"), "a_b_c");
        assert_eq!(dir_name("cgroup.procs"), "xcgroup.procs");
        assert_eq!(dir_name(".."), "x..");
    }
}
