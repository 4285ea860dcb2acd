//! End-to-end: real agents in network namespaces (`baton lab`), a client in
//! its own namespace, the service address watched in every node with
//! `ip -ts monitor address`. Needs root; without it every test fails and
//! says so. The tests share the lab's namespace names, so they run one at a
//! time, and each removes its lab also when it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

const VIP: &str = "10.88.0.100";
/// The address of the NFS set of case 35.
const NFS_VIP: &str = "10.88.0.101";
static SERIAL: Mutex<()> = Mutex::new(());

/// The `baton` binary cargo built beside the lab's (`cargo test --workspace`);
/// `baton lab ...` runs the lab's.
fn baton_bin() -> PathBuf {
    std::path::Path::new(env!("CARGO_BIN_EXE_baton-lab")).with_file_name("baton")
}

fn baton(args: &[&str]) -> Output {
    Command::new(baton_bin()).args(args).output().expect("running baton")
}

fn ok(args: &[&str]) -> String {
    let out = baton(args);
    assert!(out.status.success(), "baton {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A lab for one test; `down` on drop.
struct Lab {
    dir: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    fn up(tag: &str, extra: &[&str]) -> Lab {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "the lab tests need root: they create network namespaces");
        let dir = std::env::temp_dir().join(format!("baton-e2e-{tag}-{}", std::process::id()));
        let lab = Lab { dir, _serial: serial };
        let mut args = vec!["lab", "up", "--dir", lab.dir()];
        args.extend_from_slice(extra);
        ok(&args);
        lab
    }

    fn dir(&self) -> &str {
        self.dir.to_str().expect("utf-8 path")
    }

    fn run(&self, args: &[&str]) -> String {
        // `--dir` right after the subcommand: `exec` takes the rest as its command.
        let mut all = vec!["lab", args[0], "--dir", self.dir()];
        all.extend_from_slice(&args[1..]);
        ok(&all)
    }

    fn status(&self, node: &str) -> Option<Value> {
        let sock = self.dir.join(node).join("baton.sock");
        let out = baton(&["status", "--json", "--socket", sock.to_str()?]);
        out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
    }

    /// The owner of `web` while it runs, as `node` sees it.
    fn owner_seen_by(&self, node: &str) -> Option<String> {
        let doc = self.status(node)?;
        let set = &doc["sets"][0];
        (set["state"] == "running").then(|| set["owner"].as_str().map(str::to_string)).flatten()
    }

    fn has_vip(&self, node: &str) -> bool {
        self.has_address(node, VIP)
    }

    fn has_address(&self, node: &str, address: &str) -> bool {
        let out = Command::new("ip").args(["-n", &format!("btnl-{node}"), "-o", "addr"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!("{address}/"))
    }

    /// The processes of `node`, but the one holding its mount namespace.
    fn processes(&self, node: &str) -> Vec<String> {
        let out = Command::new("ip").args(["netns", "pids", &format!("btnl-{node}")]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim().to_string())
            .filter(|c| c != "sleep infinity")
            .collect()
    }

    fn empty_ns(&self, node: &str) -> bool {
        let out = Command::new("ip").args(["netns", "pids", &format!("btnl-{node}")]).output().unwrap();
        out.stdout.is_empty()
    }

    /// The lab's power switch (its fence agent) turns `node` off or on.
    fn power(&self, node: &str, action: &str) {
        let mut switch = Command::new(self.dir.join("fence-agent")).stdin(Stdio::piped()).spawn().unwrap();
        let input = format!("action={action}\nplug={node}\nlab={}\npassword=lab-fence-password\n", self.dir());
        std::io::Write::write_all(&mut switch.stdin.take().unwrap(), input.as_bytes()).unwrap();
        assert!(switch.wait().unwrap().success(), "the power switch did not turn {node} {action}");
    }

    /// Two-node mode over: beta no longer alone, alpha a voter and online.
    fn together(&self) -> bool {
        self.status("beta").is_some_and(|d| d["alone"].is_null() && d["nodes"][0]["voter"] == true)
            && self.status("alpha").is_some_and(|d| d["nodes"][0]["state"] == "online")
    }

    /// One GET of the service from the client namespace.
    fn fetch(&self) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", "btnl-client", env!("CARGO_BIN_EXE_baton-lab"), "probe"])
            .args(["--url", &format!("http://{VIP}/"), "--interval-ms", "1000"])
            .stdout(Stdio::piped())
            .spawn()
            .ok()
            .and_then(|mut c| {
                let line = BufReader::new(c.stdout.take()?).lines().next()?.ok();
                let _ = c.kill();
                let _ = c.wait();
                line
            })?;
        let who = out.split_once(' ')?.1.to_string();
        (who != "-").then_some(who)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = baton(&["lab", "down", "--dir", self.dir()]);
    }
}

fn wait(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Every add and delete of the service address in each node namespace,
/// with the kernel's timestamps.
struct Recorder {
    children: Vec<Child>,
    events: Arc<Mutex<Vec<(String, String, bool)>>>,
}

impl Recorder {
    /// Every add and delete of the address in the nodes' namespaces, in the
    /// order the kernel made them (one monitor for all: see
    /// `baton_lab::bench::watch`), stamped as zero-padded microseconds.
    fn start(nodes: &[&str]) -> Recorder {
        let events = Arc::new(Mutex::new(Vec::new()));
        let namespaces: Vec<String> = nodes.iter().map(|n| format!("btnl-{n}")).collect();
        let recorded = Arc::clone(&events);
        let child = baton_lab::bench::watch::monitor_namespaces(&namespaces, move |t, ns, change| {
            if change.contains(&format!("{VIP}/")) {
                let node = ns.trim_start_matches("btnl-").to_string();
                recorded.lock().unwrap().push((node, format!("{t:012}"), !change.starts_with("Deleted")));
            }
        })
        .expect("ip monitor");
        std::thread::sleep(Duration::from_millis(300));
        Recorder { children: vec![child], events }
    }

    /// Per node, the intervals it held the address; an open one ends at "~".
    fn intervals(&self) -> Vec<(String, String, String)> {
        let events = self.events.lock().unwrap().clone();
        let mut open: Vec<(String, String)> = Vec::new();
        let mut done = Vec::new();
        for (node, ts, add) in events {
            if add {
                open.push((node, ts));
            } else if let Some(i) = open.iter().position(|(n, _)| *n == node) {
                let (n, start) = open.remove(i);
                done.push((n, start, ts));
            }
        }
        done.extend(open.into_iter().map(|(n, s)| (n, s, "~".to_string())));
        done
    }

    fn adds(&self) -> Vec<String> {
        self.events.lock().unwrap().iter().filter(|e| e.2).map(|e| e.0.clone()).collect()
    }

    fn assert_never_two_holders(&self) {
        let iv = self.intervals();
        for (i, a) in iv.iter().enumerate() {
            for b in &iv[i + 1..] {
                if a.0 != b.0 {
                    assert!(!(a.1 < b.2 && b.1 < a.2), "two holders at once: {a:?} and {b:?} (all: {iv:?})");
                }
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_owner(lab: &Lab, node: &str, limit: Duration) -> Option<String> {
    let mut found = None;
    wait(limit, || {
        found = lab.owner_seen_by(node);
        found.is_some()
    });
    found
}

#[test]
fn case1_owner_killed_and_cut_off_the_next_node_serves_and_the_old_holds_nothing() {
    let lab = Lab::up("c1", &[]);
    assert_eq!(
        wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(),
        Some("alpha"),
        "starts on the first preference"
    );
    assert_eq!(lab.fetch().as_deref(), Some("alpha"));
    lab.run(&["kill", "alpha"]);
    lab.run(&["cut", "alpha"]);
    assert!(
        wait(Duration::from_secs(15), || lab.owner_seen_by("beta").as_deref() == Some("beta")),
        "beta never took web"
    );
    assert!(wait(Duration::from_secs(5), || lab.fetch().as_deref() == Some("beta")), "the client never reached beta");
    assert!(!lab.has_vip("alpha"), "alpha still holds the address");
    let left = lab.processes("alpha");
    assert!(left.is_empty(), "processes left in alpha: {left:?}");
}

#[test]
fn case2_a_killed_agent_s_address_is_gone_before_another_node_adds_it() {
    let lab = Lab::up("c2", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta", "gamma"]);
    lab.run(&["kill", "alpha"]);
    assert!(wait(Duration::from_secs(15), || lab.owner_seen_by("beta").as_deref() == Some("beta")));
    std::thread::sleep(Duration::from_millis(500));
    let iv = rec.intervals();
    assert!(iv.iter().any(|(n, _, end)| n == "beta" && end == "~"), "beta holds the address: {iv:?}");
    assert!(!lab.has_vip("alpha"), "the guard removed alpha's address");
    rec.assert_never_two_holders();
}

#[test]
fn case3_one_of_two_links_cut_is_a_link_event_not_a_failover() {
    let lab = Lab::up("c3", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    lab.run(&["cut", "alpha", "1"]);
    let seen = wait(Duration::from_secs(5), || {
        lab.status("beta").is_some_and(|d| d["nodes"][0]["links"][1]["state"] == "down")
    });
    assert!(seen, "beta never saw alpha's link 1 go down");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.owner_seen_by("beta").as_deref(), Some("alpha"), "no failover");
    assert_eq!(lab.status("beta").unwrap()["nodes"][0]["state"], "online");
    let log = std::fs::read_to_string(lab.dir.join("beta.log")).unwrap();
    assert!(log.contains("LinkDown { peer: 0, link: 1"), "the link event is logged");
    assert_eq!(lab.fetch().as_deref(), Some("alpha"));
}

#[test]
fn case4_move_there_and_back() {
    let lab = Lab::up("c4", &[]);
    assert_eq!(wait_owner(&lab, "gamma", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let sock = lab.dir.join("gamma/baton.sock");
    let sock = sock.to_str().unwrap();
    // A process resource is started once spawned; the server listens a
    // moment later, so the client is given a bounded moment.
    assert_eq!(ok(&["move", "web", "beta", "--socket", sock]), "web runs on beta\n");
    assert!(wait(Duration::from_secs(3), || lab.fetch().as_deref() == Some("beta")));
    assert!(!lab.has_vip("alpha"));
    assert_eq!(ok(&["move", "web", "alpha", "--socket", sock]), "web runs on alpha\n");
    assert!(wait(Duration::from_secs(3), || lab.fetch().as_deref() == Some("alpha")));
    assert!(!lab.has_vip("beta"));
    let out = baton(&["move", "web", "nobody", "--socket", sock]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "baton: no node named \"nobody\"\n");
}

#[test]
fn case5_two_nodes_and_a_witness_never_two_holders_when_the_owner_is_cut_off() {
    let lab = Lab::up("c5", &["--nodes", "2", "--witness"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta"]);
    lab.run(&["cut", "alpha"]);
    assert!(
        wait(Duration::from_secs(15), || lab.owner_seen_by("beta").as_deref() == Some("beta")),
        "beta never took web"
    );
    assert!(wait(Duration::from_secs(5), || !lab.has_vip("alpha")), "alpha kept the address after its lease");
    assert!(wait(Duration::from_secs(5), || lab.fetch().as_deref() == Some("beta")));
    lab.run(&["heal"]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!lab.has_vip("alpha") || !lab.has_vip("beta"), "both hold the address after the heal");
    rec.assert_never_two_holders();
}

#[test]
fn case6_all_agents_restarted_the_set_comes_back_once_on_the_same_node() {
    let lab = Lab::up("c6", &[]);
    ok(&["move", "web", "beta", "--socket", lab.dir.join("beta/baton.sock").to_str().unwrap()]);
    let rec = Recorder::start(&["alpha", "beta", "gamma"]);
    for node in ["alpha", "beta", "gamma"] {
        lab.run(&["kill", node]);
    }
    assert!(wait(Duration::from_secs(5), || !lab.has_vip("beta")), "the guard removed the address");
    for node in ["alpha", "beta", "gamma"] {
        lab.run(&["start", node]);
    }
    assert!(
        wait(Duration::from_secs(20), || lab.owner_seen_by("alpha").as_deref() == Some("beta")),
        "web is back on beta"
    );
    std::thread::sleep(Duration::from_secs(2));
    let adds = rec.adds();
    assert_eq!(adds, vec!["beta".to_string()], "the set came back exactly once, on beta");
    assert_eq!(lab.fetch().as_deref(), Some("beta"));
}

#[test]
fn case7_forged_and_replayed_heartbeats_change_nothing_and_are_counted() {
    let lab = Lab::up("c7", &[]);
    assert_eq!(wait_owner(&lab, "alpha", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let secret = std::fs::read(lab.dir.join("secret")).unwrap();
    let cluster = baton_proto::cluster_id("lab");
    let real = baton_proto::Keys::new(vec![secret]);
    let fake = baton_proto::Keys::new(vec![b"this is not the secret of the lab!".to_vec()]);
    let hb = |seq| baton_core::Heartbeat {
        from: 1,
        epoch: 0,
        seq,
        echoes: vec![],
        promise: None,
        members: None,
        direct: false,
        released: vec![],
    };
    let forged = baton_proto::heartbeat::encode(&hb(u64::MAX / 2), cluster, 0, &fake);
    // Properly signed, but older than anything beta sent: a replay.
    let replayed = baton_proto::heartbeat::encode(&hb(1), cluster, 0, &real);
    let ns = std::fs::File::open("/run/netns/btnl-client").unwrap();
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a namespace fd moves only this thread.
        assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let sock = std::net::UdpSocket::bind("10.88.0.250:0").unwrap();
        for _ in 0..50 {
            sock.send_to(&forged, "10.88.0.1:5405").unwrap();
            sock.send_to(&replayed, "10.88.0.1:5405").unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let doc = lab.status("alpha").unwrap();
    let link0 = &doc["heartbeats"][0];
    assert_eq!(link0["forged"], 50, "{link0}");
    assert_eq!(link0["replayed"], 50, "{link0}");
    assert_eq!(lab.owner_seen_by("alpha").as_deref(), Some("alpha"), "nothing changed");
    assert_eq!(doc["nodes"][1]["state"], "online");
    assert_eq!(doc["nodes"][1]["epoch"], 0, "beta was never evicted");
}

#[test]
fn case8_sigterm_hands_the_set_over_and_exits() {
    let lab = Lab::up("c8", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let labfile: Value = serde_json::from_slice(&std::fs::read(lab.dir.join("lab.json")).unwrap()).unwrap();
    let pid = labfile["agents"]["alpha"].as_i64().unwrap() as i32;
    // SAFETY: kill(2) of the agent the lab started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(wait(Duration::from_secs(15), || lab.owner_seen_by("beta").as_deref() == Some("beta")), "beta took web");
    // SAFETY: signal 0 only asks whether the process exists.
    assert!(wait(Duration::from_secs(10), || unsafe { libc::kill(pid, 0) } != 0), "alpha's agent exited");
    let log = std::fs::read_to_string(lab.dir.join("alpha.log")).unwrap();
    assert!(log.contains("handed its sets over; exiting"), "{log}");
    assert!(!lab.has_vip("alpha"));
    // Started again, alpha takes sets again (it put itself in standby to leave).
    lab.run(&["start", "alpha"]);
    assert!(wait(Duration::from_secs(15), || lab.status("beta").is_some_and(|d| d["nodes"][0]["state"] == "online")));
    let sock = lab.dir.join("beta/baton.sock");
    assert_eq!(ok(&["move", "web", "alpha", "--socket", sock.to_str().unwrap()]), "web runs on alpha\n");
}

#[test]
fn case9_a_partition_leaves_the_minority_owner_without_its_set() {
    let lab = Lab::up("c9", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta", "gamma"]);
    lab.run(&["partition", "alpha/beta,gamma"]);
    assert!(wait(Duration::from_secs(15), || lab.owner_seen_by("beta").as_deref() == Some("beta")), "beta took web");
    assert!(wait(Duration::from_secs(5), || !lab.has_vip("alpha")), "alpha dropped the address");
    lab.run(&["heal"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lab.owner_seen_by("alpha").as_deref(), Some("beta"), "after the heal alpha agrees");
    rec.assert_never_two_holders();
}

/// A lab with the set `db` = Debian's heartbeat:Dummy, one restart allowed.
fn dummy_lab(tag: &str) -> Lab {
    assert!(
        std::path::Path::new("/usr/lib/ocf/resource.d/heartbeat/Dummy").is_file(),
        "this test needs Debian's resource-agents (apt-get install resource-agents)"
    );
    let extra = std::env::temp_dir().join(format!("baton-e2e-{tag}-{}.toml", std::process::id()));
    std::fs::write(
        &extra,
        "\n[sets.db]\nnodes = [\"alpha\", \"beta\", \"gamma\"]\nmax_restarts = 1\n\n\
         [[sets.db.resources]]\ntype = \"ocf\"\nagent = \"heartbeat:Dummy\"\ninterval = \"1s\"\ntimeout = \"10s\"\n",
    )
    .unwrap();
    let lab = Lab::up(tag, &["--extra", extra.to_str().unwrap()]);
    std::fs::remove_file(&extra).unwrap();
    lab
}

fn db_owner(lab: &Lab, node: &str) -> Option<String> {
    let doc = lab.status(node)?;
    let set = &doc["sets"][1];
    (set["state"] == "running").then(|| set["owner"].as_str().map(str::to_string)).flatten()
}

#[test]
fn case10_an_ocf_agent_restarts_locally_then_fails_over_after_max_restarts() {
    let lab = dummy_lab("c10");
    assert!(wait(Duration::from_secs(15), || db_owner(&lab, "gamma").as_deref() == Some("alpha")), "db runs on alpha");
    let state = |node: &str| lab.dir.join(node).join("ocf/Dummy-db-0.state");
    assert!(state("alpha").exists(), "Dummy keeps its state file in alpha's HA_RSCTMP");
    // The resource dies: its monitor fails, and baton restarts it in place.
    std::fs::remove_file(state("alpha")).unwrap();
    assert!(wait(Duration::from_secs(10), || state("alpha").exists()), "restarted on alpha");
    assert_eq!(db_owner(&lab, "gamma").as_deref(), Some("alpha"), "one restart is allowed");
    // It dies again: more than max_restarts, so it moves.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_file(state("alpha")).unwrap();
    assert!(wait(Duration::from_secs(15), || db_owner(&lab, "gamma").as_deref() == Some("beta")), "db failed over");
    assert!(state("beta").exists() && !state("alpha").exists());
    let doc = lab.status("gamma").unwrap();
    assert_eq!(doc["sets"][1]["excluded"], serde_json::json!(["alpha"]), "alpha is excluded for db");
    // The operator fixed alpha: cleanup lets it run db again.
    let sock = lab.dir.join("gamma/baton.sock");
    ok(&["cleanup", "db", "--reason", "disk replaced", "--socket", sock.to_str().unwrap()]);
    assert!(wait(Duration::from_secs(5), || lab
        .status("gamma")
        .is_some_and(|d| d["sets"][1]["excluded"] == serde_json::json!([]))));
    let history = ok(&["events", "--set", "db", "--socket", sock.to_str().unwrap()]);
    assert!(history.contains("exclusions cleared"), "{history}");
}

#[test]
fn case11_hooks_run_in_order_and_a_test_veto_sends_the_set_to_the_next_node() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("hooks");
    let base = scratch.0.clone();
    let hooks = base.join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let log = base.join("order.log");
    let script = |name: &str, body: &str| {
        let path = hooks.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$BATON_NODE $BATON_EVENT {name} $BATON_PREVIOUS_OWNER\" >> {}\n{body}",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("Test", "[ \"$BATON_NODE\" != alpha ]\n");
    // Written out of order: name order decides.
    script("PreAcq-2", "");
    script("PreAcq-1", "");
    script("PostAcq-1", "");
    script("PreRel-1", "");
    script("PostRel-1", "");
    let extra = base.join("extra.toml");
    std::fs::write(
        &extra,
        format!(
            "\n[sets.db]\nnodes = [\"alpha\", \"beta\", \"gamma\"]\nhooks = \"{}\"\n\n[[sets.db.resources]]\n\
             type = \"ocf\"\nagent = \"heartbeat:Dummy\"\ninterval = \"1s\"\ntimeout = \"10s\"\n",
            hooks.display()
        ),
    )
    .unwrap();
    let lab = Lab::up("c11", &["--extra", extra.to_str().unwrap()]);
    assert!(
        wait(Duration::from_secs(15), || db_owner(&lab, "gamma").as_deref() == Some("beta")),
        "alpha vetoed, beta runs db"
    );
    assert_eq!(lab.status("gamma").unwrap()["sets"][1]["excluded"], serde_json::json!(["alpha"]));
    let sock = lab.dir.join("gamma/baton.sock");
    assert_eq!(ok(&["move", "db", "gamma", "--socket", sock.to_str().unwrap()]), "db runs on gamma\n");
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(|l| l.trim_end().to_string()).collect();
    assert_eq!(
        lines,
        [
            "alpha Test Test",
            "beta Test Test alpha",
            "beta PreAcq PreAcq-1 alpha",
            "beta PreAcq PreAcq-2 alpha",
            "beta PostAcq PostAcq-1 alpha",
            "beta PreRel PreRel-1 alpha",
            "beta PostRel PostRel-1 alpha",
            "gamma Test Test beta",
            "gamma PreAcq PreAcq-1 beta",
            "gamma PreAcq PreAcq-2 beta",
            "gamma PostAcq PostAcq-1 beta",
        ]
    );
    drop(lab);
}

#[test]
fn case12_with_fencing_required_a_failed_fence_blocks_takeover_until_one_succeeds() {
    let lab = Lab::up("c12", &["--fencing", "required"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    std::fs::write(lab.dir.join("fence-fail"), "").unwrap();
    lab.run(&["cut", "alpha"]);
    // The fence is tried (with the right stdin) and fails: nobody takes over.
    let log = lab.dir.join("fence.log");
    assert!(wait(Duration::from_secs(10), || std::fs::read_to_string(&log).is_ok_and(|l| l.lines().count() >= 2)));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!lab.has_vip("beta") && !lab.has_vip("gamma"), "no takeover without a fence");
    let doc = lab.status("beta").unwrap();
    assert_eq!(doc["sets"][0]["owner"], "alpha");
    assert_eq!(doc["sets"][0]["state"], "stopped", "alpha's lease is gone, so web runs nowhere");
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        assert_eq!(line, "action=off plug=alpha nodename=alpha password=checked");
    }
    // The device works again: alpha is fenced and beta takes over.
    std::fs::remove_file(lab.dir.join("fence-fail")).unwrap();
    assert!(wait(Duration::from_secs(15), || lab.owner_seen_by("gamma").as_deref() == Some("beta")), "beta took web");
    assert_eq!(lab.status("gamma").unwrap()["nodes"][0]["state"], "fenced");
    assert!(lab.empty_ns("alpha"), "the fenced node runs nothing");
}

#[test]
fn case13_ipaddr2_manages_an_address_restarts_it_then_fails_over() {
    assert!(
        std::path::Path::new("/usr/lib/ocf/resource.d/heartbeat/IPaddr2").is_file(),
        "this test needs Debian's resource-agents (apt-get install resource-agents)"
    );
    let extra = std::env::temp_dir().join(format!("baton-e2e-c13-{}.toml", std::process::id()));
    std::fs::write(
        &extra,
        "\n[sets.db]\nnodes = [\"alpha\", \"beta\"]\nmax_restarts = 1\n\n[[sets.db.resources]]\ntype = \"ocf\"\n\
         agent = \"heartbeat:IPaddr2\"\nparams = { ip = \"10.88.1.200\", cidr_netmask = \"24\", nic = \"eth1\" }\n\
         interval = \"1s\"\ntimeout = \"20s\"\n",
    )
    .unwrap();
    let lab = Lab::up("c13", &["--extra", extra.to_str().unwrap()]);
    std::fs::remove_file(&extra).unwrap();
    let has = |node: &str| {
        let out = Command::new("ip").args(["-n", &format!("btnl-{node}"), "-o", "addr"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("10.88.1.200/24")
    };
    let del = |node: &str| {
        Command::new("ip")
            .args(["-n", &format!("btnl-{node}"), "addr", "del", "10.88.1.200/24", "dev", "eth1"])
            .status()
            .unwrap();
    };
    assert!(wait(Duration::from_secs(20), || db_owner(&lab, "gamma").as_deref() == Some("alpha") && has("alpha")));
    del("alpha");
    assert!(wait(Duration::from_secs(10), || has("alpha")), "IPaddr2 restarted in place");
    std::thread::sleep(Duration::from_millis(500));
    del("alpha");
    assert!(
        wait(Duration::from_secs(20), || db_owner(&lab, "gamma").as_deref() == Some("beta") && has("beta")),
        "moved to beta"
    );
    assert!(!has("alpha"));
}

#[test]
fn case14_an_lsb_init_script_is_started_watched_restarted_and_moved() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("lsb");
    let base = scratch.0.clone();
    let script = base.join("lsb-demo");
    let pid = |node: &str| base.join(format!("{node}.pid"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nP={}/$BATON_NODE.pid\ncase \"$1\" in\n\
             start) [ -f $P ] && kill -0 $(cat $P) 2>/dev/null && exit 0; setsid sleep 1000 >/dev/null 2>&1 & echo $! > $P; exit 0;;\n\
             stop) [ -f $P ] && kill $(cat $P) 2>/dev/null; rm -f $P; exit 0;;\n\
             status) [ -f $P ] && kill -0 $(cat $P) 2>/dev/null && exit 0; exit 3;;\n\
             *) exit 2;;\nesac\n",
            base.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let extra = base.join("extra.toml");
    std::fs::write(
        &extra,
        format!(
            "\n[sets.db]\n[[sets.db.resources]]\ntype = \"lsb\"\nscript = \"{}\"\ninterval = \"1s\"\n",
            script.display()
        ),
    )
    .unwrap();
    let lab = Lab::up("c14", &["--extra", extra.to_str().unwrap()]);
    assert!(wait(Duration::from_secs(15), || db_owner(&lab, "gamma").as_deref() == Some("alpha")));
    assert!(pid("alpha").exists());
    // The service dies: status says 3, the monitor fails, it is restarted.
    let first = std::fs::read_to_string(pid("alpha")).unwrap();
    Command::new("kill").arg(first.trim()).status().unwrap();
    assert!(
        wait(Duration::from_secs(10), || std::fs::read_to_string(pid("alpha")).is_ok_and(|p| p != first)),
        "restarted"
    );
    let sock = lab.dir.join("gamma/baton.sock");
    assert_eq!(ok(&["move", "db", "beta", "--socket", sock.to_str().unwrap()]), "db runs on beta\n");
    assert!(!pid("alpha").exists() && pid("beta").exists());
    drop(lab);
    for node in ["alpha", "beta", "gamma"] {
        if let Ok(p) = std::fs::read_to_string(pid(node)) {
            let _ = Command::new("kill").arg(p.trim()).status();
        }
    }
}

#[test]
fn case15_adapter_swap_keeps_the_address_reachable_without_a_failover() {
    let lab = Lab::up("c15", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    // A standby adapter for alpha on link 0's subnet.
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
    ip(&["-n", "btnl-sw", "link", "add", "s0l0b", "type", "veth", "peer", "name", "eth0b", "netns", "btnl-alpha"]);
    ip(&["-n", "btnl-sw", "link", "set", "s0l0b", "master", "br0", "up"]);
    ip(&["-n", "btnl-alpha", "addr", "add", "10.88.0.21/24", "dev", "eth0b"]);
    ip(&["-n", "btnl-alpha", "link", "set", "eth0b", "up"]);
    std::thread::sleep(Duration::from_millis(500));
    lab.run(&["cut", "alpha", "0"]);
    let on_b = || {
        let out = Command::new("ip").args(["-n", "btnl-alpha", "-o", "addr", "show", "dev", "eth0b"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP}/24"))
    };
    assert!(wait(Duration::from_secs(10), on_b), "the address moved to the standby adapter");
    assert!(wait(Duration::from_secs(5), || lab.fetch().as_deref() == Some("alpha")), "the client still reaches alpha");
    assert_eq!(lab.owner_seen_by("beta").as_deref(), Some("alpha"), "no failover");
    let log = std::fs::read_to_string(lab.dir.join("alpha.log")).unwrap();
    assert!(log.contains("link event: eth0 lost carrier; 10.88.0.100 moved to eth0b"), "{log}");
    let sysctl = Command::new("ip")
        .args(["netns", "exec", "btnl-alpha", "cat", "/proc/sys/net/ipv4/conf/eth0/ignore_routes_with_linkdown"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sysctl.stdout).trim(), "1", "routes on the dead link are ignored");
}

/// A scratch directory, removed when dropped (also when a test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("baton-e2e-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loop device over a fresh ext4 image (optionally with its superblock
/// destroyed); detached on drop.
struct Disk {
    dev: String,
    img: PathBuf,
}

impl Disk {
    fn new(img: PathBuf, corrupt: bool) -> Disk {
        std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
        assert!(
            Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img).status().unwrap().success(),
            "mkfs.ext4 (e2fsprogs)"
        );
        if corrupt {
            use std::io::{Seek, Write};
            let mut f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
            f.seek(std::io::SeekFrom::Start(1024)).unwrap();
            f.write_all(&[0u8; 1024]).unwrap();
        }
        let out = Command::new("losetup").args(["-f", "--show"]).arg(&img).output().unwrap();
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        Disk { dev: String::from_utf8_lossy(&out.stdout).trim().to_string(), img }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let quiet = |c: &mut Command| c.stderr(Stdio::null()).status();
        let _ = quiet(Command::new("umount").arg(&self.dev));
        let _ = quiet(Command::new("losetup").args(["-d", &self.dev]));
        let _ = std::fs::remove_file(&self.img);
    }
}

#[test]
fn case16_an_ext4_mount_moves_with_its_data_users_are_killed_and_a_failing_fsck_refuses_the_start() {
    let scratch = Scratch::new("mount");
    let base = scratch.0.clone();
    let good = Disk::new(base.join("good.img"), false);
    let bad = Disk::new(base.join("bad.img"), true);
    let (mnt, badmnt) = (base.join("mnt"), base.join("badmnt"));
    let extra = base.join("extra.toml");
    std::fs::write(
        &extra,
        format!(
            "\n[sets.db]\nnodes = [\"alpha\", \"beta\"]\n[[sets.db.resources]]\ntype = \"mount\"\ndevice = \"{}\"\n\
             path = \"{}\"\nfstype = \"ext4\"\noptions = \"noatime\"\n\n[sets.broken]\nnodes = [\"alpha\", \"beta\"]\n\
             [[sets.broken.resources]]\ntype = \"mount\"\ndevice = \"{}\"\npath = \"{}\"\nfstype = \"ext4\"\n",
            good.dev,
            mnt.display(),
            bad.dev,
            badmnt.display()
        ),
    )
    .unwrap();
    let lab = Lab::up("c16", &["--extra", extra.to_str().unwrap()]);
    assert!(
        wait(Duration::from_secs(15), || db_owner(&lab, "gamma").as_deref() == Some("alpha")),
        "db mounted on alpha"
    );
    let file = mnt.join("written-on-alpha");
    lab.run(&["exec", "alpha", "--", "sh", "-c", &format!("echo hello > {}", file.display())]);
    assert!(!file.exists(), "the file is on alpha's mount, not in the directory under it");
    // A process on alpha holds the mount: it must be killed on release.
    let mut holder = Command::new(baton_bin())
        .args([
            "lab",
            "exec",
            "alpha",
            "--dir",
            lab.dir(),
            "--",
            "sh",
            "-c",
            &format!("cd {} && exec sleep 1000", mnt.display()),
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sock = lab.dir.join("gamma/baton.sock");
    assert_eq!(ok(&["move", "db", "beta", "--socket", sock.to_str().unwrap()]), "db runs on beta\n");
    let status = holder.wait().unwrap();
    assert!(!status.success(), "the holder was killed ({status})");
    let read = lab.run(&["exec", "beta", "--", "cat", file.to_str().unwrap()]);
    assert_eq!(read, "hello\n", "the file written on alpha is read on beta");
    // The corrupted filesystem: fsck fails on every node, so it runs nowhere.
    let doc = lab.status("gamma").unwrap();
    assert!(
        wait(Duration::from_secs(10), || lab
            .status("gamma")
            .is_some_and(|d| d["sets"][2]["excluded"].as_array().is_some_and(|e| e.len() == 2))),
        "{doc}"
    );
    assert_eq!(lab.status("gamma").unwrap()["sets"][2]["state"], "stopped");
    let logs = std::fs::read_to_string(lab.dir.join("alpha.log")).unwrap();
    assert!(logs.contains(&format!("fsck of {} failed (exit 8)", bad.dev)), "the fsck output is in the log");
    drop(lab);
    drop((good, bad));
}

#[test]
fn case17_an_nfs_export_moves_with_its_fsid_and_its_lock_state_on_the_shared_disk() {
    assert!(
        std::path::Path::new("/usr/sbin/exportfs").is_file() && std::path::Path::new("/usr/sbin/sm-notify").is_file(),
        "this test needs Debian's nfs-kernel-server (exportfs, sm-notify); this kernel has no NFS server, \
         so the test checks the export table and the lock state, not NFS traffic"
    );
    let scratch = Scratch::new("nfs");
    let base = scratch.0.clone();
    let disk = Disk::new(base.join("nfs.img"), false);
    let mnt = base.join("mnt");
    let lock_dir = mnt.join("nfs-state");
    let extra = base.join("extra.toml");
    std::fs::write(
        &extra,
        format!(
            "\n[sets.files]\nnodes = [\"alpha\", \"beta\"]\n[[sets.files.resources]]\ntype = \"mount\"\ndevice = \"{}\"\n\
             path = \"{}\"\nfstype = \"ext4\"\n[[sets.files.resources]]\ntype = \"nfs\"\npath = \"{}\"\nfsid = 17\n\
             clients = \"10.88.0.0/24\"\nlock_dir = \"{}\"\ninterval = \"1s\"\n",
            disk.dev,
            mnt.display(),
            mnt.display(),
            lock_dir.display()
        ),
    )
    .unwrap();
    let lab = Lab::up("c17", &["--extra", extra.to_str().unwrap()]);
    let owner = |node: &str| {
        let doc = lab.status(node)?;
        let set = &doc["sets"][1];
        (set["state"] == "running").then(|| set["owner"].as_str().map(str::to_string)).flatten()
    };
    // Each node has its own mount table (the lab's agents run in their own
    // mount namespaces), so everything is checked inside the node.
    let exported = |node: &str| {
        let text = lab.run(&["exec", node, "--", "exportfs", "-v"]);
        text.contains(mnt.to_str().unwrap()) && text.contains("fsid=17")
    };
    let holds_lock_state = |node: &str, client: &str| {
        let sm = lock_dir.join("sm").join(client);
        let bak = lock_dir.join("sm.bak").join(client);
        let script = format!("ls {} {} 2>/dev/null; true", sm.display(), bak.display());
        lab.run(&["exec", node, "--", "sh", "-c", &script]).contains(client)
    };
    assert!(wait(Duration::from_secs(15), || owner("gamma").as_deref() == Some("alpha")), "files runs on alpha");
    assert!(exported("alpha"), "the path is exported with its fixed fsid");
    // A client that held a lock, as rpc.statd records it in /var/lib/nfs/sm,
    // which is the lock directory on the shared disk (the lab's client, so
    // the notification stays inside the lab).
    lab.run(&["exec", "alpha", "--", "touch", "/var/lib/nfs/sm/10.88.0.250"]);
    assert!(!lock_dir.exists(), "the lock state is on alpha's mount, not under it");
    let sock = lab.dir.join("gamma/baton.sock");
    assert_eq!(ok(&["move", "files", "beta", "--socket", sock.to_str().unwrap()]), "files runs on beta\n");
    assert!(exported("beta"), "exported again by beta");
    assert!(!exported("alpha"), "unexported on alpha's release");
    assert!(holds_lock_state("beta", "10.88.0.250"), "beta has the lock state alpha's clients left");
}

/// An NFS client in the client namespace (`baton-lab nfs-client`, `nfs-lock`).
fn nfs_client(args: &[&str]) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", "btnl-client", env!("CARGO_BIN_EXE_baton-lab")])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The last line a client printed (its JSON summary).
fn nfs_summary(child: std::process::Child) -> Value {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "an NFS client: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The guide's NFS set (examples/cluster.toml, `home`), run in the lab: its
/// disk, paths and addresses swapped for the lab's, nothing else. nfs-ganesha
/// (`server = "ganesha"`) on a shared ext4 disk, bound to the set's own
/// address, its client records on that disk. Three clients in the client
/// namespace while beta's machine is lost (agent killed, links cut) and the
/// set fails over to alpha, then while an operator moves it back to beta:
/// - one looks a file up once and then, by that file handle alone, writes a
///   record and reads the whole file back ten times a second: the handle
///   keeps working on every server, nothing written is lost, the client
///   sees only a pause;
/// - one holds a write lock on another file and reclaims it on each new
///   server within its grace period;
/// - one tries to take that lock every half second and never gets it: the
///   old server denies it, each new one answers NFS4ERR_GRACE while the
///   holder may still reclaim, and denies it again once the holder has.
#[test]
fn case35_nfs_clients_keep_their_file_handles_data_and_locks_across_a_failover_and_a_move() {
    assert!(
        std::path::Path::new("/usr/bin/ganesha.nfsd").is_file(),
        "this test needs Debian's nfs-ganesha and nfs-ganesha-vfs (scripts/test-deps installs them)"
    );
    let scratch = Scratch::new("ganesha");
    let base = scratch.0.clone();
    let disk = Disk::new(base.join("home.img"), false);
    let mnt = base.join("mnt");
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/cluster.toml")).unwrap();
    let home = &example[example.find("[sets.home]").expect("the guide's NFS set")..];
    let home = home
        .replace("/dev/disk/by-id/wwn-home", &disk.dev)
        .replace("/export/home", mnt.to_str().unwrap())
        .replace("10.0.0.101/24", &format!("{NFS_VIP}/24"))
        .replace("10.0.0.0/24", "10.88.0.0/24");
    let extra = base.join("extra.toml");
    std::fs::write(&extra, format!("\n{home}")).unwrap();
    let lab = Lab::up("c35", &["--extra", extra.to_str().unwrap()]);
    let owner = |node: &str| {
        let doc = lab.status(node)?;
        let set = &doc["sets"][1];
        (set["state"] == "running").then(|| set["owner"].as_str().map(str::to_string)).flatten()
    };
    assert!(wait(Duration::from_secs(15), || owner("gamma").as_deref() == Some("beta")), "home runs on beta");
    let (file, locked) = (mnt.join("data"), mnt.join("locked"));
    let (file, locked) = (file.to_str().unwrap(), locked.to_str().unwrap());
    // Root is squashed to nobody (the guide keeps ganesha's default).
    lab.run(&["exec", "beta", "--", "sh", "-c", &format!("touch {file} {locked} && chmod 666 {file} {locked}")]);
    let client = nfs_client(&["nfs-client", "--server", NFS_VIP, "--path", file, "--seconds", "45"]);
    let lock = |role: &str, seconds: &str| {
        nfs_client(&["nfs-lock", "--role", role, "--server", NFS_VIP, "--path", locked, "--seconds", seconds])
    };
    let holder = lock("holder", "47");
    std::thread::sleep(Duration::from_millis(1500));
    let contender = lock("contender", "43");
    std::thread::sleep(Duration::from_millis(2500));
    lab.run(&["kill", "beta"]);
    lab.run(&["cut", "beta"]);
    assert!(wait(Duration::from_secs(15), || owner("gamma").as_deref() == Some("alpha")), "home fails over to alpha");
    lab.run(&["heal"]);
    lab.run(&["start", "beta"]);
    let online = || lab.status("gamma").is_some_and(|d| d["nodes"][1]["state"] == "online");
    assert!(wait(Duration::from_secs(15), online), "beta is back");
    std::thread::sleep(Duration::from_secs(3));
    let sock = lab.dir.join("gamma/baton.sock");
    assert_eq!(ok(&["move", "home", "beta", "--socket", sock.to_str().unwrap()]), "home runs on beta\n");

    let summary = nfs_summary(client);
    eprintln!("NFS data client across a failover and a move: {summary}");
    assert_eq!(summary["mismatches"], 0, "every record written reads back: {summary}");
    assert_eq!(summary["last_round_ok"], true, "{summary}");
    assert!(summary["rounds_ok"].as_u64() > Some(200), "{summary}");
    let errors = summary["errors"].as_object().unwrap();
    assert!(!errors.keys().any(|e| e.contains("STALE")), "the handle went stale: {summary}");
    // Two pauses, one per move, each over in seconds.
    let gaps: Vec<u64> = summary["outages_ms"].as_array().unwrap().iter().filter_map(Value::as_u64).collect();
    assert!(gaps.len() == 2 && gaps.iter().all(|&g| g < 15_000), "{summary}");

    let held = nfs_summary(holder);
    eprintln!("NFS lock holder: {held}");
    assert_eq!(held["holds_at_end"], true, "{held}");
    assert_eq!(held["reclaimed_after_ms"].as_array().map(Vec::len), Some(2), "a reclaim per new server: {held}");
    let contended = nfs_summary(contender);
    eprintln!("NFS lock contender: {contended}");
    let runs: Vec<String> = contended["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!runs.iter().any(|r| r == "LOCKED"), "the contender took the holder's lock: {contended}");
    assert_eq!(runs.first().map(String::as_str), Some("NFS4ERR_DENIED"), "{contended}");
    assert_eq!(runs.last().map(String::as_str), Some("NFS4ERR_DENIED"), "{contended}");
    assert!(runs.iter().any(|r| r == "NFS4ERR_GRACE"), "no grace period on a new server: {contended}");
    assert!(!lab.has_address("alpha", NFS_VIP), "alpha kept the address after the move");
}

#[test]
fn case18_the_event_history_explains_a_failover_and_records_operators() {
    let lab = Lab::up("c18", &[]);
    let sock = lab.dir.join("gamma/baton.sock");
    let sock = sock.to_str().unwrap();
    assert_eq!(ok(&["move", "web", "beta", "--reason", "patching alpha", "--socket", sock]), "web runs on beta\n");
    lab.run(&["kill", "beta"]);
    lab.run(&["cut", "beta"]);
    assert!(
        wait(Duration::from_secs(15), || lab.owner_seen_by("gamma").as_deref() == Some("alpha")),
        "alpha took web back"
    );
    std::thread::sleep(Duration::from_millis(500));
    let lines = ok(&["events", "--json", "--socket", sock]);
    let events: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |kind: &str, node: &str, text: &str| {
        events
            .iter()
            .position(|e| e["kind"] == kind && e["node"] == node && e["message"].as_str().unwrap().contains(text))
    };
    let operator =
        find("operator", "gamma", "move web beta because \"patching alpha\": done").expect("the operator command");
    assert_eq!(events[operator]["user"], "root");
    // Cause, decision, steps, in order.
    let silent = find("detection", "alpha", "beta silent on every link").expect("the detection");
    let evicted = events
        .iter()
        .position(|e| {
            e["kind"] == "agreed"
                && e["message"].as_str().unwrap().contains("suspects beta: a majority agrees, evicted")
        })
        .expect("the eviction");
    let assigned = events
        .iter()
        .position(|e| {
            e["kind"] == "agreed"
                && e["message"] == "assigned to alpha (first eligible node in its preference order)"
                && e["unix_ms"].as_u64() > events[silent]["unix_ms"].as_u64()
        })
        .expect("the decision");
    let step = events
        .iter()
        .rposition(|e| {
            e["node"] == "alpha"
                && e["kind"] == "step"
                && e["message"].as_str().unwrap().starts_with("start ip 10.88.0.100/24")
        })
        .expect("the address step");
    let running = events.iter().rposition(|e| e["node"] == "alpha" && e["kind"] == "takeover").expect("the takeover");
    assert!(
        operator < silent && silent < evicted && evicted < assigned && assigned <= step && step <= running,
        "{lines}"
    );
    assert!(events[step]["duration_ms"].is_u64(), "steps carry their duration");
    assert!(events.windows(2).all(|w| w[0]["unix_ms"].as_u64() <= w[1]["unix_ms"].as_u64()), "ordered");
    // Filters.
    let only_web = ok(&["events", "--json", "--set", "web", "--socket", sock]);
    assert!(only_web.lines().all(|l| l.contains("\"set\":\"web\"")));
    assert_eq!(
        ok(&["events", "--since", "1ms", "--socket", sock]).lines().count(),
        0,
        "nothing in the last millisecond"
    );
    let out = baton(&["events", "--since", "soon", "--socket", sock]);
    assert_eq!(out.status.code(), Some(2), "a bad --since is a usage error");
}

/// alpha runs web; its agent is killed and its links cut; returns how long
/// until beta runs web.
fn crash_alpha(lab: &Lab) -> Duration {
    assert_eq!(wait_owner(lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let killed = Instant::now();
    lab.run(&["kill", "alpha"]);
    lab.run(&["cut", "alpha"]);
    assert!(wait(Duration::from_secs(15), || lab.owner_seen_by("beta").as_deref() == Some("beta")));
    killed.elapsed()
}

/// A JSON-lines file of events holds one of `kind` from `node`.
fn jsonl_has(path: &std::path::Path, kind: &str, node: &str) -> bool {
    std::fs::read_to_string(path).unwrap_or_default().lines().any(|l| {
        let v: Value = serde_json::from_str(l).unwrap_or_default();
        v["kind"] == kind && v["node"] == node
    })
}

#[test]
fn case19_an_exec_notifier_gets_the_events_it_asks_for_and_never_delays_a_takeover() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("notify");
    let got = scratch.0.join("notified.jsonl");
    let script = scratch.0.join("notifier");
    // Slow on purpose (2 s per event), and failing on detections.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ninput=$(cat)\nsleep 2\necho \"$input\" >> {}\ncase \"$input\" in\n  \
             *'\"kind\":\"detection\"'*) echo 'pager offline' >&2; exit 3;;\nesac\n",
            got.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let extra = scratch.0.join("extra.toml");
    std::fs::write(
        &extra,
        format!(
            "\n[notify]\nexec = {{ command = [\"{}\"], events = [\"takeover\", \"detection\"] }}\n",
            script.display()
        ),
    )
    .unwrap();
    let lab = Lab::up("c19", &["--extra", extra.to_str().unwrap()]);
    let took = crash_alpha(&lab);
    // The lease is 1 s; beta's notifier spends 2 s on each event.
    assert!(took < Duration::from_secs(4), "the takeover took {took:?}: the notifier held it up");
    let delivered = |kind: &str, node: &str| jsonl_has(&got, kind, node);
    assert!(wait(Duration::from_secs(20), || delivered("takeover", "beta")), "beta's takeover was never notified");
    assert!(delivered("detection", "beta"), "beta's detection of alpha was notified");
    let text = std::fs::read_to_string(&got).unwrap();
    assert!(!text.contains("\"kind\":\"step\""), "steps were filtered out: {text}");
    let sock = lab.dir.join("beta/baton.sock");
    let history = ok(&["events", "--json", "--socket", sock.to_str().unwrap()]);
    assert!(
        history.lines().any(|l| l.contains("\"kind\":\"notify\"")
            && l.contains(&format!("exec notifier: {} exited with 3: pager offline", script.display()))),
        "the failed notification is an event: {history}"
    );
}

/// SIGKILL of the lab's web server inside `node` (and nowhere else).
fn kill_web_server(node: &str) {
    let out = Command::new("ip").args(["netns", "pids", &format!("btnl-{node}")]).output().unwrap();
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.split(|b| *b == 0).any(|a| a == b"serve") {
            // SAFETY: kill(2) of a process of the lab's own namespace.
            unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) };
        }
    }
}

#[test]
fn case20_maintenance_mode_recovers_nothing_until_it_ends_and_monitors_still_report() {
    let lab = Lab::up("c20", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let sock = lab.dir.join("gamma/baton.sock");
    let sock = sock.to_str().unwrap();
    ok(&["maintenance", "on", "--reason", "upgrading the web server", "--socket", sock]);
    assert!(wait(Duration::from_secs(5), || lab.status("alpha").is_some_and(|d| d["maintenance"] == true)));
    assert!(ok(&["status", "--socket", sock]).contains("MAINTENANCE MODE"));
    kill_web_server("alpha");
    let reported = || {
        ok(&["events", "--json", "--set", "web", "--socket", sock])
            .lines()
            .any(|l| l.contains("\"kind\":\"failure\"") && l.contains("monitor of resource") && l.contains("alpha"))
    };
    assert!(wait(Duration::from_secs(10), reported), "the monitor still runs and reports");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.fetch(), None, "nothing restarted the web server");
    assert_eq!(lab.status("gamma").unwrap()["sets"][0]["owner"], "alpha", "nothing failed over");
    let out = baton(&["move", "web", "beta", "--socket", sock]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("maintenance mode"), "{out:?}");
    ok(&["maintenance", "off", "--socket", sock]);
    assert!(wait(Duration::from_secs(20), || lab.fetch().is_some()), "recovered once maintenance ended");
    let history = ok(&["events", "--socket", sock]);
    assert!(history.contains("maintenance on because \"upgrading the web server\": done"), "{history}");
}

/// One HTTP request from inside `node` (the API listens on its loopback),
/// with python3's urllib: (status, body).
fn http(node: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    const CLIENT: &str = "import sys, urllib.request, urllib.error\n\
        m, url, tok, body = sys.argv[1:5]\n\
        req = urllib.request.Request(url, method=m, data=None if body == '-' else body.encode())\n\
        if tok != '-': req.add_header('Authorization', 'Bearer ' + tok)\n\
        try:\n    r = urllib.request.urlopen(req, timeout=70); print(r.status); print(r.read().decode())\n\
        except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n";
    let url = format!("http://127.0.0.1:9405{path}");
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("btnl-{node}"), "python3", "-c", CLIENT, method, &url])
        .args([token.unwrap_or("-"), body.unwrap_or("-")])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, rest) = text.split_once('\n').unwrap_or((&text, ""));
    (
        code.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{method} {path}: {text} {}", String::from_utf8_lossy(&out.stderr))),
        rest.to_string(),
    )
}

/// Whether the HTTP API answers `GET /api/v1/status` on `port` of
/// `node`'s loopback.
fn http_answers(node: &str, port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}/api/v1/status");
    let get = "import sys, urllib.request\nurllib.request.urlopen(sys.argv[1], timeout=5)";
    Command::new("ip")
        .args(["netns", "exec", &format!("btnl-{node}"), "python3", "-c", get, &url])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn case21_the_http_api_reads_openly_writes_only_with_the_token_and_streams_events() {
    let lab = Lab::up("c21", &["--http-token"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let token = std::fs::read_to_string(lab.dir.join("http-token")).unwrap().trim().to_string();
    let (code, body) = http("gamma", "GET", "/api/v1/status", None, None);
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["data"]["sets"][0]["owner"], "alpha");
    // Writes without the token, or with a wrong one, are refused and change nothing.
    for tok in [None, Some("not-the-token"), Some(&token[..token.len() - 1])] {
        let (code, body) = http("gamma", "POST", "/api/v1/sets/web/move", tok, Some("{\"node\": \"beta\"}"));
        assert_eq!(code, 401, "{body}");
        assert!(body.contains("bearer token"), "{body}");
    }
    assert_eq!(lab.status("gamma").unwrap()["sets"][0]["owner"], "alpha");
    // Bad input names what was wrong.
    let (code, body) = http("gamma", "POST", "/api/v1/sets/web/move", Some(&token), Some("{\"nod\": \"beta\"}"));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown field `nod`"), "{body}");
    let (code, body) = http("gamma", "POST", "/api/v1/sets/nope/freeze", Some(&token), None);
    assert_eq!((code, body.contains("no set named \\\"nope\\\"")), (404, true), "{body}");
    let (code, body) = http("gamma", "GET", "/api/v1/events?since=soon", None, None);
    assert_eq!(code, 400, "{body}");
    let (code, body) = http("gamma", "POST", "/api/v1/maintenance", Some(&token), Some("{}"));
    assert_eq!(code, 400, "{body}");
    // Every route is served with its method (writes refused without the token).
    for (method, path) in baton_agent::http::ROUTES.iter().filter(|r| !r.1.ends_with("/stream")) {
        let path = path.replace("{set}", "web").replace("{node}", "gamma");
        let (code, body) = http("gamma", &method.to_uppercase(), &path, None, None);
        let want = if *method == "post" { 401 } else { 200 };
        assert_eq!(code, want, "{method} {path}: {body}");
    }
    // Events stream as they happen.
    let stream = Command::new("ip")
        .args(["netns", "exec", "btnl-gamma", "python3", "-c"])
        .arg(
            "import urllib.request, time\nr = urllib.request.urlopen('http://127.0.0.1:9405/api/v1/events/stream', timeout=8)\n\
             end = time.time() + 6\nwhile time.time() < end:\n    line = r.readline().decode()\n    print(line, end='', flush=True)\n    \
             if 'freeze web' in line: break\n",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let (code, body) =
        http("gamma", "POST", "/api/v1/sets/web/freeze", Some(&token), Some("{\"reason\": \"checking the stream\"}"));
    assert_eq!(code, 200, "{body}");
    let seen = String::from_utf8_lossy(&stream.wait_with_output().unwrap().stdout).into_owned();
    assert!(seen.contains("event: operator") && seen.contains("freeze web because"), "{seen}");
    let (code, body) = http("gamma", "POST", "/api/v1/sets/web/unfreeze", Some(&token), None);
    assert_eq!(code, 200, "{body}");
    let (code, body) = http("gamma", "POST", "/api/v1/sets/web/move", Some(&token), Some("{\"node\": \"beta\"}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(lab.status("gamma").unwrap()["sets"][0]["owner"], "beta", "the move waited until web ran on beta");
    let history = ok(&["events", "--json", "--socket", lab.dir.join("gamma/baton.sock").to_str().unwrap()]);
    assert!(
        history.lines().any(|l| l.contains("move web beta: done") && l.contains("\"user\":\"http 127.0.0.1:")),
        "the operator event names the HTTP caller: {history}"
    );
    assert!(!history.contains(&token), "the token never reaches the history");
    // A handover over HTTP: answered, and web stays on beta.
    let (code, body) = http("beta", "POST", "/api/v1/handover", Some(&token), Some("{\"reason\": \"upgrade\"}"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"running\":[\"web\"]"), "{body}");
    assert!(wait(Duration::from_secs(5), || lab.status("beta").is_some()), "beta's new program answers");
    assert_eq!(lab.status("gamma").unwrap()["sets"][0]["owner"], "beta");
    // The configuration over HTTP: compared, agreed, shown.
    let text = std::fs::read_to_string(lab.dir.join("cluster.toml")).unwrap();
    let file = serde_json::json!({ "text": text }).to_string();
    let (code, body) = http("gamma", "POST", "/api/v1/config/diff", Some(&token), Some(&file));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"change\":\"nothing\""), "{body}");
    let (code, body) = http("gamma", "POST", "/api/v1/config", Some(&token), Some("{\"text\": \"[cluster\"}"));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("refused, nothing changed"), "{body}");
    let (code, body) = http("gamma", "POST", "/api/v1/config", Some(&token), Some(&file));
    assert_eq!(code, 200, "{body}");
    let (code, body) = http("alpha", "GET", "/api/v1/config", None, None);
    assert_eq!(code, 200, "{body}");
    let shown: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((shown["data"]["generation"].as_u64(), shown["data"]["text"].as_str()), (Some(1), Some(text.as_str())));
}

/// `/metrics` of `node`, parsed by a Prometheus text-format parser.
fn scrape(node: &str) -> prometheus_parse::Scrape {
    let (code, body) = http(node, "GET", "/metrics", None, None);
    assert_eq!(code, 200, "{body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("the Prometheus text format")
}

/// The value of `metric` with `labels` (a histogram: its count).
fn sample(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus_parse::Value;
    s.samples.iter().find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))).map_or(
        0.0,
        |x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        },
    )
}

#[test]
fn case22_metrics_parse_and_move_with_a_failover() {
    let lab = Lab::up("c22", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let before = scrape("beta");
    assert_eq!(sample(&before, "baton_takeovers_total", &[("set", "web")]), 0.0);
    assert_eq!(sample(&before, "baton_quorum", &[]), 1.0);
    assert!(sample(&before, "baton_lease_transitions_total", &[("to", "held")]) >= 1.0, "the lease was counted");
    let sent = sample(&before, "baton_heartbeats_sent_total", &[("link", "0")]);
    assert!(sent > 0.0, "heartbeats are counted per link");
    lab.run(&["kill", "alpha"]);
    lab.run(&["cut", "alpha"]);
    assert!(wait(Duration::from_secs(15), || lab.owner_seen_by("beta").as_deref() == Some("beta")));
    let after = scrape("beta");
    assert_eq!(sample(&after, "baton_takeovers_total", &[("set", "web")]), 1.0, "the takeover is counted");
    assert!(sample(&after, "baton_heartbeats_sent_total", &[("link", "0")]) > sent, "heartbeats keep counting");
    assert!(sample(&after, "baton_detection_seconds", &[]) >= 1.0, "alpha's silence was timed");
    assert!(sample(&after, "baton_takeover_seconds", &[]) >= 1.0, "the takeover was timed");
    assert!(sample(&after, "baton_step_duration_seconds", &[]) >= 2.0, "each start step was timed");
    assert_eq!(sample(&after, "baton_set_info", &[("set", "web"), ("owner", "beta"), ("state", "running")]), 1.0);
}

/// A throw-away CA and a certificate for `ip` signed by it, in `dir`:
/// `ca.pem`, `server.pem`, `server.key`.
fn certificates(dir: &std::path::Path, ip: &str) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("this test needs openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=lab CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &format!("/CN={ip}"),
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("ext"), format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n")).unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "server.pem",
    ]);
}

#[test]
fn case23_a_webhook_and_a_mail_arrive_over_tls_retried_and_never_delay_a_takeover() {
    let scratch = Scratch::new("webhook");
    let got = scratch.0.join("received.jsonl");
    let mail = scratch.0.join("mail.txt");
    certificates(&scratch.0, "10.88.0.250");
    let (cert, key, ca) = (scratch.0.join("server.pem"), scratch.0.join("server.key"), scratch.0.join("ca.pem"));
    // A minimal SMTP relay that requires STARTTLS, 0.2 s per command, in
    // the client namespace.
    const SMTP: &str = "import socketserver, ssl, sys, time\nlog, cert, key = sys.argv[1:4]\n\
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)\n\
        class H(socketserver.StreamRequestHandler):\n    def handle(self):\n        \
        conn, r, w, tls = self.connection, self.rfile, self.wfile, False\n        \
        def say(s): w.write((s + '\\r\\n').encode()); w.flush()\n        \
        say('220 lab ESMTP')\n        data = None\n        while True:\n            line = r.readline()\n            \
        if not line: return\n            text = line.decode(errors='replace').rstrip('\\r\\n')\n            \
        if data is not None:\n                if text == '.':\n                    \
        open(log, 'a').write('tls=%s\\n' % tls + '\\n'.join(data) + '\\n----\\n'); data = None; say('250 queued')\n                \
        else: data.append(text)\n                continue\n            time.sleep(0.2)\n            cmd = text[:4].upper()\n            \
        if cmd == 'EHLO': say('250-lab'); say('250 OK' if tls else '250 STARTTLS')\n            \
        elif cmd == 'STAR':\n                say('220 go ahead'); conn = ctx.wrap_socket(conn, server_side=True)\n                \
        r, w, tls = conn.makefile('rb'), conn.makefile('wb'), True\n            \
        elif cmd == 'MAIL' and not tls: say('530 STARTTLS first')\n            \
        elif cmd == 'DATA': data = []; say('354 go on')\n            \
        elif cmd == 'QUIT': say('221 bye'); return\n            else: say('250 ok')\n\
        socketserver.ThreadingTCPServer.allow_reuse_address = True\n\
        socketserver.ThreadingTCPServer(('10.88.0.250', 2525), H).serve_forever()\n";
    // An https receiver in the client namespace: one second per request,
    // and the first two requests from beta refused with 503.
    const RECEIVER: &str = "import http.server, ssl, sys, time\nlog, cert, key = sys.argv[1:4]\ncount = [0]\n\
        class H(http.server.BaseHTTPRequestHandler):\n    def do_POST(self):\n        \
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))\n        time.sleep(1)\n        \
        if b'\"node\":\"beta\"' in body and count[0] < 2:\n            count[0] += 1\n            \
        self.send_response(503); self.end_headers(); return\n        \
        open(log, 'ab').write(body)\n        self.send_response(200); self.end_headers()\n    \
        def log_message(self, *a): pass\ns = http.server.ThreadingHTTPServer(('10.88.0.250', 8443), H)\n\
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)\n\
        s.socket = ctx.wrap_socket(s.socket, server_side=True)\ns.serve_forever()\n";
    let extra = scratch.0.join("extra.toml");
    std::fs::write(
        &extra,
        format!(
            "\n[notify]\nwebhook = {{ url = \"https://10.88.0.250:8443/hook\", events = [\"takeover\"], ca_file = \"{ca}\" }}\n\
             email = {{ to = [\"ops@lab.invalid\"], from = \"baton@lab.invalid\", smtp = \"10.88.0.250:2525\", \
             tls = \"starttls\", ca_file = \"{ca}\", events = [\"takeover\"] }}\n",
            ca = ca.display()
        ),
    )
    .unwrap();
    let lab = Lab::up("c23", &["--extra", extra.to_str().unwrap()]);
    let mut receiver = Command::new("ip")
        .args(["netns", "exec", "btnl-client", "python3", "-c", RECEIVER])
        .args([&got, &cert, &key])
        .spawn()
        .expect("python3");
    let mut smtp = Command::new("ip")
        .args(["netns", "exec", "btnl-client", "python3", "-c", SMTP])
        .args([&mail, &cert, &key])
        .spawn()
        .expect("python3");
    let delivered = |node: &str| jsonl_has(&got, "takeover", node);
    let took = crash_alpha(&lab);
    assert!(took < Duration::from_secs(4), "the takeover took {took:?}: the webhook held it up");
    assert!(wait(Duration::from_secs(20), || delivered("beta")), "beta's takeover reached the receiver, third time");
    let mailed = || {
        let text = std::fs::read_to_string(&mail).unwrap_or_default();
        text.split("----").any(|m| {
            m.contains("tls=True")
                && m.contains("Subject: baton: takeover web on beta")
                && m.contains("\"node\":\"beta\"")
        })
    };
    assert!(wait(Duration::from_secs(20), mailed), "beta's takeover was mailed: {:?}", std::fs::read_to_string(&mail));
    let sock = lab.dir.join("beta/baton.sock");
    let history = ok(&["events", "--json", "--socket", sock.to_str().unwrap()]);
    for child in [&mut receiver, &mut smtp] {
        let _ = child.kill();
        let _ = child.wait();
    }
    // Refused twice, delivered the third time: no failure to report.
    assert!(
        !history.lines().any(|l| l.contains("\"kind\":\"notify\"") && l.contains("\"node\":\"beta\"")),
        "{history}"
    );
}

#[test]
fn case24_a_cluster_wide_lock_has_one_holder_at_a_time_across_a_failover() {
    let scratch = Scratch::new("lock");
    let log = scratch.0.join("jobs.log");
    let alpha_pid = scratch.0.join("alpha.pid");
    let lab = Lab::up("c24", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    // The job notes its node and token, and whether alpha's job still runs.
    let job = |node: &str| {
        format!(
            "if [ -s {pid} ] && kill -0 $(cat {pid}) 2>/dev/null; then echo OVERLAP >> {log}; fi; \
             [ {node} = alpha ] && echo $$ > {pid}; echo \"start {node} $BATON_LOCK_TOKEN\" >> {log}; exec sleep 60",
            pid = alpha_pid.display(),
            log = log.display()
        )
    };
    let lock = |node: &str| {
        let sock = lab.dir.join(node).join("baton.sock");
        Command::new("ip")
            .args(["netns", "exec", &format!("btnl-{node}")])
            .arg(baton_bin())
            .args(["lock", "nightly"])
            .args(["--socket", sock.to_str().unwrap(), "--", "sh", "-c", &job(node)])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let alpha = lock("alpha");
    assert!(wait(Duration::from_secs(10), || text().contains("start alpha")), "alpha got the lock: {}", text());
    let mut beta = lock("beta");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!text().contains("start beta"), "beta waits while alpha holds it: {}", text());
    lab.run(&["kill", "alpha"]);
    lab.run(&["cut", "alpha"]);
    let out = alpha.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lost the lock nightly"), "{out:?}");
    assert!(wait(Duration::from_secs(15), || text().contains("start beta")), "beta got it after alpha's eviction");
    let lines = text();
    assert!(!lines.contains("OVERLAP"), "two holders: {lines}");
    let token = |node: &str| -> u64 {
        let line = lines.lines().find(|l| l.starts_with(&format!("start {node} "))).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(token("beta") > token("alpha"), "fencing tokens grow: {lines}");
    let _ = beta.kill();
    let _ = beta.wait();
}

/// Headless Chromium inside `node`, on its status page: the DOM after the
/// page's scripts ran, and a screenshot at `png`.
fn chromium(node: &str, args: &[&str]) -> Output {
    let chromium =
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists());
    let chromium = chromium.expect("this test needs Debian's chromium (apt-get install chromium); .ci/run installs it");
    let profile = std::env::temp_dir().join(format!("baton-chromium-{}", std::process::id()));
    Command::new("ip")
        .args(["netns", "exec", &format!("btnl-{node}"), chromium, "--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--hide-scrollbars", "--window-size=1280,900", "--virtual-time-budget=8000"])
        .args(args)
        .arg("http://127.0.0.1:9405/")
        .output()
        .expect("running chromium")
}

#[test]
fn case25_the_status_page_shows_the_new_owner_after_a_failover() {
    let lab = Lab::up("c25", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    lab.run(&["kill", "alpha"]);
    lab.run(&["cut", "alpha"]);
    assert!(wait(Duration::from_secs(15), || lab.owner_seen_by("gamma").as_deref() == Some("beta")));
    std::thread::sleep(Duration::from_secs(1));
    let dom = chromium("gamma", &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(dom.contains("data-set=\"web\" data-owner=\"beta\""), "the page shows web on beta:\n{dom}");
    assert!(dom.contains("<rect"), "the ownership timeline is drawn:\n{dom}");
    assert!(dom.contains("alpha silent on every link"), "the detection is among the events:\n{dom}");
    // The workspace's target directory (the lab is crates/lab).
    let png = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/status-page.png");
    let _ = std::fs::remove_file(&png);
    let shot = chromium("gamma", &[&format!("--screenshot={}", png.display())]);
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "a screenshot at {} ({size} bytes): {shot:?}", png.display());
    println!("status page screenshot: {}", png.display());
}

/// The agents' pids, from the lab's own record.
fn agent_pids(lab: &Lab) -> Vec<(String, i32)> {
    let doc: Value = serde_json::from_slice(&std::fs::read(lab.dir.join("lab.json")).unwrap()).unwrap();
    doc["agents"].as_object().unwrap().iter().map(|(n, p)| (n.clone(), p.as_i64().unwrap() as i32)).collect()
}

/// SIGHUP to every agent, then the newest `agent` event of each mentioning SIGHUP.
fn reload_all(lab: &Lab) -> Vec<String> {
    let pids = agent_pids(lab);
    for (_, pid) in &pids {
        // SAFETY: kill(2) of an agent this lab started.
        unsafe { libc::kill(*pid, libc::SIGHUP) };
    }
    std::thread::sleep(Duration::from_millis(500));
    pids.iter()
        .map(|(node, _)| {
            let sock = lab.dir.join(node).join("baton.sock");
            let out = baton(&["events", "--json", "--socket", sock.to_str().unwrap()]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines()
                .rfind(|l| {
                    l.contains("SIGHUP")
                        && l.contains("\"kind\":\"agent\"")
                        && l.contains(&format!("\"node\":\"{node}\""))
                })
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn write_secret(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn case26_sighup_rotates_the_secret_without_a_failover_and_refuses_a_broken_config() {
    let lab = Lab::up("c26", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta", "gamma"]);
    let config = lab.dir.join("cluster.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    write_secret(&lab.dir.join("secret-next"), "the next cluster secret, 32 bytes or more");
    let with = |cluster_lines: &str| original.replacen("secret_file = \"secret\"\n", cluster_lines, 1);

    // 1: every node also accepts the next secret.
    std::fs::write(&config, with("secret_file = \"secret\"\naccept_secret_files = [\"secret-next\"]\n")).unwrap();
    for e in reload_all(&lab) {
        assert!(e.contains("reloaded: 2 secret(s) accepted"), "{e}");
    }
    // 2: every node signs with the next secret, still accepting the old one.
    std::fs::write(&config, with("secret_file = \"secret-next\"\naccept_secret_files = [\"secret\"]\n")).unwrap();
    reload_all(&lab);
    // 3: the old secret is gone.
    std::fs::write(&config, with("secret_file = \"secret-next\"\n")).unwrap();
    for e in reload_all(&lab) {
        assert!(e.contains("reloaded: 1 secret(s) accepted"), "{e}");
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lab.owner_seen_by("gamma").as_deref(), Some("alpha"), "the rotation moved the set");
    let doc = lab.status("beta").unwrap();
    assert!(doc["nodes"].as_array().unwrap().iter().all(|n| n["state"] == "online"), "{doc}");
    assert_eq!(rec.adds().len(), 0, "the address moved during the rotation: {:?}", rec.intervals());

    // A broken file is refused whole, naming the line; the agent keeps running.
    std::fs::write(&config, with("secret_file = \"secret-next\"\nport = 0\n")).unwrap();
    for e in reload_all(&lab) {
        assert!(e.contains("refused, the running configuration stays"), "{e}");
        assert!(e.contains("cluster.port"), "the error names the key: {e}");
        assert!(!e.contains("the next cluster secret"), "a secret in an event: {e}");
    }
    assert_eq!(lab.owner_seen_by("alpha").as_deref(), Some("alpha"));
    // The rest of the file is agreed as the cluster's configuration: a
    // monitor's interval changes in place, nothing restarts.
    let web = web_server_pid("alpha");
    let agreed = || lab.status("beta").and_then(|d| d["config_generation"].as_u64()).unwrap_or(0);
    let before = agreed();
    std::fs::write(&config, with("secret_file = \"secret-next\"\n").replace("interval = \"1s\"", "interval = \"2s\""))
        .unwrap();
    reload_all(&lab);
    assert!(wait(Duration::from_secs(10), || agreed() > before), "the reloaded file was not agreed");
    let shown = ok(&["config", "show", "--socket", lab.dir.join("beta/baton.sock").to_str().unwrap()]);
    assert!(shown.contains("interval = \"2s\""), "{shown}");
    assert_eq!(web_server_pid("alpha"), web, "a monitor interval restarted web");
    rec.assert_never_two_holders();
}

#[test]
fn case27_an_address_added_by_hand_on_another_node_is_reported_as_a_duplicate() {
    let lab = Lab::up("c27", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    // What an OCF agent leaving its address behind, or an operator, does.
    let added =
        Command::new("ip").args(["-n", "btnl-gamma", "addr", "add", &format!("{VIP}/24"), "dev", "eth0"]).status();
    assert!(added.unwrap().success());
    let sock = lab.dir.join("beta/baton.sock");
    let duplicates = || -> Vec<Value> {
        let out = baton(&["events", "--json", "--socket", sock.to_str().unwrap()]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] == "duplicate")
            .collect()
    };
    // A probe every 5 s; a sighting is agreed through the cluster.
    assert!(wait(Duration::from_secs(25), || !duplicates().is_empty()), "no duplicate reported");
    let seen = duplicates();
    let msg = seen[0]["message"].as_str().unwrap();
    assert_eq!(seen[0]["set"], "web");
    assert!(msg.contains("gamma") && msg.contains("besides its owner alpha"), "{msg}");
    // The owner itself is never a stranger, and the set did not move.
    assert!(!msg.contains("alpha ("), "{msg}");
    assert_eq!(lab.owner_seen_by("beta").as_deref(), Some("alpha"));
}

/// The seeds' own topology: two servers, a fence device for each, no
/// witness. The owner's machine dies (the lab's power switch turns it
/// off); the survivor fences it, and only once the device confirmed it off
/// becomes the only voter and runs web. Powered on again, the dead node
/// comes back empty and votes again.
#[test]
fn case28_two_servers_and_nothing_else_the_survivor_fences_its_dead_peer_and_runs_the_set() {
    let lab = Lab::up("c28", &["--nodes", "2", "--fencing", "lease"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta"]);
    lab.power("alpha", "off");
    assert!(
        wait(Duration::from_secs(20), || lab.owner_seen_by("beta").as_deref() == Some("beta")),
        "beta never took web"
    );
    assert!(wait(Duration::from_secs(5), || lab.fetch().as_deref() == Some("beta")), "the client reaches beta");
    let fenced = std::fs::read_to_string(lab.dir.join("fence.log")).unwrap();
    assert!(fenced.starts_with("action=off plug=alpha nodename=alpha password=checked"), "{fenced}");
    let doc = lab.status("beta").unwrap();
    assert_eq!(doc["alone"], "beta", "{doc}");
    assert_eq!(doc["nodes"][0]["voter"], false, "{doc}");

    lab.power("alpha", "on");
    lab.run(&["start", "alpha"]);
    assert!(wait(Duration::from_secs(30), || lab.together()), "alpha votes again: {:?}", lab.status("beta"));
    assert_eq!(lab.owner_seen_by("alpha").as_deref(), Some("beta"), "web stays on beta");
    rec.assert_never_two_holders();
}

/// alpha and beta split apart (two-node mode): both fence, the device that
/// fences alpha waits 2 s, so beta is powered off first (the password
/// checked) and alpha goes on alone with web, served to the client.
fn split_pair_alpha_survives(lab: &Lab) {
    lab.run(&["partition", "alpha/beta"]);
    assert!(wait(Duration::from_secs(20), || lab.empty_ns("beta")), "beta was never powered off");
    assert!(
        wait(Duration::from_secs(10), || lab.status("alpha").is_some_and(|d| d["alone"] == "alpha")),
        "alpha never went on alone: {:?}",
        lab.status("alpha")
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(!lab.empty_ns("alpha"), "alpha was powered off too");
    assert_eq!(lab.owner_seen_by("alpha").as_deref(), Some("alpha"));
    assert!(wait(Duration::from_secs(5), || lab.fetch().as_deref() == Some("alpha")), "the client reaches alpha");
    let fenced = std::fs::read_to_string(lab.dir.join("fence.log")).unwrap();
    assert!(fenced.contains("action=off plug=beta nodename=beta password=checked"), "{fenced}");
}

/// Two live servers that cannot hear each other both fence: the device
/// that fences alpha (the preferred node) waits 2 s, so beta is powered off
/// first — its own fence of alpha dies with it — and alpha goes on alone
/// with web. One survivor, never two holders.
#[test]
fn case29_two_servers_split_apart_fence_each_other_and_one_survives() {
    let lab = Lab::up("c29", &["--nodes", "2", "--fencing", "lease"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta"]);
    split_pair_alpha_survives(&lab);
    rec.assert_never_two_holders();
}

/// The lab's fence disk (`lab up --fencing disk`).
fn fence_disk(lab: &Lab) -> String {
    let state: Value = serde_json::from_str(&std::fs::read_to_string(lab.dir.join("lab.json")).unwrap()).unwrap();
    state["fence_disk"].as_str().expect("the lab has a fence disk").to_string()
}

/// The fence disk's slots, as `baton disk list` prints them: (node, message, from).
fn fence_slots(lab: &Lab) -> Vec<(String, String, String)> {
    ok(&["disk", "list", &fence_disk(lab)])
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// Who the fence disk records as gone on alone last (`-`: nobody), as the
/// first line of `baton disk list` says.
fn alone_record(lab: &Lab) -> String {
    let list = ok(&["disk", "list", &fence_disk(lab)]);
    let first = list.lines().next().unwrap_or_default();
    first.rsplit_once(", alone ").map(|(_, who)| who.to_string()).unwrap_or_else(|| panic!("{list}"))
}

/// Two servers on a fence disk, both machines down, one boots alone: the
/// disk records nobody gone on alone, so beta waits `startup_fence_after`
/// (5 s in the lab), fences alpha through the disk, records itself and
/// runs web. Then beta dies too and alpha boots alone: the record names
/// beta, whose decisions alpha's log lacks, so alpha waits, running
/// nothing. Beta returns, goes on (it is the only voter by its own log),
/// takes alpha back and clears the record. Never two holders.
#[test]
fn case34_a_node_booting_alone_fences_its_peer_unless_the_disk_says_the_peer_went_on_alone() {
    let lab = Lab::up("c34", &["--nodes", "2", "--fencing", "disk"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    assert_eq!(alone_record(&lab), "-");
    let rec = Recorder::start(&["alpha", "beta"]);
    lab.power("alpha", "off");
    lab.power("beta", "off");
    lab.power("beta", "on");
    let booted = Instant::now();
    lab.run(&["start", "beta"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(lab.owner_seen_by("beta").as_deref(), Some("beta"), "beta ran web before startup_fence_after");
    assert!(
        wait(Duration::from_secs(25), || lab.owner_seen_by("beta").as_deref() == Some("beta")),
        "beta never went on alone: {:?}",
        lab.status("beta")
    );
    eprintln!("a lone boot to web running: {} ms", booted.elapsed().as_millis());
    assert!(wait(Duration::from_secs(5), || lab.fetch().as_deref() == Some("beta")), "the client reaches beta");
    assert!(fence_slots(&lab).contains(&("alpha".into(), "off".into(), "beta".into())), "{:?}", fence_slots(&lab));
    assert_eq!(alone_record(&lab), "beta");
    assert_eq!(lab.status("beta").unwrap()["alone"], "beta");

    lab.power("beta", "off");
    lab.power("alpha", "on");
    lab.run(&["start", "alpha"]);
    // Alpha's guard waits out beta's pill (2.25 s), then alpha waits for beta.
    assert!(wait(Duration::from_secs(10), || lab.status("alpha").is_some()), "alpha's agent never answered");
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(lab.owner_seen_by("alpha"), None, "alpha runs web from a stale log");
    assert!(!lab.has_vip("alpha"), "alpha holds the address");
    assert!(fence_slots(&lab).contains(&("beta".into(), "clear".into(), "-".into())), "alpha fenced beta");
    assert_eq!(alone_record(&lab), "beta");

    lab.power("beta", "on");
    lab.run(&["start", "beta"]);
    assert!(wait(Duration::from_secs(30), || lab.together()), "alpha votes again: {:?}", lab.status("beta"));
    assert!(wait(Duration::from_secs(10), || lab.owner_seen_by("alpha").as_deref() == Some("beta")));
    assert!(wait(Duration::from_secs(5), || alone_record(&lab) == "-"), "beta cleared the record");
    rec.assert_never_two_holders();
}

/// Two servers and a shared disk, nothing else: the owner's machine dies;
/// beta writes the pill into alpha's slot, waits msgwait and goes on alone
/// with web. Alpha, powered on again, clears its pill as its guard starts
/// and comes back as a voter, web staying on beta.
#[test]
fn case30_two_servers_and_a_shared_disk_the_survivor_fences_through_the_disk() {
    let lab = Lab::up("c30", &["--nodes", "2", "--fencing", "disk"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    assert!(fence_slots(&lab).iter().all(|(_, m, _)| m == "clear"), "{:?}", fence_slots(&lab));
    let rec = Recorder::start(&["alpha", "beta"]);
    let down = Instant::now();
    lab.power("alpha", "off");
    assert!(
        wait(Duration::from_secs(20), || lab.owner_seen_by("beta").as_deref() == Some("beta")),
        "beta never took web"
    );
    assert!(wait(Duration::from_secs(5), || lab.fetch().as_deref() == Some("beta")), "the client reaches beta");
    eprintln!("takeover through the fence disk: {} ms", down.elapsed().as_millis());
    let slots = fence_slots(&lab);
    assert!(slots.contains(&("alpha".into(), "off".into(), "beta".into())), "{slots:?}");
    assert_eq!(lab.status("beta").unwrap()["alone"], "beta");

    lab.power("alpha", "on");
    lab.run(&["start", "alpha"]);
    assert!(wait(Duration::from_secs(30), || lab.together()), "alpha votes again: {:?}", lab.status("beta"));
    assert!(fence_slots(&lab).iter().all(|(_, m, _)| m == "clear"), "alpha's guard cleared its pill");
    assert_eq!(lab.owner_seen_by("alpha").as_deref(), Some("beta"), "web stays on beta");
    rec.assert_never_two_holders();
}

/// Two live servers that cannot hear each other but share the disk: both
/// fence, alpha's pill waits 2 s, so beta's guard reads its pill first,
/// kills its agent (which never writes alpha's) and releases everything;
/// alpha goes on alone with web. One survivor, never two holders.
#[test]
fn case31_two_servers_split_apart_the_disk_pill_leaves_one_survivor() {
    let lab = Lab::up("c31", &["--nodes", "2", "--fencing", "disk"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta"]);
    lab.run(&["partition", "alpha/beta"]);
    assert!(
        wait(Duration::from_secs(20), || lab.status("alpha").is_some_and(|d| d["alone"] == "alpha")),
        "alpha never went on alone: {:?}",
        lab.status("alpha")
    );
    assert!(lab.status("beta").is_none(), "beta's agent answers after its pill");
    let slots = fence_slots(&lab);
    assert!(slots.contains(&("beta".into(), "off".into(), "alpha".into())), "{slots:?}");
    assert!(slots.contains(&("alpha".into(), "clear".into(), "-".into())), "beta never wrote a pill: {slots:?}");
    // Under load (the whole suite) alpha's status once answered without an
    // owner right as it went on alone: it must settle on alpha.
    assert!(
        wait(Duration::from_secs(5), || lab.owner_seen_by("alpha").as_deref() == Some("alpha")),
        "alpha does not own web: {:?}",
        lab.status("alpha")
    );
    assert!(wait(Duration::from_secs(5), || lab.fetch().as_deref() == Some("alpha")), "the client reaches alpha");
    assert!(!lab.has_vip("beta"), "beta still holds the address");
    // Nothing but the ownership record's `ip monitor` runs in beta.
    let running = || lab.processes("beta").into_iter().filter(|c| !c.contains("monitor address")).collect::<Vec<_>>();
    assert!(wait(Duration::from_secs(5), || running().is_empty()), "beta runs {:?}", running());
    rec.assert_never_two_holders();
}

/// A node that cannot read its slot on the fence disk runs nothing: alpha's
/// slot overwritten with junk, its guard gives up after msgwait/2, kills its
/// agent and releases web; beta fences alpha through the disk and runs web.
#[test]
fn case32_a_node_that_cannot_read_its_fence_disk_slot_goes_down() {
    let lab = Lab::up("c32", &["--nodes", "2", "--fencing", "disk"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta"]);
    let disk = fence_disk(&lab);
    let junk = Command::new("dd")
        .args(["if=/dev/urandom", &format!("of={disk}"), "bs=4096", "seek=1", "count=1", "oflag=direct"])
        .args(["conv=notrunc", "status=none"])
        .status()
        .unwrap();
    assert!(junk.success(), "dd over alpha's slot");
    assert!(wait(Duration::from_secs(10), || lab.status("alpha").is_none()), "alpha's agent runs on");
    assert!(
        wait(Duration::from_secs(20), || lab.owner_seen_by("beta").as_deref() == Some("beta")),
        "beta never took web: {:?}",
        lab.status("beta")
    );
    assert!(wait(Duration::from_secs(5), || lab.fetch().as_deref() == Some("beta")), "the client reaches beta");
    assert!(!lab.has_vip("alpha"), "alpha still holds the address");
    rec.assert_never_two_holders();
}

/// Two servers and a remote witness: `arbiter` is on link 0 only, in a
/// subnet of its own behind a router. Its vote counts: alpha cut off on
/// both links, beta and the witness are a majority and beta serves; alpha
/// holds nothing. The witness shows the link it is not on as "none".
#[test]
fn case33_two_servers_and_a_remote_witness_behind_a_router_fail_over() {
    let lab = Lab::up("c33", &["--nodes", "2", "--remote-witness"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let seen = lab.status("arbiter").expect("the witness answers");
    assert_eq!(seen["nodes"][0]["state"], "online", "{seen}");
    assert_eq!(seen["nodes"][0]["links"][0]["state"], "up", "{seen}");
    assert_eq!(seen["nodes"][0]["links"][1]["state"], "none", "{seen}");
    assert_eq!(seen["nodes"][2]["links"].as_array().map(Vec::len), Some(1), "{seen}");
    assert_eq!(seen["nodes"][2]["links"][0]["address"], "10.89.0.2", "{seen}");
    let rec = Recorder::start(&["alpha", "beta"]);
    lab.run(&["cut", "alpha"]);
    assert!(
        wait(Duration::from_secs(15), || lab.owner_seen_by("beta").as_deref() == Some("beta")),
        "beta never took web: {:?}",
        lab.status("beta")
    );
    assert!(wait(Duration::from_secs(5), || !lab.has_vip("alpha")), "alpha kept the address after its lease");
    assert!(wait(Duration::from_secs(5), || lab.fetch().as_deref() == Some("beta")), "the client reaches beta");
    assert!(lab.status("beta").is_some_and(|d| d["alone"].is_null()), "a witness, not two-node mode");
    rec.assert_never_two_holders();
}

/// The README's first command, and the same on two servers with a shared
/// fence disk: the client is answered by another node, and the demo says
/// how long it waited.
#[test]
fn the_demo_fails_over_on_three_nodes_and_on_two_with_a_fence_disk() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the lab tests need root: they create network namespaces");
    for extra in [&[][..], &["--nodes", "2", "--fencing", "disk"][..]] {
        let dir = std::env::temp_dir().join(format!("baton-e2e-demo-{}", std::process::id()));
        let mut args = vec!["lab", "demo", "--dir", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = ok(&args);
        assert!(out.contains("killed the agent of alpha (SIGKILL) and cut its links"), "{out}");
        assert!(out.contains("first answer from beta"), "{out}");
        assert!(out.contains("outage seen by the client: "), "{out}");
        assert!(!dir.join("lab.json").exists(), "the demo leaves no lab behind");
    }
}

/// The demo on whole machines: the owner's machine is powered off (every
/// process of it killed, its links cut) and another serves the client.
#[test]
fn the_demo_fails_over_on_systemd_machines_when_the_owner_s_machine_is_powered_off() {
    let deb = deb();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = std::env::temp_dir().join(format!("baton-e2e-mdemo-{}", std::process::id()));
    let out = ok(&["lab", "demo", "--dir", dir.to_str().unwrap(), "--machines", deb.to_str().unwrap()]);
    assert!(out.contains("powered off alpha's machine (every process killed, links cut)"), "{out}");
    assert!(out.contains("first answer from beta"), "{out}");
    assert!(!dir.join("lab.json").exists(), "the demo leaves no lab behind");
}

/// The package, built once for the machine tests (as `tests/package.rs`
/// builds it, in the same separate target directory).
fn deb() -> &'static std::path::Path {
    static DEB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DEB.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        // Beside the release build it comes from, replaced on every run.
        let out = root.join("target/deb/e2e");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let built = Command::new(root.join("packaging/deb.sh"))
            .arg("--output")
            .arg(&out)
            .env("CARGO_TARGET_DIR", root.join("target/deb"))
            .status()
            .expect("running packaging/deb.sh (needs sh, cargo and cargo-deb)");
        assert!(built.success(), "packaging/deb.sh failed");
        std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .expect("a .deb was written")
    })
}

/// A command's output inside a lab node (a machine: every namespace of it).
fn inside(lab: &Lab, node: &str, command: &[&str]) -> String {
    let mut args = vec!["exec", node, "--"];
    args.extend_from_slice(command);
    lab.run(&args)
}

/// Three whole machines and a witness machine (systemd-nspawn, Debian,
/// their own systemd), baton installed from the repository's .deb and
/// started by `systemctl`, as on
/// real servers: `systemctl start` returned once the agent was ready
/// (Type=notify); `systemctl status` says what the node does (STATUS=);
/// the journal keeps each line's level; each set's processes live in a
/// cgroup below the unit's, which systemd delegates; `systemctl reload`
/// reaches the agent. Then the owner's agent is stopped (SIGSTOP): the set
/// is already safe on another node (the guard released it when the lease
/// ended), and systemd's watchdog restarts the agent, which joins again.
#[test]
fn case36_on_systemd_machines_installed_from_the_package_notify_status_journal_delegation_and_watchdog() {
    for tool in ["systemd-nspawn", "debootstrap"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
        assert!(
            found.status.success(),
            "this test needs {tool} (scripts/test-deps installs systemd-container and debootstrap)"
        );
    }
    let lab = Lab::up("c36", &["--machines", deb().to_str().unwrap(), "--witness"]);
    let owner = wait_owner(&lab, "gamma", Duration::from_secs(20)).expect("web runs");
    let witness = &lab.status("gamma").unwrap()["nodes"][3];
    assert_eq!((&witness["name"], &witness["state"]), (&Value::from("arbiter"), &Value::from("online")), "{witness}");
    assert_eq!(inside(&lab, "arbiter", &["systemctl", "is-active", "baton"]).trim(), "active");
    for node in ["alpha", "beta", "gamma"] {
        assert_eq!(inside(&lab, node, &["systemctl", "is-active", "baton"]).trim(), "active", "{node}");
        let runs = if node == owner { "runs 1 of 1 set: web" } else { "runs 0 of 1 set" };
        let status = || inside(&lab, node, &["systemctl", "show", "-p", "StatusText", "--value", "baton"]);
        assert!(
            wait(Duration::from_secs(5), || status().starts_with("quorum; leader ") && status().contains(runs)),
            "{node}: {}",
            status()
        );
    }
    // Levels reach the journal: the start line is info, so not a warning.
    let info = inside(&lab, &owner, &["journalctl", "-u", "baton", "-p", "info", "-o", "cat", "--no-pager"]);
    let warnings = inside(&lab, &owner, &["journalctl", "-u", "baton", "-p", "warning", "-o", "cat", "--no-pager"]);
    assert!(info.contains(&format!("node {owner} of cluster lab is up")), "{info}");
    assert!(!warnings.contains("of cluster lab is up"), "{warnings}");
    // web's program runs in its set's cgroup below the unit's.
    let procs = "/sys/fs/cgroup/unified/system.slice/baton.service/set-web/1/cgroup.procs";
    assert!(!inside(&lab, &owner, &["cat", procs]).trim().is_empty(), "web's program is not in its set's cgroup");
    inside(&lab, &owner, &["systemctl", "reload", "baton"]);
    assert!(wait(Duration::from_secs(5), || {
        inside(&lab, &owner, &["journalctl", "-u", "baton", "-o", "cat", "--no-pager"])
            .contains("SIGHUP: /etc/baton/cluster.toml reloaded")
    }));

    let rec = Recorder::start(&["alpha", "beta", "gamma"]);
    let pid = inside(&lab, &owner, &["systemctl", "show", "-p", "MainPID", "--value", "baton"]);
    inside(&lab, &owner, &["sh", "-c", &format!("kill -STOP {}", pid.trim())]);
    let other = if owner == "gamma" { "alpha" } else { "gamma" };
    assert!(
        wait(Duration::from_secs(15), || lab.owner_seen_by(other).is_some_and(|o| o != owner)),
        "web did not move off the stopped agent's node"
    );
    assert!(wait(Duration::from_secs(5), || !lab.has_vip(&owner)), "the stopped agent's node kept the address");
    assert!(wait(Duration::from_secs(5), || lab.fetch().is_some_and(|w| w != owner)), "the client reaches web");
    let restarted =
        || inside(&lab, &owner, &["systemctl", "show", "-p", "NRestarts", "--value", "baton"]).trim() != "0";
    assert!(wait(Duration::from_secs(30), restarted), "systemd's watchdog never restarted the stopped agent");
    let journal = inside(&lab, &owner, &["journalctl", "-u", "baton", "-o", "cat", "--no-pager"]);
    assert!(journal.to_lowercase().contains("watchdog timeout"), "{journal}");
    assert!(
        wait(Duration::from_secs(20), || lab.status(&owner).is_some_and(|d| d["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "online"))),
        "the restarted agent did not join again"
    );
    rec.assert_never_two_holders();
}

/// A `systemd` resource running a real unit on systemd machines: the unit
/// (shipped to every machine, not enabled) runs where its set runs and
/// nowhere else; killed, it is started again by the set's monitor on the
/// same node; `systemctl restart baton` on the owner hands the set over
/// (the unit stops there and starts on the next node) and the agent comes
/// back; a node where the unit is enabled at boot says so in its journal.
#[test]
fn case37_a_systemd_resource_runs_a_real_unit_where_its_set_runs_and_a_restart_hands_it_over() {
    let scratch = Scratch::new("units");
    let files = scratch.0.join("files");
    let units = files.join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        units.join("lab-sleep.service"),
        "[Unit]\nDescription=the lab's unit for baton's systemd resource\n[Service]\nExecStart=/bin/sleep infinity\n\
         [Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    let extra = scratch.0.join("extra.toml");
    std::fs::write(
        &extra,
        "\n[sets.svc]\nnodes = [\"alpha\", \"beta\"]\n[[sets.svc.resources]]\ntype = \"systemd\"\n\
         unit = \"lab-sleep.service\"\ninterval = \"1s\"\n",
    )
    .unwrap();
    let deb = deb().to_str().unwrap();
    let args = ["--machines", deb, "--machine-files", files.to_str().unwrap(), "--extra", extra.to_str().unwrap()];
    let lab = Lab::up("c37", &args);
    let svc_owner = |node: &str| {
        let doc = lab.status(node)?;
        let set = &doc["sets"][1];
        (set["state"] == "running").then(|| set["owner"].as_str().map(str::to_string)).flatten()
    };
    let active = |node: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_baton-lab"))
            .args(["exec", "--dir", lab.dir(), node, "--", "systemctl", "is-active", "lab-sleep"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "active"
    };
    assert!(wait(Duration::from_secs(20), || svc_owner("gamma").as_deref() == Some("alpha")), "svc runs on alpha");
    assert!(active("alpha") && !active("beta") && !active("gamma"), "the unit runs on the set's node alone");

    inside(&lab, "alpha", &["systemctl", "kill", "--signal=SIGKILL", "lab-sleep"]);
    assert!(wait(Duration::from_secs(3), || !active("alpha")), "the unit survived SIGKILL");
    assert!(wait(Duration::from_secs(15), || active("alpha")), "the monitor did not start the unit again");
    assert_eq!(svc_owner("gamma").as_deref(), Some("alpha"), "a local restart, not a failover");

    inside(&lab, "alpha", &["timeout", "90", "systemctl", "restart", "baton"]);
    assert!(wait(Duration::from_secs(15), || svc_owner("gamma").as_deref() == Some("beta")), "svc was not handed over");
    assert!(active("beta") && !active("alpha"), "the unit moved with its set");
    assert_eq!(inside(&lab, "alpha", &["systemctl", "is-active", "baton"]).trim(), "active");

    inside(&lab, "gamma", &["systemctl", "enable", "lab-sleep"]);
    inside(&lab, "gamma", &["timeout", "90", "systemctl", "restart", "baton"]);
    let journal = || inside(&lab, "gamma", &["journalctl", "-u", "baton", "-p", "warning", "-o", "cat", "--no-pager"]);
    assert!(
        wait(Duration::from_secs(10), || journal().contains("unit lab-sleep.service is enabled at boot")),
        "{}",
        journal()
    );
}

/// A rolling upgrade on systemd machines, as docs/guide.md describes it: on
/// one machine after another, `dpkg -i` of the package, whose postinst
/// hands the running agent over to the new binary (`baton handover`): the
/// same process runs the installed binary, and the owner's set never stops
/// — the client is answered by the same node throughout, and the address
/// is never removed or added anywhere.
#[test]
fn case38_a_rolling_package_upgrade_hands_each_agent_over_in_place_and_nothing_moves() {
    let lab = Lab::up("c38", &["--machines", deb().to_str().unwrap()]);
    let owner = wait_owner(&lab, "gamma", Duration::from_secs(20)).expect("web runs");
    let rec = Recorder::start(&["alpha", "beta", "gamma"]);
    let main_pid = |node: &str| inside(&lab, node, &["systemctl", "show", "-p", "MainPID", "--value", "baton"]);
    let exe = |node: &str| inside(&lab, node, &["readlink", &format!("/proc/{}/exe", main_pid(node).trim())]);
    let mut probe = client_probe(600);
    for node in ["alpha", "beta", "gamma"] {
        let before = main_pid(node);
        // The package's postinst hands the running agent over to the new binary.
        let said = inside(&lab, node, &["dpkg", "-i", "/var/tmp/baton.deb"]);
        assert!(said.contains("handed over to /usr/bin/baton"), "{node}: {said}");
        assert_eq!(exe(node).trim(), "/usr/bin/batond", "{node} runs the installed daemon");
        assert_eq!(main_pid(node), before, "{node}: the agent's process is the same");
        assert_eq!(inside(&lab, node, &["systemctl", "is-active", "baton"]).trim(), "active", "{node}");
        let journal = inside(&lab, node, &["journalctl", "-u", "baton", "-o", "cat", "--no-pager"]);
        assert!(journal.contains("handing over to /usr/bin/batond (incarnation 1); left running"), "{node}: {journal}");
    }
    let _ = probe.kill();
    let answered = answers(probe);
    assert!(answered.len() > 50, "the client asked {} times", answered.len());
    assert!(answered.iter().all(|a| *a == owner), "the client was not served by {owner} throughout: {answered:?}");
    assert_eq!(lab.owner_seen_by("alpha").as_deref(), Some(owner.as_str()));
    assert!(rec.adds().is_empty(), "the address moved during the upgrade: {:?}", rec.intervals());
}

/// The pid of `node`'s web server (the lab's `serve`).
fn web_server_pid(node: &str) -> Option<i32> {
    let out = Command::new("ip").args(["netns", "pids", &format!("btnl-{node}")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().find_map(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        cmdline.split(|b| *b == 0).any(|a| a == b"serve").then(|| pid.parse().ok()).flatten()
    })
}

/// The client asks for the service every 20 ms for `seconds`; the answers
/// (monotonic ms, who answered or "-") once it is done.
fn client_probe(seconds: u64) -> Child {
    Command::new("ip")
        .args(["netns", "exec", "btnl-client", env!("CARGO_BIN_EXE_baton-lab"), "probe"])
        .args(["--url", &format!("http://{VIP}/"), "--interval-ms", "20", "--seconds", &seconds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn answers(probe: Child) -> Vec<String> {
    let out = probe.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| Some(l.split_once(' ')?.1.to_string())).collect()
}

/// A program standing in for the binary at the agent's path, in `node`'s
/// mount namespace only (a bind mount over it): the daemon, `batond`, is
/// what `baton handover` executes next; the command line, `baton`, is what
/// it asks to check the configuration first.
fn replace_binary(lab: &Lab, node: &str, program: &Path, with: &Path) {
    lab.run(&["exec", node, "--", "mount", "--bind", with.to_str().unwrap(), program.to_str().unwrap()]);
}

#[test]
fn case39_a_handover_replaces_the_agent_program_and_the_set_keeps_running_or_fails_over_if_it_returns_late() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let lab = Lab::up("c39", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta", "gamma"]);
    let sock = lab.dir.join("alpha/baton.sock");
    let sock = sock.to_str().unwrap();
    let agent = agent_pids(&lab).into_iter().find(|(n, _)| n == "alpha").unwrap().1;
    let web = web_server_pid("alpha").expect("alpha runs the web server");

    // A new build: a copy of the daemon, executed in place of the old one.
    let daemon = baton_bin().with_file_name("batond");
    let new = lab.dir.join("new-batond");
    std::fs::copy(&daemon, &new).unwrap();
    replace_binary(&lab, "alpha", &daemon, &new);
    let probe = client_probe(3);
    std::thread::sleep(Duration::from_millis(700));
    let said = ok(&["handover", "--reason", "upgrade", "--socket", sock]);
    assert!(said.contains("left running: web"), "{said}");
    let answered = answers(probe);
    assert!(answered.len() > 100, "the client asked {} times", answered.len());
    assert!(answered.iter().all(|a| a == "alpha"), "the client was not served by alpha throughout: {answered:?}");
    let exe = std::fs::metadata(format!("/proc/{agent}/exe")).unwrap();
    assert_eq!(exe.ino(), std::fs::metadata(&new).unwrap().ino(), "the agent's process runs the new binary");
    assert_eq!(web_server_pid("alpha"), Some(web), "the web server was not restarted");
    assert!(rec.adds().is_empty(), "the address moved: {:?}", rec.intervals());
    let events = ok(&["events", "--socket", sock]);
    assert!(events.contains("agent carried on after a handover (incarnation 1)"), "{events}");
    assert_eq!(lab.status("gamma").unwrap()["nodes"][0]["state"], "online");

    // The new program watches the program it took over: killed, it is restarted.
    kill_web_server("alpha");
    assert!(
        wait(Duration::from_secs(10), || web_server_pid("alpha").is_some_and(|p| p != web) && lab.fetch().is_some()),
        "the killed web server was not restarted"
    );

    // A new binary that refuses the configuration: refused, nothing changes.
    let script = |name: &str, text: &str| {
        let path = lab.dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let refusing = script("refusing-baton", "#!/bin/sh\necho 'cluster.toml: no good' >&2\nexit 1\n");
    replace_binary(&lab, "alpha", &baton_bin(), &refusing);
    let refused = baton(&["handover", "--socket", sock]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && why.contains("no good"), "{why}");
    assert!(lab.status("alpha").is_some(), "the agent answers as before");
    lab.run(&["exec", "alpha", "--", "umount", baton_bin().to_str().unwrap()]);

    // A new program back only after the lease: the guard released
    // everything at the lease's end and the set failed over; the program
    // hears of the firing from the guard, rejoins, and can run web again.
    let real = lab.dir.join("real-batond");
    std::fs::copy(&daemon, &real).unwrap();
    let late = format!(
        "#!/bin/sh\ncase \"$*\" in *\"--help\"*) exec {real} \"$@\";; esac\nsleep 5\nexec {real} \"$@\"\n",
        real = real.display()
    );
    replace_binary(&lab, "alpha", &daemon, &script("late-batond", &late));
    let mut cli = Command::new(baton_bin()).args(["handover", "--socket", sock]).spawn().unwrap();
    let moved = wait(Duration::from_secs(5), || lab.owner_seen_by("beta").is_some_and(|o| o != "alpha"));
    assert!(moved, "web did not fail over while the new program was away");
    assert!(!lab.has_vip("alpha"), "alpha's guard released the address");
    assert!(cli.wait().unwrap().success(), "the late program answered the handover");
    assert!(
        wait(Duration::from_secs(15), || lab.status("beta").is_some_and(|d| d["nodes"][0]["state"] == "online")),
        "alpha did not rejoin after its late handover"
    );
    assert_eq!(ok(&["move", "web", "alpha", "--socket", sock]), "web runs on alpha\n");
    assert!(lab.fetch().is_some(), "the client is served");
    rec.assert_never_two_holders();
}

/// Two systemd machines and power fencing, nothing else: the fence agent
/// inside each machine asks the lab's network power switch over the
/// management network, as fence agents ask a PDU or a BMC. Split apart,
/// both fence; the device that fences alpha (the preferred node) waits 2 s,
/// so beta's machine is powered off first and alpha goes on alone with web.
#[test]
fn case40_two_systemd_machines_split_apart_fence_each_other_through_a_network_power_switch() {
    let lab = Lab::up("c40", &["--machines", deb().to_str().unwrap(), "--nodes", "2", "--fencing", "power"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(20)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta"]);
    // No fence agent of the host runs in a machine: the line in fence.log
    // was written by the power switch, asked by fence_lab over the network.
    split_pair_alpha_survives(&lab);
    rec.assert_never_two_holders();
}

/// What `baton simulate` says of web after `cut` (its `after` and `why`).
fn predicted(lab: &Lab, cut: &str) -> (String, String) {
    let sock = lab.dir.join("gamma/baton.sock");
    let config = lab.dir.join("cluster.toml");
    let args = ["simulate", "--json", "--cut", cut, "--config", config.to_str().unwrap()];
    let doc: Value = serde_json::from_str(&ok(&[&args[..], &["--socket", sock.to_str().unwrap()]].concat())).unwrap();
    let set = &doc["data"]["sets"][0];
    (set["after"].as_str().unwrap_or("nowhere").to_string(), set["why"].as_str().unwrap().to_string())
}

/// `baton simulate --cut` says what then happens: one of alpha's two links
/// cut, web stays (a link event); all of them, web goes to beta.
#[test]
fn case41_simulate_cut_predicts_what_a_cut_then_does() {
    let lab = Lab::up("c41", &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let (after, why) = predicted(&lab, "alpha:1");
    assert_eq!((after.as_str(), why.as_str()), ("alpha", "stays"));
    lab.run(&["cut", "alpha", "1"]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.owner_seen_by("gamma").as_deref(), Some("alpha"), "one link cut moved web");
    lab.run(&["heal"]);
    let (after, why) = predicted(&lab, "alpha");
    assert_eq!((after.as_str(), why.as_str()), ("beta", "its node is lost or in standby"));
    lab.run(&["cut", "alpha"]);
    assert!(
        wait(Duration::from_secs(15), || lab.owner_seen_by("gamma").as_deref() == Some("beta")),
        "web did not go where simulate said"
    );
}

/// The processes in `node`'s network namespace whose arguments include `arg`.
fn pids_with(node: &str, arg: &str) -> Vec<i32> {
    let out = Command::new("ip").args(["netns", "pids", &format!("btnl-{node}")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes())
        })
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

fn has_address(node: &str, address: &str) -> bool {
    let out = Command::new("ip").args(["-n", &format!("btnl-{node}"), "-o", "addr"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains(&format!(" {address}/"))
}

/// Where the `extra` set of case 42 runs: the nodes with its address, and
/// those with its program (`/bin/sleep SECONDS`).
fn extra_runs(seconds: &str) -> (Vec<&'static str>, Vec<&'static str>) {
    let nodes = ["alpha", "beta", "gamma"];
    let address = nodes.iter().copied().filter(|n| has_address(n, EXTRA_IP)).collect();
    let program = nodes.iter().copied().filter(|n| !pids_with(n, seconds).is_empty()).collect();
    (address, program)
}

const EXTRA_IP: &str = "10.88.0.101";

/// The set `extra` (an address and a program) in TOML, preferring `nodes`.
fn extra_set(nodes: &str, seconds: &str, more: &str) -> String {
    format!(
        "\n[sets.extra]\nnodes = [{nodes}]\n{more}\n[[sets.extra.resources]]\ntype = \"ip\"\naddress = \"{EXTRA_IP}/24\"\n\
         \n[[sets.extra.resources]]\ntype = \"process\"\ncommand = [\"/bin/sleep\", \"{seconds}\"]\n"
    )
}

/// A lab whose web runs on alpha, watched by an ownership recorder: the
/// web server's pid, the lab's file as written, and gamma's socket (where
/// a live change is asked).
fn live_change_lab(tag: &str) -> (Lab, Recorder, i32, String, String) {
    let lab = Lab::up(tag, &[]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta", "gamma"]);
    let web = web_server_pid("alpha").expect("alpha runs the web server");
    let original = std::fs::read_to_string(lab.dir.join("cluster.toml")).unwrap();
    let sock = lab.dir.join("gamma/baton.sock").to_str().unwrap().to_string();
    (lab, rec, web, original, sock)
}

#[test]
fn case42_a_configuration_changed_live_starts_moves_restarts_and_stops_only_what_it_changes() {
    let (lab, rec, web, original, sock) = live_change_lab("c42");
    let config = lab.dir.join("cluster.toml");
    let sock = sock.as_str();
    let file = |name: &str, text: &str| {
        let path = lab.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let sets = |doc: &Value| -> Vec<(String, String)> {
        doc["data"]["sets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["set"].as_str().unwrap().to_string(), s["change"].as_str().unwrap().to_string()))
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());

    // A set added to the file, then SIGHUP everywhere: it starts where its
    // order says; web keeps its program.
    std::fs::write(&config, original.clone() + &extra_set("\"beta\", \"alpha\", \"gamma\"", "3601", "")).unwrap();
    let lab_file = config.to_str().unwrap();
    let diff: Value = serde_json::from_str(&ok(&["config", "diff", lab_file, "--json", "--socket", sock])).unwrap();
    assert_eq!(sets(&diff), [pair("web", "nothing"), pair("extra", "start")], "{diff}");
    reload_all(&lab);
    assert!(
        wait(Duration::from_secs(15), || extra_runs("3601") == (vec!["beta"], vec!["beta"])),
        "extra did not start on beta alone: {:?}",
        extra_runs("3601")
    );
    let agreed = || {
        let doc = lab.status("alpha").unwrap_or_default();
        (doc["config_generation"].as_u64(), doc["config_drift"].as_bool())
    };
    assert!(wait(Duration::from_secs(5), || agreed() == (Some(1), Some(false))), "{:?}", agreed());

    // Its order changed, with failback: it moves, as the new policy says.
    let moved = original.clone() + &extra_set("\"gamma\", \"beta\", \"alpha\"", "3601", "failback = \"auto\"\n");
    let moved = file("moved.toml", &moved);
    let diff: Value = serde_json::from_str(&ok(&["config", "diff", &moved, "--json", "--socket", sock])).unwrap();
    assert_eq!(sets(&diff), [pair("web", "nothing"), pair("extra", "policy")], "{diff}");
    assert_eq!(diff["data"]["sets"][1]["runs_on"], "beta");
    let said = ok(&["config", "apply", &moved, "--socket", sock]);
    assert!(said.contains("generation 2"), "{said}");
    assert!(
        wait(Duration::from_secs(15), || extra_runs("3601") == (vec!["gamma"], vec!["gamma"])),
        "extra did not move to gamma alone: {:?}",
        extra_runs("3601")
    );
    // The nodes' own file is not the agreed one any more: drift.
    assert!(wait(Duration::from_secs(5), || lab.status("beta").unwrap()["config_drift"] == true));
    let shown: Value = serde_json::from_str(&ok(&["config", "show", "--json", "--socket", sock])).unwrap();
    assert_eq!(shown["data"]["generation"], 2);
    assert!(shown["data"]["text"].as_str().unwrap().contains("failback = \"auto\""));

    // Its program changed: only extra restarts, on gamma. The HTTP API
    // moves to another port with it, on every node, at once.
    let on_9406 = original.replace("lease = \"1s\"", "lease = \"1s\"\nhttp = \"127.0.0.1:9406\"");
    assert_ne!(on_9406, original);
    let changed = on_9406 + &extra_set("\"gamma\", \"beta\", \"alpha\"", "3602", "failback = \"auto\"\n");
    let changed = file("changed.toml", &changed);
    let diff: Value = serde_json::from_str(&ok(&["config", "diff", &changed, "--json", "--socket", sock])).unwrap();
    assert_eq!(sets(&diff), [pair("web", "nothing"), pair("extra", "restart")], "{diff}");
    assert_eq!(diff["data"]["at_next_start"], serde_json::json!([]), "{diff}");
    ok(&["config", "apply", &changed, "--socket", sock]);
    assert!(
        wait(Duration::from_secs(15), || extra_runs("3602") == (vec!["gamma"], vec!["gamma"])
            && extra_runs("3601").1.is_empty()),
        "extra did not restart with its new program: {:?} {:?}",
        extra_runs("3601"),
        extra_runs("3602")
    );
    let api_on = |port: u16| ["alpha", "beta", "gamma"].map(|n| http_answers(n, port));
    assert!(
        wait(Duration::from_secs(5), || api_on(9406) == [true; 3] && api_on(9405) == [false; 3]),
        "the HTTP API did not move to port 9406: 9405 {:?}, 9406 {:?}",
        api_on(9405),
        api_on(9406)
    );

    // A bad file is refused, naming what is wrong; nothing changes.
    let bad = file(
        "bad.toml",
        &std::fs::read_to_string(&changed).unwrap().replace("\"gamma\", \"beta\", \"alpha\"", "\"delta\""),
    );
    let refused = baton(&["config", "apply", &bad, "--socket", sock]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && why.contains("delta"), "{why}");
    let shown: Value = serde_json::from_str(&ok(&["config", "show", "--json", "--socket", sock])).unwrap();
    assert_eq!(shown["data"]["generation"], 3);

    // The file as it was: extra stops everywhere, web runs on.
    let back = file("back.toml", &original);
    let diff: Value = serde_json::from_str(&ok(&["config", "diff", &back, "--json", "--socket", sock])).unwrap();
    assert_eq!(sets(&diff), [pair("web", "nothing"), pair("extra", "stop")], "{diff}");
    ok(&["config", "apply", &back, "--socket", sock]);
    assert!(
        wait(Duration::from_secs(15), || extra_runs("3602") == (vec![], vec![])),
        "extra still runs: {:?}",
        extra_runs("3602")
    );
    assert!(
        wait(Duration::from_secs(5), || api_on(9405) == [true; 3] && api_on(9406) == [false; 3]),
        "the HTTP API did not come back to port 9405: 9405 {:?}, 9406 {:?}",
        api_on(9405),
        api_on(9406)
    );
    let names: Vec<String> = lab.status("beta").unwrap()["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["web"]);
    assert_eq!(web_server_pid("alpha"), Some(web), "web's program was restarted by a change that did not touch it");
    assert!(lab.fetch().is_some());
    assert!(rec.adds().is_empty(), "web's address moved: {:?}", rec.intervals());
    let events = ok(&["events", "--socket", sock]);
    assert!(events.contains("configuration generation 4"), "{events}");
}

/// The lease changed live (1 s to 600 ms, then a step refused): no set
/// moves, no program restarts, every node counts the new lease, and a
/// failover afterwards hands web on with never two holders of its address.
#[test]
fn case43_the_lease_changes_live_and_nothing_moves() {
    let (lab, rec, web, original, sock) = live_change_lab("c43");
    assert!(original.contains("lease = \"1s\""), "{original}");
    let sock = sock.as_str();
    let shorter = lab.dir.join("shorter.toml");
    std::fs::write(&shorter, original.replace("lease = \"1s\"", "lease = \"600ms\"")).unwrap();
    let shorter = shorter.to_str().unwrap();

    let diff: Value = serde_json::from_str(&ok(&["config", "diff", shorter, "--json", "--socket", sock])).unwrap();
    assert_eq!(diff["data"]["lease_ms"], serde_json::json!({ "now": 1000, "then": 600 }), "{diff}");
    assert_eq!(diff["data"]["sets"][0]["change"], "nothing", "{diff}");
    let said = ok(&["config", "apply", shorter, "--socket", sock]);
    assert!(said.contains("the lease changes from 1000 ms to 600 ms"), "{said}");
    let lease = |node: &str| lab.status(node).and_then(|d| d["timing"]["lease_ms"].as_u64());
    assert!(
        wait(Duration::from_secs(5), || ["alpha", "beta", "gamma"].iter().all(|n| lease(n) == Some(600))),
        "not every node counts the new lease: {:?}",
        ["alpha", "beta", "gamma"].map(lease)
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.owner_seen_by("gamma").as_deref(), Some("alpha"));
    assert_eq!(web_server_pid("alpha"), Some(web), "web's program restarted");
    assert!(lab.status("alpha").unwrap()["lease_ms_left"].as_u64().unwrap() <= 600, "alpha holds by the new lease");

    // Heartbeats every 400 ms would not fit the running 600 ms lease while
    // nodes switch: refused, nothing changes.
    let slower = lab.dir.join("slower.toml");
    let text = original
        .replace("lease = \"1s\"", "lease = \"4s\"")
        .replace("heartbeat_interval = \"100ms\"", "heartbeat_interval = \"400ms\"");
    std::fs::write(&slower, text).unwrap();
    let refused = baton(&["config", "apply", slower.to_str().unwrap(), "--socket", sock]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && why.contains("in two steps"), "{why}");
    assert_eq!(lease("gamma"), Some(600));

    // alpha dies (its agent killed, its links cut): web moves on, under
    // the new lease.
    lab.run(&["kill", "alpha"]);
    lab.run(&["cut", "alpha"]);
    assert!(
        wait(Duration::from_secs(10), || lab.owner_seen_by("gamma").is_some_and(|o| o != "alpha")),
        "web never left alpha"
    );
    assert!(wait(Duration::from_secs(5), || lab.fetch().is_some_and(|w| w != "alpha")), "the client is not served");
    rec.assert_never_two_holders();
}

/// A fourth node added while the cluster runs, then removed: `config
/// apply` with delta (the lab's spare), `baton rejoin` on delta, its agent
/// started — it becomes a voter and serves web when moved there; then a
/// file without it applied while it serves web: it is put in standby, web
/// moves off, and only then is it removed — its agent exits and every node
/// shows it removed. The client is served throughout, never by two holders
/// of the address.
#[test]
fn case44_a_node_added_live_serves_web_and_is_removed_after_its_set_moved() {
    let lab = Lab::up("c44", &["--spare"]);
    assert_eq!(wait_owner(&lab, "beta", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let rec = Recorder::start(&["alpha", "beta", "gamma", "delta"]);
    let config = lab.dir.join("cluster.toml");
    let three = std::fs::read_to_string(&config).unwrap();
    let with_delta = lab.dir.join("cluster.spare.toml");
    let sock = lab.dir.join("gamma/baton.sock");
    let sock = sock.to_str().unwrap();
    let online = |node: &str| {
        lab.status("alpha").is_some_and(|d| {
            d["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["name"] == node && n["state"] == "online" && n["voter"] == true)
        })
    };
    assert!(wait(Duration::from_secs(10), || ["alpha", "beta", "gamma"].iter().all(|n| online(n))));

    let diff: Value =
        serde_json::from_str(&ok(&["config", "diff", with_delta.to_str().unwrap(), "--json", "--socket", sock]))
            .unwrap();
    assert_eq!(diff["data"]["nodes"], serde_json::json!(["node delta added (slot 3)"]), "{diff}");
    ok(&["config", "apply", with_delta.to_str().unwrap(), "--socket", sock]);
    // The file goes to every node (they share the lab's), then delta asks
    // the leader to take it in and starts.
    std::fs::copy(&with_delta, &config).unwrap();
    let state = lab.dir.join("delta");
    lab.run(&[
        "exec",
        "delta",
        "--",
        baton_bin().to_str().unwrap(),
        "join",
        "--config",
        config.to_str().unwrap(),
        "--node",
        "delta",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    lab.run(&["start", "delta"]);
    assert!(wait(Duration::from_secs(20), || online("delta")), "delta is an online voter");
    ok(&["move", "web", "delta", "--socket", sock]);
    assert!(wait(Duration::from_secs(10), || lab.fetch().as_deref() == Some("delta")), "the client is served by delta");
    assert!(lab.has_vip("delta") && !lab.has_vip("alpha"));

    // A file without delta, while delta serves web: web moves off first.
    let without = lab.dir.join("without-delta.toml");
    std::fs::write(&without, &three).unwrap();
    let diff = ok(&["config", "diff", without.to_str().unwrap(), "--socket", sock]);
    assert!(diff.contains("node delta removed once web has moved off it"), "{diff}");
    let said = ok(&["config", "apply", without.to_str().unwrap(), "--socket", sock]);
    assert!(said.contains("generation 2"), "{said}");
    // Removed only once delta had let web go; the next owner may still be starting it.
    assert!(!lab.has_vip("delta"), "delta still holds web's address");
    assert!(
        wait(Duration::from_secs(10), || lab.fetch().is_some_and(|w| w != "delta")),
        "the client is not served by another node"
    );
    std::fs::copy(&without, &config).unwrap();
    let removed = |node: &str| {
        lab.status(node).is_some_and(|d| d["nodes"][3]["state"] == "removed" && d["nodes"][3]["voter"] == false)
    };
    assert!(
        wait(Duration::from_secs(15), || ["alpha", "beta", "gamma"].iter().all(|n| removed(n))),
        "delta shown removed everywhere"
    );
    assert!(
        wait(Duration::from_secs(10), || !lab.processes("delta").iter().any(|p| p.contains("baton"))),
        "delta's agent and guard exited: {:?}",
        lab.processes("delta")
    );
    assert!(lab.fetch().is_some(), "the client is served");
    rec.assert_never_two_holders();
}

/// A planned move is direct (ARCHITECTURE.md, "A planned move handed over
/// directly"): the next owner starts the set on the old owner's word, before
/// the cluster agrees the release, and the address is never on two nodes.
/// Its log shows the order: the set started there, then the release agreed.
#[test]
fn case45_a_planned_move_starts_on_the_owners_word_before_the_release_is_agreed() {
    let lab = Lab::up("c45", &["--address-only"]);
    assert_eq!(wait_owner(&lab, "gamma", Duration::from_secs(10)).as_deref(), Some("alpha"));
    let sock = lab.dir.join("gamma/baton.sock");
    let sock = sock.to_str().unwrap();
    let rec = Recorder::start(&["alpha", "beta", "gamma"]);
    let moves = ["beta", "alpha", "beta", "alpha"];
    for to in moves {
        assert_eq!(ok(&["move", "web", to, "--socket", sock]), format!("web runs on {to}\n"));
        assert!(wait(Duration::from_secs(3), || lab.fetch().as_deref() == Some(to)), "the client reaches {to}");
    }
    rec.assert_never_two_holders();
    assert_eq!(rec.adds(), moves, "each move added the address once, on its node: {:?}", rec.intervals());
    // In each new owner's log: the Move (direct), then the set started,
    // then the release agreed — or, if a commit outran the owner's word,
    // the other way round; most moves must show the direct order.
    let mut direct = 0;
    for (i, to) in moves.iter().enumerate() {
        let log = std::fs::read_to_string(lab.dir.join(format!("{to}.log"))).unwrap();
        let from = if i % 2 == 0 { 0 } else { 1 };
        let moved = format!("agreed: Move {{ set: 0, from: {from}, to: Some({}), ", 1 - from);
        let at = log.match_indices(&moved).nth(i / 2).map(|(at, _)| at).expect("the move is in the log");
        let rest = &log[at..];
        assert!(rest[..rest.find('\n').unwrap()].contains("direct: true"), "not a direct move: {rest:.200}");
        let started = rest.find("set web: Started").expect("web started there");
        let released = rest.find("agreed: Released").expect("the release agreed there");
        direct += usize::from(started < released);
    }
    assert!(direct * 2 > moves.len(), "only {direct} of {} moves started before the release was agreed", moves.len());
    // Each direct start is a takeover, timed from the move.
    let beta = scrape("beta");
    assert_eq!(sample(&beta, "baton_takeover_seconds", &[]), 2.0, "beta took web twice");
}
