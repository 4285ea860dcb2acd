//! vip-manager with a three-member etcd in the lab, for side-by-side
//! measurements: the same nodes, links and client, the same address and web
//! server. Every node runs an etcd member (the cluster on link 0) and
//! vip-manager watching the leader key in its own member; vip-manager holds
//! the address while the key's value is its node's name.
//!
//! vip-manager only follows the key; in a Patroni cluster Patroni writes it.
//! The lab has no PostgreSQL and no Patroni, so a small loop per node keeps
//! the key the way Patroni keeps its leader key in etcd: created only if
//! absent, with a TTL, refreshed by its holder every `loop_wait` seconds
//! only while it still holds the value; the others watch the key and race
//! to create it when it is gone. vip-manager 1.0 reads etcd through its v2
//! API, so etcd runs with v2 on and the loop uses `etcdctl`'s v2 commands
//! (Patroni's `etcd:` section uses the same API). What the loop leaves out
//! of Patroni: its members' health checks before taking the key, which
//! would only add to an outage.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::net::{Lab, VIP};

/// The key vip-manager watches: `<namespace>/<scope>/leader` of a Patroni
/// cluster with scope `lab`.
pub const KEY: &str = "/service/lab/leader";
const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;
/// The loop that keeps the key, in the lab directory.
const LOOP: &str = "vip-manager-leader";

/// `lab up --vip-manager INTERVAL_MS:TTL_S[:LOOP_S]`, validated.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Settings {
    /// vip-manager's `interval`: ms between its looks at the key.
    pub interval_ms: u32,
    /// The leader key's TTL (Patroni's `ttl`), seconds.
    pub ttl_s: u32,
    /// Seconds between the holder's refreshes of the key (Patroni's
    /// `loop_wait`).
    pub loop_s: u32,
}

/// Parses `INTERVAL_MS:TTL_S[:LOOP_S]`; the refresh defaults to a third of
/// the TTL (Patroni's defaults: ttl 30, loop_wait 10).
pub fn settings(setting: &str) -> Result<Settings, String> {
    let parts: Vec<&str> = setting.split(':').collect();
    let number = |i: usize| parts.get(i).map(|p| p.parse::<u32>());
    let parsed = match (parts.len(), number(0), number(1), number(2)) {
        (2, Some(Ok(interval_ms)), Some(Ok(ttl_s)), None) => {
            Some(Settings { interval_ms, ttl_s, loop_s: (ttl_s / 3).max(1) })
        }
        (3, Some(Ok(interval_ms)), Some(Ok(ttl_s)), Some(Ok(loop_s))) => Some(Settings { interval_ms, ttl_s, loop_s }),
        _ => None,
    };
    match parsed {
        Some(s)
            if (10..=60_000).contains(&s.interval_ms)
                && (2..=3600).contains(&s.ttl_s)
                && (1..s.ttl_s).contains(&s.loop_s) =>
        {
            Ok(s)
        }
        _ => Err(format!(
            "--vip-manager {setting}: INTERVAL_MS:TTL_S[:LOOP_S], vip-manager's interval of 10 to 60000 ms, the \
             leader key's TTL of 2 to 3600 s, and its refresh of 1 s up to below the TTL (default a third of it)"
        )),
    }
}

/// An etcd member's client and peer URLs: link 0 of node `index`.
fn url(index: usize, port: u16) -> String {
    format!("http://{}:{port}", Lab::address(index, 0))
}

/// The etcd member of node `index` of `nodes`, its data under `dir`:
/// etcd's defaults (heartbeat 100 ms, election 1000 ms) and its v2 API on.
pub fn etcd_config(dir: &Path, nodes: &[String], index: usize) -> String {
    let cluster: Vec<String> = nodes.iter().enumerate().map(|(i, n)| format!("{n}={}", url(i, PEER_PORT))).collect();
    let node = &nodes[index];
    format!(
        "# Written by `baton lab up --vip-manager`: the etcd member of {node}.\nname: {node}\n\
         data-dir: {}\nlisten-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n\
         listen-client-urls: {client}\nadvertise-client-urls: {client}\ninitial-cluster: {}\n\
         initial-cluster-token: baton-lab\ninitial-cluster-state: new\nenable-v2: true\n",
        dir.join(format!("etcd-{node}")).display(),
        cluster.join(","),
        peer = url(index, PEER_PORT),
        client = url(index, CLIENT_PORT),
    )
}

/// vip-manager's config on node `index`: the lab's address on eth0, the
/// leader key in the node's own etcd member, the node's name as the value.
pub fn config(nodes: &[String], index: usize, settings: Settings) -> String {
    format!(
        "# Written by `baton lab up --vip-manager`.\nip: {VIP}\nnetmask: 24\ninterface: eth0\n\
         trigger-key: {KEY}\ntrigger-value: {}\ndcs-type: etcd\ndcs-endpoints:\n  - {}\ninterval: {}\n",
        nodes[index],
        url(index, CLIENT_PORT),
        settings.interval_ms
    )
}

/// The loop that keeps the leader key (see the module's comment): `$1` the
/// node, `$2` the TTL, `$3` the refresh, `$4` the node's etcd member. A
/// node holds the key when a look after its `mk` finds its name there, not
/// when `mk` says it succeeded: a create that timed out at the client may
/// still be committed (as while the cluster forms), and Patroni, too, takes
/// a leader key with its own name as its own. A
/// follower watches from the index of its last look, so that a key that
/// expires between its look and its watch still wakes it.
pub fn leader_loop() -> String {
    format!(
        "#!/bin/sh\n# Written by `baton lab up --vip-manager`: keeps {KEY} as Patroni keeps its leader key.\n\
         node=$1 ttl=$2 loop=$3 endpoint=$4\nkey={KEY}\nexport ETCDCTL_API=2\n\
         ctl() {{ etcdctl --endpoints \"$endpoint\" --no-sync \"$@\"; }}\n\
         while :; do\n\
         \x20 ctl mk --ttl \"$ttl\" \"$key\" \"$node\" >/dev/null 2>&1\n\
         \x20 seen=$(ctl -o extended get \"$key\" 2>/dev/null)\n\
         \x20 if [ \"$(printf '%s\\n' \"$seen\" | tail -n 1)\" = \"$node\" ]; then\n\
         \x20   echo \"leader loop: $node holds $key\"\n\
         \x20   while sleep \"$loop\" && ctl set --ttl \"$ttl\" --swap-with-value \"$node\" \"$key\" \"$node\" >/dev/null 2>&1; do :; done\n\
         \x20   echo \"leader loop: $node lost $key\"\n\
         \x20 else\n\
         \x20   index=$(printf '%s\\n' \"$seen\" | sed -n 's/^Index: //p')\n\
         \x20   if [ -n \"$index\" ]; then\n\
         \x20     ctl watch --after-index \"$index\" \"$key\" >/dev/null 2>&1 || sleep 1\n\
         \x20   else\n\
         \x20     sleep 0.1\n\
         \x20   fi\n\
         \x20 fi\n\
         done\n"
    )
}

/// The configs of every node and the loop, in the lab directory.
pub fn write_files(dir: &Path, nodes: &[String], setting: &str) -> Result<(), String> {
    let s = settings(setting)?;
    let write = |name: String, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    for (i, node) in nodes.iter().enumerate() {
        write(format!("etcd-{node}.yml"), etcd_config(dir, nodes, i))?;
        write(format!("vip-manager-{node}.yml"), config(nodes, i, s))?;
    }
    write(LOOP.into(), leader_loop())?;
    let path = dir.join(LOOP);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("making {} executable: {e}", path.display()))
}

/// Reaps a child in the background, so that a killed one leaves no zombie.
fn reap(mut child: Child) -> u32 {
    let pid = child.id();
    std::thread::spawn(move || child.wait());
    pid
}

/// Starts etcd, vip-manager and the leader loop on `node`, in one process
/// group (a crash SIGKILLs them together), and the lab's web server in its
/// own; returns etcd's pid, the group's.
pub fn start(lab: &Lab, node: &str, setting: &str, log: File) -> Result<u32, String> {
    let s = settings(setting)?;
    let index = lab.nodes.iter().position(|n| n == node).ok_or_else(|| format!("no lab node named {node}"))?;
    let ns = lab.ns(node)?;
    let out = || log.try_clone().map_err(|e| format!("the log of {node}: {e}"));
    let spawn = |what: &str, cmd: &mut Command, group: i32| {
        cmd.stdin(Stdio::null())
            .stdout(out()?)
            .stderr(out()?)
            .process_group(group)
            .spawn()
            .map(reap)
            .map_err(|e| format!("starting {what} on {node} (is it installed?): {e}"))
    };
    let etcd = spawn(
        "etcd",
        Command::new("ip")
            .args(["netns", "exec", &ns, "etcd", "--config-file"])
            .arg(lab.dir.join(format!("etcd-{node}.yml"))),
        0,
    )?;
    let group = etcd as i32;
    let rest = (|| {
        spawn(
            "vip-manager",
            Command::new("ip")
                .args(["netns", "exec", &ns, "vip-manager", "--config"])
                .arg(lab.dir.join(format!("vip-manager-{node}.yml"))),
            group,
        )?;
        spawn(
            "the leader loop",
            Command::new("ip").args(["netns", "exec", &ns]).arg(lab.dir.join(LOOP)).args([
                node,
                &s.ttl_s.to_string(),
                &s.loop_s.to_string(),
                &url(index, CLIENT_PORT),
            ]),
            group,
        )?;
        super::web::start_server(&ns, node, out()?)
    })();
    if let Err(e) = rest {
        // SAFETY: kill(2) of the process group this function just made.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        return Err(e);
    }
    Ok(etcd)
}

/// A planned move, as a Patroni switchover to a named candidate ends: the
/// leader key handed from `owner` to the next node in the lab's order in
/// one compare-and-swap, with the key's TTL. The candidate's loop then
/// finds its name there and keeps the key; the owner's next refresh fails.
pub fn hand_over(lab: &Lab, owner: &str) -> Result<String, String> {
    let s = lab.vip_manager.as_deref().map(settings).transpose()?.ok_or("the lab runs no vip-manager")?;
    let index = lab.nodes.iter().position(|n| n == owner).ok_or_else(|| format!("no lab node named {owner}"))?;
    let next = &lab.nodes[(index + 1) % lab.nodes.len()];
    let mut set = Command::new("ip");
    set.args(["netns", "exec", &lab.ns(owner)?, "etcdctl", "--endpoints", &url(index, CLIENT_PORT), "--no-sync"])
        .args(["set", "--ttl", &s.ttl_s.to_string(), "--swap-with-value", owner, KEY, next])
        .env("ETCDCTL_API", "2");
    super::machine::run(&mut set, &format!("etcdctl on {owner}"))?;
    Ok(format!("{KEY} handed from {owner} to {next}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<String> {
        ["alpha", "beta", "gamma"].map(String::from).to_vec()
    }

    #[test]
    fn settings_are_an_interval_a_ttl_and_a_refresh_that_defaults_to_a_third_of_it() {
        assert_eq!(settings("1000:30"), Ok(Settings { interval_ms: 1000, ttl_s: 30, loop_s: 10 }));
        assert_eq!(settings("100:3:1"), Ok(Settings { interval_ms: 100, ttl_s: 3, loop_s: 1 }));
        assert_eq!(settings("100:2"), Ok(Settings { interval_ms: 100, ttl_s: 2, loop_s: 1 }));
        for bad in ["1000", "1000:30:30", "1000:30:0", "5:30", "1000:1", "x:30", "1000:30:10:1", "1000:-3"] {
            assert!(settings(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn etcd_members_form_one_cluster_on_link_zero() {
        let text = etcd_config(Path::new("/tmp/lab"), &nodes(), 1);
        assert!(text.contains("\nname: beta\n"), "{text}");
        assert!(text.contains("\ndata-dir: /tmp/lab/etcd-beta\n"), "{text}");
        assert!(text.contains("\nlisten-client-urls: http://10.88.0.2:2379\n"), "{text}");
        assert!(text.contains("\ninitial-advertise-peer-urls: http://10.88.0.2:2380\n"), "{text}");
        assert!(
            text.contains(
                "\ninitial-cluster: alpha=http://10.88.0.1:2380,beta=http://10.88.0.2:2380,gamma=http://10.88.0.3:2380\n"
            ),
            "{text}"
        );
        assert!(text.contains("\nenable-v2: true\n"), "{text}");
    }

    #[test]
    fn vip_manager_follows_the_key_in_its_own_member_with_its_node_as_the_value() {
        let text = config(&nodes(), 2, Settings { interval_ms: 100, ttl_s: 3, loop_s: 1 });
        for line in [
            "ip: 10.88.0.100",
            "netmask: 24",
            "interface: eth0",
            "trigger-key: /service/lab/leader",
            "trigger-value: gamma",
            "dcs-type: etcd",
            "  - http://10.88.0.3:2379",
            "interval: 100",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_loop_is_a_shell_script_sh_accepts() {
        let dir = std::env::temp_dir().join(format!("baton-lab-vip-manager-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        write_files(&dir, &nodes(), "1000:30").expect("the lab's files");
        let checked = Command::new("sh").arg("-n").arg(dir.join(LOOP)).output().expect("sh runs");
        let configs = ["etcd-alpha.yml", "vip-manager-gamma.yml"].map(|f| dir.join(f).exists());
        std::fs::remove_dir_all(&dir).expect("removing the temporary directory");
        assert!(checked.status.success(), "sh -n: {}", String::from_utf8_lossy(&checked.stderr));
        assert_eq!(configs, [true, true]);
    }

    #[test]
    fn the_loop_creates_the_key_only_if_absent_and_refreshes_only_its_own() {
        let text = leader_loop();
        assert!(text.starts_with("#!/bin/sh\n"));
        assert!(text.contains("ctl mk --ttl \"$ttl\" \"$key\" \"$node\""), "{text}");
        assert!(text.contains("if [ \"$(printf '%s\\n' \"$seen\" | tail -n 1)\" = \"$node\" ]; then"), "{text}");
        assert!(text.contains("ctl set --ttl \"$ttl\" --swap-with-value \"$node\" \"$key\" \"$node\""), "{text}");
        assert!(text.contains("ctl watch --after-index \"$index\" \"$key\""), "{text}");
        assert!(text.contains(&format!("key={KEY}\n")), "{text}");
    }
}
