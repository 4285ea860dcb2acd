//! `baton-lab` (also run as `baton lab`): a throw-away cluster on this
//! machine. Every node is a network namespace; every link is a bridge
//! inside a separate "switch" namespace, so no lab address ever reaches the
//! host's own networks; a client namespace sits on link 0. Everything is
//! made with iproute2 and removed by `lab down`, also after a crash.
//!
//! The lab is test equipment: it lives in its own crate and binary, and the
//! package a user installs never contains it. It drives the `baton` binary
//! beside it ([`baton_exe`]) as a user would.

pub mod bench;
pub mod chaos;
pub mod daemon;
pub mod demo;
pub mod disk;
pub mod fence;
pub mod keepalived;
pub mod machine;
pub mod net;
pub mod nfs;
pub mod ownership;
pub mod pacemaker;
pub mod power;
pub mod ucarp;
pub mod vip_manager;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::Value;

pub use net::Lab;

/// How a lab command failed: exit 2 for bad usage, 1 for the rest.
pub enum Failure {
    Usage(String),
    Failed(String),
}

/// The `baton` binary the lab runs: `$BATON_BIN`, else the `baton` beside
/// this program (cargo builds both into one directory).
pub fn baton_exe() -> PathBuf {
    if let Some(bin) = std::env::var_os("BATON_BIN") {
        return PathBuf::from(bin);
    }
    beside_me("baton")
}

/// The `baton-lab` binary, for the lab's own helpers that run inside nodes
/// (the web server, the probe, the fence agent): `$BATON_LAB_BIN`, else this
/// program if it is `baton-lab`, else the one beside it.
pub fn lab_exe() -> PathBuf {
    if let Some(bin) = std::env::var_os("BATON_LAB_BIN") {
        return PathBuf::from(bin);
    }
    let me = std::env::current_exe().unwrap_or_default();
    if me.file_name().is_some_and(|n| n == "baton-lab") {
        return me;
    }
    beside_me("baton-lab")
}

/// `name` in this program's directory, or its parent (a test binary lives
/// in `target/debug/deps`).
fn beside_me(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    let dir = me.parent().unwrap_or(Path::new("."));
    [dir.join(name), dir.parent().unwrap_or(dir).join(name)]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// Create the namespaces, links and config, and start an agent per node.
    Up(UpArgs),
    /// The lab's nodes and what the cluster says.
    Status(DirArg),
    /// SIGKILL a node's agent (its guard stays and cleans up).
    Kill {
        node: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Start a node's agent again.
    Start {
        node: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Cut one link of a node (or all its links).
    Cut {
        node: String,
        link: Option<usize>,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Undo every cut and partition.
    Heal(DirArg),
    /// Split the nodes, e.g. `alpha,beta/gamma` (the client joins the first group).
    Partition {
        groups: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Run a command inside a node (its network and mount namespaces) or the client.
    Exec {
        node: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Stop everything and remove every namespace, link and file of the lab.
    Down(DirArg),
    /// A scripted failover with a client probing the service address.
    Demo(UpArgs),
    /// baton and keepalived measured side by side; writes docs/bench.md.
    Bench(bench::BenchArgs),
    /// The guard's release time per kind of resource; writes docs/guard.md.
    ReleaseBench(bench::release::ReleaseArgs),
    /// Named fault scenarios (Pacemaker CTS names where one exists), each
    /// checked, with the ownership record and a client probe around them.
    Chaos(chaos::ChaosArgs),
    /// Random chaos scenarios for a duration (default 1h): failovers, total
    /// outage and time with two holders (which must be zero).
    Soak(chaos::SoakArgs),
    /// Packets at TARGET for SECONDS, as fast as one thread sends them:
    /// UDP datagrams of random bytes and TCP connections that send junk.
    #[command(hide = true)]
    Flood {
        #[arg(long)]
        target: std::net::SocketAddr,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// The tiny web server of the lab's set (runs inside a node).
    #[command(hide = true)]
    Serve {
        #[arg(long, default_value_t = 80)]
        port: u16,
    },
    /// The lab's fence agent (fence-agents stdin protocol).
    #[command(hide = true)]
    Fence,
    /// The lab's power switch on the network (runs in the switch's
    /// namespace): the fence device for agents inside machines.
    #[command(hide = true)]
    PowerSwitch {
        #[command(flatten)]
        dir: DirArg,
    },
    /// `fence_lab` inside a machine: a fence agent that asks the lab's
    /// power switch (`-o metadata`, or arguments on stdin).
    #[command(hide = true)]
    FenceLab {
        /// What the agent was called with (only `-o metadata` is read).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The lab's disk writer, a double-forking daemon (runs inside a node).
    #[command(hide = true, subcommand)]
    Daemon(daemon::DaemonCommand),
    /// The client's NFS client: look a file up once, then write and read it
    /// back by that handle every interval; print a JSON summary.
    #[command(hide = true)]
    NfsClient {
        #[arg(long)]
        server: std::net::IpAddr,
        /// The file's path in the server's namespace, e.g. /srv/files/data.
        #[arg(long)]
        path: String,
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// The client's NFS locker: hold a lock and reclaim it on the next
    /// server ("holder"), or try to take it every half second ("contender").
    #[command(hide = true)]
    NfsLock {
        #[arg(long)]
        server: std::net::IpAddr,
        #[arg(long)]
        path: String,
        /// "holder" or "contender".
        #[arg(long)]
        role: String,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// The client's probe: GET the URL every interval, print who answered.
    #[command(hide = true)]
    Probe {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
}

#[derive(Args, Debug, Clone)]
pub struct DirArg {
    /// Where the lab keeps its config, state and logs.
    #[arg(long, default_value = "/tmp/baton-lab")]
    pub dir: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Full nodes (alpha, beta, gamma, ...).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Add a witness node, `arbiter`.
    #[arg(long)]
    pub witness: bool,
    /// One more full node (its namespace, links and addresses) left out of
    /// the cluster's file and not started: a machine to add to the cluster
    /// while it runs (`baton config apply` with it, `baton rejoin` on it,
    /// then `lab start` it).
    #[arg(long)]
    pub spare: bool,
    /// Add a remote witness instead: `arbiter` on link 0 only, in a subnet
    /// of its own (10.89.0.0/24) reached through a router (the switch).
    #[arg(long, conflicts_with = "witness")]
    pub remote_witness: bool,
    /// Networks every node shares.
    #[arg(long, default_value_t = 2)]
    pub links: usize,
    /// Heartbeat interval of the lab's cluster.
    #[arg(long, default_value = "100ms")]
    pub heartbeat: String,
    /// Lease of the lab's cluster (default 1s; 2s with --disk, whose mount
    /// and daemon the guard's release budget takes from every lease).
    #[arg(long)]
    pub lease: Option<String>,
    /// A shared disk for the set: a loop device every node sees, an ext4
    /// mount of it first in `web`, and a double-forking daemon writing to it.
    #[arg(long)]
    pub disk: bool,
    /// The set `web` holds the address alone and the web server runs on
    /// every node, as keepalived runs it (the same work for both).
    #[arg(long, conflicts_with = "disk")]
    pub address_only: bool,
    /// Run keepalived (VRRP, advert_int SECONDS; 1 = VRRPv2 as Debian ships
    /// it, below 1 = VRRPv3) instead of baton, for comparisons.
    #[arg(long, value_name = "ADVERT_INT")]
    pub keepalived: Option<String>,
    /// Give every node a fence device: "power" (the lab's power switch: links
    /// cut, every process of the node killed) or "disk" (a shared fence disk,
    /// a slot per node); "lease" or "required" name the `[fencing] mode` of
    /// power devices ("power" is "lease").
    #[arg(long, value_name = "MODE")]
    pub fencing: Option<String>,
    /// Write an HTTP API token (DIR/http-token) and name it in the config.
    #[arg(long)]
    pub http_token: bool,
    /// Make every node a whole machine: a systemd-nspawn container booted
    /// from a Debian root (built once with debootstrap, cached in
    /// /var/cache/baton-lab), with baton installed from this .deb and run
    /// by systemd.
    #[arg(long, value_name = "DEB")]
    pub machines: Option<PathBuf>,
    /// With --machines: a directory laid over every machine's root before
    /// its first boot (e.g. `etc/systemd/system/x.service`).
    #[arg(long, value_name = "DIR", requires = "machines")]
    pub machine_files: Option<PathBuf>,
    /// Run Pacemaker and Corosync instead of baton, for comparisons: every
    /// node a machine booted from a Debian root with pacemaker, corosync,
    /// pcs and resource-agents (built once, cached in /var/cache/baton-lab),
    /// corosync's token "default" (as Debian ships it) or TOKEN ms.
    #[arg(long, value_name = "TOKEN")]
    pub pacemaker: Option<String>,
    /// Run ucarp (CARP on link 0) instead of baton, for comparisons: its
    /// advbase in seconds (1 as Debian's example; 0 = sub-second adverts,
    /// the skew alone) and deadratio (default 3), e.g. `1` or `1:1`.
    #[arg(long, value_name = "ADVBASE[:DEADRATIO]")]
    pub ucarp: Option<String>,
    /// Run vip-manager and a three-member etcd (on link 0) instead of
    /// baton, for comparisons, with a loop per node that keeps the leader
    /// key as Patroni does: vip-manager's interval in ms, the key's TTL in
    /// s, and how often its holder refreshes it (default a third of the
    /// TTL), e.g. `1000:30` (the defaults) or `100:3:1`.
    #[arg(long, value_name = "INTERVAL_MS:TTL_S[:LOOP_S]")]
    pub vip_manager: Option<String>,
    /// Prefix of the lab's namespace names: labs with different prefixes
    /// (and directories) run side by side, e.g. a soak beside the tests.
    #[arg(long, default_value = net::PREFIX)]
    pub prefix: String,
    /// TOML appended to the lab's generated config (more resources, sets, hooks).
    #[arg(long, value_name = "FILE")]
    pub extra: Option<PathBuf>,
    #[command(flatten)]
    pub dir: DirArg,
}

impl UpArgs {
    /// The lab `lab up` makes with no flags but its directory and prefix:
    /// three nodes on two links, baton at the default timings. The bench
    /// changes what a trial needs with `..UpArgs::plain(...)`.
    pub fn plain(dir: DirArg, prefix: String) -> UpArgs {
        UpArgs {
            nodes: 3,
            witness: false,
            spare: false,
            remote_witness: false,
            links: 2,
            heartbeat: "100ms".into(),
            lease: None,
            disk: false,
            address_only: false,
            keepalived: None,
            fencing: None,
            http_token: false,
            machines: None,
            machine_files: None,
            pacemaker: None,
            ucarp: None,
            vip_manager: None,
            prefix,
            extra: None,
            dir,
        }
    }
}

pub fn run(command: LabCommand) -> Result<(), Failure> {
    let fail = Failure::Failed;
    match command {
        LabCommand::Up(args) => {
            let lab = Lab::up(&args).map_err(fail)?;
            lab.wait_running(Duration::from_secs(30)).map_err(Failure::Failed)?;
            println!(
                "lab up in {}: nodes {}; `baton-lab status` to look",
                args.dir.dir.display(),
                lab.nodes.join(", ")
            );
            Ok(())
        }
        LabCommand::Status(d) => Lab::load(&d.dir).map_err(fail)?.status().map_err(Failure::Failed),
        LabCommand::Kill { node, dir } => Lab::load(&dir.dir).map_err(fail)?.kill(&node).map_err(Failure::Failed),
        LabCommand::Start { node, dir } => Lab::load(&dir.dir).map_err(fail)?.start(&node).map_err(Failure::Failed),
        LabCommand::Cut { node, link, dir } => {
            Lab::load(&dir.dir).map_err(fail)?.cut(&node, link).map_err(Failure::Failed)
        }
        LabCommand::Heal(d) => Lab::load(&d.dir).map_err(fail)?.heal().map_err(Failure::Failed),
        LabCommand::Partition { groups, dir } => {
            Lab::load(&dir.dir).map_err(fail)?.partition(&groups).map_err(Failure::Failed)
        }
        LabCommand::Exec { node, command, dir } => {
            let mut lab = Lab::load(&dir.dir).map_err(fail)?;
            lab.ns(&node).map_err(Failure::Usage)?;
            // Inside the node: its network and mount namespaces (a node's
            // mounts are its own), or every namespace of its machine; the
            // client has only a network namespace.
            let mut cmd = if node == "client" {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", &lab.ns(&node).map_err(Failure::Usage)?]);
                c
            } else if lab.machine_lab() {
                lab.in_machine(&node).map_err(Failure::Failed)?
            } else {
                lab.inside(&node).map_err(Failure::Failed)?
            };
            let status = cmd.args(&command).status().map_err(|e| Failure::Failed(format!("entering {node}: {e}")))?;
            if status.success() {
                Ok(())
            } else {
                Err(Failure::Failed(format!("{} exited with {status}", command[0])))
            }
        }
        LabCommand::Down(d) => Lab::down(&d.dir).map_err(Failure::Failed),
        LabCommand::Demo(args) => {
            down_on_signal(args.dir.dir.clone());
            demo::run(&args).map_err(Failure::Failed)
        }
        LabCommand::Bench(args) => {
            down_on_signal(args.dir.dir.clone());
            bench::run(&args).map_err(Failure::Failed)
        }
        LabCommand::ReleaseBench(args) => {
            down_on_signal(args.dir.dir.clone());
            bench::release::run(&args).map_err(Failure::Failed)
        }
        LabCommand::Chaos(args) => {
            down_on_signal(args.up.dir.dir.clone());
            chaos::chaos(&args).map_err(Failure::Failed)
        }
        LabCommand::Soak(args) => {
            down_on_signal(args.up.dir.dir.clone());
            chaos::soak(&args).map_err(Failure::Failed)
        }
        LabCommand::Flood { target, seconds } => web::flood(target, seconds).map_err(Failure::Failed),
        LabCommand::Serve { port } => web::serve(port).map_err(|e| Failure::Failed(e.to_string())),
        LabCommand::NfsClient { server, path, interval_ms, seconds } => {
            nfs::data::client(server, &path, Duration::from_millis(interval_ms), seconds).map_err(Failure::Failed)
        }
        LabCommand::NfsLock { server, path, role, seconds } => match role.as_str() {
            "holder" => nfs::lock::holder(server, &path, seconds),
            "contender" => nfs::lock::contender(server, &path, seconds),
            _ => Err(format!("--role {role}: \"holder\" or \"contender\"")),
        }
        .map_err(Failure::Failed),
        LabCommand::Probe { url, interval_ms, seconds } => {
            web::probe(&url, interval_ms, seconds).map_err(Failure::Failed)
        }
        LabCommand::Fence => std::process::exit(fence::agent()),
        LabCommand::PowerSwitch { dir } => power::serve(&dir.dir, power::listen_address()).map_err(Failure::Failed),
        LabCommand::FenceLab { args } => std::process::exit(power::agent(&args)),
        LabCommand::Daemon(command) => daemon::run(command).map_err(Failure::Failed),
    }
}

static STOP_ASKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn stop_asked(_: libc::c_int) {
    STOP_ASKED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// A command that makes and removes its own lab removes it also when it is
/// interrupted (SIGINT, SIGTERM): nothing of it outlives the program.
fn down_on_signal(dir: PathBuf) {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe);
        // programs the lab starts get default dispositions back at exec.
        unsafe { libc::signal(sig, stop_asked as *const () as libc::sighandler_t) };
    }
    std::thread::spawn(move || loop {
        if STOP_ASKED.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("baton-lab: interrupted; taking the lab in {} down", dir.display());
            let _ = Lab::down(&dir);
            std::process::exit(130);
        }
        std::thread::sleep(Duration::from_millis(100));
    });
}

/// `baton status --json` of one node, straight from its socket.
pub fn node_status(dir: &Path, node: &str) -> Result<Value, String> {
    let out = std::process::Command::new(baton_exe())
        .args(["status", "--json", "--socket"])
        .arg(dir.join(node).join("baton.sock"))
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// Polls until `f` says yes, at most `limit`.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
