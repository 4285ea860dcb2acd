//! `baton lab demo`: three nodes, the set `web` (an address and a tiny web
//! server), a client asking every 10 ms; the owner's agent is killed with
//! SIGKILL and its links are cut; the timeline shows what the client saw.
//! The same trial, repeated, is the crash-failover row of `lab bench`.

use std::time::Duration;

use baton_agent::guard::monotonic_ms;

use super::net::{Lab, VIP};
use super::web::Probe;
use super::{node_status, wait_until, UpArgs};

pub fn run(args: &UpArgs) -> Result<(), String> {
    println!("baton lab demo: {} nodes, {} links, set web = {VIP}/24 + a web server", args.nodes, args.links);
    let mut lab = Lab::up(args)?;
    let result = trial(&mut lab, Disruption::Crash).map(|t| {
        if lab.machine_lab() {
            println!("powered off {}'s machine (every process killed, links cut)", t.first);
        } else {
            println!("killed the agent of {} (SIGKILL) and cut its links", t.first);
        }
        println!("\ntimeline (client in its own namespace, GET http://{VIP}/ every 10 ms):");
        for line in &t.timeline {
            println!("  {line}");
        }
        println!("\noutage seen by the client: {} ms ({} failed requests)", t.outage_ms, t.failed);
    });
    let down = Lab::down(&lab.dir);
    result.and(down)
}

/// What a trial does to the owner.
#[derive(Clone, Copy, Debug)]
pub enum Disruption {
    /// Its daemon SIGKILLed and its links cut; a machine powered off.
    Crash,
    /// A planned move: `baton move web`, or keepalived's priority lowered.
    Move,
}

impl Disruption {
    /// Does it to `owner`; says what was done, for the timeline.
    fn apply(self, lab: &Lab, owner: &str) -> Result<String, String> {
        match self {
            Disruption::Crash if lab.machine_lab() => {
                lab.power_off(owner)?;
                Ok(format!("{owner}'s machine powered off"))
            }
            Disruption::Crash => {
                lab.kill(owner)?;
                lab.cut(owner, None)?;
                Ok(format!("{owner}'s agent killed, links cut"))
            }
            Disruption::Move => lab.planned_move(owner),
        }
    }
}

/// What one trial measured.
pub struct Trial {
    pub first: String,
    pub next: String,
    /// From the last answer of the old owner to the first of the new one.
    pub outage_ms: u64,
    pub failed: usize,
    pub timeline: Vec<String>,
}

fn owner(lab: &Lab) -> Option<String> {
    if lab.keepalived.is_some() || lab.pacemaker.is_some() || lab.ucarp.is_some() || lab.vip_manager.is_some() {
        return lab.vip_holder();
    }
    lab.nodes.iter().find_map(|n| {
        let doc = node_status(&lab.dir, n).ok()?;
        let set = &doc["sets"][0];
        (set["state"] == "running").then(|| set["owner"].as_str().map(str::to_string)).flatten()
    })
}

/// On a lab that is up: probe, disrupt the owner, wait until the client is
/// answered by another node.
pub fn trial(lab: &mut Lab, how: Disruption) -> Result<Trial, String> {
    lab.wait_running(Duration::from_secs(30))?;
    // The address may still be settling (VRRP elections): ask until it is.
    let mut first = None;
    wait_until(Duration::from_secs(10), || {
        first = owner(lab);
        first.is_some()
    });
    let first = first.ok_or("web runs nowhere")?;
    let probe = Probe::start(lab, 10, 600)?;
    std::thread::sleep(Duration::from_secs(2));
    let disrupted_at = monotonic_ms();
    let done = how.apply(lab, &first);
    let answered = |s: &[(u64, String)]| s.iter().any(|(t, w)| *t > disrupted_at && w != "-" && *w != first);
    let limit = lab.takeover_limit();
    let moved = done.is_ok() && wait_until(limit, || answered(&probe.samples.lock().expect("not poisoned")));
    std::thread::sleep(Duration::from_millis(500));
    let samples = probe.stop();
    let what = done?;
    if !moved {
        return Err(format!(
            "the client got no answer from another node within {} s; logs in {}",
            limit.as_secs(),
            lab.dir.display()
        ));
    }
    let Some(&(t0, _)) = samples.first() else { return Err("the probe recorded nothing".into()) };
    let mut marks = Vec::new();
    if let Some((t, who)) = samples.iter().find(|(_, w)| w != "-") {
        marks.push((*t, format!("first answer, from {who}")));
    }
    let first_new = samples.iter().find(|(t, w)| *t > disrupted_at && w != "-" && *w != first).cloned();
    let until = first_new.as_ref().map_or(u64::MAX, |(t, _)| *t);
    let last_old = samples.iter().rfind(|(t, w)| *w == first && *t < until).cloned();
    if let Some((t, _)) = &last_old {
        marks.push((*t, format!("last answer from {first}")));
    }
    marks.push((disrupted_at, what));
    let (Some((a, _)), Some((b, next))) = (last_old, first_new) else {
        return Err("the client never got an answer from the new owner".into());
    };
    marks.push((b, format!("first answer from {next}")));
    marks.sort_by_key(|(t, _)| *t);
    let timeline =
        marks.into_iter().map(|(t, m)| format!("{:>7.3}s  {m}", t.saturating_sub(t0) as f64 / 1000.0)).collect();
    let failed = samples.iter().filter(|(t, w)| *t > a && *t < b && w == "-").count();
    Ok(Trial { first, next, outage_ms: b - a, failed, timeline })
}
