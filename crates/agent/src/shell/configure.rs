//! The agreed configuration in the agent: a file proposed (`baton config
//! apply`, SIGHUP) or compared (`config diff`), and the switch every node
//! makes when a `Configure` is agreed. The core decides what a change does
//! (`baton_core::reconfigure`); here the file is read as `config check`
//! reads it, the sets' resources are built for the slots it adds, and the
//! rest of the file (notify, fencing, hooks) takes effect with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use baton_config::{Config, NodeConfig, SetConfig};
use baton_core::reconfigure::{Plan, Proposal};
use baton_core::requests::Request as CoreRequest;
use baton_core::{Failback, Input, Topology};
use baton_state::AgreedConfig;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::Agent;
use crate::api::Response;
use crate::local::Slot;

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

/// `parsed` (the agreed file) with its nodes and sets in the order of the
/// agreed slots. A node the configuration removed stands in as `known`
/// (this agent's nodes, by slot) has it. A set slot the configuration
/// retired keeps the definition `before` (the configuration this agent
/// ran) had for it, so that it can still be stopped; without one (the agent
/// started after it was retired, when nothing of it runs here) it has no
/// resources.
pub fn slotted(
    mut parsed: Config,
    agreed: &AgreedConfig,
    known: &[NodeConfig],
    before: Option<&Config>,
) -> Result<Config, String> {
    if !agreed.nodes.is_empty() {
        let mut slots = Vec::with_capacity(agreed.nodes.len());
        for (i, spec) in agreed.nodes.iter().enumerate() {
            let file = parsed.nodes.iter().find(|n| n.name == spec.name);
            let kept = known.get(i).filter(|n| n.name == spec.name);
            let node = file.or(kept).ok_or_else(|| {
                format!(
                    "the agreed configuration has node {} in slot {i}, but neither its file nor this agent has its \
                     addresses",
                    spec.name
                )
            })?;
            slots.push(Slot::of(node, spec.retired));
        }
        if let Some(n) = parsed.nodes.iter().find(|n| !agreed.nodes.iter().any(|s| s.name == n.name)) {
            return Err(format!("the agreed configuration's file has node {}, but no agreed slot holds it", n.name));
        }
        parsed = by_slot(parsed, &slots);
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

/// `config` with its nodes in the order of `slots` (the agreed node slots
/// as this node kept them), so that every index the agent uses — Raft's
/// node ids first — is the slot. A slot the file does not list stands in as
/// kept; a node the file lists that `slots` does not know (added since)
/// comes after them, in file order. Sets' preference orders and fence
/// devices follow their nodes. No slots: `config` as it is.
pub fn by_slot(mut config: Config, slots: &[Slot]) -> Config {
    if slots.is_empty() {
        return config;
    }
    let mut nodes: Vec<NodeConfig> = Vec::with_capacity(slots.len());
    let mut moved = vec![usize::MAX; config.nodes.len()];
    for slot in slots {
        match config.nodes.iter().position(|n| n.name == slot.name) {
            Some(i) => {
                moved[i] = nodes.len();
                nodes.push(config.nodes[i].clone());
            }
            None => nodes.push(slot.node()),
        }
    }
    for (i, node) in config.nodes.iter().enumerate() {
        if moved[i] == usize::MAX {
            moved[i] = nodes.len();
            nodes.push(node.clone());
        }
    }
    for set in &mut config.sets {
        set.nodes.iter_mut().for_each(|n| *n = moved[*n]);
    }
    for device in config.fencing.iter_mut().flat_map(|f| &mut f.devices) {
        device.nodes.iter_mut().for_each(|n| *n = moved[*n]);
    }
    config.nodes = nodes;
    config
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
        let next = slotted(parsed, &agreed, &self.config.nodes, Some(&self.config))?;
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
            crate::notify::start(&next.notify, &self.notifier, &self.events);
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
    /// reach a node added; once a change of nodes was agreed, the slots are
    /// kept in `local.json` (the next start numbers nodes by them) and the
    /// Raft leader follows them (`raft::membership::promote_learners`).
    pub(super) fn follow_nodes(&mut self) {
        let addrs = crate::raft::net::Peers::addresses(&self.config);
        if addrs != self.peers.addrs() {
            self.peers.set(addrs.clone());
            self.links.set_peers(addrs.clone());
        }
        let Some(agreed) = self.core.state().config.as_ref().filter(|c| !c.nodes.is_empty()) else { return };
        let slots: Vec<Slot> =
            agreed.nodes.iter().zip(&self.config.nodes).map(|(spec, node)| Slot::of(node, spec.retired)).collect();
        if slots != self.local.slots {
            self.local.slots = slots.clone();
            if let Err(e) = self.local.save(&self.state_dir) {
                tracing::warn!("baton: keeping the node slots: {e}");
            }
        }
        self.slots.send_if_modified(|kept| {
            let changed = *kept != slots;
            *kept = slots;
            changed
        });
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
