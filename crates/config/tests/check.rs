//! One test per configuration error, each with its exact message.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A directory with a good secret file, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("baton-config-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, [7u8; 40]).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        Dir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("cluster.toml")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const GOOD: &str = r#"[cluster]
name = "campus"
secret_file = "secret"

[nodes.alpha]
addresses = ["10.0.0.1/24", "192.168.0.1/24"]
[nodes.beta]
addresses = ["10.0.0.2/24", "192.168.0.2/24"]
[nodes.arbiter]
addresses = ["10.0.0.3/24", "192.168.0.3/24"]
witness = true

[sets.web]
nodes = ["alpha", "beta"]
failback = "auto"

[[sets.web.resources]]
type = "ip"
address = "10.0.0.100/24"

[[sets.web.resources]]
type = "process"
command = ["/usr/sbin/nginx", "-g", "daemon off;"]
"#;

/// The errors for `text`, as `baton config check` prints them, with the
/// directory replaced by `DIR`.
fn errors(text: &str) -> String {
    let dir = Dir::new();
    let err = baton_config::parse_str(&dir.file(), text).expect_err("the file should be refused");
    err.to_string().replace(&dir.0.display().to_string(), "DIR")
}

fn accepted(text: &str) {
    let dir = Dir::new();
    if let Err(e) = baton_config::parse_str(&dir.file(), text) {
        panic!("refused: {e}");
    }
}

fn with(replace: &str, by: &str) -> String {
    assert!(GOOD.contains(replace), "{replace:?} is not in the base config");
    GOOD.replacen(replace, by, 1)
}

#[test]
fn the_example_is_valid_and_summarised() {
    let dir = Dir::new();
    let c = baton_config::parse_str(&dir.file(), GOOD).unwrap();
    assert_eq!(c.summary(), "cluster \"campus\": 3 nodes (1 witness), 2 links, 1 set, 2 resources");
    assert_eq!(c.sets[0].nodes, vec![0, 1]);
    let t = c.topology();
    assert_eq!(t.links, 2);
    assert_eq!(t.sets[0].resources[0].label, "ip 10.0.0.100/24");
    t.validate().unwrap();
}

#[test]
fn a_set_without_nodes_prefers_every_non_witness_node_in_file_order() {
    let dir = Dir::new();
    let c = baton_config::parse_str(&dir.file(), &with("nodes = [\"alpha\", \"beta\"]\n", "")).unwrap();
    assert_eq!(c.sets[0].nodes, vec![0, 1]);
}

#[test]
fn unknown_key() {
    assert_eq!(
        errors(&with("failback = \"auto\"", "failbak = \"auto\"")),
        "DIR/cluster.toml:15:1: sets.web.failbak: unknown key"
    );
}

#[test]
fn unknown_table() {
    assert_eq!(errors(&format!("{GOOD}\n[extra]\nx = 1\n")), "DIR/cluster.toml:25:2: extra: unknown key");
}

#[test]
fn bad_duration() {
    assert_eq!(
        errors(&with("secret_file = \"secret\"", "secret_file = \"secret\"\nlease = \"1 s\"")),
        "DIR/cluster.toml:4:9: cluster.lease: \"1 s\" is not a duration: write a number and a unit, e.g. \"100ms\", \"2s\", \"5m\", \"1h\""
    );
}

#[test]
fn address_that_is_not_an_address() {
    assert_eq!(
        errors(&with("\"10.0.0.2/24\"", "\"10.0.0.300/24\"")),
        "DIR/cluster.toml:8:14: nodes.beta.addresses[0]: \"10.0.0.300/24\" is not an IP address with an optional /prefix"
    );
}

#[test]
fn nodes_with_different_numbers_of_addresses() {
    assert_eq!(
        errors(&with("[\"10.0.0.2/24\", \"192.168.0.2/24\"]", "[\"10.0.0.2/24\"]")),
        "DIR/cluster.toml:8:14: nodes.beta.addresses: has 1 address, but nodes.alpha has 2; every node needs one address per link, in the same order"
    );
}

#[test]
fn duplicate_address() {
    assert_eq!(
        errors(&with("\"192.168.0.2/24\"", "\"192.168.0.1/24\"")),
        "DIR/cluster.toml:8:29: nodes.beta.addresses[1]: 192.168.0.1 is already used by nodes.alpha.addresses[1]"
    );
}

#[test]
fn set_preferring_an_unknown_node() {
    assert_eq!(
        errors(&with("[\"alpha\", \"beta\"]", "[\"alpha\", \"gamma\"]")),
        "DIR/cluster.toml:14:19: sets.web.nodes[1]: no node is named \"gamma\""
    );
}

#[test]
fn set_preferring_a_witness() {
    assert_eq!(
        errors(&with("[\"alpha\", \"beta\"]", "[\"arbiter\", \"beta\"]")),
        "DIR/cluster.toml:14:10: sets.web.nodes[0]: \"arbiter\" is a witness; witnesses never run sets"
    );
}

const MOUNT: &str = r#"
[[sets.web.resources]]
type = "mount"
device = "/dev/disk/by-label/web"
path = "/srv/web"
fstype = "ext4"
"#;

#[test]
fn a_lease_too_short_for_the_guard_s_release_budget_is_refused_with_the_least_that_works() {
    let text = with("secret_file = \"secret\"", "secret_file = \"secret\"\nlease = \"500ms\"") + MOUNT;
    assert_eq!(
        errors(&text),
        "DIR/cluster.toml:4:9: cluster.lease: lease 500ms leaves no time to hold sets between renewals: the guard's \
         release budget of this cluster's sets (420ms: Addresses 20ms, Processes 100ms, Mounts 300ms) comes out of \
         every lease; make the lease at least 740ms"
    );
    let text = with("secret_file = \"secret\"", "secret_file = \"secret\"\nlease = \"740ms\"") + MOUNT;
    accepted(&text);
}

#[test]
fn a_watchdog_must_be_petted_while_a_lease_is_held() {
    let wd = "secret_file = \"secret\"\nwatchdog = \"/dev/watchdog\"\nwatchdog_timeout = \"1s\"";
    assert_eq!(
        errors(&with("secret_file = \"secret\"", wd)),
        "DIR/cluster.toml:5:20: cluster.watchdog_timeout: 1s leaves no time to pet the watchdog while a lease is \
         held: the guard pets it only while a reset would come before the lease ends, and a lease of 1s is held \
         for 860ms at a time; make the lease longer or the timeout shorter than 660ms"
    );
    accepted(&with("secret_file = \"secret\"", &format!("{wd}\nlease = \"3s\"")));
}

#[test]
fn shared_storage_without_fencing_or_a_watchdog_is_warned_about() {
    let dir = Dir::new();
    let c = baton_config::parse_str(&dir.file(), &(GOOD.to_string() + MOUNT)).unwrap();
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("sets.web.resources[2]: mount on shared storage in a cluster with neither"));
    let xfs = GOOD
        .replace("secret_file = \"secret\"", "secret_file = \"secret\"\nwatchdog = \"/dev/watchdog\"\nlease = \"3s\"");
    let c = baton_config::parse_str(&dir.file(), &(xfs + &MOUNT.replace("ext4", "vfat"))).unwrap();
    assert_eq!(c.warnings().len(), 1);
    assert!(c.warnings()[0].contains("cannot cut a vfat filesystem off at once"), "{:?}", c.warnings());
}

#[test]
fn lease_shorter_than_three_heartbeats() {
    assert_eq!(
        errors(&with(
            "secret_file = \"secret\"",
            "secret_file = \"secret\"\nheartbeat_interval = \"100ms\"\nlease = \"250ms\""
        )),
        "DIR/cluster.toml:5:9: cluster.lease: 250ms is shorter than 3 heartbeat intervals (3 x 100ms = 300ms)"
    );
}

#[test]
fn secret_file_missing() {
    assert_eq!(
        errors(&with("secret_file = \"secret\"", "secret_file = \"nope\"")),
        "DIR/cluster.toml:3:15: cluster.secret_file: cannot read DIR/nope: No such file or directory (os error 2)"
    );
}

#[test]
fn secret_file_too_short() {
    let dir = Dir::new();
    let short = dir.0.join("short");
    std::fs::write(&short, b"tiny").unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = baton_config::parse_str(&dir.file(), &with("\"secret\"", "\"short\"")).unwrap_err();
    assert_eq!(
        err.to_string().replace(&dir.0.display().to_string(), "DIR"),
        "DIR/cluster.toml:3:15: cluster.secret_file: DIR/short holds 4 bytes; a secret needs at least 32"
    );
}

#[test]
fn secret_file_readable_by_others() {
    let dir = Dir::new();
    std::fs::set_permissions(dir.0.join("secret"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = baton_config::parse_str(&dir.file(), GOOD).unwrap_err();
    assert_eq!(
        err.to_string().replace(&dir.0.display().to_string(), "DIR"),
        "DIR/cluster.toml:3:15: cluster.secret_file: DIR/secret is readable by others (mode 0644); run chmod 600 DIR/secret"
    );
}

#[test]
fn ip_resource_outside_every_link_subnet() {
    assert_eq!(
        errors(&with("\"10.0.0.100/24\"", "\"10.9.0.100/24\"")),
        "DIR/cluster.toml:19:11: sets.web.resources[0].address: 10.9.0.100 is in no link's subnet (10.0.0.0/24, 192.168.0.0/24); name an interface"
    );
    let dir = Dir::new();
    let named = with("\"10.0.0.100/24\"", "\"10.9.0.100/24\"\ninterface = \"eth9\"");
    assert!(
        baton_config::parse_str(&dir.file(), &named).is_ok(),
        "with an interface the subnet is the operator's business"
    );
}

#[test]
fn resource_key_of_another_type() {
    assert_eq!(
        errors(&with("type = \"process\"", "type = \"process\"\naddress = \"10.0.0.5\"")),
        "DIR/cluster.toml:23:1: sets.web.resources[1].address: does not belong to a \"process\" resource (it is a key of: ip, nfs)"
    );
}

#[test]
fn unknown_resource_type() {
    assert_eq!(
        errors(&with("type = \"process\"", "type = \"docker\"")),
        "DIR/cluster.toml:22:8: sets.web.resources[1].type: unknown resource type \"docker\"; one of ip, mount, process, exec, systemd, lsb, ocf, nfs"
            .replace("ip, mount, process, exec", "ip, process, exec")
            .replace("lsb, ocf, nfs", "lsb, ocf, mount, nfs")
    );
}

#[test]
fn missing_required_key_and_wrong_type() {
    assert_eq!(
        errors(&with("command = [\"/usr/sbin/nginx\", \"-g\", \"daemon off;\"]", "command = \"/usr/sbin/nginx\"")),
        "DIR/cluster.toml:23:11: sets.web.resources[1].command: expected an array of strings, found a string"
    );
    assert_eq!(
        errors(&with("address = \"10.0.0.100/24\"\n", "")),
        "DIR/cluster.toml:17:1: sets.web.resources[0]: missing key \"address\""
    );
}

#[test]
fn every_problem_is_reported_one_line_each() {
    let text = with("failback = \"auto\"", "failback = \"sometimes\"\nmax_restarts = -1\ncolour = \"blue\"");
    assert_eq!(
        errors(&text),
        [
            "DIR/cluster.toml:15:12: sets.web.failback: \"sometimes\" is not a failback policy: use \"never\" or \"auto\"",
            "DIR/cluster.toml:16:16: sets.web.max_restarts: -1 is out of range (0 to 1000)",
            "DIR/cluster.toml:17:1: sets.web.colour: unknown key",
        ]
        .join("\n")
    );
}

#[test]
fn syntax_errors_have_a_place() {
    let e = errors("[cluster\nname = 1\n");
    assert!(e.starts_with("DIR/cluster.toml:1:"), "{e}");
    assert!(e.contains(": syntax: "), "{e}");
}

#[test]
fn every_table_and_resource_type_of_spec_is_accepted() {
    let dir = Dir::new();
    std::fs::write(dir.0.join("fence.pw"), "x").unwrap();
    // Every kind at once needs a lease longer than the default (below).
    let good = GOOD.replace("secret_file = \"secret\"", "secret_file = \"secret\"\nlease = \"2s\"");
    let text = format!(
        "{good}{}",
        r#"
[[sets.web.resources]]
type = "ocf"
agent = "heartbeat:Dummy"
params = { state = "/run/web-dummy.state" }
interval = "10s"
timeout = "20s"

[[sets.web.resources]]
type = "exec"
start = ["/bin/true"]
stop = ["/bin/true"]
monitor = ["/bin/true"]

[[sets.web.resources]]
type = "systemd"
unit = "nginx.service"

[[sets.web.resources]]
type = "lsb"
script = "/etc/init.d/exim4"

[[sets.web.resources]]
type = "mount"
device = "/dev/loop0"
path = "/srv/web"
fstype = "ext4"
options = "noatime"

[[sets.web.resources]]
type = "nfs"
path = "/srv/web"
fsid = 17
lock_dir = "/srv/web/.nfs"

[sets.db]
nodes = ["beta", "alpha"]
max_restarts = 1
restart_window = "5m"
hooks = "/etc/baton/hooks/db"

[fencing]
mode = "required"
[[fencing.devices]]
agent = "fence_ipmilan"
nodes = ["alpha", "beta"]
params = { ip = "10.1.0.1", username = "admin" }
password_file = "fence.pw"
delay = "5s"
delay_max = "2s"

[notify]
exec = ["/usr/local/bin/page-oncall"]
webhook = { url = "https://example.invalid/hook", events = ["takeover"] }
email = "ops@example.invalid"
"#
    );
    let c = baton_config::parse_str(&dir.file(), &text).unwrap_or_else(|e| panic!("{e}"));
    let types: Vec<&str> = c.sets[0].resources.iter().map(|r| r.kind.type_name()).collect();
    assert_eq!(types, ["ip", "process", "ocf", "exec", "systemd", "lsb", "mount", "nfs"]);
    assert_eq!(c.sets[1].nodes, vec![1, 0]);
    assert_eq!(c.fencing.as_ref().unwrap().mode, baton_config::FenceMode::Required);
    assert_eq!(c.notify.webhook.as_ref().unwrap().events, vec!["takeover"]);
    assert_eq!(c.notify.email.as_ref().unwrap().target.to, vec!["ops@example.invalid"]);
}

#[test]
fn passwords_never_in_the_file() {
    let text = format!("{GOOD}\n[fencing]\n[[fencing.devices]]\nagent = \"fence_x\"\nnodes = [\"alpha\"]\nparams = {{ password = \"hunter2\" }}\n");
    let e = errors(&text);
    assert_eq!(e, "DIR/cluster.toml:29:10: fencing.devices[0].params.password: passwords go in a file named by password_file, never in the configuration");
    assert!(!e.contains("hunter2"));
}

#[test]
fn notifier_filters_name_known_event_kinds() {
    let text =
        format!("{GOOD}\n[notify]\nexec = {{ command = [\"/bin/true\"], events = [\"takeover\", \"failovr\"] }}\n");
    let e = errors(&text);
    assert!(e.contains("notify.exec.events: unknown event kind \"failovr\"; one of agent, detection,"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn two_nodes_without_a_witness_need_a_fence_device_for_each() {
    let pair = with("[nodes.arbiter]\naddresses = [\"10.0.0.3/24\", \"192.168.0.3/24\"]\nwitness = true\n", "");
    let err = errors(&pair);
    assert!(err.starts_with("DIR/cluster.toml:"), "{err}");
    assert!(err.contains(": nodes: two nodes are each other's only majority"), "{err}");
    assert!(err.contains("add a witness node") && err.contains("give both a fence device"), "{err}");
    let fence =
        |nodes: &str| format!("{pair}\n[fencing]\n[[fencing.devices]]\nagent = \"fence_dummy\"\nnodes = [{nodes}]\n");
    let err = errors(&fence("\"alpha\""));
    assert!(err.contains("give both a fence device"), "one device for one node is not enough: {err}");
    accepted(&fence("\"alpha\", \"beta\""));
    accepted(GOOD);
    // A shared fence disk covers both just as well.
    let disk = |body: &str| format!("{pair}\n[fencing]\n[[fencing.devices]]\nnodes = [\"alpha\", \"beta\"]\n{body}\n");
    let parsed = baton_config::parse_str(&Dir::new().file(), &disk("disk = \"/dev/sdb\"")).unwrap();
    let device = &parsed.fencing.as_ref().unwrap().devices[0];
    assert_eq!(device.kind, baton_config::FenceKind::Disk { path: "/dev/sdb".into() });
    assert!(errors(&disk("disk = \"sdb\"")).contains(".disk: the fence disk is named by its absolute path"));
    let err = errors(&disk("disk = \"/dev/sdb\"\nagent = \"fence_ipmilan\""));
    assert!(err.contains("fencing.devices[0]: a device is a fence agent (`agent`) or a fence disk (`disk`), not both"));
    let err = errors(&disk("disk = \"/dev/sdb\"\nparams = { ip = \"10.0.0.9\" }"));
    assert!(err.contains("a fence disk takes no params"), "{err}");
    let err = errors(&disk("delay = \"2s\""));
    assert!(err.contains("a device needs `agent` (a fence agent) or `disk`"), "{err}");
}

#[test]
fn a_pair_on_one_fence_disk_boots_alone_after_startup_fence_after() {
    let pair = with("[nodes.arbiter]\naddresses = [\"10.0.0.3/24\", \"192.168.0.3/24\"]\nwitness = true\n", "");
    let fencing = |head: &str, devices: &str| format!("{pair}\n[fencing]\n{head}\n{devices}");
    let parse = |text: String| baton_config::parse_str(&Dir::new().file(), &text).unwrap();
    let one = "[[fencing.devices]]\ndisk = \"/dev/sdb\"\nnodes = [\"alpha\", \"beta\"]\n";
    let c = parse(fencing("", one));
    assert_eq!(c.alone_record(), Some(std::path::Path::new("/dev/sdb")));
    assert_eq!(c.topology().timing.startup_fence, Some(Duration::from_secs(20)), "Pacemaker's dc-deadtime");
    let c = parse(fencing("startup_fence_after = \"5s\"", one));
    assert_eq!(c.topology().timing.startup_fence, Some(Duration::from_secs(5)));
    let c = parse(fencing("startup_fence_after = \"never\"", one));
    assert_eq!((c.alone_record().is_some(), c.topology().timing.startup_fence), (true, None));
    // One device per node on the same disk is the same disk.
    let each = "[[fencing.devices]]\ndisk = \"/dev/sdb\"\nnodes = [\"alpha\"]\ndelay = \"2s\"\n\
                [[fencing.devices]]\ndisk = \"/dev/sdb\"\nnodes = [\"beta\"]\n";
    assert!(parse(fencing("", each)).alone_record().is_some());
    // Power switches keep no record: a lone boot waits for the peer.
    let power = "[[fencing.devices]]\nagent = \"fence_dummy\"\nnodes = [\"alpha\", \"beta\"]\n";
    assert_eq!(parse(fencing("", power)).topology().timing.startup_fence, None);
    let half = "[[fencing.devices]]\ndisk = \"/dev/sdb\"\nnodes = [\"alpha\"]\n\
                [[fencing.devices]]\nagent = \"fence_dummy\"\nnodes = [\"beta\"]\n";
    assert_eq!(parse(fencing("", half)).alone_record(), None, "the disk fences alpha only");
    // Three nodes are no pair.
    assert_eq!(
        baton_config::parse_str(&Dir::new().file(), &format!("{GOOD}\n[fencing]\n{one}")).unwrap().alone_record(),
        None
    );
    let err = errors(&fencing("startup_fence_after = \"soon\"", one));
    assert!(err.contains("fencing.startup_fence_after:") && err.contains("or \"never\""), "{err}");
}

#[test]
fn an_nfs_server_of_ganesha_binds_to_the_set_s_address_and_takes_its_fsid_as_export_id() {
    let nfs = |body: &str| {
        format!("{GOOD}\n[[sets.web.resources]]\ntype = \"nfs\"\npath = \"/srv\"\nlock_dir = \"/srv/.nfs\"\n{body}\n")
    };
    let parse = |text: String| baton_config::parse_str(&Dir::new().file(), &text).unwrap();
    let server = |c: baton_config::Config| match &c.sets[0].resources[2].kind {
        baton_config::ResourceKind::Nfs { server, .. } => server.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(server(parse(nfs("fsid = 17"))), baton_config::NfsServer::Kernel);
    let ganesha = server(parse(nfs("fsid = 17\nserver = \"ganesha\"")));
    let address = Some("10.0.0.100".parse().unwrap());
    assert_eq!(ganesha, baton_config::NfsServer::Ganesha { address, grace: Duration::from_secs(90) });
    let own = server(parse(nfs("fsid = 17\nserver = \"ganesha\"\naddress = \"10.0.0.7\"\ngrace = \"10s\"")));
    let address = Some("10.0.0.7".parse().unwrap());
    assert_eq!(own, baton_config::NfsServer::Ganesha { address, grace: Duration::from_secs(10) });
    let err = errors(&nfs("fsid = \"5f3c-uuid\"\nserver = \"ganesha\""));
    assert!(err.contains(".fsid: with server = \"ganesha\" the fsid is the export's Export_Id"), "{err}");
    let err = errors(&nfs("fsid = 17\ngrace = \"10s\""));
    assert!(err.contains(".grace: belongs to server = \"ganesha\""), "{err}");
    let err = errors(&nfs("fsid = 17\nserver = \"knfsd\""));
    assert!(err.contains(".server: \"knfsd\" is not an NFS server: \"kernel\" or \"ganesha\""), "{err}");
    let no_ip = with("[[sets.web.resources]]\ntype = \"ip\"\naddress = \"10.0.0.100/24\"\n", "");
    let text = format!("{no_ip}\n[[sets.web.resources]]\ntype = \"nfs\"\npath = \"/srv\"\nlock_dir = \"/x\"\nfsid = 1\nserver = \"ganesha\"\n");
    let err = errors(&text);
    assert!(
        err.contains("sets.web.resources[1].address: server = \"ganesha\" binds to the set's service address"),
        "{err}"
    );
}

#[test]
fn tls_notifiers_name_what_is_wrong() {
    let notify = |body: &str| format!("{GOOD}\n[notify]\n{body}\n");
    let err = errors(&notify("email = { to = [\"a@b.c\"], smtp = \"mx:587\", tls = \"maybe\" }"));
    assert!(err.contains("notify.email.tls: \"maybe\" is not a way to reach a relay"), "{err}");
    let err = errors(&notify("email = { to = [\"a@b.c\"], username = \"ops\" }"));
    assert!(err.contains("notify.email: username and password_file go together"), "{err}");
    let err = errors(&notify("webhook = { url = \"https://h.invalid/x\", ca_file = \"nope.pem\" }"));
    assert!(err.contains("notify.webhook.ca_file: cannot read DIR/nope.pem"), "{err}");
    let err = errors(&notify("webhook = { url = \"https://h.invalid/x\", secret_file = \"nope\" }"));
    assert!(err.contains("notify.webhook.secret_file"), "{err}");
    accepted(&notify(
        "webhook = \"https://h.invalid/x\"\nemail = { to = [\"a@b.c\"], smtp = \"mx:465\", tls = \"tls\" }",
    ));
}

#[test]
fn realtime_is_on_unless_turned_off_and_takes_true_or_false() {
    let parsed = |text: &str| {
        let dir = Dir::new();
        baton_config::parse_str(&dir.file(), text).map(|c| c.cluster.realtime)
    };
    assert!(parsed(GOOD).unwrap());
    let off = GOOD.replace("name = \"campus\"", "name = \"campus\"\nrealtime = false");
    assert!(!parsed(&off).unwrap());
    let bad = GOOD.replace("name = \"campus\"", "name = \"campus\"\nrealtime = \"yes\"");
    let e = errors(&bad);
    assert!(e.contains("cluster.realtime") && e.contains("true or false"), "{e}");
}

#[test]
fn a_remote_witness_is_on_the_first_links_only_and_may_be_behind_a_router() {
    accepted(&with("[\"10.0.0.3/24\", \"192.168.0.3/24\"]", "[\"172.16.5.9/24\"]"));
    assert_eq!(
        errors(&with("[\"10.0.0.3/24\", \"192.168.0.3/24\"]", "[\"10.0.0.3/24\", \"192.168.0.3/24\", \"10.1.0.3\"]")),
        "DIR/cluster.toml:10:14: nodes.arbiter.addresses: has 3 addresses, but the cluster has 2 links (nodes.alpha \
         has 2); a witness has one address for each of the first links, or fewer"
    );
    assert_eq!(
        errors(&with("[\"10.0.0.2/24\", \"192.168.0.2/24\"]", "[\"10.1.0.2/24\", \"192.168.0.2/24\"]")),
        "DIR/cluster.toml:8:14: nodes.beta.addresses[0]: 10.1.0.2/24 is not in link 0's subnet 10.0.0.0/24 (from \
         nodes.alpha)",
        "a full node's addresses are still checked against the link's subnet"
    );
}

#[test]
fn a_timing_below_what_the_bench_measured_safe_is_warned_about_with_its_cost() {
    let dir = Dir::new();
    let c = baton_config::parse_str(&dir.file(), GOOD).unwrap();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let fast =
        with("secret_file = \"secret\"", "secret_file = \"secret\"\nheartbeat_interval = \"10ms\"\nlease = \"200ms\"");
    let c = baton_config::parse_str(&dir.file(), &fast).unwrap();
    assert!(c.warnings().is_empty(), "the fast profile was measured: {:?}", c.warnings());
    let faster =
        with("secret_file = \"secret\"", "secret_file = \"secret\"\nheartbeat_interval = \"5ms\"\nlease = \"200ms\"");
    let c = baton_config::parse_str(&dir.file(), &faster).unwrap();
    assert_eq!(
        c.warnings(),
        ["cluster: heartbeat_interval 5ms and lease 200ms are below the shortest setting measured free of false \
          failovers (heartbeat 10ms, lease 100ms: no set moved in ten minutes with both cores busy and 5 % of the \
          packets lost, docs/bench-fast.md); each node sends 800 heartbeats a second and receives as many, and a \
          busy machine or a lossy network may move sets without a fault"]
    );
}

#[test]
fn the_guard_budgets_a_process_release_only_where_a_program_or_a_hook_runs() {
    use baton_core::release::Phase;
    let dir = Dir::new();
    let address_only = GOOD.split("\n[[sets.web.resources]]\ntype = \"process\"").next().unwrap().to_string();
    let c = baton_config::parse_str(&dir.file(), &address_only).unwrap();
    assert_eq!(c.release_phases(), [Phase::Addresses], "an address runs no program");
    let hooked = address_only.replace("failback = \"auto\"", "failback = \"auto\"\nhooks = \"/etc/baton/hooks/web\"");
    let c = baton_config::parse_str(&dir.file(), &hooked).unwrap();
    assert_eq!(c.release_phases(), [Phase::Addresses, Phase::Processes], "hooks run in the set's cgroup");
    let c = baton_config::parse_str(&dir.file(), GOOD).unwrap();
    assert_eq!(c.release_phases(), [Phase::Addresses, Phase::Processes]);
}
