//! Carrying out the core's outputs, in order: heartbeats, proposals,
//! steps, the guard's deadline, what must be persisted first, fences,
//! probes, replies, events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_config::FenceKind;
use baton_core::{Event, Input, NodeId, Output, Time};
use baton_resources::fence;
use baton_resources::fence_disk::Disk;
use baton_state::Command;

use super::Agent;
use crate::guard::monotonic_ms;
use crate::probe::Ask;
use crate::raft::net::{self as raftnet};
use crate::raft::NodeId as RaftId;

impl Agent {
    /// One input through the core, and its outputs carried out; true once
    /// the core says the agent may exit.
    pub(super) fn step(&mut self, input: Input) -> Result<bool, String> {
        let now = self.now();
        let before: Vec<Option<NodeId>> = self.core.state().sets.iter().map(|s| s.owner).collect();
        let outputs = self.core.handle(now, input);
        // Before any output: a set slot the change added is built first.
        self.follow_config()?;
        self.note_owners(&before);
        let mut exit = false;
        // The sets to probe go out together: one listing, one question
        // per link for all of them (at 300 sets, one per set flooded the
        // segment with ARP and each probe's socket received all of it).
        let mut probes = Vec::new();
        for output in outputs {
            exit |= output == Output::Exit;
            match output {
                Output::Probe { set, owner, generation } => probes.push(Ask { set, owner, generation }),
                output => self.carry_out(output)?,
            }
        }
        self.probe(probes);
        Ok(exit)
    }

    fn probe(&self, asks: Vec<Ask>) {
        if let Some(nl) = self.netlink.as_ref().filter(|_| !asks.is_empty()) {
            self.prober.probe(nl.clone(), asks, self.inputs.tx.clone());
        }
    }

    fn carry_out(&mut self, output: Output) -> Result<(), String> {
        match output {
            Output::Send(hb) => self.links.send(&hb),
            Output::Propose(command) => self.propose(command),
            Output::Act(action) => self.exec.act(action),
            Output::Cancel { set } => self.exec.cancel(set),
            Output::Guard(deadline) => {
                // In order with every other order to the guard, without waiting.
                let ms = deadline.map(|d| (self.monotonic_ms_of(d), d));
                self.guard.deadline(ms);
                // A deadline to come ends a fired guard's repeated undoing.
                if ms.is_some_and(|(ms, _)| ms > monotonic_ms()) {
                    self.exec.drop_void();
                }
            }
            Output::Persist(p) => {
                self.local.set_persisted(&p);
                self.local.save(&self.state_dir)?;
            }
            Output::Fence { node, epoch, incarnation } => self.fence(node, epoch, incarnation),
            Output::Probe { .. } => unreachable!("`step` sends the probes of a step together"),
            Output::Reply { id, reply } => self.reply(id, reply),
            Output::Alone => self.going_alone = true,
            Output::ReadAloneRecord => super::read_alone_record(&self.config, &self.inputs.tx),
            Output::Together => self.together(),
            Output::Readmit { node } => self.readmit(node),
            Output::Exit => {}
            Output::Event(event) => {
                if event == Event::GuardFired {
                    self.exec.guard_fired();
                }
                self.log(&event)
            }
        }
        Ok(())
    }

    /// Both vote again: the fence disk's record stops naming this node (a
    /// failed write leaves it naming this node: then only this node may
    /// boot alone, which is safe, and the next `Together` tries again).
    fn together(&self) {
        let Some(disk) = self.config.alone_record().map(|p| p.to_path_buf()) else { return };
        let me = self.config.nodes[self.me].name.clone();
        tokio::task::spawn_blocking(move || {
            let cleared = Disk::open(&disk).and_then(|disk| match disk.alone()? {
                Some(holder) if holder == me => disk.set_alone(None),
                _ => Ok(()),
            });
            if let Err(e) = cleared {
                tracing::warn!("baton: clearing the fence disk's record that this node went on alone: {e}");
            }
        });
    }

    /// A core instant as CLOCK_MONOTONIC milliseconds (the guard's clock).
    fn monotonic_ms_of(&self, t: Time) -> u64 {
        let at = self.start + Duration::from_micros(t.0);
        monotonic_ms() + at.saturating_duration_since(Instant::now()).as_millis() as u64
    }

    /// Runs `node`'s fence devices, in order, until one confirms it off,
    /// and gives the core the verdict.
    fn fence(&mut self, node: NodeId, epoch: u64, incarnation: u64) {
        let name = self.config.nodes[usize::from(node)].name.clone();
        let me = self.config.nodes[self.me].name.clone();
        let devices: Vec<fence::Device> = self
            .config
            .fencing
            .iter()
            .flat_map(|f| &f.devices)
            .filter(|d| d.nodes.contains(&usize::from(node)))
            .map(|d| fence::Device {
                kind: match &d.kind {
                    FenceKind::Agent { agent, params, password_file } => fence::Kind::Agent {
                        agent: fence::resolve(agent),
                        params: params.clone(),
                        password_file: password_file.clone(),
                    },
                    FenceKind::Disk { path } => fence::Kind::Disk { path: path.clone(), from: me.clone() },
                },
                delay: d.delay,
                delay_max: d.delay_max,
                timeout: d.timeout,
            })
            .collect();
        let (events, inputs) = (Arc::clone(&self.events), self.inputs.tx.clone());
        tokio::spawn(async move {
            let mut result = Err(format!("no fence device covers {name}"));
            for device in devices {
                let started = Instant::now();
                let r = device.off(&name).await;
                let took = Some(started.elapsed().as_millis() as u64);
                events.metrics().fence(r.is_ok());
                let msg = match &r {
                    Ok(()) => format!("{name} fenced by {}: confirmed off", device.name()),
                    Err(e) => format!("fencing {name} failed: {e}"),
                };
                if r.is_ok() {
                    tracing::warn!("baton: {msg}");
                } else {
                    tracing::error!("baton: {msg}");
                }
                events.record("fence", None, msg, took, None);
                result = r;
                if result.is_ok() {
                    break;
                }
            }
            let _ = inputs.send(Input::FenceDone { node, epoch, incarnation, result }).await;
        });
    }

    /// Two-node mode: the peer, heard again, becomes a learner; once its log
    /// caught up, `promote_learners` makes it a voter.
    fn readmit(&self, node: NodeId) {
        let (raft, addr) = (self.raft.clone(), self.peers.addrs()[usize::from(node)][0]);
        tokio::spawn(async move {
            let learner = openraft::BasicNode::new(addr.to_string());
            if let Err(e) = raft.add_learner(RaftId::from(node), learner, false).await {
                tracing::warn!("baton: taking node {node} back as a learner: {e}");
            }
        });
    }

    /// Hands a command to the Raft leader (this node, or over the wire).
    pub(super) fn propose(&self, command: Command) {
        match self.leader {
            Some(l) if l == self.me as RaftId => {
                let raft = self.raft.clone();
                tokio::spawn(async move {
                    let _ = raft.client_write(command).await;
                });
            }
            Some(l) => {
                let peers = self.peers.clone();
                tokio::spawn(async move {
                    let req = raftnet::Request::Propose(command);
                    let _ = peers.call(l, &mut None, &req, Duration::from_secs(2)).await;
                });
            }
            // No leader: the core proposes again while it still wants it.
            None => {}
        }
    }
}
