//! `lab up --machines`: every node a whole machine — a systemd-nspawn
//! container booted from one shared Debian root (built once with
//! debootstrap and cached in /var/cache/baton-lab), through an overlay of
//! its own in the lab directory (so what the machine writes survives its
//! power-off, like a disk), in the node's network namespace. baton is
//! installed from the package the repository builds (`dpkg -i`), configured
//! in /etc/baton and started by `systemctl enable --now baton`, as on a
//! real machine. Its control socket is reached from the host through the
//! overlay (`DIR/NODE/baton.sock` links to it). `lab up --pacemaker` boots
//! the same machines from a second root, with Pacemaker instead of baton.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use baton_resources::cgroup::Cgroup;

use super::net::Lab;

/// Where the shared root lives, built once (the name changes with what
/// it holds).
pub const ROOT: &str = "/var/cache/baton-lab/bookworm-2";
/// What the root holds besides Debian's minimal base: systemd, and what
/// baton's package depends on.
const PACKAGES: &str = "systemd,systemd-sysv,dbus,iproute2,procps";
const MIRROR: &str = "http://deb.debian.org/debian";

pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The shared Debian root: built with debootstrap the first time (about
/// 250 MB, half a minute from Debian's mirror), then reused.
pub fn root() -> Result<PathBuf, String> {
    let root = PathBuf::from(ROOT);
    if root.join("lib/systemd/systemd").exists() {
        return Ok(root);
    }
    for (tool, package) in [("debootstrap", "debootstrap"), ("systemd-nspawn", "systemd-container")] {
        if run(Command::new("sh").args(["-c", &format!("command -v {tool}")]), tool).is_err() {
            return Err(format!("the machine lab needs {tool}: apt-get install {package} (scripts/test-deps does)"));
        }
    }
    build_root(&root, |tmp| {
        std::fs::create_dir_all(tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        run(
            Command::new("debootstrap")
                .args(["--variant=minbase", &format!("--include={PACKAGES}"), "bookworm"])
                .arg(tmp)
                .arg(MIRROR),
            "debootstrap of Debian bookworm",
        )
        .map(|_| ())
    })
}

/// Builds a cached root at `root` through `build` in a directory of its
/// own beside it, then renames it into place: a build that fails leaves
/// nothing, and of two labs building at once the first one's root is kept.
pub fn build_root(root: &Path, build: impl FnOnce(&Path) -> Result<(), String>) -> Result<PathBuf, String> {
    let tmp = root.with_extension(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = build(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if std::fs::rename(&tmp, root).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(root.to_path_buf())
}

/// Where a host without systemd mounts the name=systemd hierarchy, which a
/// machine's systemd tracks its units in.
const SYSTEMD_V1: &str = "/sys/fs/cgroup/systemd";

/// `node`'s cgroup in the name=systemd hierarchy, if the host has one.
fn systemd_v1(prefix: &str, node: &str) -> Option<Cgroup> {
    let root = Path::new(SYSTEMD_V1);
    root.join("cgroup.procs").exists().then(|| Cgroup(root.join(format!("baton-{prefix}{node}"))))
}

/// Removes the lab's cgroups in the name=systemd hierarchy, deepest first
/// (their processes are gone with the lab's namespaces).
pub fn remove_systemd_v1(prefix: &str) {
    fn remove(dir: &Path) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove(&entry.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    let ours = format!("baton-{prefix}");
    for entry in std::fs::read_dir(SYSTEMD_V1).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&ours) {
            remove(&entry.path());
        }
    }
}

/// The machine's PID 1: the child of its systemd-nspawn once it runs
/// systemd (before, it is nspawn's own fork).
fn init_of(nspawn: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children")).ok()?;
    let pid: u32 = children.split_whitespace().next()?.parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "systemd").then_some(pid)
}

impl Lab {
    fn machine_dir(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.machine"))
    }

    /// The machine's root as the host sees it.
    pub fn machine_root(&self, node: &str) -> PathBuf {
        self.machine_dir(node).join("merged")
    }

    /// PID 1 of `node`'s machine, while it runs.
    pub fn machine_leader(&self, node: &str) -> Result<u32, String> {
        let nspawn = *self.machines.get(node).ok_or_else(|| format!("{node} is not a machine of this lab"))?;
        init_of(nspawn).ok_or_else(|| format!("{node}'s machine is not running"))
    }

    /// A command run inside `node`'s machine (every namespace of its PID 1).
    pub fn in_machine(&self, node: &str) -> Result<Command, String> {
        let leader = self.machine_leader(node)?;
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &leader.to_string(), "-a", "--"]);
        Ok(cmd)
    }

    /// Boots `node` as a machine (again, after a power-off: its overlay
    /// keeps what it wrote) and starts baton there with systemctl; the
    /// package is installed and configured at the first boot. A Pacemaker
    /// lab's machine boots from the Pacemaker root with the cluster's files
    /// (see [`crate::pacemaker`]), and its systemd starts corosync and
    /// pacemaker.
    pub fn boot_machine(&mut self, node: &str) -> Result<(), String> {
        let first = !self.machine_dir(node).exists();
        let merged = self.mount_root(node)?;
        if self.pacemaker.is_some() {
            // Pacemaker's machines: systemd starts corosync and pacemaker.
            if first {
                self.furnish_pacemaker(node, &merged)?;
            }
            self.spawn_machine(node, &merged)?;
            self.wait_booted(node)?;
            return self.pacemaker_started(node);
        }
        let deb = self.deb.clone().ok_or("not a machine lab")?;
        if first {
            self.furnish(node, &merged, &deb)?;
        }
        self.spawn_machine(node, &merged)?;
        self.wait_booted(node)?;
        if first {
            run(self.in_machine(node)?.args(["dpkg", "-i", "/var/tmp/baton.deb"]), &format!("dpkg -i on {node}"))?;
            run(self.in_machine(node)?.args(["systemctl", "enable", "baton"]), &format!("enabling baton on {node}"))?;
        }
        // Type=notify: this returns once the agent is ready (or failed).
        run(
            self.in_machine(node)?.args(["timeout", "90", "systemctl", "start", "baton"]),
            &format!("systemctl start baton on {node}"),
        )?;
        Ok(())
    }

    /// The machine's root: the shared root under an overlay of its own
    /// (mounted once; a power-off leaves it mounted).
    fn mount_root(&self, node: &str) -> Result<PathBuf, String> {
        let root = if self.pacemaker.is_some() { super::pacemaker::root()? } else { root()? };
        let dir = self.machine_dir(node);
        for sub in ["upper", "work", "merged"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let merged = self.machine_root(node);
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        if !mounts.lines().any(|l| l.split_whitespace().nth(1) == merged.to_str()) {
            let options = format!(
                "lowerdir={},upperdir={},workdir={}",
                root.display(),
                dir.join("upper").display(),
                dir.join("work").display()
            );
            run(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &options]).arg(&merged), "the overlay")?;
        }
        Ok(merged)
    }

    /// Starts systemd-nspawn for `node` and waits until its systemd runs.
    fn spawn_machine(&mut self, node: &str, merged: &Path) -> Result<(), String> {
        // A cgroup of its own in the unified and in the name=systemd
        // hierarchy: nspawn makes the cgroup it starts in the machine's root,
        // and machines sharing one would share every unit's cgroup.
        let placements = [Some(self.cgroup(node)?), systemd_v1(&self.prefix, node)]
            .into_iter()
            .flatten()
            .map(|cg| cg.placement().map_err(|e| format!("{node}'s machine cgroup: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let console = std::fs::File::create(self.dir.join(format!("{node}.console")))
            .map_err(|e| format!("creating {node}'s console log: {e}"))?;
        let mut nspawn = Command::new("systemd-nspawn");
        // SAFETY: the closure only calls write(2), which is async-signal-safe.
        unsafe {
            nspawn.pre_exec(move || placements.iter().try_for_each(|p| p.enter()));
        }
        let child = nspawn
            .arg("-D")
            .arg(merged)
            .args(["--register=no", "--keep-unit", "--console=passive", "--quiet", "-M", node])
            // What root has on a real machine and a container lacks by
            // default: addresses, raw frames (ARP), locked memory, real time.
            .arg("--capability=CAP_NET_ADMIN,CAP_NET_RAW,CAP_IPC_LOCK,CAP_SYS_NICE")
            .arg(format!("--network-namespace-path=/run/netns/{}", self.ns(node)?))
            .arg(format!("--bind-ro={}", crate::lab_exe().display()))
            .arg("-b")
            .stdin(Stdio::null())
            .stdout(console.try_clone().map_err(|e| e.to_string())?)
            .stderr(console)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {node}'s machine: {e}"))?;
        self.machines.insert(node.to_string(), child.id());
        self.save()?;
        if !super::wait_until(Duration::from_secs(30), || self.machine_leader(node).is_ok()) {
            return Err(format!("{node}'s machine did not start; see {node}.console in {}", self.dir.display()));
        }
        Ok(())
    }

    /// Waits until systemd says the machine has booted ("degraded": a unit
    /// of the minimal root failed, booted too); until its bus is up it says
    /// nothing.
    fn wait_booted(&self, node: &str) -> Result<(), String> {
        let mut state = String::new();
        let booted = super::wait_until(Duration::from_secs(60), || {
            let out = self
                .in_machine(node)
                .and_then(|mut c| c.args(["systemctl", "is-system-running"]).output().map_err(|e| e.to_string()));
            state = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
            state == "running" || state == "degraded"
        });
        if booted {
            Ok(())
        } else {
            Err(format!("{node}'s machine is {state:?} after 60 s; see {node}.console in {}", self.dir.display()))
        }
    }

    /// The files a new machine gets before its first boot: its package, the
    /// lab's machine files, its configuration and secrets, and the host's
    /// link to its socket.
    fn furnish(&self, node: &str, merged: &Path, deb: &Path) -> Result<(), String> {
        let copy = |from: &Path, to: &Path| {
            std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("copying {} into {node}: {e}", from.display()))
        };
        copy(deb, &merged.join("var/tmp/baton.deb"))?;
        if let Some(files) = &self.machine_files {
            run(
                Command::new("cp").arg("-a").arg(files.join(".")).arg(merged),
                &format!("laying {} over {node}", files.display()),
            )?;
        }
        let etc = merged.join("etc/baton");
        std::fs::create_dir_all(&etc).map_err(|e| format!("creating {}: {e}", etc.display()))?;
        copy(&self.dir.join("cluster.toml"), &etc.join("cluster.toml"))?;
        for secret in ["secret", "http-token", "fence.pw"] {
            if self.dir.join(secret).exists() {
                copy(&self.dir.join(secret), &etc.join(secret))?;
            }
        }
        if self.fencing.is_some() {
            let agent = merged.join(super::power::AGENT.trim_start_matches('/'));
            let made = std::fs::create_dir_all(agent.parent().expect("a path in a directory"))
                .and_then(|()| std::fs::write(&agent, super::power::script(&crate::lab_exe())))
                .and_then(|()| std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)));
            made.map_err(|e| format!("writing {node}'s fence agent: {e}"))?;
        }
        let state = self.dir.join(node);
        std::fs::create_dir_all(&state).map_err(|e| format!("creating {}: {e}", state.display()))?;
        std::os::unix::fs::symlink(merged.join("var/lib/baton/baton.sock"), state.join("baton.sock"))
            .map_err(|e| format!("linking {node}'s socket: {e}"))
    }
}
