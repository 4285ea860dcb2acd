//! `lab up --pacemaker TOKEN`: Pacemaker and Corosync instead of baton, for
//! side-by-side measurements. Every node is a machine (see
//! [`crate::machine`]) booted from a second cached root, the lab's Debian
//! root with Debian's `pacemaker`, `corosync`, `pcs` and `resource-agents`
//! installed by apt-get; Corosync runs knet over both lab links, and the
//! cluster is configured for the job of baton's `web` set the way
//! Pacemaker's documentation does it: an `IPaddr2` address and the web
//! server in a group, `no-quorum-policy=stop`, and fencing through a
//! fence-agents-style agent that reaches the lab's power switch
//! ([`power`]). This module owns that root, the cluster's files and its
//! configuration; the machines' boot is [`crate::machine`]'s.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::net::{Lab, VIP};
use super::power;

/// The Pacemaker root, built once from the lab's root (the name changes
/// with what it holds).
pub const ROOT: &str = "/var/cache/baton-lab/bookworm-pacemaker-1";
/// What it holds besides the lab's root, as Debian packages them.
const PACKAGES: &str = "pacemaker pacemaker-cli-utils corosync pcs resource-agents";
/// Units the packages enable that the lab does not use: pcsd (pcs's
/// daemon, for configuring nodes remotely); the lab runs pcs on a node.
const UNUSED_UNITS: [&str; 2] = ["pcsd.service", "pcsd-ruby.service"];
/// The lab's web server in every machine, which Pacemaker starts and stops.
const WEB_UNIT: &str = "lab-web.service";
/// The daemons counted as Pacemaker+Corosync's cost on a node, by the
/// name of their program.
pub const DAEMONS: [&str; 8] = [
    "corosync",
    "pacemakerd",
    "pacemaker-based",
    "pacemaker-fenced",
    "pacemaker-execd",
    "pacemaker-attrd",
    "pacemaker-schedulerd",
    "pacemaker-controld",
];

/// Runs `args` in `root` as in a chroot (systemd-nspawn without booting, on
/// the host's network, so that apt-get reaches Debian's mirror).
fn in_root(root: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("systemd-nspawn");
    cmd.args(["-q", "--register=no", "--keep-unit", "-E", "DEBIAN_FRONTEND=noninteractive", "-D"]).arg(root).args(args);
    super::machine::run(&mut cmd, &format!("{} in {}", args.join(" "), root.display()))
}

/// The Pacemaker root: built from the lab's root the first time (about
/// 57 MB downloaded, 500 MB on disk, half a minute), then reused.
pub fn root() -> Result<PathBuf, String> {
    let root = PathBuf::from(ROOT);
    if root.join("usr/sbin/cibadmin").exists() {
        return Ok(root);
    }
    let base = super::machine::root()?;
    super::machine::build_root(&root, |tmp| {
        super::machine::run(Command::new("cp").arg("-a").arg(&base).arg(tmp), "copying the lab's root")?;
        // Packages install their units enabled but start nothing here.
        let policy = tmp.join("usr/sbin/policy-rc.d");
        std::fs::write(&policy, "#!/bin/sh\nexit 101\n").map_err(|e| format!("writing {}: {e}", policy.display()))?;
        std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        let install =
            format!("apt-get update -qq && apt-get install -y -q --no-install-recommends {PACKAGES} && apt-get clean");
        in_root(tmp, &["sh", "-c", &install])?;
        let mut disable = vec!["systemctl", "disable"];
        disable.extend(UNUSED_UNITS);
        in_root(tmp, &disable)?;
        std::fs::remove_file(&policy).map_err(|e| format!("removing {}: {e}", policy.display()))
    })
}

/// A package's version in the Pacemaker root, for the bench's report.
pub fn version(package: &str) -> String {
    Command::new("dpkg-query")
        .arg(format!("--admindir={ROOT}/var/lib/dpkg"))
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(|| "not installed".into(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Corosync's token as `lab up --pacemaker` names it: "default" (as
/// Debian ships it: no token in corosync.conf, so corosync's own 3000 ms
/// plus 650 ms per node above two) or a token in milliseconds with no
/// per-node addition and consensus at its documented minimum, 1.2 × token.
pub fn token(setting: &str) -> Result<Option<u32>, String> {
    if setting == "default" {
        return Ok(None);
    }
    match setting.parse::<u32>() {
        Ok(ms) if (200..=60_000).contains(&ms) => Ok(Some(ms)),
        _ => Err(format!("--pacemaker {setting}: \"default\" or a token of 200 to 60000 (ms)")),
    }
}

impl Lab {
    /// corosync.conf as `pcs cluster setup` writes it for these nodes (knet,
    /// one knet link per lab link, encrypted), with the lab's token.
    fn corosync_conf(&self, token: Option<u32>) -> String {
        let mut totem = String::from(
            "    version: 2\n    cluster_name: lab\n    transport: knet\n    crypto_cipher: aes256\n    \
             crypto_hash: sha256\n",
        );
        if let Some(ms) = token {
            totem += &format!("    token: {ms}\n    token_coefficient: 0\n    consensus: {}\n", u64::from(ms) * 6 / 5);
        }
        let mut nodes = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            nodes += "    node {\n";
            for l in 0..self.links {
                nodes += &format!("        ring{l}_addr: {}\n", Lab::address(i, l));
            }
            nodes += &format!("        name: {node}\n        nodeid: {}\n    }}\n", i + 1);
        }
        format!(
            "# Written by `baton lab up --pacemaker`.\ntotem {{\n{totem}}}\n\nnodelist {{\n{nodes}}}\n\n\
             quorum {{\n    provider: corosync_votequorum\n}}\n\nlogging {{\n    to_logfile: yes\n    \
             logfile: /var/log/corosync/corosync.log\n    to_syslog: yes\n    timestamp: on\n}}\n"
        )
    }

    /// Starts a Pacemaker lab on its namespaces: the cluster's files, the
    /// power switch, every machine, then the cluster's configuration.
    pub(crate) fn pacemaker_up(&mut self, setting: &str) -> Result<(), String> {
        self.write_pacemaker_files(setting)?;
        self.start_power_switch()?;
        for node in self.all() {
            self.start(&node)?;
        }
        self.configure_pacemaker()
    }

    /// The cluster's files in the lab directory, laid into every machine
    /// before its first boot: corosync.conf and one authkey for all.
    fn write_pacemaker_files(&self, setting: &str) -> Result<(), String> {
        let conf = self.dir.join("corosync.conf");
        std::fs::write(&conf, self.corosync_conf(token(setting)?))
            .map_err(|e| format!("writing {}: {e}", conf.display()))?;
        let mut key = [0u8; 256];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
            .map_err(|e| format!("reading /dev/urandom: {e}"))?;
        let path = self.dir.join("authkey");
        std::fs::write(&path, key).map_err(|e| format!("writing {}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).map_err(|e| e.to_string())
    }

    /// What a Pacemaker machine gets before its first boot: its name, the
    /// cluster's files, the fence agent and the web server's unit (which
    /// Pacemaker starts; it is not enabled).
    pub(crate) fn furnish_pacemaker(&self, node: &str, merged: &Path) -> Result<(), String> {
        let write = |path: &str, text: &[u8], mode: u32| {
            let file = merged.join(path);
            std::fs::write(&file, text).map_err(|e| format!("writing {path} into {node}: {e}"))?;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("setting the mode of {path} in {node}: {e}"))
        };
        let read = |name: &str| std::fs::read(self.dir.join(name)).map_err(|e| format!("reading {name}: {e}"));
        write("etc/hostname", format!("{node}\n").as_bytes(), 0o644)?;
        write("etc/corosync/corosync.conf", &read("corosync.conf")?, 0o644)?;
        write("etc/corosync/authkey", &read("authkey")?, 0o400)?;
        write(power::AGENT.trim_start_matches('/'), power::script(&crate::lab_exe()).as_bytes(), 0o755)?;
        let unit = format!(
            "# Written by `baton lab up --pacemaker`: the lab's web server, answering with this node's name.\n\
             [Unit]\nDescription=The lab's web server\n\n[Service]\nEnvironment=BATON_NODE={node}\n\
             ExecStart={} serve --port 80\n",
            crate::lab_exe().display()
        );
        write(&format!("etc/systemd/system/{WEB_UNIT}"), unit.as_bytes(), 0o644)
    }

    /// After a Pacemaker machine's boot: corosync and pacemaker run (systemd
    /// started them, as Debian enables them).
    pub(crate) fn pacemaker_started(&self, node: &str) -> Result<(), String> {
        let mut state = String::new();
        let up = super::wait_until(Duration::from_secs(30), || {
            let out = self.in_machine(node).and_then(|mut c| {
                c.args(["systemctl", "is-active", "corosync", "pacemaker"]).output().map_err(|e| e.to_string())
            });
            state = out
                .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            state == "active active"
        });
        if up {
            Ok(())
        } else {
            Err(format!(
                "corosync and pacemaker on {node} are \"{state}\"; see its journal (`lab exec {node} -- journalctl`)"
            ))
        }
    }

    /// Configures the cluster once every node has joined, from the first
    /// node with pcs, in one CIB push as pcs's documentation does a batch:
    /// fencing through the lab's power switch, `no-quorum-policy=stop`, and
    /// the group `web` of an IPaddr2 address and the web server.
    fn configure_pacemaker(&self) -> Result<(), String> {
        let first = self.nodes.first().ok_or("no nodes")?;
        let hosts = self.nodes.join(" ");
        let script = format!(
            "set -e\ncd /var/tmp\npcs cluster cib lab.xml\n\
             pcs -f lab.xml property set stonith-enabled=true no-quorum-policy=stop\n\
             pcs -f lab.xml stonith create fence-lab fence_lab ipaddr={} ipport={} password={} \
             pcmk_host_list=\"{hosts}\"\n\
             pcs -f lab.xml resource create vip ocf:heartbeat:IPaddr2 ip={VIP} cidr_netmask=24 nic=eth0 \
             op monitor interval=10s --group web\n\
             pcs -f lab.xml resource create site systemd:{} op monitor interval=10s --group web\n\
             pcs cluster cib-push lab.xml --config\n",
            power::ADDRESS,
            power::PORT,
            crate::fence::PASSWORD,
            WEB_UNIT.trim_end_matches(".service"),
        );
        // pcs answers once the CIB does: the cluster may still be forming.
        let mut last = String::new();
        let done = super::wait_until(Duration::from_secs(90), || {
            let out = self.in_machine(first).and_then(|mut c| {
                super::machine::run(c.args(["timeout", "60", "sh", "-c", &script]), &format!("pcs on {first}"))
            });
            out.map_err(|e| last = e).is_ok()
        });
        if done {
            Ok(())
        } else {
            Err(format!("configuring Pacemaker failed: {last}"))
        }
    }

    /// `crm_mon`'s view from `node`, as XML.
    fn crm_mon(&self, node: &str) -> Option<String> {
        let out = self.in_machine(node).ok()?.args(["crm_mon", "-1", "--output-as=xml"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Every node online and every resource (the fence device, the address,
    /// the web server) started, as some node's crm_mon says.
    pub fn pacemaker_running(&self) -> bool {
        self.nodes.iter().any(|n| {
            self.crm_mon(n).is_some_and(|xml| {
                let online = xml.matches("online=\"true\"").count();
                let started = xml.matches("role=\"Started\"").count();
                online == self.nodes.len() && started == 3
            })
        })
    }

    /// A planned move: `pcs resource move web` on `owner`, which bans the
    /// group from the node it runs on and lifts the ban once it runs
    /// elsewhere (pcs 0.11).
    pub fn pacemaker_move(&self, owner: &str) -> Result<String, String> {
        let mut pcs = self.in_machine(owner)?;
        super::machine::run(pcs.args(["timeout", "60", "pcs", "resource", "move", "web"]), &format!("pcs on {owner}"))?;
        Ok(format!("`pcs resource move web` run on {owner}"))
    }

    /// A corosync timeout as it runs (`runtime.config.totem.KEY`), in ms.
    pub fn corosync_ms(&self, node: &str, key: &str) -> Option<u64> {
        let key = format!("runtime.config.totem.{key}");
        let out = self.in_machine(node).ok()?.args(["corosync-cmapctl", "-g", &key]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).rsplit('=').next()?.trim().parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Lab {
        serde_json::from_value(serde_json::json!({
            "dir": "/nonexistent", "nodes": ["alpha", "beta", "gamma"], "witness": null, "links": 2, "agents": {}
        }))
        .unwrap()
    }

    #[test]
    fn the_token_is_debian_s_or_a_number_of_milliseconds() {
        assert_eq!(token("default"), Ok(None));
        assert_eq!(token("1000"), Ok(Some(1000)));
        assert!(token("5").is_err() && token("fast").is_err());
    }

    #[test]
    fn corosync_runs_knet_on_every_link_of_every_node() {
        let conf = lab().corosync_conf(None);
        assert!(conf.contains("transport: knet"));
        for (i, node) in ["alpha", "beta", "gamma"].iter().enumerate() {
            let n = i + 1;
            let block = format!(
                "ring0_addr: 10.88.0.{n}\n        ring1_addr: 10.88.1.{n}\n        name: {node}\n        nodeid: {n}"
            );
            assert!(conf.contains(&block), "{node}:\n{conf}");
        }
        assert!(!conf.contains("token"), "Debian's defaults set no token:\n{conf}");
    }

    #[test]
    fn a_tuned_token_has_no_per_node_addition_and_the_minimum_consensus() {
        let conf = lab().corosync_conf(Some(1000));
        for line in ["token: 1000", "token_coefficient: 0", "consensus: 1200"] {
            assert!(conf.contains(line), "{line}:\n{conf}");
        }
    }
}
