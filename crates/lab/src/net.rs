//! The lab's namespaces, links, config and agents. Node `i` has address
//! `10.88.L.(i+1)/24` on link `L`; the client is `10.88.0.250`; the lab's set
//! `web` serves `10.88.0.100`. Bridges live in the namespace `btnl-sw`.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use baton_resources::cgroup::{self, Cgroup};
use serde::{Deserialize, Serialize};

use super::{node_status, wait_until, UpArgs};

/// The default prefix of the lab's namespace names.
pub const PREFIX: &str = "btnl-";
/// `lab up --spare`: the cluster's file with the spare node in it.
pub const SPARE_CONFIG: &str = "cluster.spare.toml";
pub const VIP: &str = "10.88.0.100";
/// The remote witness's address, and the router's on either side of it.
const REMOTE_WITNESS: &str = "10.89.0.2";
const ROUTER_WITNESS_SIDE: &str = "10.89.0.1";
const ROUTER_LINK_SIDE: &str = "10.88.0.254";
pub(crate) const NAMES: [&str; 9] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"];

#[derive(Serialize, Deserialize, Debug)]
pub struct Lab {
    pub dir: PathBuf,
    /// `lab up --fencing`: "lease" or "required" (the `[fencing] mode` of
    /// power devices), "power" (power devices, mode lease) or "disk" (a
    /// shared fence disk, mode lease).
    #[serde(default)]
    pub fencing: Option<String>,
    /// The config names an HTTP API token file (`DIR/http-token`).
    #[serde(default)]
    pub http_token: bool,
    /// keepalived's advert_int when the lab runs keepalived instead of baton.
    #[serde(default)]
    pub keepalived: Option<String>,
    /// `lab up --address-only`: `web` holds the address alone; the web
    /// server runs on every node.
    #[serde(default)]
    pub address_only: bool,
    /// Full nodes, in preference order; the witness (if any) is last in `all`.
    pub nodes: Vec<String>,
    pub witness: Option<String>,
    /// The witness is remote: on link 0 only, behind the switch's router.
    #[serde(default)]
    pub remote_witness: bool,
    pub links: usize,
    pub agents: BTreeMap<String, u32>,
    /// Per node, a process that holds the node's mount namespace, so that
    /// the node keeps its mounts across agent restarts, like a machine.
    #[serde(default)]
    pub holders: BTreeMap<String, u32>,
    /// Prefix of its namespaces' names: labs with different ones run side by side.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// `lab up --spare`: the last of `nodes`, out of the cluster's file and
    /// not started by `up`.
    #[serde(default)]
    pub spare: Option<String>,
    /// The shared disk's block device (`lab up --disk`), mounted by `web`.
    #[serde(default)]
    pub disk: Option<String>,
    /// The fence disk's block device (`lab up --fencing disk`).
    #[serde(default)]
    pub fence_disk: Option<String>,
    /// `lab up --machines DEB`: the package every node's machine installs.
    #[serde(default)]
    pub deb: Option<PathBuf>,
    /// Per node: its machine's systemd-nspawn.
    #[serde(default)]
    pub machines: BTreeMap<String, u32>,
    /// `lab up --machine-files DIR`: laid over every machine's root.
    #[serde(default)]
    pub machine_files: Option<PathBuf>,
    /// `lab up --pacemaker TOKEN`: Pacemaker+Corosync on machines instead
    /// of baton, with this corosync token ("default" or ms).
    #[serde(default)]
    pub pacemaker: Option<String>,
    /// `lab up --ucarp ADVBASE`: ucarp instead of baton.
    #[serde(default)]
    pub ucarp: Option<String>,
    /// `lab up --vip-manager INTERVAL_MS:TTL_S[:LOOP_S]`: vip-manager and
    /// a three-member etcd instead of baton.
    #[serde(default)]
    pub vip_manager: Option<String>,
}

/// The shared disk's image in the lab directory, and where `web` mounts it.
const DISK_IMAGE: &str = "shared-disk.img";
/// The fence disk's image: a slot per node, read every 250 ms, msgwait 2 s.
const FENCE_DISK_IMAGE: &str = "fence-disk.img";
const DISK_MIB: u64 = 64;
pub const DISK_MOUNT: &str = "web-data";
/// The file the lab's daemon writes to, on the shared disk.
pub const DISK_LOG: &str = "writes.log";

fn default_prefix() -> String {
    PREFIX.to_string()
}

pub(crate) fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("running ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Runs a program to its end; its trimmed stdout, or its stderr as the error.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("running {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn lab_namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Makes the lab's directory a shared mount, so that what the lab mounts
/// under it later (a node's state disk) reaches every node's mount
/// namespace, while what a node mounts stays its own.
fn share(dir: &Path) -> Result<(), String> {
    for args in
        [&["--bind".as_ref(), dir.as_os_str(), dir.as_os_str()][..], &["--make-shared".as_ref(), dir.as_os_str()]]
    {
        let out = Command::new("mount").args(args).output().map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    Ok(())
}

/// Is process `pid` still there (reaping it first if it is our child)?
pub fn alive(pid: u32) -> bool {
    // An exited child of this process is a zombie until reaped; reap it (a
    // no-op for anyone else's child).
    // SAFETY: waitpid with WNOHANG and no status pointer.
    unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
    // Anyone else's zombie (a killed node's process its parent has not
    // reaped yet) is dead too: the state after the name in /proc's stat.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
    // SAFETY: signal 0 only asks whether the process exists.
    !zombie && unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// The cgroups of the lab's agents (`baton-PREFIXNODE`) and their sets:
/// everything in them killed, then removed.
fn remove_cgroups(prefix: &str) -> Result<(), String> {
    let Ok(root) = cgroup::hierarchy() else { return Ok(()) };
    let ours = format!("baton-{prefix}");
    let found: Vec<Cgroup> = std::fs::read_dir(&root)
        .map_err(|e| format!("reading {}: {e}", root.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&ours))
        .map(|e| Cgroup(e.path()))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(|e| e.to_string())?;
    for cg in found {
        rt.block_on(cg.remove(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The processes in namespace `ns`.
pub(crate) fn namespace_pids(ns: &str) -> Vec<i32> {
    let out = Command::new("ip").args(["netns", "pids", ns]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out).split_whitespace().filter_map(|p| p.parse::<i32>().ok()).collect()
}

fn kill_namespace_processes(ns: &str) {
    kill_pids(&namespace_pids(ns));
}

fn kill_pids(pids: &[i32]) {
    for &pid in pids {
        // SAFETY: kill(2) of a process listed in the lab's own namespace.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

impl Lab {
    pub fn all(&self) -> Vec<String> {
        self.nodes.iter().chain(self.witness.iter()).cloned().collect()
    }

    pub fn ns(&self, node: &str) -> Result<String, String> {
        if node == "client" || self.all().iter().any(|n| n == node) {
            Ok(format!("{}{node}", self.prefix))
        } else {
            Err(format!("no lab node named \"{node}\" (the lab has {} and client)", self.all().join(", ")))
        }
    }

    /// The namespace of the bridges.
    pub(crate) fn switch(&self) -> String {
        format!("{}sw", self.prefix)
    }

    fn index(&self, node: &str) -> Result<usize, String> {
        self.all().iter().position(|n| n == node).ok_or_else(|| format!("no lab node named \"{node}\""))
    }

    fn port(i: usize, link: usize) -> String {
        format!("s{i}l{link}")
    }

    pub fn address(i: usize, link: usize) -> String {
        format!("10.88.{link}.{}", i + 1)
    }

    /// Is node `i` the remote witness?
    fn remote(&self, i: usize) -> bool {
        self.remote_witness && i == self.nodes.len()
    }

    /// The links node `i` is on: all, or link 0 for a remote witness.
    fn links_of(&self, i: usize) -> std::ops::Range<usize> {
        0..if self.remote(i) { 1 } else { self.links }
    }

    /// Node `i`'s address on `link`, with its prefix.
    fn address_of(&self, i: usize, link: usize) -> String {
        if self.remote(i) {
            format!("{REMOTE_WITNESS}/24")
        } else {
            format!("{}/24", Lab::address(i, link))
        }
    }

    fn file(dir: &Path) -> PathBuf {
        dir.join("lab.json")
    }

    pub fn load(dir: &Path) -> Result<Lab, String> {
        let bytes = std::fs::read(Lab::file(dir))
            .map_err(|e| format!("no lab in {} ({e}); `baton lab up` makes one", dir.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is damaged: {e}", Lab::file(dir).display()))
    }

    pub(crate) fn save(&self) -> Result<(), String> {
        std::fs::write(Lab::file(&self.dir), serde_json::to_vec_pretty(self).expect("json"))
            .map_err(|e| format!("writing {}: {e}", Lab::file(&self.dir).display()))
    }

    pub fn up(args: &UpArgs) -> Result<Lab, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("the lab needs root: it creates network namespaces".into());
        }
        if !(1..=NAMES.len()).contains(&args.nodes) || !(1..=4).contains(&args.links) {
            return Err(format!("--nodes must be 1 to {} and --links 1 to 4", NAMES.len()));
        }
        let prefix = &args.prefix;
        if prefix.len() > 8
            || !prefix.ends_with('-')
            || !prefix[..prefix.len() - 1].bytes().all(|b| b.is_ascii_lowercase())
        {
            return Err(format!("--prefix \"{prefix}\": lowercase letters and a final '-', at most 8 characters"));
        }
        // Refused before anything is made (the directory's mount included).
        if args.pacemaker.is_some()
            && (args.machines.is_some()
                || args.keepalived.is_some()
                || args.disk
                || args.fencing.is_some()
                || args.witness
                || args.remote_witness)
        {
            return Err(
                "--pacemaker runs Pacemaker alone, without --machines, --keepalived, --disk, --fencing or a witness"
                    .into(),
            );
        }
        if let Some(setting) = &args.pacemaker {
            super::pacemaker::token(setting)?;
        }
        if args.ucarp.is_some()
            && (args.machines.is_some() || args.keepalived.is_some() || args.pacemaker.is_some() || args.disk)
        {
            return Err("--ucarp runs ucarp alone, without --machines, --keepalived, --pacemaker or --disk".into());
        }
        if let Some(setting) = &args.ucarp {
            super::ucarp::settings(setting)?;
        }
        if args.vip_manager.is_some()
            && (args.machines.is_some()
                || args.keepalived.is_some()
                || args.pacemaker.is_some()
                || args.ucarp.is_some()
                || args.disk
                || args.witness
                || args.remote_witness)
        {
            return Err("--vip-manager runs vip-manager and etcd alone, without --machines, --keepalived, \
                 --pacemaker, --ucarp, --disk or a witness"
                .into());
        }
        if let Some(setting) = &args.vip_manager {
            super::vip_manager::settings(setting)?;
        }
        let plain = args.machines.is_none() && args.keepalived.is_none() && args.pacemaker.is_none();
        let alone = args.ucarp.is_none() && args.vip_manager.is_none() && args.fencing.is_none();
        if args.spare && !(plain && alone && !args.witness && !args.remote_witness && args.nodes < NAMES.len()) {
            return Err(format!(
                "--spare is for baton's nodes in namespaces, without a witness, fencing, --machines or a peer, and \
                 fewer than {} nodes",
                NAMES.len()
            ));
        }
        if let Some(deb) = &args.machines {
            if args.keepalived.is_some() || args.disk || args.fencing.as_deref() == Some("disk") {
                return Err("--machines runs baton without --keepalived, --disk or --fencing disk (not yet); \
                     --fencing power works"
                    .into());
            }
            if !deb.is_file() {
                return Err(format!(
                    "--machines {}: no such package (packaging/deb.sh --output DIR builds one)",
                    deb.display()
                ));
            }
        }
        Lab::down_prefix(&args.dir.dir, prefix)?;
        let dir = args.dir.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        share(&dir)?;
        if args.fencing.as_deref().is_some_and(|m| !["lease", "required", "power", "disk"].contains(&m)) {
            return Err("--fencing is \"power\" or \"disk\" (or a power fence's mode: \"lease\", \"required\")".into());
        }
        let peer = args.keepalived.is_some() || args.pacemaker.is_some() || args.ucarp.is_some();
        if args.address_only && (peer || args.vip_manager.is_some() || args.machines.is_some()) {
            return Err("--address-only is for baton's nodes in namespaces (the peers run the web server on every \
                        node already), without --keepalived, --pacemaker, --ucarp, --vip-manager or --machines"
                .into());
        }
        baton_config::parse_duration(&args.heartbeat).map_err(|e| format!("--heartbeat: {e}"))?;
        let lease = args.lease.clone().unwrap_or_else(|| if args.disk { "2s" } else { "1s" }.to_string());
        baton_config::parse_duration(&lease).map_err(|e| format!("--lease: {e}"))?;
        let mut lab = Lab {
            dir,
            fencing: args.fencing.clone(),
            keepalived: args.keepalived.clone(),
            address_only: args.address_only,
            http_token: args.http_token,
            nodes: NAMES[..args.nodes + usize::from(args.spare)].iter().map(|s| s.to_string()).collect(),
            witness: (args.witness || args.remote_witness).then(|| "arbiter".to_string()),
            remote_witness: args.remote_witness,
            links: args.links,
            agents: BTreeMap::new(),
            holders: BTreeMap::new(),
            disk: None,
            fence_disk: None,
            deb: args.machines.clone(),
            machines: BTreeMap::new(),
            machine_files: args.machine_files.clone(),
            pacemaker: args.pacemaker.clone(),
            ucarp: args.ucarp.clone(),
            vip_manager: args.vip_manager.clone(),
            prefix: prefix.clone(),
            spare: args.spare.then(|| NAMES[args.nodes].to_string()),
        };
        lab.save()?;
        let extra = match &args.extra {
            Some(f) => std::fs::read_to_string(f).map_err(|e| format!("reading {}: {e}", f.display()))?,
            None => String::new(),
        };
        if args.disk {
            lab.disk = Some(lab.make_disk()?);
            lab.save()?;
        }
        if lab.fencing.as_deref() == Some("disk") {
            lab.fence_disk = Some(lab.make_fence_disk()?);
            lab.save()?;
        }
        lab.build(&extra, &args.heartbeat, &lease).inspect_err(|_| {
            let _ = Lab::down(&lab.dir);
        })?;
        if let Some(setting) = &args.pacemaker {
            // Machines that never formed a cluster are no use to look at:
            // everything goes.
            let formed = lab.pacemaker_up(setting);
            if formed.is_err() {
                let _ = Lab::down(&lab.dir);
            }
            formed?;
            return Ok(lab);
        }
        let spare = lab.spare.clone();
        for node in lab.all().into_iter().filter(|n| Some(n) != spare.as_ref()) {
            // A node that does not start leaves nothing behind: the nodes
            // started before it (and their etcd, vip-manager, ...) go too.
            let started = lab.serve_everywhere(&node).and_then(|()| lab.start(&node));
            if let Err(e) = started {
                let _ = Lab::down(&lab.dir);
                return Err(e);
            }
        }
        Ok(lab)
    }

    /// The switch routes between link 0 and the remote witness's subnet,
    /// and every full node has a route to it through link 0.
    fn route_to_witness(&self) -> Result<(), String> {
        let (switch, i) = (&self.switch(), self.nodes.len());
        ip(&["-n", switch, "addr", "add", &format!("{ROUTER_LINK_SIDE}/24"), "dev", "br0"])?;
        ip(&["-n", switch, "addr", "add", &format!("{ROUTER_WITNESS_SIDE}/24"), "dev", &Lab::port(i, 0)])?;
        ip(&["-n", switch, "link", "set", &Lab::port(i, 0), "up"])?;
        let forward = Command::new("ip")
            .args(["netns", "exec", switch, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .status()
            .map_err(|e| format!("sysctl: {e}"))?;
        if !forward.success() {
            return Err("turning on forwarding in the lab's switch failed".into());
        }
        ip(&["-n", &self.ns("arbiter")?, "route", "add", "default", "via", ROUTER_WITNESS_SIDE])?;
        for node in &self.nodes {
            ip(&["-n", &self.ns(node)?, "route", "add", "10.89.0.0/24", "via", ROUTER_LINK_SIDE])?;
        }
        Ok(())
    }

    fn build(&self, extra: &str, heartbeat: &str, lease: &str) -> Result<(), String> {
        let switch = &self.switch();
        let client = self.ns("client")?;
        ip(&["netns", "add", switch])?;
        for l in 0..self.links {
            ip(&["-n", switch, "link", "add", &format!("br{l}"), "type", "bridge"])?;
            ip(&["-n", switch, "link", "set", &format!("br{l}"), "up"])?;
        }
        let mut hosts: Vec<(String, usize)> =
            self.all().into_iter().enumerate().map(|(i, n)| (format!("{}{n}", self.prefix), i)).collect();
        hosts.push((client.clone(), 249));
        for (ns, i) in &hosts {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            let links = if *ns == client { 0..1 } else { self.links_of(*i) };
            for l in links {
                let port = if *ns == client { "c0".to_string() } else { Lab::port(*i, l) };
                let eth = format!("eth{l}");
                ip(&["-n", switch, "link", "add", &port, "type", "veth", "peer", "name", &eth, "netns", ns])?;
                if !self.remote(*i) {
                    ip(&["-n", switch, "link", "set", &port, "master", &format!("br{l}"), "up"])?;
                }
                ip(&["-n", ns, "addr", "add", &self.address_of(*i, l), "dev", &eth])?;
                ip(&["-n", ns, "link", "set", &eth, "up"])?;
            }
        }
        if self.remote_witness {
            self.route_to_witness()?;
        }
        if self.deb.is_some() && self.fencing.is_some() {
            self.start_power_switch()?;
        }
        let mut secret = [0u8; 48];
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut secret)).map_err(|e| e.to_string())?;
        let path = self.dir.join("secret");
        std::fs::write(&path, secret).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
        if self.http_token {
            let mut bytes = [0u8; 24];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .map_err(|e| e.to_string())?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let path = self.dir.join("http-token");
            std::fs::write(&path, token + "\n").map_err(|e| e.to_string())?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
        }
        if self.fencing.is_some() {
            let agent = self.dir.join("fence-agent");
            std::fs::write(&agent, format!("#!/bin/sh\nexec {} fence\n", crate::lab_exe().display()))
                .map_err(|e| e.to_string())?;
            std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
            let pw = self.dir.join("fence.pw");
            std::fs::write(&pw, super::fence::PASSWORD).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
        }
        let config = self.dir.join("cluster.toml");
        std::fs::write(&config, self.config_text(heartbeat, lease, false)? + extra).map_err(|e| e.to_string())?;
        if self.spare.is_some() {
            // The file once the spare is added: every set may run there too.
            let with = self.dir.join(SPARE_CONFIG);
            std::fs::write(&with, self.config_text(heartbeat, lease, true)? + extra).map_err(|e| e.to_string())?;
        }
        if self.ucarp.is_some() {
            super::ucarp::write_scripts(&self.dir)?;
        }
        if let Some(setting) = &self.vip_manager {
            super::vip_manager::write_files(&self.dir, &self.nodes, setting)?;
        }
        if let Some(advert) = &self.keepalived {
            for (i, node) in self.nodes.iter().enumerate() {
                let text = super::keepalived::config(node, super::keepalived::priority(i), advert);
                std::fs::write(self.dir.join(format!("keepalived-{node}.conf")), text).map_err(|e| e.to_string())?;
            }
        }
        baton_config::load(&config).map(|_| ()).map_err(|e| format!("the lab's config is refused:\n{e}"))
    }

    /// An ext4 image on a loop device: the disk every node of the lab
    /// reaches, as multi-ported storage is reached by every server.
    fn make_disk(&self) -> Result<String, String> {
        let image = self.dir.join(DISK_IMAGE);
        let file = std::fs::File::create(&image).map_err(|e| format!("creating {}: {e}", image.display()))?;
        file.set_len(DISK_MIB << 20).map_err(|e| e.to_string())?;
        run("mkfs.ext4", &["-q".as_ref(), "-F".as_ref(), image.as_os_str()])?;
        std::fs::create_dir_all(self.dir.join(DISK_MOUNT)).map_err(|e| e.to_string())?;
        run("losetup", &["--find".as_ref(), "--show".as_ref(), image.as_os_str()])
    }

    /// A 1 MiB image on a loop device with a fence disk's slots: a second
    /// small shared disk, as SBD asks for.
    fn make_fence_disk(&self) -> Result<String, String> {
        let image = self.dir.join(FENCE_DISK_IMAGE);
        let file = std::fs::File::create(&image).map_err(|e| format!("creating {}: {e}", image.display()))?;
        file.set_len(1 << 20).map_err(|e| e.to_string())?;
        let dev = run("losetup", &["--find".as_ref(), "--show".as_ref(), image.as_os_str()])?;
        let header = baton_resources::fence_disk::Header {
            slots: self.nodes.clone(),
            watch: Duration::from_millis(250),
            msgwait: Duration::from_secs(2),
        };
        baton_resources::fence_disk::Disk::init(Path::new(&dev), header, true).map_err(|e| e.to_string())?;
        Ok(dev)
    }

    /// Detaches the loop devices of a lab directory's shared disks.
    fn drop_disk(dir: &Path) {
        for image in [DISK_IMAGE, FENCE_DISK_IMAGE].map(|i| dir.join(i)) {
            if !image.exists() {
                continue;
            }
            let out = Command::new("losetup").arg("-j").arg(&image).output().map(|o| o.stdout).unwrap_or_default();
            for dev in String::from_utf8_lossy(&out).lines().filter_map(|l| l.split(':').next()) {
                // Detached now, or (still in use by a dying namespace) as soon as
                // its last user lets go.
                let _ = Command::new("losetup").args(["-d", dev]).status();
            }
        }
    }

    /// `with_spare`: the spare node (`lab up --spare`) in it, as if added.
    fn config_text(&self, heartbeat: &str, lease: &str, with_spare: bool) -> Result<String, String> {
        let left_out = |n: &String| !with_spare && Some(n) == self.spare.as_ref();
        let exe = crate::lab_exe();
        let mut t = format!(
            "# Written by `baton lab up`.\n[cluster]\nname = \"lab\"\nsecret_file = \"secret\"\n\
             heartbeat_interval = \"{heartbeat}\"\nlease = \"{lease}\"\n",
        );
        if self.http_token {
            t += "http_token_file = \"http-token\"\n";
        }
        for (i, node) in self.all().iter().enumerate().filter(|(_, n)| !left_out(n)) {
            let addrs: Vec<String> = self.links_of(i).map(|l| format!("\"{}\"", self.address_of(i, l))).collect();
            t += &format!("\n[nodes.{node}]\naddresses = [{}]\n", addrs.join(", "));
            if Some(node) == self.witness.as_ref() {
                t += "witness = true\n";
            }
        }
        let prefs: Vec<String> = self.nodes.iter().filter(|n| !left_out(n)).map(|n| format!("\"{n}\"")).collect();
        if let Some(fencing) = &self.fencing {
            let dir = self.dir.display();
            let device = |nodes: &str, delay: &str| match &self.fence_disk {
                Some(disk) => format!("\n[[fencing.devices]]\ndisk = \"{disk}\"\nnodes = [{nodes}]\n{delay}"),
                None if self.deb.is_some() => self.power_device(nodes, delay),
                None => format!(
                    "\n[[fencing.devices]]\nagent = \"{dir}/fence-agent\"\nnodes = [{nodes}]\n\
                     params = {{ lab = \"{dir}\", log = \"{dir}/fence.log\" }}\npassword_file = \"fence.pw\"\n\
                     timeout = \"20s\"\n{delay}"
                ),
            };
            let mode = if fencing == "required" { "required" } else { "lease" };
            t += &format!("\n[fencing]\nmode = \"{mode}\"\n");
            if self.fence_disk.is_some() {
                // A node of two booting alone fences its peer after 5 s.
                t += "startup_fence_after = \"5s\"\n";
            }
            // Two nodes and no witness: of two live nodes that fence each
            // other, the first (the set's preferred node) gets a head start:
            // fencing it waits 2 s.
            if self.witness.is_none() && self.nodes.len() == 2 {
                t += &device(&prefs[0], "delay = \"2s\"\n");
                t += &device(&prefs[1], "");
            } else {
                t += &device(&prefs.join(", "), "");
            }
        }
        t += &format!("\n[sets.web]\nnodes = [{}]\n", prefs.join(", "));
        let dir = self.dir.display();
        if let Some(disk) = &self.disk {
            t += &format!(
                "\n[[sets.web.resources]]\ntype = \"mount\"\ndevice = \"{disk}\"\npath = \"{dir}/{DISK_MOUNT}\"\n\
                 fstype = \"ext4\"\ninterval = \"1s\"\n"
            );
        }
        t += &format!("\n[[sets.web.resources]]\ntype = \"ip\"\naddress = \"{VIP}/24\"\ngarp_interval = \"100ms\"\n");
        if !self.address_only {
            t += &format!(
                "\n[[sets.web.resources]]\ntype = \"process\"\n\
                 command = [\"{}\", \"serve\", \"--port\", \"80\"]\ninterval = \"1s\"\n",
                exe.display()
            );
        }
        if self.disk.is_some() {
            let daemon = |verb: &str, extra: &str| {
                format!("[\"{}\", \"daemon\", \"{verb}\", {extra}\"--run\", \"{dir}\"]", exe.display())
            };
            t += &format!(
                "\n[[sets.web.resources]]\ntype = \"exec\"\nstart = {}\nstop = {}\nmonitor = {}\ninterval = \"1s\"\n",
                daemon("start", &format!("\"--log\", \"{dir}/{DISK_MOUNT}/{DISK_LOG}\", ")),
                daemon("stop", ""),
                daemon("status", "")
            );
        }
        Ok(t)
    }

    /// Starts `node`'s agent; a machine's with systemctl, booting the
    /// machine first if it is off.
    pub fn start(&mut self, node: &str) -> Result<(), String> {
        if !self.machine_lab() {
            return self.start_with(node, &[]);
        }
        if self.machine_leader(node).is_err() {
            return self.boot_machine(node);
        }
        let unit = self.machine_unit();
        let out = self.in_machine(node)?.args(["systemctl", "start", unit]).status().map_err(|e| e.to_string())?;
        if !out.success() {
            return Err(format!("systemctl start {unit} on {node} failed"));
        }
        Ok(())
    }

    /// Are the lab's nodes machines (baton's package, or Pacemaker)?
    pub fn machine_lab(&self) -> bool {
        self.deb.is_some() || self.pacemaker.is_some()
    }

    /// The unit a machine's HA daemon runs as: baton, or pacemaker (which
    /// starts corosync first).
    fn machine_unit(&self) -> &'static str {
        if self.pacemaker.is_some() {
            "pacemaker"
        } else {
            "baton"
        }
    }

    /// The cgroup a node's agent runs in (its sets' cgroups are below it).
    pub fn cgroup(&self, node: &str) -> Result<Cgroup, String> {
        let root = cgroup::hierarchy().map_err(|e| e.to_string())?;
        Ok(Cgroup(root.join(format!("baton-{}{node}", self.prefix))))
    }

    /// The process holding `node`'s mount namespace, started if it is not
    /// running: the node's mounts live as long as it does (a power-off of
    /// the node kills it with everything else).
    pub fn holder(&mut self, node: &str) -> Result<u32, String> {
        if let Some(&pid) = self.holders.get(node) {
            if alive(pid) {
                return Ok(pid);
            }
        }
        // `ip netns exec` gives the process a mount namespace of its own, with
        // a fresh /sys; cgroup v2 is mounted there as on a systemd machine.
        let log = self.dir.join(format!("{node}.mnt.log"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(node)?, "sh", "-c"])
            .arg("mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec sleep infinity")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {node}'s mount namespace: {e}"))?;
        // It is a node once `ip` has switched to the new namespaces and run sleep.
        let pid = child.id();
        let ready = super::wait_until(Duration::from_secs(5), || {
            !alive(pid) || std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        });
        if !ready || !alive(pid) {
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("{node}'s mount namespace did not come up: {}", why.trim()));
        }
        self.holders.insert(node.to_string(), pid);
        self.save()?;
        Ok(pid)
    }

    /// A command run inside `node`: its network and mount namespaces.
    pub fn inside(&mut self, node: &str) -> Result<Command, String> {
        let holder = self.holder(node)?;
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &holder.to_string(), "-m", "-n", "--"]);
        Ok(cmd)
    }

    /// `--address-only`: the web server of a full node runs outside the
    /// set, for as long as the node's namespace lives.
    fn serve_everywhere(&self, node: &str) -> Result<(), String> {
        if !self.address_only || self.witness.as_deref() == Some(node) {
            return Ok(());
        }
        super::web::start_server(&self.ns(node)?, node, self.node_log(node)?)
    }

    /// `DIR/NODE.log`, where a node's agent (or peer daemon) writes.
    fn node_log(&self, node: &str) -> Result<std::fs::File, String> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{node}.log")))
            .map_err(|e| e.to_string())
    }

    /// Starts `node`'s agent with extra environment variables.
    pub fn start_with(&mut self, node: &str, env: &[(&str, String)]) -> Result<(), String> {
        let ns = self.ns(node)?;
        let exe = crate::baton_exe();
        let log = self.node_log(node)?;
        if self.keepalived.is_some() {
            let pid = super::keepalived::start(&self.dir, &ns, node, log)?;
            self.agents.insert(node.to_string(), pid);
            return self.save();
        }
        if let Some(setting) = &self.ucarp {
            let pid = super::ucarp::start(self, node, setting, log)?;
            self.agents.insert(node.to_string(), pid);
            return self.save();
        }
        if let Some(setting) = &self.vip_manager {
            let pid = super::vip_manager::start(self, node, setting, log)?;
            self.agents.insert(node.to_string(), pid);
            return self.save();
        }
        let placement = self.cgroup(node)?.placement().map_err(|e| e.to_string())?;
        let mut cmd = self.inside(node)?;
        cmd.arg(&exe)
            .arg("agent")
            .arg("--config")
            .arg(self.dir.join("cluster.toml"))
            .args(["--node", node, "--state-dir"])
            .arg(self.dir.join(node))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0);
        // SAFETY: the closure only calls write(2), which is async-signal-safe.
        unsafe { cmd.pre_exec(move || placement.enter()) };
        let child = cmd.spawn().map_err(|e| format!("starting the agent of {node}: {e}"))?;
        self.agents.insert(node.to_string(), child.id());
        self.save()
    }

    pub fn kill(&self, node: &str) -> Result<(), String> {
        if self.machine_lab() {
            // Pacemaker's node dies with corosync: its membership goes.
            let unit = if self.pacemaker.is_some() { "corosync" } else { "baton" };
            let kill = ["systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", unit];
            let out = self.in_machine(node)?.args(kill).status().map_err(|e| e.to_string())?;
            return if out.success() { Ok(()) } else { Err(format!("killing {unit} on {node} failed")) };
        }
        let pid = *self.agents.get(node).ok_or_else(|| format!("no agent recorded for {node}"))?;
        // keepalived runs as a parent and a VRRP child, ucarp with the
        // scripts it runs, vip-manager with etcd and the leader loop: kill
        // the whole group.
        let whole = self.keepalived.is_some() || self.ucarp.is_some() || self.vip_manager.is_some();
        let target = if whole { -(pid as i32) } else { pid as i32 };
        // SAFETY: kill(2) of the agent (or keepalived) this lab started.
        if unsafe { libc::kill(target, libc::SIGKILL) } != 0 {
            return Err(format!("the agent of {node} (pid {pid}) is not running"));
        }
        Ok(())
    }

    /// A planned move away from `owner`: `baton move web`, or each peer's
    /// own way (keepalived: the owner's priority lowered; Pacemaker: `pcs
    /// resource move`; ucarp: SIGUSR2; vip-manager: the leader key handed
    /// over). Says what was done.
    pub fn planned_move(&self, owner: &str) -> Result<String, String> {
        if self.pacemaker.is_some() {
            return self.pacemaker_move(owner);
        }
        if self.ucarp.is_some() {
            let pid = *self.agents.get(owner).ok_or_else(|| format!("no ucarp recorded for {owner}"))?;
            return super::ucarp::demote(owner, pid);
        }
        if self.vip_manager.is_some() {
            return super::vip_manager::hand_over(self, owner);
        }
        if let Some(advert) = &self.keepalived {
            let pid = *self.agents.get(owner).ok_or_else(|| format!("no keepalived recorded for {owner}"))?;
            super::keepalived::demote(&self.dir, owner, advert, pid)?;
            return Ok(format!("{owner}'s keepalived priority lowered to 50 and reloaded"));
        }
        let out = Command::new(crate::baton_exe())
            .args(["move", "web", "--reason", "lab bench", "--socket"])
            .arg(self.dir.join(owner).join("baton.sock"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("baton move web on {owner}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(format!("`baton move web` run on {owner}"))
    }

    pub fn cut(&self, node: &str, link: Option<usize>) -> Result<(), String> {
        let i = self.index(node)?;
        let on = self.links_of(i);
        for l in link.map_or(on.clone(), |l| l..l + 1) {
            if !on.contains(&l) {
                return Err(format!("{node} is on links 0 to {}", on.end - 1));
            }
            ip(&["-n", &self.switch(), "link", "set", &Lab::port(i, l), "down"])?;
        }
        Ok(())
    }

    /// The running agent of `node`, if any.
    pub fn agent_pid(&self, node: &str) -> Option<u32> {
        let pid = *self.agents.get(node)?;
        alive(pid).then_some(pid)
    }

    /// The processes of `node` as a machine: all in its namespace (the
    /// lab's address watch lives in this machine's own).
    fn machine_pids(&self, node: &str) -> Result<Vec<i32>, String> {
        Ok(namespace_pids(&self.ns(node)?))
    }

    /// Nothing runs in `node` any more: the machine is off.
    pub fn empty(&self, node: &str) -> bool {
        self.machine_pids(node).is_ok_and(|p| p.is_empty())
    }

    /// Powers `node` off: its links cut, every process in it killed at
    /// once (its mount namespace with them), and its kernel's addresses gone
    /// but the ones its links are configured with, as after a reboot.
    pub fn power_off(&self, node: &str) -> Result<(), String> {
        self.cut(node, None)?;
        let ns = self.ns(node)?;
        kill_pids(&self.machine_pids(node)?);
        if !wait_until(Duration::from_secs(5), || self.empty(node)) {
            return Err(format!("{node} still has processes after SIGKILL"));
        }
        let i = self.index(node)?;
        for l in self.links_of(i) {
            let eth = format!("eth{l}");
            ip(&["-n", &ns, "addr", "flush", "dev", &eth])?;
            ip(&["-n", &ns, "addr", "add", &self.address_of(i, l), "dev", &eth])?;
        }
        if self.remote(i) {
            ip(&["-n", &ns, "route", "replace", "default", "via", ROUTER_WITNESS_SIDE])?;
        }
        Ok(())
    }

    /// Brings `node`'s links back (a fence device's `on`).
    pub fn restore(&self, node: &str) -> Result<(), String> {
        let i = self.index(node)?;
        for l in self.links_of(i) {
            ip(&["-n", &self.switch(), "link", "set", &Lab::port(i, l), "up"])?;
        }
        Ok(())
    }

    pub fn heal(&self) -> Result<(), String> {
        for l in 0..self.links {
            for i in (0..self.all().len()).filter(|&i| self.links_of(i).contains(&l)) {
                let port = Lab::port(i, l);
                if self.remote(i) {
                    ip(&["-n", &self.switch(), "link", "set", &port, "up"])?;
                } else {
                    ip(&["-n", &self.switch(), "link", "set", &port, "master", &format!("br{l}"), "up"])?;
                }
            }
            for k in 0..self.all().len() {
                let _ = ip(&["-n", &self.switch(), "link", "del", &format!("br{l}p{k}")]);
            }
        }
        ip(&["-n", &self.switch(), "link", "set", "c0", "master", "br0", "up"])
    }

    pub fn partition(&self, groups: &str) -> Result<(), String> {
        let groups: Vec<Vec<usize>> = groups
            .split('/')
            .map(|g| g.split(',').map(|n| self.index(n.trim())).collect::<Result<Vec<_>, _>>())
            .collect::<Result<_, _>>()?;
        if groups.len() < 2 {
            return Err("a partition needs at least two groups, e.g. alpha,beta/gamma".into());
        }
        if self.remote_witness {
            return Err("the lab cannot split a remote witness's router: cut nodes off instead".into());
        }
        self.heal()?;
        for l in 0..self.links {
            for (k, group) in groups.iter().enumerate() {
                let bridge = format!("br{l}p{k}");
                ip(&["-n", &self.switch(), "link", "add", &bridge, "type", "bridge"])?;
                ip(&["-n", &self.switch(), "link", "set", &bridge, "up"])?;
                for &i in group {
                    ip(&["-n", &self.switch(), "link", "set", &Lab::port(i, l), "master", &bridge])?;
                }
                if l == 0 && k == 0 {
                    ip(&["-n", &self.switch(), "link", "set", "c0", "master", &bridge])?;
                }
            }
        }
        Ok(())
    }

    pub fn status(&self) -> Result<(), String> {
        println!("lab in {}: links {}, client 10.88.0.250, service {VIP}", self.dir.display(), self.links);
        for node in self.all() {
            let pid = self.agents.get(&node).copied().unwrap_or(0);
            let alive = self.agent_pid(&node).is_some();
            let view = match node_status(&self.dir, &node) {
                Ok(doc) => {
                    let sets: Vec<String> = doc["sets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| format!("{} {} on {}", s["name"], s["state"], s["owner"]))
                        .collect();
                    format!("leader {} | {}", doc["leader"], sets.join("; "))
                }
                Err(e) => e,
            };
            println!("  {node:<8} agent {}  {view}", if alive { format!("pid {pid}") } else { "down".into() });
        }
        Ok(())
    }

    /// The node holding the service address once one does (it may still
    /// be settling: a VRRP election, a start), asked for up to `limit`.
    pub fn wait_vip_holder(&self, limit: Duration) -> Option<String> {
        let mut holder = None;
        wait_until(limit, || {
            holder = self.vip_holder();
            holder.is_some()
        });
        holder
    }

    /// Which node holds the service address (as the kernel says).
    pub fn vip_holder(&self) -> Option<String> {
        self.vip_holders().into_iter().next()
    }

    /// Every node holding the service address (as the kernel says).
    pub fn vip_holders(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| {
                Command::new("ip")
                    .args(["-n", &format!("{}{n}", self.prefix), "-o", "addr"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("{VIP}/")))
            })
            .cloned()
            .collect()
    }

    /// How long a crash trial waits for another node to answer: 20 s, and
    /// with vip-manager the leader key's TTL on top (the key outlives its
    /// holder by up to that).
    pub fn takeover_limit(&self) -> std::time::Duration {
        let ttl_s =
            self.vip_manager.as_deref().and_then(|s| super::vip_manager::settings(s).ok()).map_or(0, |s| s.ttl_s);
        Duration::from_secs(20 + u64::from(ttl_s))
    }

    /// Waits until every node is online and the set `web` runs.
    pub fn wait_running(&self, limit: Duration) -> Result<(), String> {
        if self.pacemaker.is_some() {
            return if wait_until(limit, || self.pacemaker_running()) {
                Ok(())
            } else {
                Err(format!("Pacemaker did not start web within {limit:?}; see `lab exec NODE -- crm_mon -1`"))
            };
        }
        if self.keepalived.is_some() || self.ucarp.is_some() || self.vip_manager.is_some() {
            return if wait_until(limit, || self.vip_holder().is_some()) {
                Ok(())
            } else {
                Err(format!("no master was elected within {limit:?}; see the logs in {}", self.dir.display()))
            };
        }
        let ok = wait_until(limit, || {
            self.nodes.iter().any(|n| {
                node_status(&self.dir, n).is_ok_and(|d| {
                    let all_online = d["nodes"].as_array().is_some_and(|ns| ns.iter().all(|x| x["state"] == "online"));
                    all_online && d["sets"][0]["state"] == "running" && !d["sets"][0]["owner"].is_null()
                })
            })
        });
        if ok {
            Ok(())
        } else {
            Err(format!("the set did not start within {limit:?}; see the logs in {}", self.dir.display()))
        }
    }

    /// Removes every lab namespace and the lab directory, whatever state
    /// they are in.
    pub fn down(dir: &Path) -> Result<(), String> {
        let prefix = Lab::load(dir).map_or_else(|_| default_prefix(), |lab| lab.prefix);
        Lab::down_prefix(dir, &prefix)
    }

    /// `down` of the lab whose namespaces start with `prefix`.
    fn down_prefix(dir: &Path, prefix: &str) -> Result<(), String> {
        for ns in lab_namespaces(prefix) {
            kill_namespace_processes(&ns);
        }
        std::thread::sleep(Duration::from_millis(100));
        for ns in lab_namespaces(prefix) {
            kill_namespace_processes(&ns);
            ip(&["netns", "del", &ns])?;
        }
        remove_cgroups(prefix)?;
        super::machine::remove_systemd_v1(prefix);
        Lab::drop_disk(dir);
        // The lab's shared bind mount of its directory, and a chaos
        // scenario's state disk left mounted by a crash (stacked mounts too).
        for _ in 0..10 {
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
            let ours: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter(|t| Path::new(t).starts_with(dir))
                .collect();
            if ours.is_empty() {
                break;
            }
            for target in ours.iter().rev() {
                let _ = Command::new("umount").args(["-l", target]).status();
            }
        }
        if dir.join("lab.json").exists() || dir.join("cluster.toml").exists() {
            std::fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
        }
        Ok(())
    }
}
