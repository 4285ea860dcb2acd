//! What the agent tells: a log line for every event of the core, and the
//! event history (and through it the notifiers and metrics) for those that
//! belong there.

use baton_core::{Event, NodeId, SetId, Time};
use baton_state::Command;

use super::Agent;
use crate::raft::NodeId as RaftId;

impl Agent {
    /// Remembers who owned each set before it changed hands (the hooks'
    /// BATON_PREVIOUS_OWNER) and when a set was given to this node (for the
    /// takeover metric). The target of a direct move may start the set
    /// before it owns it: for it, the set is given with the `Move`, by its
    /// owner.
    pub(super) fn note_owners(&mut self, before: &[Option<NodeId>]) {
        let now = self.now();
        let mut previous = self.exec.previous.lock().expect("not poisoned");
        let me = Some(self.me as NodeId);
        let name = |n: NodeId| self.config.nodes[usize::from(n)].name.clone();
        for (s, rec) in self.core.state().sets.iter().enumerate() {
            let was = before.get(s).copied().flatten();
            // Given since (until `Started` takes it), while it is this node's.
            let handed = rec.direct_target() == me;
            let running = self.core.lifecycle(s as SetId).phase() == baton_core::lifecycle::Phase::Running;
            if rec.owner != me && !handed {
                self.assigned_at[s] = None;
            } else if (was != me || handed) && !running && self.assigned_at[s].is_none() {
                self.assigned_at[s] = Some(now);
            }
            if handed {
                previous[s] = rec.owner.map(name);
            } else if let Some(old) = was.filter(|&o| Some(o) != rec.owner) {
                previous[s] = Some(name(old));
            }
        }
    }

    pub(super) fn log(&mut self, event: &Event) {
        let name = |n: NodeId| self.config.nodes[usize::from(n)].name.as_str();
        let set = |s: SetId| self.config.sets[usize::from(s)].name.as_str();
        let line = match event {
            Event::Detector(c) => format!("{c:?}"),
            Event::Set { set: s, report } => format!("set {}: {report:?}", set(*s)),
            Event::Applied { command, result: Ok(_) } => format!("agreed: {}", brief(command)),
            Event::Applied { command, result: Err(why) } => format!("agreed but void: {}: {why}", brief(command)),
            Event::LeaseLost => "lease lost: releasing every set".into(),
            Event::LeaseHeld => "lease held".into(),
            Event::GuardFired => "the guard killed everything this node ran".into(),
            Event::Unfenceable { node } => format!("{} needs fencing but no fence device covers it", name(*node)),
            Event::FenceFailed { node, why } => format!("fencing {}: {why}", name(*node)),
        };
        tracing::info!("baton[{}]: {line}", name(self.me as NodeId));
        let now = self.now();
        let since = |t: Time| now.0.saturating_sub(t.0) as f64 / 1e6;
        match event {
            Event::Detector(baton_core::detector::Change::NodeDown { last_heard, .. }) => {
                self.events.metrics().detection(since(*last_heard));
            }
            Event::Set { set: s, report: baton_core::lifecycle::Report::Started } => {
                if let Some(t) = self.assigned_at[usize::from(*s)].take() {
                    self.events.metrics().takeover(since(t));
                }
            }
            Event::LeaseHeld | Event::LeaseLost => self.events.metrics().lease(matches!(event, Event::LeaseHeld)),
            _ => {}
        }
        if let Some((kind, s, message)) = self.history_of(event) {
            self.events.record(kind, s.map(set), message, None, None);
        }
    }

    /// What an event means for the history, if it belongs there. Agreed
    /// decisions are recorded by the leader only, so that the merged history
    /// of all nodes has each once.
    fn history_of(&self, event: &Event) -> Option<(&'static str, Option<SetId>, String)> {
        use baton_core::detector::Change;
        use baton_core::lifecycle::Report;
        let name = |n: NodeId| self.config.nodes[usize::from(n)].name.clone();
        Some(match event {
            Event::Detector(Change::NodeDown { peer, .. }) => {
                ("detection", None, format!("{} silent on every link for the lease", name(*peer)))
            }
            Event::Detector(Change::NodeUp { peer }) => ("detection", None, format!("{} heard again", name(*peer))),
            Event::Detector(Change::LinkDown { peer, link, .. }) => {
                ("link", None, format!("link {link} to {} down (no heartbeat for the lease)", name(*peer)))
            }
            Event::Detector(Change::LinkUp { peer, link }) => {
                ("link", None, format!("link {link} to {} up", name(*peer)))
            }
            Event::Set { set, report } => match report {
                Report::Started => ("takeover", Some(*set), "running here: every start step done".into()),
                Report::Stopped(why) => ("release", Some(*set), format!("stopped here ({why:?})")),
                Report::StartAborted(e) => {
                    ("failure", Some(*set), format!("start abandoned here ({e:?}); stopped cleanly"))
                }
                Report::StopFailed => {
                    ("failure", Some(*set), "a stop failed: blocked until this node is fenced".into())
                }
                Report::MonitorFailed { resource, timed_out } => {
                    let how = if *timed_out { "timed out" } else { "failed" };
                    ("failure", Some(*set), format!("monitor of resource {resource} {how}"))
                }
                Report::StepFailed { .. } => return None,
            },
            Event::Applied { command: Command::Duplicate { set, strangers, .. }, result: Ok(_) }
                if self.leader == Some(self.me as RaftId) =>
            {
                let who: Vec<String> = strangers
                    .iter()
                    .map(|s| {
                        let mac = s.mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
                        s.node.map_or(mac.clone(), |n| format!("{} ({mac})", name(n)))
                    })
                    .collect();
                let owner = self.core.state().set(*set).owner.map_or("nobody".into(), name);
                let msg = format!("its address answers from {} besides its owner {owner}", who.join(", "));
                ("duplicate", Some(*set), msg)
            }
            Event::Applied { command, result } if self.leader == Some(self.me as RaftId) => {
                let void = result.as_ref().err().map(|why| format!(" — void: {why}")).unwrap_or_default();
                let (set, what) = match command {
                    Command::Assign { set, node, .. } => (
                        Some(*set),
                        format!("assigned to {} (first eligible node in its preference order)", name(*node)),
                    ),
                    Command::Move { set, from, to, .. } => (
                        Some(*set),
                        format!("{} asked to hand over to {}", name(*from), to.map_or("nobody".into(), name)),
                    ),
                    Command::Released { set, node, .. } => (Some(*set), format!("released by {}", name(*node))),
                    Command::Started { set, node, .. } => (Some(*set), format!("runs on {}", name(*node))),
                    Command::StartFailed { set, node, exclusion, .. } => {
                        (Some(*set), format!("failed on {} ({exclusion:?}): {} excluded", name(*node), name(*node)))
                    }
                    Command::StopFailed { set, node, .. } => {
                        (Some(*set), format!("stop failed on {}: blocked", name(*node)))
                    }
                    Command::Suspect { voter, node, .. } => {
                        let evicted = matches!(result, Ok(baton_state::Applied::Evicted(_)));
                        let tail = if evicted { ": a majority agrees, evicted and its sets freed" } else { "" };
                        (None, format!("{} suspects {}{tail}", name(*voter), name(*node)))
                    }
                    Command::Unsuspect { voter, node, .. } => {
                        (None, format!("{} hears {} again", name(*voter), name(*node)))
                    }
                    Command::Fenced { node, .. } => (None, format!("{} fenced: evicted at once", name(*node))),
                    Command::Join { node, incarnation, .. } => {
                        (None, format!("{} joined (agent incarnation {incarnation})", name(*node)))
                    }
                    Command::Freeze { set, frozen } => (Some(*set), if *frozen { "frozen" } else { "unfrozen" }.into()),
                    Command::Standby { node, standby } => {
                        (None, format!("{} {}", name(*node), if *standby { "in standby" } else { "online again" }))
                    }
                    Command::Leave { node } => (None, format!("{} in standby: its agent is stopping", name(*node))),
                    Command::Back { node } => (None, format!("{} back: its agent runs again", name(*node))),
                    Command::Pin { set, node } => {
                        (Some(*set), format!("pinned to {}", node.map_or("nobody".into(), name)))
                    }
                    Command::Clear { set } => (Some(*set), "exclusions cleared".into()),
                    Command::Config { node, digest } => {
                        let drift = if self.core.state().config_drift() {
                            "; the nodes run configuration files that differ (configuration drift)"
                        } else {
                            ""
                        };
                        (None, format!("{} runs the configuration file {digest}{drift}", name(*node)))
                    }
                    Command::Expire { set, node, .. } => {
                        (Some(*set), format!("{}'s exclusion lapsed (failure_timeout)", name(*node)))
                    }
                    Command::Maintenance { on: true } => {
                        (None, "maintenance mode on: nothing is started, stopped or recovered".into())
                    }
                    Command::Maintenance { on: false } => (None, "maintenance mode off".into()),
                    Command::Lock { name: lock, node, .. } => {
                        let token = self.core.state().locks.get(lock).map_or(0, |l| l.token);
                        (None, format!("lock {lock} given to {} (fencing token {token})", name(*node)))
                    }
                    Command::Unlock { name: lock, node, token } => {
                        (None, format!("lock {lock} (token {token}) given back by {}", name(*node)))
                    }
                    // Accepted ones are above; a stale sighting is not news.
                    Command::Alone { node } => {
                        (None, format!("{} goes on alone: its peer was fenced, it is the only voter", name(*node)))
                    }
                    Command::Together => (None, "both nodes vote again".into()),
                    Command::Configure { generation, digest, sets, nodes, .. } => {
                        let live = sets.iter().filter(|s| !s.nodes.is_empty()).count();
                        let voters = nodes.as_ref().map_or(String::new(), |ns| {
                            format!(", {} voting nodes", ns.iter().filter(|n| !n.retired).count())
                        });
                        (
                            None,
                            format!("configuration {digest} agreed as generation {generation} ({live} sets{voters})"),
                        )
                    }
                    Command::Members { node, generation, .. } => {
                        (None, format!("{} counts its lease by the nodes of generation {generation}", name(*node)))
                    }
                    Command::Duplicate { .. } => return None,
                };
                ("agreed", set, format!("{what}{void}"))
            }
            Event::Applied { .. } => return None,
            Event::LeaseLost => ("lease", None, "lease lost: releasing every set, addresses first".into()),
            Event::LeaseHeld => ("lease", None, "lease held".into()),
            Event::GuardFired => ("guard", None, "the guard killed everything this node ran".into()),
            Event::Unfenceable { node } => (
                "fence",
                None,
                format!(
                    "{} needs fencing (a stop failed there) but no fence device covers it: its set stays blocked",
                    name(*node)
                ),
            ),
            // The fence runner records each device's failure as it happens.
            Event::FenceFailed { .. } => return None,
        })
    }
}

/// A command for the log: a configuration by its generation and digest,
/// not its whole text.
fn brief(command: &Command) -> String {
    match command {
        Command::Configure { generation, digest, .. } => {
            format!("Configure {{ generation: {generation}, digest: {digest} }}")
        }
        other => format!("{other:?}"),
    }
}
