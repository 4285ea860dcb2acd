//! Runs what the core asks — a start, a stop, a monitor, a hook step —
//! against the real resources, each as its own task, and reports the result
//! with the action's token. Before anything is started, the guard learns
//! about it, so that it can be killed even if the agent cannot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_config::{Config, ResourceKind};
use baton_core::lifecycle::{Action, HookKind, Step};
use baton_core::{Input, SetId};
use baton_resources::ip::{self, IpSpec};
use baton_resources::netlink::Netlink;
use baton_resources::process::Processes;
use baton_resources::{mount, nfs, ocf, service};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::events::EventLog;
use crate::guard_link::GuardLink;

pub struct Executor {
    config: Arc<Config>,
    node: String,
    /// HA_RSCTMP for OCF agents, inside this node's state directory.
    ocf_tmp: PathBuf,
    nl: Netlink,
    procs: Arc<Processes>,
    guard: GuardLink,
    results: mpsc::Sender<Input>,
    inflight: Mutex<BTreeMap<SetId, Vec<AbortHandle>>>,
    /// Per set: the node that owned it before its current owner.
    pub previous: Mutex<Vec<Option<String>>>,
    events: Arc<EventLog>,
}

/// The environment every program baton starts gets, and nothing more.
fn clean_env(set: &str, node: &str) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("BATON_SET".into(), set.into()),
        ("BATON_NODE".into(), node.into()),
    ]
}

/// Runs `argv` without a shell, with a clean environment and a limit;
/// Ok only on exit status 0.
async fn run_program(argv: &[String], env: &[(String, String)], limit: Duration) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let child = cmd.output();
    let out = match tokio::time::timeout(limit, child).await {
        Err(_) => return Err(format!("{program} did not finish within {limit:?}")),
        Ok(Err(e)) => return Err(format!("starting {program}: {e}")),
        Ok(Ok(out)) => out,
    };
    // What it printed goes into the log, capped.
    let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    let tail: String = text.chars().rev().take(OUTPUT_TAIL_CHARS).collect::<Vec<_>>().into_iter().rev().collect();
    for line in tail.lines().filter(|l| !l.trim().is_empty()) {
        eprintln!("baton: {program}: {line}");
    }
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} exited with {}: {}", out.status, tail.trim()))
    }
}

/// How much of a program's output is kept.
const OUTPUT_TAIL_CHARS: usize = 2000;

fn ip_spec(kind: &ResourceKind) -> IpSpec {
    let ResourceKind::Ip { address, interface, garp_count, garp_interval } = kind else { unreachable!("not an ip") };
    IpSpec {
        ip: address.ip,
        prefix: address.prefix,
        interface: interface.clone(),
        garp_count: *garp_count,
        garp_interval: *garp_interval,
    }
}

fn nfs_spec(kind: &ResourceKind) -> nfs::NfsSpec {
    let ResourceKind::Nfs { path, fsid, clients, options, lock_dir } = kind else { unreachable!("not nfs") };
    nfs::NfsSpec {
        path: path.clone(),
        fsid: fsid.clone(),
        clients: clients.clone(),
        options: options.clone(),
        lock_dir: lock_dir.clone(),
    }
}

fn mount_spec(kind: &ResourceKind) -> mount::MountSpec {
    let ResourceKind::Mount { device, path, fstype, options } = kind else { unreachable!("not a mount") };
    mount::MountSpec { device: device.clone(), path: path.clone(), fstype: fstype.clone(), options: options.clone() }
}

fn service_kind(kind: &ResourceKind) -> service::Kind {
    match kind {
        ResourceKind::Lsb { script } => service::Kind::Lsb(script.clone()),
        ResourceKind::Systemd { unit } => service::Kind::Systemd(unit.clone()),
        other => unreachable!("{} is not a service", other.type_name()),
    }
}

/// The hooks of `kind` in `dir`, in name order.
fn hooks(dir: &Path, kind: HookKind) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading hooks directory {}: {e}", dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(kind.prefix())))
        .collect();
    found.sort();
    Ok(found)
}

impl Executor {
    pub fn new(
        config: Arc<Config>,
        node: String,
        ocf_tmp: PathBuf,
        nl: Netlink,
        guard: GuardLink,
        results: mpsc::Sender<Input>,
        events: Arc<EventLog>,
    ) -> Self {
        Executor {
            node,
            ocf_tmp,
            nl,
            procs: Arc::new(Processes::default()),
            guard,
            results,
            inflight: Mutex::new(BTreeMap::new()),
            previous: Mutex::new(vec![None; config.sets.len()]),
            events,
            config,
        }
    }

    /// Kill every action of `set` still in flight; their results never come.
    pub fn cancel(&self, set: SetId) {
        for task in self.inflight.lock().expect("not poisoned").remove(&set).unwrap_or_default() {
            task.abort();
        }
    }

    pub fn act(self: &Arc<Self>, action: Action) {
        let me = Arc::clone(self);
        let set = match action {
            Action::Run { set, .. } | Action::Monitor { set, .. } => set,
        };
        let task = tokio::spawn(async move {
            let input = match action {
                Action::Run { set, token, step, timeout } => {
                    let started = std::time::Instant::now();
                    let result = tokio::time::timeout(timeout, me.run(set, step, timeout)).await;
                    let took = Some(started.elapsed().as_millis() as u64);
                    let what = me.describe(set, step);
                    let ok = match result {
                        Ok(Ok(())) => {
                            let hookless =
                                matches!(step, Step::Hook(_)) && me.config.sets[usize::from(set)].hooks.is_none();
                            if !hookless {
                                me.events.record("step", Some(me.set_name(set)), format!("{what}: done"), took, None);
                            }
                            true
                        }
                        Ok(Err(why)) => {
                            eprintln!("baton: set {}: {what} failed: {why}", me.set_name(set));
                            me.events.record(
                                "failure",
                                Some(me.set_name(set)),
                                format!("{what} failed: {why}"),
                                took,
                                None,
                            );
                            false
                        }
                        Err(_) => {
                            let why = format!("{what} did not finish within {timeout:?}");
                            eprintln!("baton: set {}: {why}", me.set_name(set));
                            me.events.record("failure", Some(me.set_name(set)), why, took, None);
                            false
                        }
                    };
                    Input::StepDone { set, token, ok }
                }
                Action::Monitor { set, token, resource, timeout } => {
                    let ok = tokio::time::timeout(timeout, me.monitor(set, resource)).await.unwrap_or(false);
                    me.events.metrics().monitor(me.set_name(set), ok);
                    if !ok {
                        eprintln!("baton: set {}: monitor of resource {resource} failed", me.set_name(set));
                    }
                    Input::MonitorDone { set, token, ok }
                }
            };
            let _ = me.results.send(input).await;
        });
        let mut inflight = self.inflight.lock().expect("not poisoned");
        let tasks = inflight.entry(set).or_default();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task.abort_handle());
    }

    fn set_name(&self, set: SetId) -> &str {
        &self.config.sets[usize::from(set)].name
    }

    /// "start ip 10.0.0.100/24", "hooks PreAcq*", ...
    fn describe(&self, set: SetId, step: Step) -> String {
        let label = |i: usize| self.config.sets[usize::from(set)].resources[i].kind.label();
        match step {
            Step::Hook(kind) => format!("hooks {}*", kind.prefix()),
            Step::Start(i) => format!("start {}", label(i)),
            Step::Stop(i) => format!("stop {}", label(i)),
        }
    }

    fn ocf(&self, set: SetId, i: usize) -> Option<(ocf::Agent, Duration)> {
        let sc = &self.config.sets[usize::from(set)];
        let agent = crate::preflight::ocf_agent(sc, i, Some(self.ocf_tmp.clone()))?;
        Some((agent, sc.resources[i].interval.unwrap_or(Duration::from_secs(10))))
    }

    async fn run(&self, set: SetId, step: Step, limit: Duration) -> Result<(), String> {
        let sc = &self.config.sets[usize::from(set)];
        match step {
            Step::Hook(kind) => {
                let Some(dir) = &sc.hooks else { return Ok(()) };
                let mut env = clean_env(&sc.name, &self.node);
                env.push(("BATON_EVENT".into(), kind.prefix().into()));
                let previous = self.previous.lock().expect("not poisoned")[usize::from(set)].clone();
                env.push(("BATON_PREVIOUS_OWNER".into(), previous.unwrap_or_default()));
                for hook in hooks(dir, kind)? {
                    run_program(&[hook.display().to_string()], &env, limit).await?;
                }
                Ok(())
            }
            Step::Start(i) => self.start(set, i).await,
            Step::Stop(i) => self.stop(set, i, limit).await,
        }
    }

    async fn start(&self, set: SetId, i: usize) -> Result<(), String> {
        let sc = &self.config.sets[usize::from(set)];
        match &sc.resources[i].kind {
            ResourceKind::Ip { address, .. } => {
                let spec = ip_spec(&sc.resources[i].kind);
                // The guard hears of the address before it exists.
                self.guard.hold_ip(address.ip).await;
                ip::start(&self.nl, &spec).await.map(|_| ()).map_err(|e| e.to_string())
            }
            ResourceKind::Process { command, env } => {
                let mut all = clean_env(&sc.name, &self.node);
                all.extend(env.iter().cloned());
                let label = format!("{}/{}", sc.name, command[0]);
                let pgid = self.procs.start((set, i), &label, command, &all).map_err(|e| e.to_string())?;
                self.guard.hold_pgid(pgid).await;
                Ok(())
            }
            ResourceKind::Exec { start, .. } => {
                run_program(start, &clean_env(&sc.name, &self.node), Duration::MAX).await
            }
            ResourceKind::Mount { .. } => {
                let limit = sc.resources[i].timeout.unwrap_or(Duration::from_secs(60));
                mount::start(&mount_spec(&sc.resources[i].kind), limit).await
            }
            ResourceKind::Nfs { .. } => {
                let limit = sc.resources[i].timeout.unwrap_or(Duration::from_secs(20));
                nfs::start(&nfs_spec(&sc.resources[i].kind), limit).await
            }
            ResourceKind::Lsb { .. } | ResourceKind::Systemd { .. } => {
                let limit = sc.resources[i].timeout.unwrap_or(Duration::from_secs(20));
                self.service(set, i, service::Action::Start, limit).await
            }
            ResourceKind::Ocf { .. } => {
                let (agent, interval) = self.ocf(set, i).expect("an ocf resource");
                let limit = sc.resources[i].timeout.unwrap_or(Duration::from_secs(20));
                // The probe: an agent already running here needs no start.
                if agent.run("monitor", interval, limit).await.code == ocf::OCF_SUCCESS {
                    return Ok(());
                }
                let out = agent.run("start", Duration::ZERO, limit).await;
                if out.ok() {
                    Ok(())
                } else {
                    Err(out.describe("start", &agent))
                }
            }
        }
    }

    async fn stop(&self, set: SetId, i: usize, limit: Duration) -> Result<(), String> {
        let sc = &self.config.sets[usize::from(set)];
        match &sc.resources[i].kind {
            ResourceKind::Ip { address, .. } => {
                ip::stop(&self.nl, address.ip).await.map_err(|e| e.to_string())?;
                self.guard.drop_ip(address.ip).await;
                Ok(())
            }
            ResourceKind::Process { .. } => {
                // Half the limit for SIGTERM, the rest for SIGKILL to take.
                let pgid = self.procs.stop((set, i), limit / 2).await.map_err(|e| e.to_string())?;
                if let Some(pgid) = pgid {
                    self.guard.drop_pgid(pgid).await;
                }
                Ok(())
            }
            ResourceKind::Exec { stop, .. } => run_program(stop, &clean_env(&sc.name, &self.node), Duration::MAX).await,
            ResourceKind::Nfs { .. } => nfs::stop(&nfs_spec(&sc.resources[i].kind), limit).await,
            ResourceKind::Mount { .. } => {
                mount::stop(&mount_spec(&sc.resources[i].kind), (limit / 4).max(Duration::from_secs(1))).await
            }
            ResourceKind::Lsb { .. } | ResourceKind::Systemd { .. } => {
                self.service(set, i, service::Action::Stop, limit).await
            }
            ResourceKind::Ocf { .. } => {
                let (agent, _) = self.ocf(set, i).expect("an ocf resource");
                let out = agent.run("stop", Duration::ZERO, limit).await;
                if out.ok() || out.code == ocf::OCF_NOT_RUNNING {
                    Ok(())
                } else {
                    Err(out.describe("stop", &agent))
                }
            }
        }
    }

    /// Starts or stops an lsb/systemd resource: exit 0 is success.
    async fn service(&self, set: SetId, i: usize, action: service::Action, limit: Duration) -> Result<(), String> {
        let sc = &self.config.sets[usize::from(set)];
        let kind = service_kind(&sc.resources[i].kind);
        match service::run(&kind, action, &clean_env(&sc.name, &self.node), limit).await? {
            0 => Ok(()),
            code => Err(format!("{} exited with {code}", service::command(&kind, action).join(" "))),
        }
    }

    async fn monitor(&self, set: SetId, i: usize) -> bool {
        let sc = &self.config.sets[usize::from(set)];
        match &sc.resources[i].kind {
            ResourceKind::Ip { address, .. } => {
                let spec = ip_spec(&sc.resources[i].kind);
                match ip::monitor(&self.nl, &spec).await {
                    Ok(ip::Health::Present) => true,
                    Ok(ip::Health::Swapped { from, to }) => {
                        eprintln!(
                            "baton: set {}: link event: {from} lost carrier; {} moved to {to}",
                            sc.name, address.ip
                        );
                        true
                    }
                    Ok(ip::Health::Stranded { on }) => {
                        eprintln!("baton: set {}: {on} lost carrier and no other interface is on its subnet", sc.name);
                        false
                    }
                    Ok(ip::Health::Missing) => false,
                    Err(e) => {
                        eprintln!("baton: set {}: checking {}: {e}", sc.name, address.ip);
                        false
                    }
                }
            }
            ResourceKind::Process { .. } => self.procs.check((set, i)),
            ResourceKind::Exec { monitor: Some(argv), .. } => {
                run_program(argv, &clean_env(&sc.name, &self.node), Duration::MAX).await.is_ok()
            }
            ResourceKind::Nfs { .. } => {
                let limit = sc.resources[i].timeout.unwrap_or(Duration::from_secs(20));
                nfs::check(&nfs_spec(&sc.resources[i].kind), limit).await
            }
            ResourceKind::Mount { .. } => mount::is_mounted(&mount_spec(&sc.resources[i].kind)).unwrap_or(false),
            ResourceKind::Lsb { .. } | ResourceKind::Systemd { .. } => {
                let kind = service_kind(&sc.resources[i].kind);
                let limit = sc.resources[i].timeout.unwrap_or(Duration::from_secs(20));
                service::run(&kind, service::Action::Status, &clean_env(&sc.name, &self.node), limit).await == Ok(0)
            }
            ResourceKind::Ocf { .. } => {
                let (agent, interval) = self.ocf(set, i).expect("an ocf resource");
                let out =
                    agent.run("monitor", interval, sc.resources[i].timeout.unwrap_or(Duration::from_secs(20))).await;
                if !out.ok() {
                    eprintln!("baton: set {}: {}", sc.name, out.describe("monitor", &agent));
                }
                out.ok()
            }
            // An exec resource without a monitor command has nothing to check.
            ResourceKind::Exec { monitor: None, .. } => true,
        }
    }
}
