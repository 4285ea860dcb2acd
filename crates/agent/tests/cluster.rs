//! Whole clusters of real agents in one process, without root: each agent
//! on a runtime of its own (killing a node drops its runtime, every task
//! and socket with it), its resources fakes, its guard a ledger, its links
//! loopback addresses. What is tested is the agent's behaviour as a
//! cluster — a failover, a planned move, a standby, a shutdown — through the
//! same API the command line uses.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_agent::api::{self, Request};
use baton_agent::exec::{Builder, SetRuntime};
use baton_agent::guard_link::Ledger;
use baton_agent::shell::{Agent, Inputs, Options, Ports, Signal};
use baton_config::SetConfig;
use baton_resources::cgroup::Cgroup;
use baton_resources::Fake;
use tokio::sync::{mpsc, oneshot};

const NODES: [&str; 3] = ["alpha", "beta", "gamma"];

/// A cluster's directory and configuration.
struct Cluster {
    dir: PathBuf,
    config: PathBuf,
    nodes: Vec<&'static str>,
}

impl Cluster {
    fn new(tag: &str) -> Cluster {
        Cluster::with(tag, "")
    }

    /// `set_keys`: more keys of `[sets.web]`.
    fn with(tag: &str, set_keys: &str) -> Cluster {
        Cluster::of(tag, &NODES, set_keys, "")
    }

    /// Two nodes and a fence device for both (two-node mode): the device is
    /// a script that records whom it turned off in `fenced.log` and says
    /// "off" for them afterwards.
    fn pair(tag: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("baton-cluster-{tag}-{}", std::process::id()));
        let agent = dir.join("fence_test");
        let log = dir.join("fenced.log");
        let fencing = format!(
            "\n[fencing]\n[[fencing.devices]]\nagent = \"{}\"\nnodes = [\"alpha\", \"beta\"]\n",
            agent.display()
        );
        let cluster = Cluster::of(tag, &NODES[..2], "", &fencing);
        // A fence here confirms without powering anything off: a longer
        // lease keeps a loaded test machine from a false suspicion.
        let text = std::fs::read_to_string(&cluster.config).unwrap().replace("lease = \"600ms\"", "lease = \"2s\"");
        std::fs::write(&cluster.config, text).unwrap();
        let script = format!(
            "#!/bin/sh\nwhile read -r l; do case \"$l\" in action=*) a=${{l#action=}};; plug=*) p=${{l#plug=}};; esac; done\n\
             case \"$a\" in off) echo \"$p\" >> {log};; status) grep -qx \"$p\" {log} 2>/dev/null && exit 2;; esac\n\
             exit 0\n",
            log = log.display()
        );
        std::fs::write(&agent, script).unwrap();
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
        cluster
    }

    /// `nodes` in one cluster; `set_keys`: more keys of `[sets.web]`;
    /// `more`: more sections.
    fn of(tag: &str, nodes: &[&'static str], set_keys: &str, more: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("baton-cluster-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, [7u8; 40]).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A port of this cluster's own, so clusters beside each other do
        // not meet (two of one length of tag once shared one).
        static CLUSTERS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let nth = CLUSTERS.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + (std::process::id() % 20_000) as u16 + nth * 7;
        let mut text = format!(
            "[cluster]\nname = \"inproc\"\nsecret_file = \"secret\"\nport = {port}\nheartbeat_interval = \"50ms\"\n\
             lease = \"600ms\"\nhttp = \"127.0.0.1:0\"\n"
        );
        for (i, n) in nodes.iter().enumerate() {
            text += &format!("\n[nodes.{n}]\naddresses = [\"127.0.0.{}/8\"]\n", 11 + i);
        }
        let names = nodes.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
        text += &format!(
            "\n[sets.web]\nnodes = [{names}]\n{set_keys}\n[[sets.web.resources]]\n\
             type = \"process\"\ncommand = [\"/bin/true\"]\n{more}"
        );
        let config = dir.join("cluster.toml");
        std::fs::write(&config, text).unwrap();
        Cluster { dir, config, nodes: nodes.to_vec() }
    }

    fn socket(&self, node: &str) -> PathBuf {
        self.dir.join(node).join("baton.sock")
    }

    /// Waits until `node` sees every node of the cluster online (a node's
    /// `Join` may be agreed after the first set already runs).
    fn all_online(&self, node: &str) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        wait(Duration::from_secs(20), || {
            let status = rt.block_on(api::call(&self.socket(node), &Request::Status)).ok();
            let nodes = status.and_then(|s| s.data).map(|d| d["nodes"].clone()).unwrap_or_default();
            nodes.as_array().is_some_and(|n| n.len() == self.nodes.len() && n.iter().all(|n| n["state"] == "online"))
        })
    }

    /// alpha, beta and gamma started, once web runs on alpha, its first choice.
    fn three(&self) -> (Running, Running, Running) {
        let (a, b, c) = (self.start("alpha"), self.start("beta"), self.start("gamma"));
        assert!(wait(Duration::from_secs(20), || only(&[&a, &b, &c], 0)), "web starts on alpha");
        (a, b, c)
    }

    /// Starts `node`'s agent on a thread and runtime of its own.
    fn start(&self, node: &str) -> Running {
        self.start_with(node, Fake::default())
    }

    fn start_with(&self, node: &str, fake: Fake) -> Running {
        self.start_from(node, fake, &self.config)
    }

    /// Starts `node` with the configuration file `file`.
    fn start_from(&self, node: &str, fake: Fake, file: &Path) -> Running {
        let config = baton_config::load(file).unwrap();
        // As `baton agent` finds it: its place in its own file.
        let me = config.nodes.iter().position(|n| n.name == node).unwrap();
        let state_dir = self.dir.join(node);
        // web runs `fake`; every other set a fake of its own, kept in `others`.
        let (cgroups, runs) = (self.dir.join("cgroups").join(node), fake.clone());
        let others = Arc::new(std::sync::Mutex::new(Vec::<(String, Fake)>::new()));
        let built = Arc::clone(&others);
        let build: Builder = Box::new(move |set: &SetConfig| {
            let resource = if set.name == "web" {
                runs.clone()
            } else {
                let f = Fake::default();
                built.lock().unwrap().push((set.name.clone(), f.clone()));
                f
            };
            SetRuntime {
                name: set.name.clone(),
                hooks: None,
                cgroup: Cgroup(cgroups.join(&set.name)),
                resources: vec![Box::new(resource)],
                labels: vec!["fake".into()],
            }
        });
        let (signals_tx, signals) = mpsc::channel(4);
        let (kill, killed) = oneshot::channel::<()>();
        let socket = self.socket(node);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let result = rt.block_on(async move {
                let ports = Ports {
                    guard: Arc::new(Ledger::default()),
                    guard_ended: None,
                    build,
                    netlink: None,
                    signals,
                    pill_found: false,
                    handed: None,
                    // No notifier is configured in these clusters.
                    notifier: std::path::PathBuf::from("/nonexistent/baton-notify"),
                };
                let agent = Agent::start(Options { config, me, state_dir, socket }, ports, Inputs::default()).await?;
                tokio::select! {
                    r = agent.run() => r,
                    _ = killed => Ok(()),
                }
            });
            // Every task of the node goes with its runtime: a dead machine.
            rt.shutdown_background();
            result
        });
        Running { fake, others, signals: signals_tx, kill: Some(kill), thread: Some(thread) }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Running {
    fake: Fake,
    /// The fakes of the sets other than web, by set name.
    others: Arc<std::sync::Mutex<Vec<(String, Fake)>>>,
    signals: mpsc::Sender<Signal>,
    kill: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Running {
    fn runs_web(&self) -> bool {
        self.fake.running.load(Ordering::SeqCst)
    }

    /// Does a set other than web run here?
    fn runs(&self, set: &str) -> bool {
        self.others.lock().unwrap().iter().any(|(name, f)| name == set && f.running.load(Ordering::SeqCst))
    }

    /// The machine dies: every task and socket gone, and what it ran with it.
    fn kill(&mut self) {
        let _ = self.kill.take().unwrap().send(());
        let _ = self.thread.take().unwrap().join();
        self.fake.running.store(false, Ordering::SeqCst);
    }

    /// The agent ended by itself.
    fn exited(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| t.is_finished())
    }

    /// SIGTERM; returns once the agent exited, with how it ended.
    fn stop(&mut self) -> Result<(), String> {
        self.signals.blocking_send(Signal::Stop).unwrap();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wait(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn call(socket: &Path, req: Request) -> api::Response {
    try_call(socket, req).unwrap()
}

/// A call to an agent that may not listen yet.
fn try_call(socket: &Path, req: Request) -> Result<api::Response, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(api::call(socket, &req))
}

/// Exactly one node runs web, and it is `node`.
fn only(nodes: &[&Running], node: usize) -> bool {
    nodes.iter().enumerate().all(|(i, n)| n.runs_web() == (i == node))
}

#[test]
fn a_cluster_in_one_process_fails_over_moves_empties_a_node_and_stops() {
    let cluster = Cluster::new("all");
    let mut a = cluster.start("alpha");
    let mut b = cluster.start("beta");
    let mut c = cluster.start("gamma");
    assert!(wait(Duration::from_secs(20), || only(&[&a, &b, &c], 0)), "web starts on alpha, its first choice");
    assert!(cluster.all_online("gamma"), "every node joined");

    // A planned move: answered once web runs on beta.
    let moved =
        call(&cluster.socket("gamma"), Request::Move { set: "web".into(), node: Some("beta".into()), reason: None });
    assert!(moved.ok, "{:?}", moved.error);
    assert_eq!(moved.data.unwrap()["target"], "beta");
    assert!(only(&[&a, &b, &c], 1), "web runs on beta alone");

    // Standby of beta: answered once beta is empty.
    let standby = call(&cluster.socket("alpha"), Request::Standby { node: "beta".into(), standby: true, reason: None });
    assert!(standby.ok, "{:?}", standby.error);
    assert!(!b.runs_web());
    assert!(wait(Duration::from_secs(10), || a.runs_web() ^ c.runs_web()), "web runs on one other node");
    let online = call(&cluster.socket("alpha"), Request::Standby { node: "beta".into(), standby: false, reason: None });
    assert!(online.ok, "{:?}", online.error);

    // The owner dies: another node takes web over; the dead one comes back.
    let a_owned = a.runs_web();
    if a_owned {
        a.kill();
        assert!(wait(Duration::from_secs(15), || b.runs_web() ^ c.runs_web()), "web taken over");
        a = cluster.start("alpha");
    } else {
        c.kill();
        assert!(wait(Duration::from_secs(15), || a.runs_web() ^ b.runs_web()), "web taken over");
        c = cluster.start("gamma");
    }

    // A refused request says why, and changes nothing.
    let refused =
        call(&cluster.socket("beta"), Request::Move { set: "web".into(), node: Some("nobody".into()), reason: None });
    assert_eq!(refused.error.as_deref(), Some("no node named \"nobody\""));

    // SIGTERM to the owner: it hands web over (two nodes are left, a
    // majority) and exits cleanly.
    let owner = if b.runs_web() {
        &mut b
    } else if a.runs_web() {
        &mut a
    } else {
        &mut c
    };
    owner.stop().expect("the agent exits cleanly");
    assert!(!owner.runs_web(), "it stopped web before it left");
    let others = [&a, &b, &c].into_iter().filter(|n| n.thread.is_some()).collect::<Vec<_>>();
    assert_eq!(others.len(), 2);
    assert!(others.iter().filter(|n| n.runs_web()).count() == 1, "web runs on a node left, once");
}

/// ClusterLabs/pcs#697: a move must not leave a preference behind. With
/// `failback = "never"`, web moved to beta, beta dies, web goes elsewhere;
/// when beta returns, web stays where it went.
#[test]
fn a_moved_set_stays_where_it_went_when_its_target_dies_and_returns() {
    let cluster = Cluster::new("pin-return");
    let (a, mut b, c) = cluster.three();
    assert!(cluster.all_online("alpha"), "every node joined");
    let moved =
        call(&cluster.socket("alpha"), Request::Move { set: "web".into(), node: Some("beta".into()), reason: None });
    assert!(moved.ok, "{:?}", moved.error);
    b.kill();
    assert!(wait(Duration::from_secs(15), || a.runs_web() ^ c.runs_web()), "web taken over");
    let went_to = if a.runs_web() { 0 } else { 2 };
    let status = call(&cluster.socket("alpha"), Request::Status);
    assert_eq!(status.data.unwrap()["sets"][0]["pinned"], serde_json::Value::Null, "the pin went with beta");
    let b = cluster.start("beta");
    assert!(
        wait(Duration::from_secs(10), || {
            let s = call(&cluster.socket("alpha"), Request::Status).data.unwrap_or_default();
            s["nodes"][1]["state"] == "online"
        }),
        "beta is back online"
    );
    // Several leases with beta back: nothing moves.
    std::thread::sleep(Duration::from_secs(3));
    assert!(only(&[&a, &b, &c], went_to), "web stayed where it went");
}

/// Pacemaker's `failure-timeout`: web fails to start on alpha, runs on beta;
/// alpha's exclusion lapses by itself after `failure_timeout`, and web stays
/// on beta (`failback = "never"`).
#[test]
fn an_exclusion_lapses_after_the_failure_timeout() {
    // Long enough that a loaded machine still sees the exclusion before it lapses.
    let cluster = Cluster::with("failure-timeout", "failure_timeout = \"5s\"\n");
    let broken = Fake::default();
    broken.fail_start.store(true, Ordering::SeqCst);
    let a = cluster.start_with("alpha", broken);
    let b = cluster.start("beta");
    let c = cluster.start("gamma");
    let excluded = || {
        // gamma's agent may not listen yet when the wait begins.
        let doc = try_call(&cluster.socket("gamma"), Request::Status).ok().and_then(|r| r.data).unwrap_or_default();
        doc["sets"][0]["excluded"].as_array().cloned().unwrap_or_default()
    };
    assert!(wait(Duration::from_secs(20), || excluded() == [serde_json::json!("alpha")]), "web fails on alpha");
    assert!(wait(Duration::from_secs(20), || only(&[&a, &b, &c], 1)), "web runs on beta");
    assert!(wait(Duration::from_secs(15), || excluded().is_empty()), "alpha's exclusion lapsed");
    assert!(only(&[&a, &b, &c], 1), "web stays on beta");
}

/// `baton simulate`: the prediction from the live agreed state is what then
/// happens.
#[test]
fn a_simulated_failure_predicts_the_failover_that_follows() {
    use baton_core::simulate::{predict, Fault};
    let cluster = Cluster::new("simulate");
    let mut a = cluster.start("alpha");
    let b = cluster.start("beta");
    let c = cluster.start("gamma");
    assert!(wait(Duration::from_secs(20), || only(&[&a, &b, &c], 0)), "web starts on alpha");
    assert!(cluster.all_online("beta"), "every node joined");
    let topo = baton_config::load(&cluster.config).unwrap().topology();
    let state = call(&cluster.socket("beta"), Request::AgreedState).data.unwrap();
    let state: baton_state::ClusterState = serde_json::from_value(state).unwrap();
    let p = predict(&topo, &state, &[Fault::Kill(0)]).unwrap();
    assert_eq!((p[0].before, p[0].after), (Some(0), Some(1)), "{p:?}");
    a.kill();
    assert!(wait(Duration::from_secs(15), || b.runs_web() || c.runs_web()), "web taken over");
    assert!(only(&[&a, &b, &c], 1), "where the simulation said");
}

/// Configuration drift is visible: a node whose file differs from the
/// others' shows in every node's status.
#[test]
fn a_node_running_a_different_file_shows_as_drift() {
    let cluster = Cluster::new("drift-shown");
    let other = cluster.dir.join("other.toml");
    let text = std::fs::read_to_string(&cluster.config).unwrap() + "\n# edited on gamma only\n";
    std::fs::write(&other, text).unwrap();
    let a = cluster.start("alpha");
    let b = cluster.start("beta");
    let status = || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(api::call(&cluster.socket("alpha"), &Request::Status)).ok().and_then(|r| r.data).unwrap_or_default()
    };
    let said = |s: &serde_json::Value, n: usize| s["nodes"][n]["config"].as_str().map(str::to_string);
    assert!(wait(Duration::from_secs(20), || said(&status(), 1).is_some()), "beta said which file it runs");
    assert_eq!(status()["config_drift"], false, "alpha and beta run the same file");
    let c = cluster.start_from("gamma", Fake::default(), &other);
    assert!(wait(Duration::from_secs(20), || status()["config_drift"] == true), "gamma's file differs");
    let s = status();
    assert_eq!(said(&s, 0), said(&s, 1));
    assert_ne!(said(&s, 0), said(&s, 2));
    drop((a, b, c));
}

/// A configuration change agreed while the cluster runs: a set added
/// starts where its order says, a set removed stops, a set left alone
/// keeps running throughout; an invalid file changes nothing; `config
/// diff` says what the change does before it is made.
#[test]
fn a_configuration_applied_live_starts_and_stops_sets_and_leaves_the_others_running() {
    let cluster = Cluster::new("apply");
    let (a, b, c) = cluster.three();
    let original = std::fs::read_to_string(&cluster.config).unwrap();
    let with_db = format!(
        "{original}\n[sets.db]\nnodes = [\"beta\", \"alpha\"]\n[[sets.db.resources]]\ntype = \"process\"\n\
         command = [\"/bin/true\"]\n"
    );
    let socket = cluster.socket("gamma");
    let diff = call(&socket, Request::ConfigDiff { text: with_db.clone() });
    assert!(diff.ok, "{:?}", diff.error);
    let sets = diff.data.unwrap()["sets"].clone();
    assert_eq!(sets[0]["set"], "web");
    assert_eq!(
        (sets[0]["change"].as_str(), sets[1]["set"].as_str(), sets[1]["change"].as_str()),
        (Some("nothing"), Some("db"), Some("start"))
    );
    let applied = call(&socket, Request::ConfigApply { text: with_db.clone(), reason: None });
    assert!(applied.ok, "{:?}", applied.error);
    assert_eq!(applied.data.unwrap()["generation"], 1);
    assert!(wait(Duration::from_secs(15), || b.runs("db")), "db starts on beta, its first choice");
    assert!(only(&[&a, &b, &c], 0), "web stayed on alpha");
    let shown = call(&cluster.socket("alpha"), Request::ConfigShow).data.unwrap();
    assert_eq!((shown["generation"].as_u64(), shown["text"].as_str()), (Some(1), Some(with_db.as_str())));
    assert_eq!(shown["drift"], true, "alpha's own file is not the agreed one");

    // A key that takes effect only at each agent's next start is named;
    // the HTTP API's address is not one.
    let later = |text: String| call(&socket, Request::ConfigDiff { text }).data.unwrap()["at_next_start"].clone();
    assert_eq!(later(with_db.replace("127.0.0.1:0", "127.0.0.1:1")), serde_json::json!([]));
    let realtime = with_db.replace("http = \"127.0.0.1:0\"", "http = \"127.0.0.1:0\"\nrealtime = false");
    assert_eq!(later(realtime.clone()), serde_json::json!(["cluster.realtime"]));
    // Agreed, it still waits for each agent's next start, and says so.
    let agreed = call(&socket, Request::ConfigApply { text: realtime.clone(), reason: None });
    assert!(agreed.ok, "{:?}", agreed.error);
    assert_eq!(later(realtime), serde_json::json!(["cluster.realtime"]), "pending until each agent starts again");

    // Invalid: refused, nothing proposed.
    let broken = call(
        &socket,
        Request::ConfigApply { text: with_db.replace("[\"beta\", \"alpha\"]", "[\"delta\"]"), reason: None },
    );
    assert!(!broken.ok && broken.error.as_deref().unwrap_or("").contains("delta"), "{:?}", broken.error);
    // Nodes change: refused with the reason.
    let fewer = call(&socket, Request::ConfigApply { text: original.replace("gamma", "delta"), reason: None });
    let why = fewer.error.unwrap_or_default();
    assert!(why.contains("one node is added or removed per change"), "a node renamed is two changes: {why}");
    assert_eq!(call(&socket, Request::ConfigShow).data.unwrap()["generation"], 2);

    // Back to the original file: db stops, web keeps running.
    let removed = call(&socket, Request::ConfigApply { text: original, reason: None });
    assert!(removed.ok, "{:?}", removed.error);
    assert!(wait(Duration::from_secs(15), || !b.runs("db")), "db stopped");
    assert!(only(&[&a, &b, &c], 0), "web never moved");
    let status = || call(&cluster.socket("beta"), Request::Status).data.unwrap();
    let names = |s: &serde_json::Value| -> Vec<String> {
        s["sets"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str().map(str::to_string)).collect()
    };
    assert!(wait(Duration::from_secs(10), || names(&status()) == ["web"]), "db released: no longer shown");
    let s = status();
    assert_eq!((s["config_generation"].as_u64(), s["config_drift"].as_bool()), (Some(3), Some(false)));
    drop((a, b, c));
}

/// Two-node mode (Pacemaker's `two_node`, done on the agreed state): the
/// owner's machine dies; the survivor fences it, and only once the device
/// confirmed it off becomes the only voter and runs web. The dead node
/// comes back empty, votes again, and both are needed again.
/// Two-node mode over, as beta sees it: not alone, alpha a voter and online.
fn together(cluster: &Cluster) -> bool {
    let s = call(&cluster.socket("beta"), Request::Status).data.unwrap();
    s["alone"].is_null() && s["nodes"][0]["voter"] == true && s["nodes"][0]["state"] == "online"
}

#[test]
fn of_two_nodes_the_survivor_fences_its_peer_then_goes_on_alone_until_it_returns() {
    let cluster = Cluster::pair("two-node-pair");
    let mut a = cluster.start("alpha");
    let mut b = cluster.start("beta");
    assert!(wait(Duration::from_secs(20), || only(&[&a, &b], 0)), "web starts on alpha, its first choice");
    let fenced = || std::fs::read_to_string(cluster.dir.join("fenced.log")).unwrap_or_default();
    assert_eq!(fenced(), "", "nobody fenced while both run");

    a.kill();
    assert!(wait(Duration::from_secs(20), || b.runs_web()), "beta took web over (fenced: {:?})", fenced());
    assert_eq!(fenced(), "alpha\n", "alpha was fenced before beta went on alone");
    let status = call(&cluster.socket("beta"), Request::Status).data.unwrap();
    assert_eq!(status["alone"], "beta", "{status}");
    assert_eq!(status["nodes"][0]["voter"], false, "{status}");

    // beta's machine restarts while alpha is still off: its own log makes
    // it the only voter, so it may fence again and go on (a node whose log
    // has two voters would wait for its peer instead).
    b.kill();
    let b = cluster.start("beta");
    assert!(wait(Duration::from_secs(20), || b.runs_web()), "beta runs web again (fenced: {:?})", fenced());
    assert_eq!(fenced(), "alpha\nalpha\n", "alpha fenced again before beta went on alone again");

    let a = cluster.start("alpha");
    assert!(wait(Duration::from_secs(30), || together(&cluster)), "alpha votes again");
    assert!(only(&[&a, &b], 1), "web stays on beta");
}

/// Both machines of a pair went down; only beta comes back. Its log has two
/// voters, so alpha may have fenced it and gone on alone meanwhile: beta
/// waits, fencing nobody, until an operator says alpha is off (`baton
/// alone`), then runs web. alpha, back, rejoins by itself.
#[test]
fn of_two_nodes_a_lone_boot_waits_until_an_operator_says_its_peer_is_off() {
    let cluster = Cluster::pair("pair-lone-boot-waits");
    let mut a = cluster.start("alpha");
    let mut b = cluster.start("beta");
    assert!(wait(Duration::from_secs(20), || only(&[&a, &b], 0)), "web starts on alpha");
    assert!(cluster.all_online("beta"), "both joined");
    a.kill();
    b.kill();
    let b = cluster.start("beta");
    std::thread::sleep(Duration::from_secs(4));
    assert!(!b.runs_web(), "a lone boot runs nothing");
    let fenced = std::fs::read_to_string(cluster.dir.join("fenced.log")).unwrap_or_default();
    assert_eq!(fenced, "", "and fences nobody");
    let alone = call(&cluster.socket("beta"), Request::Alone { reason: Some("alpha's PSU died".into()) });
    assert!(alone.ok, "{:?}", alone.error);
    assert!(wait(Duration::from_secs(20), || b.runs_web()), "beta runs web on the operator's word");
    let a = cluster.start("alpha");
    assert!(wait(Duration::from_secs(30), || together(&cluster)), "alpha votes again");
    assert!(only(&[&a, &b], 1), "web stays on beta");
}

/// A set added live, then an agent restarted with the new file (as an
/// operator does once the file is applied) before any snapshot: it
/// replays the log from the cluster's first state, not from one shaped
/// by its new file, so it agrees with the others on every set.
#[test]
fn an_agent_restarted_with_a_file_applied_live_replays_the_same_state_as_the_others() {
    let cluster = Cluster::new("restart-with-applied-file");
    let (a, mut b, c) = cluster.three();
    let original = std::fs::read_to_string(&cluster.config).unwrap();
    let with_db = format!(
        "{original}\n[sets.db]\nnodes = [\"beta\", \"alpha\"]\n[[sets.db.resources]]\ntype = \"process\"\n\
         command = [\"/bin/true\"]\n"
    );
    let applied = call(&cluster.socket("gamma"), Request::ConfigApply { text: with_db.clone(), reason: None });
    assert!(applied.ok, "{:?}", applied.error);
    assert!(wait(Duration::from_secs(15), || b.runs("db")), "db starts on beta");
    b.kill();
    assert!(wait(Duration::from_secs(15), || a.runs("db")), "db failed over to alpha");
    let file = cluster.dir.join("with-db.toml");
    std::fs::write(&file, &with_db).unwrap();
    let b = cluster.start_from("beta", Fake::default(), &file);
    let owners = |node: &str| -> Option<Vec<serde_json::Value>> {
        let s = try_call(&cluster.socket(node), Request::Status).ok()?.data?;
        Some(s["sets"].as_array()?.iter().map(|s| s["owner"].clone()).collect())
    };
    let same = || owners("beta").is_some_and(|o| Some(o) == owners("alpha"));
    assert!(wait(Duration::from_secs(20), same), "beta sees {:?}, alpha {:?}", owners("beta"), owners("alpha"));
    assert_eq!(owners("alpha").unwrap()[1], "alpha", "db stays where it failed over");
    std::thread::sleep(Duration::from_secs(2));
    assert!(a.runs("db") && !b.runs("db"), "db runs on alpha alone");
    drop((a, b, c));
}

/// A fourth node added while the cluster runs: `config apply` with it at
/// the end of the file, `baton rejoin`'s request on the new node (its
/// store replays from the cluster's first state), its agent started. It
/// catches up as a learner, becomes a voter, joins, and runs web when
/// moved there; web never ran on two nodes.
#[test]
fn a_node_added_live_runs_a_set_and_a_node_removed_live_leaves_its_slot_behind() {
    let cluster = Cluster::of("node-added", &["alpha", "beta", "gamma", "delta"], "", "");
    let four = std::fs::read_to_string(&cluster.config).unwrap();
    let three = four
        .replace("\n[nodes.delta]\naddresses = [\"127.0.0.14/8\"]\n", "")
        .replace("nodes = [\"alpha\", \"beta\", \"gamma\", \"delta\"]", "nodes = [\"alpha\", \"beta\", \"gamma\"]");
    assert_ne!(three, four);
    std::fs::write(&cluster.config, &three).unwrap();
    let with_delta = cluster.dir.join("with-delta.toml");
    std::fs::write(&with_delta, &four).unwrap();
    let (a, b, c) = cluster.three();
    // Adding a node while one of three is not online would leave no majority.
    let online = || {
        let s = try_call(&cluster.socket("beta"), Request::Status).ok().and_then(|r| r.data).unwrap_or_default();
        s["nodes"].as_array().is_some_and(|n| n.iter().filter(|n| n["state"] == "online").count() == 3)
    };
    assert!(wait(Duration::from_secs(20), online), "alpha, beta and gamma online");

    let diff = call(&cluster.socket("beta"), Request::ConfigDiff { text: four.clone() });
    assert!(diff.ok, "{:?}", diff.error);
    assert_eq!(diff.data.unwrap()["nodes"], serde_json::json!(["node delta added (slot 3)"]));
    let applied = call(&cluster.socket("beta"), Request::ConfigApply { text: four.clone(), reason: None });
    assert!(applied.ok, "{:?}", applied.error);

    // `baton rejoin` on delta: the leader answers with the first state's shape.
    let config = baton_config::load(&with_delta).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (leader, rejoined) = rt.block_on(baton_agent::raft::membership::ask_rejoin(&config, 3)).unwrap();
    let genesis = (rejoined.genesis.nodes, rejoined.genesis.sets);
    assert_eq!((genesis, rejoined.node), ((3, 1), 3), "the cluster started with three nodes and web");
    baton_agent::raft::membership::keep_rejoined(&cluster.dir.join("delta"), rejoined, &leader).unwrap();
    let d = cluster.start_from("delta", Fake::default(), &with_delta);

    let delta = || {
        let s = try_call(&cluster.socket("alpha"), Request::Status).ok().and_then(|r| r.data).unwrap_or_default();
        s["nodes"][3].clone()
    };
    assert!(
        wait(Duration::from_secs(30), || delta()["state"] == "online" && delta()["voter"] == true),
        "delta is an online voter: {}",
        delta()
    );
    let moved =
        call(&cluster.socket("gamma"), Request::Move { set: "web".into(), node: Some("delta".into()), reason: None });
    assert!(moved.ok, "{:?}", moved.error);
    assert!(wait(Duration::from_secs(15), || only(&[&a, &b, &c, &d], 3)), "web runs on delta alone");

    // beta, in slot 1, removed: it runs nothing, so it may go; its agent
    // exits, and web stays on delta throughout.
    let without_beta = four
        .replace("\n[nodes.beta]\naddresses = [\"127.0.0.12/8\"]\n", "")
        .replace("nodes = [\"alpha\", \"beta\", \"gamma\", \"delta\"]", "nodes = [\"alpha\", \"gamma\", \"delta\"]");
    assert_ne!(without_beta, four);
    let removed = call(&cluster.socket("gamma"), Request::ConfigApply { text: without_beta.clone(), reason: None });
    assert!(removed.ok, "{:?}", removed.error);
    assert!(wait(Duration::from_secs(15), || b.exited()), "beta's agent exits once removed");
    assert!(wait(Duration::from_secs(15), || delta()["state"] == "online"), "{}", delta());
    let beta = || {
        let s = try_call(&cluster.socket("alpha"), Request::Status).ok().and_then(|r| r.data).unwrap_or_default();
        (s["nodes"][1]["state"].clone(), s["nodes"][1]["voter"].clone())
    };
    assert!(
        wait(Duration::from_secs(15), || beta() == (serde_json::json!("removed"), serde_json::json!(false))),
        "beta shown removed and no voter: {:?}",
        beta()
    );
    assert!(only(&[&a, &c, &d], 2), "web stayed on delta");

    // gamma restarted with the new file, where it is second, not third: it
    // numbers the nodes by slot, and sees what the others see.
    let file = cluster.dir.join("without-beta.toml");
    std::fs::write(&file, &without_beta).unwrap();
    let mut c = c;
    c.kill();
    let c = cluster.start_from("gamma", Fake::default(), &file);
    let owners = |node: &str| -> Option<serde_json::Value> {
        let s = try_call(&cluster.socket(node), Request::Status).ok()?.data?;
        Some(serde_json::json!([s["sets"][0]["owner"], s["nodes"][2]["state"], s["nodes"][1]["state"]]))
    };
    let expected = serde_json::json!(["delta", "online", "removed"]);
    let seen = wait(Duration::from_secs(20), || owners("gamma") == Some(expected.clone()));
    let mut c = c;
    let why = if c.exited() { format!("{:?}", c.thread.take().unwrap().join()) } else { String::new() };
    assert!(seen, "gamma sees {:?}, alpha {:?} {why}", owners("gamma"), owners("alpha"));
    assert!(only(&[&a, &c, &d], 2), "web stayed on delta");
    drop((a, b, c, d));
}
