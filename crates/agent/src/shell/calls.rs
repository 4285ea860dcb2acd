//! Operator calls (the Unix socket, the HTTP API): the status is read
//! here; every other request goes to the core as an input, by ids instead
//! of names, and its answer comes back as the core's reply — written into
//! the history with who asked and why.

use std::collections::BTreeMap;

use baton_core::requests::{Reply, Request as CoreRequest};
use baton_core::{Input, NodeId, SetId};
use serde_json::json;
use tokio::sync::oneshot;

use super::configure::Who;
use super::Agent;
use crate::api::{Call, Request, Response};
use crate::status;

/// A call the core has not answered yet.
pub struct Waiting {
    next: u64,
    calls: BTreeMap<u64, Asked>,
}

impl Default for Waiting {
    fn default() -> Self {
        Waiting { next: 1, calls: BTreeMap::new() }
    }
}

struct Asked {
    answer: oneshot::Sender<Response>,
    /// A configuration apply: its answer names the agreed generation.
    config: bool,
    /// For the history: what was asked ("move web beta"), by whom, why.
    what: Option<(String, Option<String>)>,
    user: Option<String>,
}

impl Agent {
    fn set_id(&self, name: &str) -> Result<SetId, Response> {
        self.core.topology().set_by_name(name).ok_or_else(|| Response::err(format!("no set named \"{name}\"")))
    }

    fn node_id(&self, name: &str) -> Result<NodeId, Response> {
        self.config
            .node_index(name)
            .map(|i| i as NodeId)
            .ok_or_else(|| Response::err(format!("no node named \"{name}\"")))
    }

    /// An operator's call: answered here (status, an unknown name), or the
    /// core's input that will answer it.
    pub(super) fn call(&mut self, (req, user, answer): Call) -> Option<Input> {
        match req {
            Request::ConfigApply { text, reason } => {
                self.prepare(text, false, answer, Who { user, reason });
                return None;
            }
            Request::ConfigDiff { text } => {
                self.prepare(text, true, answer, Who { user, reason: None });
                return None;
            }
            Request::ConfigShow => {
                let _ = answer.send(self.show());
                return None;
            }
            _ => {}
        }
        let request = match self.translate(req.clone()) {
            Ok(request) => request,
            Err(now) => {
                if let Some((what, reason)) = recorded(&req) {
                    self.record_operator(&what, reason, &now, user);
                }
                let _ = answer.send(now);
                return None;
            }
        };
        Some(self.ask_core(request, answer, recorded(&req), user))
    }

    /// The core's input for an admitted call, its answer kept for the reply.
    pub(super) fn ask_core(
        &mut self,
        request: CoreRequest,
        answer: oneshot::Sender<Response>,
        what: Option<(String, Option<String>)>,
        user: Option<String>,
    ) -> Input {
        let id = self.waiting.next;
        self.waiting.next += 1;
        let config = matches!(request, CoreRequest::Configure(_));
        self.waiting.calls.insert(id, Asked { answer, config, what, user });
        Input::Request { id, request }
    }

    /// The core's request for an API request, or (`Err`) the answer when
    /// there is nothing to ask the core: a read of the status, an unknown name.
    fn translate(&self, req: Request) -> Result<CoreRequest, Response> {
        Ok(match req {
            Request::Status => {
                let voters = self.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
                let agreement = (self.leader, &voters);
                let doc = status::document(&self.config, &self.core, agreement, &self.links.counters(), self.now());
                return Err(Response::ok(Some(doc)));
            }
            Request::AgreedState => {
                let state = serde_json::to_value(self.core.state()).expect("the state serializes");
                return Err(Response::ok(Some(state)));
            }
            Request::Events { .. } => return Err(Response::err("events are answered by the API itself")),
            Request::ConfigApply { .. } | Request::ConfigDiff { .. } | Request::ConfigShow => {
                unreachable!("answered in `call`")
            }
            Request::IsActive { set } => CoreRequest::IsActive { set: self.set_id(&set)? },
            Request::Move { set, node, .. } => {
                let to = node.map(|n| self.node_id(&n)).transpose()?;
                CoreRequest::Move { set: self.set_id(&set)?, to }
            }
            Request::Freeze { set, frozen, .. } => CoreRequest::Freeze { set: self.set_id(&set)?, frozen },
            Request::Standby { node, standby, .. } => CoreRequest::Standby { node: self.node_id(&node)?, standby },
            Request::Cleanup { set, .. } => CoreRequest::Cleanup { set: self.set_id(&set)? },
            Request::Maintenance { on, .. } => CoreRequest::Maintenance { on },
            Request::Alone { .. } => CoreRequest::Alone,
            Request::Handover { .. } => {
                super::handover::check(&self.exe, &self.config.file).map_err(Response::err)?;
                CoreRequest::Handover
            }
            Request::Lock { name, wait_ms } => {
                CoreRequest::Lock { name, wait: std::time::Duration::from_millis(wait_ms) }
            }
            Request::LockState { name } => CoreRequest::LockState { name },
            Request::Unlock { name, token } => CoreRequest::Unlock { name, token },
        })
    }

    /// The core answered call `id`.
    pub(super) fn reply(&mut self, id: u64, reply: Reply) {
        let Some(asked) = self.waiting.calls.remove(&id) else { return };
        let name = |n: NodeId| self.config.nodes[usize::from(n)].name.clone();
        let response = match reply {
            Reply::Done if asked.config => {
                Response::ok(Some(json!({ "generation": self.core.state().config_generation() })))
            }
            Reply::Done => Response::ok(None),
            Reply::Moved { to } => Response::ok(Some(json!({ "target": name(to) }))),
            Reply::Locked { token, valid_for } => {
                Response::ok(Some(json!({ "token": token, "valid_ms": valid_for.as_millis() as u64 })))
            }
            Reply::LockState { holder, token, valid, valid_for } => Response::ok(Some(json!({
                "holder": holder.map(name),
                "token": token,
                "valid": valid,
                "valid_ms": valid_for.as_millis() as u64,
            }))),
            Reply::Active(active) => Response::ok(Some(json!({ "active": active }))),
            Reply::HandedOver(h) => {
                let running: Vec<&str> =
                    h.running.iter().map(|&(s, _)| self.config.sets[usize::from(s)].name.as_str()).collect();
                let answer = json!({ "pid": std::process::id(), "exe": self.exe, "running": running });
                self.handing_over = Some(h);
                Response::ok(Some(answer))
            }
            Reply::Refused(why) => Response::err(why.describe(self.core.topology())),
            Reply::Failed(why) => Response::err(why),
        };
        if let Some((what, reason)) = asked.what {
            self.record_operator(&what, reason, &response, asked.user);
        }
        let _ = asked.answer.send(response);
    }

    /// An operator's command in the history: who, what, why, and how it went.
    pub(super) fn record_operator(
        &self,
        what: &str,
        reason: Option<String>,
        response: &Response,
        user: Option<String>,
    ) {
        let outcome = match &response.error {
            None => "done".to_string(),
            Some(e) => format!("refused: {e}"),
        };
        let why = reason.map(|r| format!(" because \"{r}\"")).unwrap_or_default();
        self.events.record("operator", None, format!("{what}{why}: {outcome}"), None, user);
    }
}

/// What the history says of an operator's request, and its reason; `None`
/// for reads and for `baton lock`'s own traffic.
fn recorded(req: &Request) -> Option<(String, Option<String>)> {
    let (what, reason) = match req {
        Request::Move { set, node, reason } => (format!("move {set} {}", node.as_deref().unwrap_or("(next)")), reason),
        Request::Freeze { set, frozen, reason } => {
            (format!("{} {set}", if *frozen { "freeze" } else { "unfreeze" }), reason)
        }
        Request::Standby { node, standby, reason } => {
            (format!("{} {node}", if *standby { "standby" } else { "online" }), reason)
        }
        Request::Cleanup { set, reason } => (format!("cleanup {set}"), reason),
        Request::Maintenance { on, reason } => (format!("maintenance {}", if *on { "on" } else { "off" }), reason),
        Request::Alone { reason } => ("alone (the peer is off, on the operator's word)".to_string(), reason),
        Request::Handover { reason } => {
            ("handover (the agent's program replaced, the sets left running)".into(), reason)
        }
        _ => return None,
    };
    Some((what, reason.clone()))
}
