//! The agreed configuration in the agent: a file proposed (`baton config
//! apply`, SIGHUP) or compared (`config diff`), and the switch every node
//! makes when a `Configure` is agreed. The core decides what a change does
//! (`baton_core::reconfigure`); here the file is read as `config check`
//! reads it, the sets' resources are built for the slots it adds, and the
//! rest of the file (notify, fencing, hooks) takes effect with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use baton_config::{Config, SetConfig};
use baton_core::reconfigure::{Plan, Proposal};
use baton_core::requests::Request as CoreRequest;
use baton_core::{Failback, Input, Topology};
use baton_state::AgreedConfig;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::Agent;
use crate::api::Response;

/// The agreed configuration file in the state directory, written at each
/// switch (for the operator: the agent runs what the agreed state holds).
pub const AGREED_FILE: &str = "cluster.agreed.toml";

/// A file made into a proposal, off the agent's loop (OCF agents are
/// asked for their advice), and what to do with it.
pub struct Prepared {
    pub proposal: Result<(Config, Proposal), String>,
    /// Only compare (`config diff`): nothing is proposed.
    pub dry: bool,
    pub answer: oneshot::Sender<Response>,
    pub user: Option<String>,
    pub reason: Option<String>,
}

/// The core's topology of `config`, as this agent builds its own: without
/// probes where there is no netlink, with the OCF agents' advised timeouts.
pub async fn topology(config: &Config, probes: bool) -> Topology {
    let mut topology = config.topology();
    if !probes {
        topology.timing.probe_interval = None;
    }
    crate::preflight::apply(config, &mut topology).await;
    topology
}

/// `text`, read as if it were the file at `file`, made into a proposal
/// (with the configuration it is).
async fn proposal(file: &Path, text: String, probes: bool) -> Result<(Config, Proposal), String> {
    let config = baton_config::parse_str(file, &text).map_err(|e| e.to_string())?;
    let topology = topology(&config, probes).await;
    Ok((config, Proposal { digest: baton_config::digest(text.as_bytes()), text, topology }))
}

/// What a change from `old` to `new` changes that takes effect only when
/// each agent starts again (or, for the secrets, at each node's SIGHUP):
/// the keys, by name. Sets, notifiers, fence agents and `failure_timeout`
/// follow an agreed change at once (the lease and heartbeat interval too:
/// the core switches them); nodes and links are refused by the core's
/// plan. Raft's election timers follow the lease an agent starts with.
pub fn later(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (&old.cluster, &new.cluster);
    let disks = |c: &Config| -> Vec<_> {
        c.fencing
            .iter()
            .flat_map(|f| &f.devices)
            .filter(|d| matches!(d.kind, baton_config::FenceKind::Disk { .. }))
            .cloned()
            .collect()
    };
    [
        ("cluster.name", o.name != n.name),
        ("cluster.port", o.port != n.port),
        ("cluster.state_dir", o.state_dir != n.state_dir),
        ("cluster.watchdog", o.watchdog != n.watchdog || o.watchdog_timeout != n.watchdog_timeout),
        ("cluster.realtime", o.realtime != n.realtime),
        ("Raft's election timers (from cluster.lease)", old.timing().raft_timers_ms() != new.timing().raft_timers_ms()),
        (
            "cluster.secret_file (at each node's SIGHUP)",
            o.secret_file != n.secret_file || o.accept_secret_files != n.accept_secret_files,
        ),
        ("fencing.mode", old.fencing.as_ref().map(|f| f.mode) != new.fencing.as_ref().map(|f| f.mode)),
        ("a fence disk", disks(old) != disks(new)),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// `parsed` (the agreed file) with its sets in the order of the agreed
/// slots. A slot the configuration retired keeps the definition `before`
/// (the configuration this agent ran) had for it, so that it can still be
/// stopped; without one (the agent started after it was retired, when
/// nothing of it runs here) it has no resources.
pub fn slotted(mut parsed: Config, agreed: &AgreedConfig, before: Option<&Config>) -> Result<Config, String> {
    // Node slots are the file's order while nodes are only added at its end
    // (ARCHITECTURE.md, "Nodes added and removed": the rest is not built).
    if !agreed.nodes.is_empty() {
        let slots: Vec<&str> = agreed.nodes.iter().map(|n| n.name.as_str()).collect();
        let names: Vec<&str> = parsed.nodes.iter().map(|n| n.name.as_str()).collect();
        if agreed.nodes.iter().any(|n| n.retired) || names != slots {
            return Err(format!(
                "the agreed configuration's nodes are {} by slot, its file lists {}: this agent follows nodes only \
                 when they are added at the end of the file (removing one live is not built yet)",
                slots.join(", "),
                names.join(", ")
            ));
        }
    }
    let slots = &agreed.sets;
    let mut by_name: BTreeMap<String, SetConfig> = parsed.sets.drain(..).map(|s| (s.name.clone(), s)).collect();
    let mut sets = Vec::with_capacity(slots.len());
    for (i, spec) in slots.iter().enumerate() {
        sets.push(if spec.nodes.is_empty() {
            let old = before.and_then(|b| b.sets.get(i)).filter(|s| s.name == spec.name).cloned();
            SetConfig { nodes: Vec::new(), ..old.unwrap_or_else(|| retired(&spec.name)) }
        } else {
            by_name.remove(&spec.name).ok_or_else(|| {
                format!("the agreed configuration places set {} (slot {i}), but its file has no such set", spec.name)
            })?
        });
    }
    if let Some(name) = by_name.keys().next() {
        return Err(format!("the agreed configuration's file has set {name}, but no agreed slot holds it"));
    }
    parsed.sets = sets;
    Ok(parsed)
}

/// A retired set this agent never ran.
fn retired(name: &str) -> SetConfig {
    SetConfig {
        name: name.to_string(),
        nodes: Vec::new(),
        failback: Failback::Never,
        max_restarts: 0,
        restart_window: std::time::Duration::ZERO,
        failure_timeout: None,
        hooks: None,
        resources: Vec::new(),
    }
}

/// The plan as JSON, with node names.
fn plan_json(plan: &Plan, topo: &Topology) -> Value {
    let sets: Vec<Value> = plan
        .changes
        .iter()
        .map(|c| {
            json!({
                "set": c.name,
                "change": c.change.to_string(),
                "runs_on": c.owner.map(|n| topo.node_name(n).to_string()),
                "why": c.why,
            })
        })
        .collect();
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let (now, then) = (&topo.timing, &plan.timing);
    json!({
        "generation": plan.generation,
        "sets": sets,
        "nodes": plan.node_changes,
        "guard_budget_ms": { "now": ms(now.guard_margin), "then": ms(plan.guard_margin) },
        "heartbeat_interval_ms": { "now": ms(now.heartbeat_interval), "then": ms(then.heartbeat_interval) },
        "lease_ms": { "now": ms(now.lease), "then": ms(then.lease) },
    })
}

impl Agent {
    /// `config apply` / `config diff` with this text: read and made into a
    /// proposal off the loop, then handed back as [`Prepared`].
    pub(super) fn prepare(&self, text: String, dry: bool, answer: oneshot::Sender<Response>, who: Who) {
        let (file, probes, tx) = (self.config.file.clone(), self.netlink.is_some(), self.prepared_tx.clone());
        tokio::spawn(async move {
            let proposal = proposal(&file, text, probes).await;
            let _ = tx.send(Prepared { proposal, dry, answer, user: who.user, reason: who.reason }).await;
        });
    }

    /// A prepared file: compared and answered, or proposed to the core.
    pub(super) fn prepared(&mut self, p: Prepared) -> Option<Input> {
        let what = "config apply".to_string();
        let (config, proposal) = match p.proposal {
            Ok(prepared) => prepared,
            Err(e) => {
                let response = Response::err(format!("refused, nothing changed:\n{e}"));
                if !p.dry {
                    self.record_operator(&what, p.reason, &response, p.user);
                }
                let _ = p.answer.send(response);
                return None;
            }
        };
        if p.dry {
            let agreed = self.core.state().config.as_ref().is_some_and(|c| c.digest == proposal.digest);
            let response = match self.core.plan(&proposal.topology) {
                Ok(plan) => {
                    let mut doc = plan_json(&plan, self.core.topology());
                    doc["digest"] = json!(proposal.digest);
                    doc["agreed"] = json!(agreed);
                    doc["at_next_start"] = json!(later(&self.started, &config));
                    Response::ok(Some(doc))
                }
                Err(why) => Response::err(why),
            };
            let _ = p.answer.send(response);
            return None;
        }
        // A node added at the end of the file is followed live; the rest of
        // a change of nodes is not built in the agent yet.
        let plan = self.core.plan(&proposal.topology).ok();
        let appended = plan.as_ref().and_then(|p| p.nodes.as_ref()).is_some_and(|slots| {
            let names = config.nodes.iter().map(|n| n.name.as_str());
            slots.iter().all(|n| !n.retired) && slots.iter().map(|n| n.name.as_str()).eq(names)
        });
        if let Some(plan) = plan.filter(|p| !p.node_changes.is_empty() && !appended) {
            let response = Response::err(format!(
                "refused, nothing changed: {}: the core decides and the simulator checks a change of nodes, but this \
                 agent follows only a node added at the end of the file (removing one, or nodes in another order, \
                 is not built yet); apply it by restarting every agent with the new file",
                plan.node_changes.join(", ")
            ));
            self.record_operator(&what, p.reason, &response, p.user);
            let _ = p.answer.send(response);
            return None;
        }
        let what = format!("config apply {}", proposal.digest);
        Some(self.ask_core(CoreRequest::Configure(Box::new(proposal)), p.answer, Some((what, p.reason)), p.user))
    }

    /// `config show`: the agreed configuration, or why there is none.
    pub(super) fn show(&self) -> Response {
        let file = std::fs::read(&self.config.file).ok().map(|b| baton_config::digest(&b));
        match &self.core.state().config {
            Some(c) => Response::ok(Some(json!({
                "generation": c.generation,
                "digest": c.digest,
                "text": c.text,
                "file": self.config.file,
                "file_digest": file,
                "drift": file.as_deref() != Some(c.digest.as_str()),
                "stored": self.state_dir.join(AGREED_FILE),
            }))),
            None => Response::ok(Some(json!({
                "generation": 0,
                "digest": null,
                "text": null,
                "file": self.config.file,
                "file_digest": file,
                "drift": self.core.state().config_drift(),
            }))),
        }
    }

    /// The HTTP API on `config`'s address with its token, read again;
    /// what could not be done is a warning in the log and the history.
    pub(super) fn follow_http(&mut self, config: &Config) {
        let (addr, token_file) = (config.cluster.http, config.cluster.http_token_file.as_deref());
        for problem in self.http.follow(addr, token_file) {
            tracing::warn!("baton: warning: {problem}");
            self.events.record("agent", None, format!("warning: {problem}"), None, None);
        }
    }

    /// After the core applied an input: if the agreed configuration
    /// changed, this agent runs it from now on — the sets' resources are
    /// built for the slots it added, notifiers and probes follow, and the
    /// file is kept in the state directory. An agreed file this agent
    /// cannot run is an error: it exits, and its guard releases everything.
    pub(super) fn follow_config(&mut self) -> Result<(), String> {
        let Some(agreed) = self.core.state().config.clone() else { return Ok(()) };
        if agreed.generation == self.generation {
            return Ok(());
        }
        let parsed = baton_config::parse_str(&self.config.file, &agreed.text).map_err(|e| {
            format!("the agreed configuration (generation {}) is not one this agent can run: {e}", agreed.generation)
        })?;
        let next = slotted(parsed, &agreed, Some(&self.config))?;
        let old = self.config.sets.len();
        // The sets this agent built must be the ones the agreed slots name:
        // a node that ran another file (drift, before any configuration was
        // agreed) may have a slot for another set, or the same set defined
        // otherwise. It must not run them under the agreed names: it exits,
        // its guard releases everything, and it starts again from the
        // agreed file.
        let built = self.config.topology().sets;
        for (i, (mine, spec)) in built.iter().zip(&agreed.sets).enumerate() {
            let live = !mine.nodes.is_empty() && !spec.nodes.is_empty();
            if live && (mine.name != spec.name || mine.definition != spec.definition) {
                return Err(format!(
                    "the agreed configuration (generation {}) puts set {} in slot {i}, where this node's own file \
                     had {} defined otherwise: restarting from the agreed file",
                    agreed.generation, spec.name, mine.name
                ));
            }
        }
        self.exec.extend(next.sets[old..].iter().map(|s| (self.build)(s)).collect());
        self.assigned_at.resize(next.sets.len(), None);
        self.prober = crate::probe::Prober::new(&next, self.me as baton_core::NodeId);
        if next.notify != self.config.notify {
            crate::notify::start(&next.notify, &self.events);
        }
        self.follow_http(&next);
        let stored = self.state_dir.join(AGREED_FILE);
        let temp = stored.with_extension("tmp");
        if let Err(e) = std::fs::write(&temp, &agreed.text).and_then(|()| std::fs::rename(&temp, &stored)) {
            tracing::warn!("baton: writing {}: {e}", stored.display());
        }
        let (added, retired): (Vec<&str>, Vec<&str>) = (
            agreed.sets[old..].iter().map(|s| s.name.as_str()).collect(),
            (0..old)
                .filter(|&i| next.sets[i].nodes.is_empty() && !self.config.sets[i].nodes.is_empty())
                .map(|i| next.sets[i].name.as_str())
                .collect(),
        );
        let list = |v: &[&str]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        let waits = later(&self.started, &next);
        let msg = format!(
            "configuration generation {} ({}) runs here: sets started afresh: {}; stopped: {}{}",
            agreed.generation,
            agreed.digest,
            list(&added),
            list(&retired),
            if waits.is_empty() { String::new() } else { format!("; at the agent's next start: {}", waits.join(", ")) }
        );
        tracing::info!("baton: {msg}");
        self.events.record("config", None, msg, None, None);
        self.generation = agreed.generation;
        self.config = Arc::new(next);
        self.follow_nodes();
        Ok(())
    }

    /// The peers follow the agreed nodes: heartbeats and Raft's transport
    /// reach a node added, and the Raft leader takes it in as a learner
    /// (`raft::membership::promote_learners`) once a change of nodes was
    /// agreed.
    pub(super) fn follow_nodes(&mut self) {
        let addrs = crate::raft::net::Peers::addresses(&self.config);
        if addrs != self.peers.addrs() {
            self.peers.set(addrs.clone());
            self.links.set_peers(addrs.clone());
        }
        if self.core.state().config.as_ref().is_some_and(|c| !c.nodes.is_empty()) {
            let members = addrs.iter().enumerate().filter_map(|(i, a)| Some((i as u64, a.first()?.to_string())));
            let members: Vec<(u64, String)> = members.collect();
            self.members.send_if_modified(|m| {
                let changed = *m != members;
                *m = members;
                changed
            });
        }
    }
}

/// Who asked for a configuration change, for the history.
pub struct Who {
    pub user: Option<String>,
    pub reason: Option<String>,
}

/// The channel prepared files come back on.
pub fn channel() -> (mpsc::Sender<Prepared>, mpsc::Receiver<Prepared>) {
    mpsc::channel(4)
}
