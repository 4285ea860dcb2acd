//! Runs what the core asks — a start, a stop, a monitor, a hook step —
//! against the resources, each as its own task, and reports the result with
//! the action's token. Before a resource starts, the guard holds how to
//! undo it (and the order is on the guard's pipe), so that whatever the
//! start puts into the world can be undone even if the agent cannot.
//!
//! Every process a set runs lives in the set's cgroup, which the guard
//! holds from the agent's start to its end: a resource's programs in a
//! cgroup of their own below it, the hooks in another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use baton_config::{NfsServer, ResourceKind, SetConfig};
use baton_core::lifecycle::{Action, HookKind, Step};
use baton_core::{Input, SetId};
use baton_resources::cgroup::{self, Cgroup};
use baton_resources::ganesha::{Ganesha, GaneshaSpec};
use baton_resources::ip::{Address, IpSpec};
use baton_resources::mount::{Mount, MountSpec};
use baton_resources::netlink::Netlink;
use baton_resources::nfs::{Nfs, NfsSpec};
use baton_resources::ocf::Ocf;
use baton_resources::process::Process;
use baton_resources::program::Program;
use baton_resources::service::{self, Exec, Service};
use baton_resources::{Context, Kept, Resource, Undo};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::events::EventLog;
use crate::guard_link::GuardPort;

/// Below the state directory: where OCF agents keep their temporary files.
pub const OCF_DIR: &str = "ocf";

/// A resource of a retired set whose definition this agent never had.
const UNKNOWN: &str = "this set was retired by a configuration change before the agent started: nothing of it runs";

/// How long a cgroup may take to empty after SIGKILL.
const KILL_LIMIT: Duration = Duration::from_secs(5);

/// One set's resources and hooks on this node.
pub struct SetRuntime {
    pub name: String,
    pub hooks: Option<PathBuf>,
    /// The cgroup of the set; its hooks run in `hooks` below it.
    pub cgroup: Cgroup,
    pub resources: Vec<Box<dyn Resource>>,
    /// "start ip 10.0.0.100/24" ... per resource.
    pub labels: Vec<String>,
}

impl SetRuntime {
    fn hook_context(&self, node: &str) -> Context {
        Context::new(&self.name, node, self.cgroup.child("hooks"))
    }
}

/// Builds a set's resources and hooks from its configuration (the real
/// ones with [`builder`]; tests build fakes).
pub type Builder = Box<dyn Fn(&SetConfig) -> SetRuntime + Send + Sync>;

/// The real builder: each set in its cgroup under `base`; what its
/// resources write for themselves goes below `state_dir`.
pub fn builder(node: String, base: Cgroup, nl: Netlink, state_dir: PathBuf) -> Builder {
    Box::new(move |set: &SetConfig| {
        let cg = base.child(&format!("set-{}", cgroup::dir_name(&set.name)));
        let resources = (0..set.resources.len())
            .map(|i| resource(set, i, Context::new(&set.name, &node, cg.child(&i.to_string())), &nl, &state_dir))
            .collect();
        SetRuntime {
            name: set.name.clone(),
            hooks: set.hooks.clone(),
            cgroup: cg,
            resources,
            labels: set.resources.iter().map(|r| r.kind.label()).collect(),
        }
    })
}

fn resource(set: &SetConfig, i: usize, ctx: Context, nl: &Netlink, state_dir: &Path) -> Box<dyn Resource> {
    let r = &set.resources[i];
    match &r.kind {
        ResourceKind::Ip { address, interface, garp_count, garp_interval } => Box::new(Address {
            nl: nl.clone(),
            spec: IpSpec {
                ip: address.ip,
                prefix: address.prefix,
                interface: interface.clone(),
                garp_count: *garp_count,
                garp_interval: *garp_interval,
            },
        }),
        ResourceKind::Process { command, env } => {
            let label = format!("{}/{}", set.name, command[0]);
            Box::new(Process::new(ctx, command.clone(), env.clone(), label))
        }
        ResourceKind::Exec { start, stop, monitor } => {
            Box::new(Exec { ctx, start: start.clone(), stop: stop.clone(), monitor: monitor.clone() })
        }
        ResourceKind::Lsb { script } => Box::new(Service { ctx, kind: service::Kind::Lsb(script.clone()) }),
        ResourceKind::Systemd { unit } => Box::new(Service { ctx, kind: service::Kind::Systemd(unit.clone()) }),
        ResourceKind::Ocf { .. } => {
            let agent = crate::preflight::ocf_agent(set, i, Some(state_dir.join(OCF_DIR))).expect("an ocf resource");
            Box::new(Ocf { ctx, agent, interval: r.interval.unwrap_or(Duration::from_secs(10)) })
        }
        ResourceKind::Mount { device, path, fstype, options } => Box::new(Mount {
            spec: MountSpec {
                device: device.clone(),
                path: path.clone(),
                fstype: fstype.clone(),
                options: options.clone(),
            },
            cgroup: Some(ctx.cgroup),
        }),
        ResourceKind::Nfs { path, fsid, clients, options, lock_dir, server: NfsServer::Kernel } => Box::new(Nfs {
            spec: NfsSpec {
                path: path.clone(),
                fsid: fsid.clone(),
                clients: clients.clone(),
                options: options.clone(),
                lock_dir: lock_dir.clone(),
            },
            cgroup: Some(ctx.cgroup),
        }),
        ResourceKind::Nfs { path, fsid, clients, options, lock_dir, server: NfsServer::Ganesha { address, grace } } => {
            let spec = GaneshaSpec {
                path: path.clone(),
                export_id: fsid.parse().expect("checked when the configuration was read"),
                clients: clients.clone(),
                options: options.clone(),
                recovery: lock_dir.clone(),
                address: address.expect("resolved when the configuration was read"),
                grace: *grace,
                conf: state_dir.join("ganesha").join(format!("{}-{i}.conf", cgroup::dir_name(&set.name))),
            };
            Box::new(Ganesha::new(ctx, spec, format!("{}/ganesha", set.name)))
        }
    }
}

pub struct Executor {
    node: String,
    /// By set slot; a configuration change adds slots ([`Self::extend`]).
    sets: RwLock<Vec<Arc<SetRuntime>>>,
    guard: Arc<dyn GuardPort>,
    results: mpsc::Sender<Input>,
    inflight: Mutex<BTreeMap<SetId, Vec<AbortHandle>>>,
    /// Per set: the node that owned it before its current owner.
    pub previous: Mutex<Vec<Option<String>>>,
    events: Arc<EventLog>,
    /// What the guard holds for resources started and not stopped since.
    started: Mutex<Vec<Undo>>,
    /// Those holds once the guard fired and released them: dropped as
    /// soon as a deadline to come ends the guard's fired state.
    void: Mutex<Vec<Undo>>,
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

/// What an executor hands the next program of its agent (a handover): its
/// books of what the guard holds for started resources, and what each
/// running resource keeps for the next program to watch it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Books {
    pub started: Vec<Undo>,
    pub void: Vec<Undo>,
    /// (set, resource index, what it keeps).
    pub kept: Vec<(String, usize, Kept)>,
}

impl Executor {
    /// An executor for `sets`. Whatever an earlier agent left in the sets'
    /// cgroups is killed first (a node holds nothing when its agent starts),
    /// then the guard holds every set's cgroup for as long as this agent runs.
    /// After a handover (`handed`), nothing is killed and nothing held again:
    /// the guard holds it all already, and the running resources are taken
    /// over with what the program before kept for them.
    pub async fn new(
        node: String,
        sets: Vec<SetRuntime>,
        guard: Arc<dyn GuardPort>,
        results: mpsc::Sender<Input>,
        events: Arc<EventLog>,
        handed: Option<Books>,
    ) -> Result<Self, String> {
        let books = match handed {
            Some(books) => {
                for (set, i, kept) in &books.kept {
                    // The live slot of that name is the last: a retired one
                    // (a changed set's old definition) comes before it.
                    match sets.iter().rev().find(|s| s.name == *set).and_then(|s| s.resources.get(*i)) {
                        Some(r) => r.adopt(Some(kept.clone())),
                        None => tracing::warn!("baton: set {set} resource {i} was handed over, but is not configured"),
                    }
                }
                books
            }
            None => {
                for set in &sets {
                    if set.cgroup.populated() {
                        tracing::warn!("baton: set {}: processes left from an earlier agent; killing them", set.name);
                    }
                    set.cgroup.kill(KILL_LIMIT).await.map_err(|e| format!("set {}: {e}", set.name))?;
                    set.cgroup.create().map_err(|e| format!("set {}: {e}", set.name))?;
                    guard.hold(vec![Undo::Cgroup { path: set.cgroup.path().to_path_buf() }]).await;
                }
                Books::default()
            }
        };
        Ok(Executor {
            node,
            previous: Mutex::new(vec![None; sets.len()]),
            sets: RwLock::new(sets.into_iter().map(Arc::new).collect()),
            guard,
            results,
            inflight: Mutex::new(BTreeMap::new()),
            events,
            started: Mutex::new(books.started),
            void: Mutex::new(books.void),
        })
    }

    /// The set slots a configuration change added: their cgroups made and
    /// held by the guard. Nothing is killed: a retired set of the same name
    /// may still be stopping in the same cgroup (the new one starts only
    /// once it has stopped). The holds are queued ahead of every later
    /// order to the guard, so ahead of any start in them.
    pub fn extend(&self, added: Vec<SetRuntime>) {
        for set in &added {
            if let Err(e) = set.cgroup.create() {
                tracing::warn!("baton: set {}: {e}", set.name);
            }
            self.guard.tell(crate::guard::Order::Hold(Undo::Cgroup { path: set.cgroup.path().to_path_buf() }));
        }
        let mut sets = self.sets.write().expect("not poisoned");
        sets.extend(added.into_iter().map(Arc::new));
        self.previous.lock().expect("not poisoned").resize(sets.len(), None);
    }

    fn rt(&self, set: SetId) -> Arc<SetRuntime> {
        Arc::clone(&self.sets.read().expect("not poisoned")[usize::from(set)])
    }

    /// The books a handover gives the next program, with what the running
    /// sets' resources keep for it.
    pub fn keep(&self, running: &[SetId]) -> Books {
        let kept = running
            .iter()
            .flat_map(|&set| {
                let rt = self.rt(set);
                let kept: Vec<_> = rt
                    .resources
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| Some((rt.name.clone(), i, r.keep()?)))
                    .collect();
                kept
            })
            .collect();
        Books {
            started: self.started.lock().expect("not poisoned").clone(),
            void: self.void.lock().expect("not poisoned").clone(),
            kept,
        }
    }

    /// The guard fired: it released everything, and the core forgot every
    /// start (no stop follows). The holds of those starts are void; they
    /// stay with the guard, which undoes them again and again while fired
    /// (a start in flight may finish late), until [`Self::drop_void`].
    pub fn guard_fired(&self) {
        let started = std::mem::take(&mut *self.started.lock().expect("not poisoned"));
        self.void.lock().expect("not poisoned").extend(started);
    }

    /// A deadline to come was told, which ends the guard's fired state:
    /// the void holds go, or the guard would undo them one day on a node
    /// that no longer runs their set (a stop command run beside the
    /// owner's set, which the soak's ownership record caught).
    pub fn drop_void(&self) {
        let void = std::mem::take(&mut *self.void.lock().expect("not poisoned"));
        self.guard.drop_all(void);
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
                    let ok = me.run_step(set, step, timeout).await;
                    Input::StepDone { set, token, ok }
                }
                Action::Monitor { set, token, resource, timeout } => {
                    let rt = me.rt(set);
                    let result = match rt.resources.get(resource) {
                        Some(r) => match tokio::time::timeout(timeout, r.monitor(timeout)).await {
                            Ok(r) => r,
                            Err(_) => Err(format!("did not answer within {timeout:?}")),
                        },
                        None => Err(UNKNOWN.into()),
                    };
                    me.events.metrics().monitor(&rt.name, result.is_ok());
                    if let Err(why) = &result {
                        tracing::warn!("baton: set {}: monitor of resource {resource} failed: {why}", rt.name);
                    }
                    Input::MonitorDone { set, token, ok: result.is_ok() }
                }
            };
            let _ = me.results.send(input).await;
        });
        let mut inflight = self.inflight.lock().expect("not poisoned");
        let tasks = inflight.entry(set).or_default();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task.abort_handle());
    }

    /// Runs one step within its limit and records how it went.
    async fn run_step(&self, set: SetId, step: Step, timeout: Duration) -> bool {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(timeout, self.run(set, step, timeout)).await;
        let took = Some(started.elapsed().as_millis() as u64);
        let what = self.describe(set, step);
        let rt = self.rt(set);
        let name = rt.name.as_str();
        let why = match result {
            Ok(Ok(())) => {
                let hookless = matches!(step, Step::Hook(_)) && rt.hooks.is_none();
                if !hookless {
                    self.events.record("step", Some(name), format!("{what}: done"), took, None);
                }
                return true;
            }
            Ok(Err(why)) => format!("{what} failed: {why}"),
            Err(_) => format!("{what} did not finish within {timeout:?}"),
        };
        tracing::warn!("baton: set {name}: {why}");
        self.events.record("failure", Some(name), why, took, None);
        false
    }

    /// "start ip 10.0.0.100/24", "hooks PreAcq*", ...
    fn describe(&self, set: SetId, step: Step) -> String {
        let rt = self.rt(set);
        let label = |i: usize| rt.labels.get(i).map_or("a resource no longer configured", String::as_str);
        match step {
            Step::Hook(kind) => format!("hooks {}*", kind.prefix()),
            Step::Start(i) => format!("start {}", label(i)),
            Step::Stop(i) => format!("stop {}", label(i)),
        }
    }

    async fn run(&self, set: SetId, step: Step, limit: Duration) -> Result<(), String> {
        let rt = self.rt(set);
        match step {
            Step::Hook(kind) => {
                let Some(dir) = &rt.hooks else { return Ok(()) };
                let ctx = rt.hook_context(&self.node);
                let previous = self.previous.lock().expect("not poisoned")[usize::from(set)].clone();
                let env = ctx.env_with(&[
                    ("BATON_EVENT".into(), kind.prefix().into()),
                    ("BATON_PREVIOUS_OWNER".into(), previous.unwrap_or_default()),
                ]);
                for hook in hooks(dir, kind)? {
                    let ran = Program::new(&[&hook]).env(&env).cgroup(Some(&ctx.cgroup)).limit(limit).run().await?;
                    for line in ran.tail().lines().filter(|l| !l.trim().is_empty()) {
                        tracing::info!("baton: {}: {line}", hook.display());
                    }
                    ran.success(&hook.display().to_string())?;
                }
                Ok(())
            }
            Step::Start(i) => {
                let r = rt.resources.get(i).ok_or(UNKNOWN)?;
                // The guard holds how to undo it before it exists.
                self.started.lock().expect("not poisoned").extend(r.undo());
                self.guard.hold(r.undo()).await;
                r.start(limit).await
            }
            // A set retired by a configuration change, after the agent
            // started again: nothing of it ran in this agent's time.
            Step::Stop(i) if i >= rt.resources.len() => Ok(()),
            Step::Stop(i) => {
                let r = &rt.resources[i];
                r.stop(limit).await?;
                let mut started = self.started.lock().expect("not poisoned");
                for u in r.undo() {
                    if let Some(at) = started.iter().position(|s| *s == u) {
                        started.swap_remove(at);
                    }
                }
                drop(started);
                self.guard.drop_all(r.undo());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard_link::Ledger;
    use baton_resources::Fake;

    /// A start the guard undid when it fired is forgotten by the core, so
    /// no stop drops its hold: the executor drops it once a deadline to
    /// come ends the fired state, and a later start and stop balance.
    #[tokio::test]
    async fn holds_of_starts_the_guard_undid_go_once_its_fired_state_ends() {
        let dir = std::env::temp_dir().join(format!("baton-exec-void-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stop = Undo::Program { argv: vec!["/bin/true".into(), "stop".into()], env: vec![] };
        let fake = Fake { undo: vec![stop.clone()], ..Fake::default() };
        let set = SetRuntime {
            name: "web".into(),
            hooks: None,
            cgroup: Cgroup(dir.join("web")),
            resources: vec![Box::new(fake)],
            labels: vec!["fake".into()],
        };
        let ledger = Arc::new(Ledger::default());
        let (tx, _rx) = mpsc::channel(8);
        let events = Arc::new(EventLog::open(&dir, "alpha"));
        let exec = Executor::new("alpha".into(), vec![set], ledger.clone(), tx, events, None).await.unwrap();
        let holds = || ledger.0.lock().unwrap().undo.get(&stop).copied().unwrap_or(0);
        let limit = Duration::from_secs(1);
        exec.run(0, Step::Start(0), limit).await.unwrap();
        assert_eq!(holds(), 1);
        exec.guard_fired();
        assert_eq!(holds(), 1, "held (and undone again) while the guard is fired");
        exec.run(0, Step::Start(0), limit).await.unwrap();
        exec.drop_void();
        assert_eq!(holds(), 1, "only the start of before the firing is void");
        exec.run(0, Step::Stop(0), limit).await.unwrap();
        assert_eq!(holds(), 0, "a stopped set leaves nothing for the guard to run");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
