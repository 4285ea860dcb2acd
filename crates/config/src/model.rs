//! The validated configuration: every value converted, every default
//! filled in, every relationship checked. Code that holds a [`Config`] never
//! re-checks it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use baton_core::release::Phase;
use baton_core::Failback;

pub use crate::values::Address;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file this came from, as named to `load`.
    pub file: PathBuf,
    pub cluster: Cluster,
    /// In file order; a node's index is its id in the cluster.
    pub nodes: Vec<NodeConfig>,
    /// In file order; a set's index is its id in the cluster.
    pub sets: Vec<SetConfig>,
    pub fencing: Option<Fencing>,
    pub notify: Notify,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    pub name: String,
    /// Resolved against the configuration file's directory.
    pub secret_file: PathBuf,
    pub state_dir: PathBuf,
    pub port: u16,
    pub heartbeat_interval: Duration,
    pub lease: Duration,
    pub http: SocketAddr,
    /// The bearer token HTTP writes need (resolved like `secret_file`);
    /// without it the HTTP API is read-only.
    pub http_token_file: Option<PathBuf>,
    /// Secrets accepted besides `secret_file`, which alone signs: during a
    /// rotation the next (or the previous) secret (resolved like `secret_file`).
    pub accept_secret_files: Vec<PathBuf>,
    /// A watchdog device the guard pets while it could still release
    /// everything before the lease ends (`/dev/watchdog`).
    pub watchdog: Option<PathBuf>,
    pub watchdog_timeout: Duration,
    /// How long an exclusion (a veto, a failed start, too many restarts)
    /// lasts unless a set says otherwise; `None`: until `baton cleanup`.
    pub failure_timeout: Option<Duration>,
    /// The agent's loop and its guard run at real-time priority with their
    /// memory locked (`realtime = false` turns it off).
    pub realtime: bool,
    /// Where some keys were written, for problems found after parsing.
    pub spans: ClusterSpans,
}

/// Places in the file of keys checked against others later.
#[derive(Clone, Debug, Default)]
pub struct ClusterSpans {
    pub lease: crate::tree::Span,
    pub watchdog_timeout: crate::tree::Span,
}

/// Positions are not part of what a configuration means.
impl PartialEq for ClusterSpans {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    pub name: String,
    /// One per link, in link order.
    pub addresses: Vec<Address>,
    pub witness: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SetConfig {
    pub name: String,
    /// Node indices in preference order.
    pub nodes: Vec<usize>,
    pub failback: Failback,
    pub max_restarts: u32,
    pub restart_window: Duration,
    /// This set's `failure_timeout`, if it names one.
    pub failure_timeout: Option<Duration>,
    pub hooks: Option<PathBuf>,
    pub resources: Vec<Resource>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub kind: ResourceKind,
    /// The limit for start and stop; `None`: the type's default.
    pub timeout: Option<Duration>,
    /// How often the monitor runs; `None`: the type's default.
    pub interval: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ResourceKind {
    Ip { address: Address, interface: Option<String>, garp_count: u32, garp_interval: Duration },
    Process { command: Vec<String>, env: Vec<(String, String)> },
    Exec { start: Vec<String>, stop: Vec<String>, monitor: Option<Vec<String>> },
    Systemd { unit: String },
    Lsb { script: String },
    Ocf { provider: String, agent: String, params: Vec<(String, String)> },
    Mount { device: String, path: String, fstype: String, options: String },
    Nfs { path: String, fsid: String, clients: String, options: String, lock_dir: String, server: NfsServer },
}

/// Which NFS server an `nfs` resource exports through.
#[derive(Clone, Debug, PartialEq)]
pub enum NfsServer {
    /// The kernel's (nfs-kernel-server): the export table, /var/lib/nfs
    /// bound to `lock_dir`, sm-notify.
    Kernel,
    /// nfs-ganesha, run by the resource for the set (NFSv4): bound to
    /// `address` (the set's first ip resource unless given), its recovery
    /// state in `lock_dir`, clients given `grace` to reclaim after a move.
    Ganesha { address: Option<std::net::IpAddr>, grace: Duration },
}

impl ResourceKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ResourceKind::Ip { .. } => "ip",
            ResourceKind::Process { .. } => "process",
            ResourceKind::Exec { .. } => "exec",
            ResourceKind::Systemd { .. } => "systemd",
            ResourceKind::Lsb { .. } => "lsb",
            ResourceKind::Ocf { .. } => "ocf",
            ResourceKind::Mount { .. } => "mount",
            ResourceKind::Nfs { .. } => "nfs",
        }
    }

    /// What the guard must do to release a resource of this kind.
    pub fn release_phases(&self) -> &'static [Phase] {
        match self {
            ResourceKind::Ip { .. } => &[Phase::Addresses],
            ResourceKind::Process { .. } => &[Phase::Processes],
            ResourceKind::Exec { .. } | ResourceKind::Lsb { .. } | ResourceKind::Ocf { .. } => {
                &[Phase::Processes, Phase::Programs]
            }
            ResourceKind::Systemd { .. } => &[Phase::Units],
            ResourceKind::Mount { .. } => &[Phase::Mounts],
            ResourceKind::Nfs { server: NfsServer::Kernel, .. } => &[Phase::Exports, Phase::Binds],
            ResourceKind::Nfs { server: NfsServer::Ganesha { .. }, .. } => &[Phase::Processes],
        }
    }

    /// A short human label, e.g. `ip 10.0.0.100/24` or `ocf heartbeat:Dummy`.
    pub fn label(&self) -> String {
        let detail = match self {
            ResourceKind::Ip { address, .. } => address.to_string(),
            ResourceKind::Process { command, .. } => command[0].clone(),
            ResourceKind::Exec { start, .. } => start[0].clone(),
            ResourceKind::Systemd { unit } => unit.clone(),
            ResourceKind::Lsb { script } => script.clone(),
            ResourceKind::Ocf { provider, agent, .. } => format!("{provider}:{agent}"),
            ResourceKind::Mount { path, .. } => path.clone(),
            ResourceKind::Nfs { path, .. } => path.clone(),
        };
        format!("{} {detail}", self.type_name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceMode {
    /// Takeover waits for the lease; a confirmed fence may shorten the wait.
    Lease,
    /// A silent node's sets are taken over only after it was fenced.
    Required,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fencing {
    pub mode: FenceMode,
    pub devices: Vec<FenceDevice>,
    /// Two-node mode with a fence disk covering both nodes: how long a
    /// node that boots and hears its peer on no link waits before it
    /// fences the peer and goes on alone (`None`: "never", it waits).
    pub startup_fence_after: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FenceDevice {
    pub kind: FenceKind,
    /// Node indices this device can fence.
    pub nodes: Vec<usize>,
    pub delay: Duration,
    /// A random extra delay, up to this (Pacemaker's `pcmk_delay_max`).
    pub delay_max: Duration,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FenceKind {
    /// A fence agent (`fence_ipmilan`, ...) run with the fence-agents
    /// stdin protocol.
    Agent { agent: String, params: Vec<(String, String)>, password_file: Option<PathBuf> },
    /// A shared disk with a slot per node (`baton disk init`): a pill in
    /// the victim's slot, and `msgwait`.
    Disk { path: PathBuf },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Notify {
    pub exec: Option<Notifier<Vec<String>>>,
    pub webhook: Option<Notifier<Webhook>>,
    pub email: Option<Notifier<Email>>,
}

/// The kinds of event the history records, which `events` filters name.
pub const EVENT_KINDS: &[&str] = &[
    "agent",
    "detection",
    "link",
    "agreed",
    "lease",
    "takeover",
    "release",
    "step",
    "failure",
    "fence",
    "operator",
    "guard",
    "notify",
    "duplicate",
];

/// Where notifications go, and which event kinds (empty: all).
#[derive(Clone, Debug, PartialEq)]
pub struct Notifier<T> {
    pub target: T,
    pub events: Vec<String>,
}

/// An http:// or https:// URL the events are POSTed to. (Serialized: the
/// agent hands a delivery to its helper, `baton-notify`, as JSON.)
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Webhook {
    pub url: String,
    /// A secret (like `secret_file`): each POST carries
    /// `X-Baton-Signature: sha256=<HMAC-SHA256 of the body, hex>`.
    pub secret_file: Option<PathBuf>,
    /// PEM certificates trusted besides the built-in web roots (a private CA).
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Email {
    pub to: Vec<String>,
    pub from: String,
    pub smtp: String,
    pub tls: SmtpTls,
    /// SMTP login: the user, and a file holding the password.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// PEM certificates trusted besides the built-in web roots.
    pub ca_file: Option<PathBuf>,
}

/// How the mail relay is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SmtpTls {
    /// Plain SMTP (a relay on this machine or a trusted network).
    None,
    /// STARTTLS, required (port 587, usually).
    StartTls,
    /// TLS from the first byte (port 465, usually).
    Tls,
}
