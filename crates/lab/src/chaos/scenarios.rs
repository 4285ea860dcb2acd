//! The scenarios. Each starts from a settled lab (every agent up, `web`
//! running on one node), does its damage, checks what must hold while the
//! damage lasts, and undoes it; the driver then waits for the lab to settle.

use std::process::Command;
use std::time::Duration;

use baton_sim::rng::Rng;
use clap::ValueEnum;

use super::super::bench::quiet::{loss_rules, nft, LOSS_TABLE};
use super::super::net::{Lab, VIP};
use super::super::{node_status, wait_until};
use crate::disk::StateDisk;
use crate::ownership::{held_by, Parts};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Every agent SIGKILLed (guards clean up), then all started at once.
    #[value(name = "SimulStart")]
    SimulStart,
    /// Every agent sent SIGTERM at once: all exit, nothing left behind.
    #[value(name = "SimulStop")]
    SimulStop,
    /// Agents stopped one by one: the set runs while a majority is left, nowhere after.
    #[value(name = "StopOnebyOne")]
    StopOnebyOne,
    /// Agents restarted one by one: the set runs after each.
    #[value(name = "RestartOnebyOne")]
    RestartOnebyOne,
    /// The owner put in standby, then online again.
    #[value(name = "Standby")]
    Standby,
    /// Maintenance mode: a killed service is not recovered until it ends.
    #[value(name = "MaintenanceMode")]
    MaintenanceMode,
    /// The service killed on its node: recovered.
    #[value(name = "ResourceRecover")]
    ResourceRecover,
    /// SIGKILL of the owner's agent, then of the new owner's guard.
    #[value(name = "ComponentFail")]
    ComponentFail,
    /// A random partition, held, then healed.
    #[value(name = "SplitBrain")]
    SplitBrain,
    /// Just under half the nodes (the owner among them) lost at once.
    #[value(name = "NearQuorumPoint")]
    NearQuorumPoint,
    /// The owner's agent paused (SIGSTOP) for three leases, then resumed.
    #[value(name = "PauseOwner")]
    PauseOwner,
    /// 30 % of the packets dropped on every node for 15 s.
    #[value(name = "FlappingLinks")]
    FlappingLinks,
    /// The Raft leader SIGKILLed while a `move` is under way.
    #[value(name = "LeaderKilledDuringMove")]
    LeaderKilledDuringMove,
    /// A node's state directory on a full filesystem.
    #[value(name = "FullStateFs")]
    FullStateFs,
    /// A node's state file damaged: refused, then `baton rejoin`.
    #[value(name = "CorruptStateFile")]
    CorruptStateFile,
    /// A UDP and TCP flood from the client at the owner's cluster port.
    #[value(name = "PacketFlood")]
    PacketFlood,
    /// The owner's wall clock stepped 6 h ahead, then 12 h back (libfaketime
    /// in its agent only; this machine's clock is never touched).
    #[value(name = "ClockStep")]
    ClockStep,
    /// Ten planned moves, the destination's agent SIGKILLed at a random
    /// moment of each start, then started again.
    #[value(name = "KillDuringStart")]
    KillDuringStart,
    /// The owner's agent paused past its lease while the set holds the
    /// shared disk and a double-forked daemon writing to it (`--disk`).
    #[value(name = "PauseWithDisk")]
    PauseWithDisk,
    /// The owner's agent and guard both paused: with fencing required, the
    /// set moves only after the fence (`--fencing required`).
    #[value(name = "GuardAndAgentPaused")]
    GuardAndAgentPaused,
    /// Every agent hands over to its binary in turn (`baton handover`), the
    /// owner's among them: web stays where it runs, the same process.
    #[value(name = "Handover")]
    Handover,
    /// The configuration changed live twice (`baton config apply` on a
    /// random node): web's address redefined, so web restarts on a node
    /// (never two at once), then the original file again.
    #[value(name = "Reconfigure")]
    Reconfigure,
}

impl Scenario {
    pub const ALL: [Scenario; 22] = [
        Scenario::SimulStart,
        Scenario::SimulStop,
        Scenario::StopOnebyOne,
        Scenario::RestartOnebyOne,
        Scenario::Standby,
        Scenario::MaintenanceMode,
        Scenario::ResourceRecover,
        Scenario::ComponentFail,
        Scenario::SplitBrain,
        Scenario::NearQuorumPoint,
        Scenario::PauseOwner,
        Scenario::FlappingLinks,
        Scenario::LeaderKilledDuringMove,
        Scenario::FullStateFs,
        Scenario::CorruptStateFile,
        Scenario::PacketFlood,
        Scenario::ClockStep,
        Scenario::KillDuringStart,
        Scenario::PauseWithDisk,
        Scenario::GuardAndAgentPaused,
        Scenario::Handover,
        Scenario::Reconfigure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::SimulStart => "SimulStart",
            Scenario::SimulStop => "SimulStop",
            Scenario::StopOnebyOne => "StopOnebyOne",
            Scenario::RestartOnebyOne => "RestartOnebyOne",
            Scenario::Standby => "Standby",
            Scenario::MaintenanceMode => "MaintenanceMode",
            Scenario::ResourceRecover => "ResourceRecover",
            Scenario::ComponentFail => "ComponentFail",
            Scenario::SplitBrain => "SplitBrain",
            Scenario::NearQuorumPoint => "NearQuorumPoint",
            Scenario::PauseOwner => "PauseOwner",
            Scenario::FlappingLinks => "FlappingLinks",
            Scenario::LeaderKilledDuringMove => "LeaderKilledDuringMove",
            Scenario::FullStateFs => "FullStateFs",
            Scenario::CorruptStateFile => "CorruptStateFile",
            Scenario::PacketFlood => "PacketFlood",
            Scenario::ClockStep => "ClockStep",
            Scenario::KillDuringStart => "KillDuringStart",
            Scenario::PauseWithDisk => "PauseWithDisk",
            Scenario::GuardAndAgentPaused => "GuardAndAgentPaused",
            Scenario::Handover => "Handover",
            Scenario::Reconfigure => "Reconfigure",
        }
    }

    /// What a lab (with or without a shared disk, with which fencing mode)
    /// lacks for this scenario, if anything.
    pub fn unmet(self, disk: bool, fencing: Option<&str>) -> Option<&'static str> {
        match self {
            Scenario::PauseWithDisk if !disk => Some("a shared disk (lab up --disk)"),
            Scenario::GuardAndAgentPaused if fencing != Some("required") => Some(
                "fencing required (lab up --fencing required): with both the agent and its guard stopped, \
                      only a fence protects the set",
            ),
            _ => None,
        }
    }

    /// Does the damage and checks it; says what happened.
    pub fn run(self, lab: &mut Lab, rng: &mut Rng) -> Result<String, String> {
        if let Some(need) = self.unmet(lab.disk.is_some(), lab.fencing.as_deref()) {
            return Err(format!("{} needs {need}", self.name()));
        }
        let owner = settle(lab, Duration::from_secs(30))?;
        match self {
            Scenario::SimulStart => simul_start(lab),
            Scenario::SimulStop => simul_stop(lab),
            Scenario::StopOnebyOne => stop_one_by_one(lab, rng),
            Scenario::RestartOnebyOne => restart_one_by_one(lab, rng),
            Scenario::Standby => standby(lab, &owner),
            Scenario::MaintenanceMode => maintenance(lab, &owner),
            Scenario::ResourceRecover => resource_recover(lab, &owner),
            Scenario::ComponentFail => component_fail(lab, &owner),
            Scenario::SplitBrain => split_brain(lab, rng, &owner),
            Scenario::NearQuorumPoint => near_quorum(lab, rng, &owner),
            Scenario::PauseOwner => pause_owner(lab, &owner),
            Scenario::FlappingLinks => flapping(lab),
            Scenario::LeaderKilledDuringMove => leader_killed_during_move(lab, rng),
            Scenario::FullStateFs => full_state_fs(lab, rng, &owner),
            Scenario::CorruptStateFile => corrupt_state_file(lab, rng, &owner),
            Scenario::PacketFlood => flood(lab, &owner),
            Scenario::ClockStep => clock_step(lab, rng, &owner),
            Scenario::KillDuringStart => kill_during_start(lab, rng, &owner),
            Scenario::PauseWithDisk => pause_with_disk(lab, &owner),
            Scenario::GuardAndAgentPaused => guard_and_agent_paused(lab, &owner),
            Scenario::Handover => handover(lab, &owner),
            Scenario::Reconfigure => reconfigure(lab, rng),
        }
    }
}

/// Longest a SIGTERMed agent may take: it hands its sets over first.
const STOP_LIMIT: Duration = Duration::from_secs(75);

/// Nodes holding the service address, as their kernels say.
fn holders(lab: &Lab) -> Vec<String> {
    lab.nodes.iter().filter(|n| addresses(lab, n).contains(&format!("{VIP}/"))).cloned().collect()
}

fn addresses(lab: &Lab, node: &str) -> String {
    let Ok(ns) = lab.ns(node) else { return String::new() };
    Command::new("ip")
        .args(["-n", &ns, "-o", "addr"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Pids in `node`'s namespace whose command line has `word` as an argument.
fn pids_with(lab: &Lab, node: &str, word: &str) -> Vec<i32> {
    let Ok(ns) = lab.ns(node) else { return vec![] };
    let out = Command::new("ip").args(["netns", "pids", &ns]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|p| {
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            // An argument, or the program's file name ("baton-guard").
            let word = Some(word.as_bytes());
            cmdline.split(|b| *b == 0).any(|a| Some(a) == word || a.rsplit(|b| *b == b'/').next() == word)
        })
        .collect()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) of a process of the lab's own namespaces.
    unsafe { libc::kill(pid, sig) };
}

/// The node runs no part of the set: no address, no process of it, no
/// mount of its disk (as the node itself sees them).
fn holds_nothing(lab: &Lab, node: &str) -> Result<(), String> {
    let held = held_by(lab, node, &Parts::web(lab));
    if held.is_empty() {
        Ok(())
    } else {
        Err(format!("{node} still holds {}", held.join("; ")))
    }
}

/// Waits until every agent is up, every node sees every node online and
/// the same owner running `web`, and only that owner holds the address and
/// runs the web server.
pub fn settle(lab: &Lab, limit: Duration) -> Result<String, String> {
    let mut last = String::from("nothing observed");
    let mut owner = None;
    let ok = wait_until(limit, || {
        owner = None;
        let mut seen = Vec::new();
        for n in &lab.nodes {
            if lab.agent_pid(n).is_none() {
                last = format!("the agent of {n} is not running");
                return false;
            }
            let Ok(doc) = node_status(&lab.dir, n) else {
                last = format!("{n} does not answer status");
                return false;
            };
            if !doc["nodes"].as_array().is_some_and(|ns| ns.iter().all(|x| x["state"] == "online")) {
                last = format!("{n} does not see every node online");
                return false;
            }
            // A node brought back by `baton rejoin` votes again only once
            // it has caught up: until then one more loss stops the cluster.
            if !doc["nodes"].as_array().is_some_and(|ns| ns.iter().all(|x| x["voter"] == true)) {
                last = format!("{n} does not see every node vote in Raft yet");
                return false;
            }
            let set = &doc["sets"][0];
            if set["state"] != "running" {
                last = format!("{n} sees web {}", set["state"]);
                return false;
            }
            seen.push(set["owner"].as_str().unwrap_or("").to_string());
        }
        seen.dedup();
        let held = holders(lab);
        if seen.len() != 1 || held != seen {
            last = format!("owners seen {seen:?}, address held by {held:?}");
            return false;
        }
        let serving: Vec<&String> = lab.nodes.iter().filter(|n| !pids_with(lab, n, "serve").is_empty()).collect();
        if serving != [&seen[0]] {
            last = format!("web runs on {}, its web server on {serving:?}", seen[0]);
            return false;
        }
        owner = seen.pop();
        true
    });
    match owner {
        Some(o) if ok => Ok(o),
        _ => Err(format!("the lab did not settle within {limit:?}: {last}")),
    }
}

/// Undoes whatever a failed scenario may have left: links, loss rules,
/// paused or dead agents; then waits for the lab to settle.
pub fn restore(lab: &mut Lab) -> Result<(), String> {
    lab.heal()?;
    for node in lab.nodes.clone() {
        let _ = nft(&lab.ns(&node)?, &format!("delete table {LOSS_TABLE}\n"));
        if let Some(pid) = lab.agent_pid(&node) {
            signal(pid as i32, libc::SIGCONT);
        } else {
            lab.start(&node)?;
        }
    }
    // As an operator would: maintenance off, every node online, web unfrozen.
    std::thread::sleep(Duration::from_secs(3));
    let first = lab.nodes[0].clone();
    let _ = baton_on(lab, &first, &["maintenance", "off", "--reason", "chaos restore"]);
    let _ = baton_on(lab, &first, &["unfreeze", "web", "--reason", "chaos restore"]);
    for node in lab.nodes.clone() {
        let _ = baton_on(lab, &first, &["online", &node, "--reason", "chaos restore"]);
    }
    settle(lab, Duration::from_secs(60)).map(|_| ())
}

/// Every agent SIGKILLed (its guard empties its node) and started again,
/// links healed, loss rules gone; then the lab must settle.
pub fn restart_all(lab: &mut Lab) -> Result<(), String> {
    lab.heal()?;
    for node in lab.nodes.clone() {
        let _ = nft(&lab.ns(&node)?, &format!("delete table {LOSS_TABLE}\n"));
        if let Some(pid) = lab.agent_pid(&node) {
            signal(pid as i32, libc::SIGCONT);
            signal(pid as i32, libc::SIGKILL);
        }
    }
    for node in lab.nodes.clone() {
        wait_until(Duration::from_secs(10), || lab.agent_pid(&node).is_none());
        lab.start(&node)?;
    }
    std::thread::sleep(Duration::from_secs(3));
    let first = lab.nodes[0].clone();
    let _ = baton_on(lab, &first, &["maintenance", "off", "--reason", "chaos restore"]);
    let _ = baton_on(lab, &first, &["unfreeze", "web", "--reason", "chaos restore"]);
    for node in lab.nodes.clone() {
        let _ = baton_on(lab, &first, &["online", &node, "--reason", "chaos restore"]);
    }
    settle(lab, Duration::from_secs(90)).map(|_| ())
}

fn stop(lab: &Lab, nodes: &[String]) -> Result<(), String> {
    for n in nodes {
        let pid = lab.agent_pid(n).ok_or_else(|| format!("the agent of {n} is not running"))?;
        signal(pid as i32, libc::SIGTERM);
    }
    for n in nodes {
        if !wait_until(STOP_LIMIT, || lab.agent_pid(n).is_none()) {
            return Err(format!("the agent of {n} did not exit within {STOP_LIMIT:?} of SIGTERM"));
        }
    }
    Ok(())
}

fn start(lab: &mut Lab, nodes: &[String]) -> Result<(), String> {
    nodes.iter().try_for_each(|n| lab.start(n))
}

fn others(lab: &Lab, node: &str) -> Vec<String> {
    lab.nodes.iter().filter(|n| *n != node).cloned().collect()
}

fn pick(rng: &mut Rng, from: &[String]) -> String {
    from[rng.index(from.len())].clone()
}

/// Waits until `node`'s namespace holds nothing of the set.
fn emptied(lab: &Lab, node: &str, limit: Duration) -> Result<(), String> {
    if wait_until(limit, || holds_nothing(lab, node).is_ok()) {
        Ok(())
    } else {
        holds_nothing(lab, node).map_err(|e| format!("after {limit:?}: {e}"))
    }
}

/// Runs `baton ARGS --socket` of `node`.
fn baton_on(lab: &Lab, node: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(crate::baton_exe())
        .args(args)
        .arg("--socket")
        .arg(lab.dir.join(node).join("baton.sock"))
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("baton {} on {node}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn simul_start(lab: &mut Lab) -> Result<String, String> {
    let all = lab.nodes.clone();
    for n in &all {
        lab.kill(n)?;
    }
    for n in &all {
        emptied(lab, n, Duration::from_secs(5))?;
    }
    start(lab, &all)?;
    Ok(format!("all {} agents SIGKILLed (every node emptied by its guard), then started together", all.len()))
}

fn simul_stop(lab: &mut Lab) -> Result<String, String> {
    let all = lab.nodes.clone();
    let t = std::time::Instant::now();
    stop(lab, &all)?;
    let took = t.elapsed();
    for n in &all {
        holds_nothing(lab, n)?;
        if !pids_with(lab, n, "baton-guard").is_empty() {
            return Err(format!("{n}'s guard outlived its agent"));
        }
    }
    start(lab, &all)?;
    Ok(format!("all agents sent SIGTERM together: all exited in {:.1} s, nothing left running", took.as_secs_f64()))
}

fn stop_one_by_one(lab: &mut Lab, rng: &mut Rng) -> Result<String, String> {
    let mut order = lab.nodes.clone();
    rng.shuffle(&mut order);
    let n = lab.nodes.len();
    for (i, node) in order.iter().enumerate() {
        stop(lab, std::slice::from_ref(node))?;
        let left = n - i - 1;
        if left > n / 2 {
            let runs = wait_until(Duration::from_secs(20), || holders(lab).len() == 1);
            let held = holders(lab);
            if !runs || order[..=i].contains(&held[0]) {
                return Err(format!("with {left} of {n} agents up, the address is held by {held:?}"));
            }
        } else if !wait_until(Duration::from_secs(10), || holders(lab).is_empty()) {
            return Err(format!(
                "with {left} of {n} agents up (no majority), {:?} still holds the address",
                holders(lab)
            ));
        }
    }
    start(lab, &order)?;
    Ok(format!("stopped {} in turn: the set ran while a majority was up and nowhere after", order.join(", ")))
}

fn restart_one_by_one(lab: &mut Lab, rng: &mut Rng) -> Result<String, String> {
    let mut order = lab.nodes.clone();
    rng.shuffle(&mut order);
    for node in &order {
        stop(lab, std::slice::from_ref(node))?;
        start(lab, std::slice::from_ref(node))?;
        settle(lab, Duration::from_secs(30)).map_err(|e| format!("after restarting {node}: {e}"))?;
    }
    Ok(format!("restarted {} in turn, the set running after each", order.join(", ")))
}

fn standby(lab: &mut Lab, owner: &str) -> Result<String, String> {
    baton_on(lab, owner, &["standby", owner, "--reason", "chaos"])?;
    let moved = taken_over(lab, owner);
    let empty = holds_nothing(lab, owner);
    baton_on(lab, owner, &["online", owner, "--reason", "chaos"])?;
    let moved = moved?;
    empty.map_err(|e| format!("in standby: {e}"))?;
    Ok(format!("{owner} in standby: web moved to {moved}; {owner} online again"))
}

fn kill_service(lab: &Lab, node: &str) -> Result<(), String> {
    let pids = pids_with(lab, node, "serve");
    if pids.is_empty() {
        return Err(format!("no web server runs in {node}"));
    }
    pids.into_iter().for_each(|p| signal(p, libc::SIGKILL));
    Ok(())
}

fn handover(lab: &mut Lab, owner: &str) -> Result<String, String> {
    let web = pids_with(lab, owner, "serve");
    let mut refused = Vec::new();
    for node in lab.nodes.clone() {
        match baton_on(lab, &node, &["handover", "--reason", "chaos"]) {
            Ok(_) => {}
            // A node not settled (a step of web under way) refuses, rightly.
            Err(e) if e.contains("no handover now") || e.contains("once it has settled") => refused.push(node),
            Err(e) => return Err(e),
        }
    }
    let now = holders(lab);
    if now != [owner] {
        return Err(format!("web's address moved during the handovers: held by {now:?}"));
    }
    if pids_with(lab, owner, "serve") != web {
        return Err(format!("{owner}'s web server was restarted by the handover"));
    }
    let refused = if refused.is_empty() { String::new() } else { format!(" ({} refused)", refused.join(", ")) };
    Ok(format!("every agent handed over in turn{refused}; web stayed on {owner}, the same process"))
}

/// The web server's pids once one node alone holds the address and serves
/// (a scenario before may have left web starting, or moving).
fn serving_alone(lab: &Lab) -> Result<Vec<i32>, String> {
    let mut pids = Vec::new();
    let alone = wait_until(Duration::from_secs(20), || {
        let held = holders(lab);
        pids = lab.nodes.iter().flat_map(|n| pids_with(lab, n, "serve")).collect();
        held.len() == 1 && pids.len() == 1 && pids_with(lab, &held[0], "serve") == pids
    });
    if alone {
        Ok(pids)
    } else {
        Err(format!("web did not settle on one node within 20 s (address on {:?})", holders(lab)))
    }
}

/// Applies `text` as the cluster's configuration from `node`, and waits
/// until web's web server runs again on one node, restarted: returns it.
fn apply_and_restart(lab: &Lab, node: &str, text: &str, before: &[i32]) -> Result<String, String> {
    let file = lab.dir.join("chaos-config.toml");
    std::fs::write(&file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
    baton_on(lab, node, &["config", "apply", file.to_str().expect("a UTF-8 path")])?;
    let mut found = None;
    let restarted = wait_until(Duration::from_secs(30), || {
        let held = holders(lab);
        let serving: Vec<&String> = lab.nodes.iter().filter(|n| !pids_with(lab, n, "serve").is_empty()).collect();
        let fresh = lab.nodes.iter().flat_map(|n| pids_with(lab, n, "serve")).all(|p| !before.contains(&p));
        found = (held.len() == 1 && serving == [&held[0]] && fresh).then(|| held[0].clone());
        found.is_some()
    });
    found.filter(|_| restarted).ok_or_else(|| {
        format!("web did not run again, restarted on one node, within 30 s (address on {:?})", holders(lab))
    })
}

fn reconfigure(lab: &mut Lab, rng: &mut Rng) -> Result<String, String> {
    let original = std::fs::read_to_string(lab.dir.join("cluster.toml")).map_err(|e| e.to_string())?;
    // A GARP interval no run before agreed (the last one may have stopped
    // half-way, its file still agreed): a new definition of web each time.
    let interval = format!("garp_interval = \"{}ms\"", rng.range(101, 999));
    let changed = original.replacen("garp_interval = \"100ms\"", &interval, 1);
    if changed == original {
        return Err("the lab's configuration has no garp_interval to change".into());
    }
    let (from, back) = (lab.nodes[rng.index(lab.nodes.len())].clone(), lab.nodes[rng.index(lab.nodes.len())].clone());
    let first = apply_and_restart(lab, &from, &changed, &serving_alone(lab)?)?;
    let second = apply_and_restart(lab, &back, &original, &serving_alone(lab)?)?;
    Ok(format!(
        "web redefined ({interval}) from {from}: restarted on {first}; the original file again from {back}: \
         restarted on {second}"
    ))
}

fn maintenance(lab: &mut Lab, owner: &str) -> Result<String, String> {
    baton_on(lab, owner, &["maintenance", "on", "--reason", "chaos"])?;
    kill_service(lab, owner)?;
    std::thread::sleep(Duration::from_secs(4));
    let recovered = lab.nodes.iter().any(|n| !pids_with(lab, n, "serve").is_empty());
    baton_on(lab, owner, &["maintenance", "off"])?;
    if recovered {
        return Err("a web server ran again during maintenance mode".into());
    }
    Ok(format!("maintenance on, {owner}'s web server killed: nothing recovered for 4 s; maintenance off"))
}

fn resource_recover(lab: &mut Lab, owner: &str) -> Result<String, String> {
    kill_service(lab, owner)?;
    if !wait_until(Duration::from_secs(15), || !pids_with(lab, owner, "serve").is_empty()) {
        return Err(format!("{owner} did not restart its web server within 15 s"));
    }
    Ok(format!("{owner}'s web server killed: restarted in place"))
}

/// Waits until a node other than `old` holds the address; names it.
fn taken_over(lab: &Lab, old: &str) -> Result<String, String> {
    let moved = wait_until(Duration::from_secs(20), || {
        let held = holders(lab);
        held.len() == 1 && held[0] != old
    });
    let held = holders(lab);
    if moved {
        Ok(held[0].clone())
    } else {
        Err(format!("no other node took the address from {old} within 20 s (held by {held:?})"))
    }
}

fn component_fail(lab: &mut Lab, owner: &str) -> Result<String, String> {
    lab.kill(owner)?;
    emptied(lab, owner, Duration::from_secs(3)).map_err(|e| format!("agent SIGKILLed, guard left: {e}"))?;
    let next = taken_over(lab, owner)?;
    lab.start(owner)?;
    settle(lab, Duration::from_secs(30))?;
    let guard = pids_with(lab, &next, "baton-guard");
    let Some(&g) = guard.first() else { return Err(format!("no guard runs in {next}")) };
    signal(g, libc::SIGKILL);
    if !wait_until(Duration::from_secs(5), || lab.agent_pid(&next).is_none()) {
        return Err(format!("{next}'s agent kept running without its guard"));
    }
    emptied(lab, &next, Duration::from_secs(2)).map_err(|e| format!("guard SIGKILLed: {e}"))?;
    let third = taken_over(lab, &next)?;
    lab.start(&next)?;
    Ok(format!(
        "{owner}'s agent SIGKILLed: its guard emptied it, {next} took over; then {next}'s guard SIGKILLed: \
         its agent emptied it and exited, {third} took over"
    ))
}

fn split_brain(lab: &mut Lab, rng: &mut Rng, owner: &str) -> Result<String, String> {
    let mut nodes = lab.nodes.clone();
    rng.shuffle(&mut nodes);
    // Half the time the owner is cut off with the minority.
    if rng.chance(500) {
        let i = nodes.iter().position(|n| n == owner).expect("the owner is a node");
        nodes.swap(0, i);
    }
    let minority = 1 + rng.index(nodes.len().div_ceil(2) - 1);
    let (small, big) = nodes.split_at(minority);
    let groups = format!("{}/{}", big.join(","), small.join(","));
    lab.partition(&groups)?;
    let majority_runs = wait_until(Duration::from_secs(15), || {
        let held = holders(lab);
        held.len() == 1 && big.contains(&held[0]) && small.iter().all(|n| holds_nothing(lab, n).is_ok())
    });
    std::thread::sleep(Duration::from_secs(2));
    let held = holders(lab);
    lab.heal()?;
    if !majority_runs || held.len() != 1 {
        return Err(format!("partition {groups}: the address held by {held:?}"));
    }
    Ok(format!("partition {groups}: web on {} in the majority, the minority empty; healed", held[0]))
}

fn near_quorum(lab: &mut Lab, rng: &mut Rng, owner: &str) -> Result<String, String> {
    let mut rest = others(lab, owner);
    rng.shuffle(&mut rest);
    let mut lost = vec![owner.to_string()];
    lost.extend(rest.into_iter().take((lab.nodes.len() - 1) / 2 - 1));
    for n in &lost {
        lab.kill(n)?;
        lab.cut(n, None)?;
    }
    let survivors: Vec<String> = lab.nodes.iter().filter(|n| !lost.contains(n)).cloned().collect();
    let runs = wait_until(Duration::from_secs(20), || {
        let held = holders(lab);
        held.len() == 1 && survivors.contains(&held[0])
    });
    let held = holders(lab);
    for n in &lost {
        lab.restore(n)?;
    }
    start(lab, &lost)?;
    if !runs {
        return Err(format!("{} of {} nodes left: the address held by {held:?}", survivors.len(), lab.nodes.len()));
    }
    Ok(format!("lost {} at once: {} (a bare majority) ran web on {}", lost.join(", "), survivors.join(", "), held[0]))
}

fn pause_owner(lab: &mut Lab, owner: &str) -> Result<String, String> {
    let pid = lab.agent_pid(owner).ok_or("the owner's agent is not running")? as i32;
    signal(pid, libc::SIGSTOP);
    let moved = taken_over(lab, owner);
    let paused_empty = holds_nothing(lab, owner);
    signal(pid, libc::SIGCONT);
    moved?;
    paused_empty.map_err(|e| format!("while paused: {e}"))?;
    std::thread::sleep(Duration::from_secs(2));
    // Resumed, it takes nothing back by itself; the cluster may give the set
    // back through an agreed move (a pin from an earlier `move`, failback).
    let mut after = "it took nothing back";
    if holds_nothing(lab, owner).is_err() {
        let other = others(lab, owner)[0].clone();
        let agreed = node_status(&lab.dir, &other)?["sets"][0]["owner"].as_str().map(str::to_string);
        if agreed.as_deref() != Some(owner) {
            return Err(format!("after resuming, {owner} holds the set, which the cluster gave to {agreed:?}"));
        }
        after = "the cluster gave web back to it by an agreed move";
    }
    Ok(format!(
        "{owner}'s agent stopped (SIGSTOP) past its lease: web moved, the guard emptied {owner}; resumed, {after}"
    ))
}

fn flapping(lab: &mut Lab) -> Result<String, String> {
    for n in &lab.nodes {
        nft(&lab.ns(n)?, &loss_rules(30))?;
    }
    std::thread::sleep(Duration::from_secs(15));
    let mut result = Ok(());
    for n in &lab.nodes {
        result = result.and(nft(&lab.ns(n)?, &format!("delete table {LOSS_TABLE}\n")));
    }
    result.map(|()| "30 % of the packets dropped on every node's links for 15 s".into())
}

fn leader_killed_during_move(lab: &mut Lab, rng: &mut Rng) -> Result<String, String> {
    let asker = pick(rng, &lab.nodes);
    // Settled means every node agrees on the owner; a Raft election may
    // still be under way after the scenario before (FlappingLinks).
    let mut leader = None;
    wait_until(Duration::from_secs(10), || {
        leader = node_status(&lab.dir, &asker).ok().and_then(|d| d["leader"].as_str().map(str::to_string));
        leader.is_some()
    });
    let leader = leader.ok_or(format!("{asker} knew no Raft leader for 10 s"))?;
    let mut mover = Command::new(crate::baton_exe())
        .args(["move", "web", "--reason", "chaos", "--socket"])
        .arg(lab.dir.join(&asker).join("baton.sock"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(rng.range(0, 60)));
    lab.kill(&leader)?;
    let done = wait_until(Duration::from_secs(30), || mover.try_wait().is_ok_and(|s| s.is_some()));
    if !done {
        let _ = mover.kill();
    }
    let _ = mover.wait();
    emptied(lab, &leader, Duration::from_secs(3))?;
    lab.start(&leader)?;
    Ok(format!("`baton move web` on {asker}, the leader {leader} SIGKILLed during it"))
}

fn full_state_fs(lab: &mut Lab, rng: &mut Rng, owner: &str) -> Result<String, String> {
    let victim = pick(rng, &others(lab, owner));
    stop(lab, std::slice::from_ref(&victim))?;
    let disk = StateDisk::mount(&lab.dir, &victim)?;
    let result = on_full_disk(lab, &victim, &disk);
    // Whatever happened: the agent stopped, its state as it is now moved
    // back to a plain directory, the agent started again.
    if lab.agent_pid(&victim).is_some() {
        stop(lab, std::slice::from_ref(&victim))?;
    }
    disk.unmount()?;
    lab.start(&victim)?;
    result
}

fn on_full_disk(lab: &mut Lab, victim: &str, disk: &StateDisk) -> Result<String, String> {
    lab.start(victim)?;
    settle(lab, Duration::from_secs(30))?;
    let size = disk.fill()?;
    // Entries to write while the disk is full: a freeze and an unfreeze.
    let healthy = others(lab, victim)[0].clone();
    baton_on(lab, &healthy, &["freeze", "web", "--reason", "chaos"])?;
    baton_on(lab, &healthy, &["unfreeze", "web", "--reason", "chaos"])?;
    std::thread::sleep(Duration::from_secs(2));
    let ran_on = lab.agent_pid(victim).is_some();
    holds_nothing(lab, victim)?;
    // A restart on the full disk must fail, saying why.
    if lab.agent_pid(victim).is_some() {
        stop(lab, &[victim.to_string()])?;
    }
    lab.start(victim)?;
    let refused = wait_until(Duration::from_secs(10), || lab.agent_pid(victim).is_none());
    let log = std::fs::read_to_string(lab.dir.join(format!("{victim}.log"))).unwrap_or_default();
    if !refused || !log.contains("No space left on device") {
        return Err(format!("{victim} started on a full disk, or stopped without saying the disk is full"));
    }
    disk.unfill()?;
    lab.start(victim)?;
    settle(lab, Duration::from_secs(30))?;
    let frozen = node_status(&lab.dir, victim)?["sets"][0]["frozen"].as_bool();
    if frozen != Some(false) {
        return Err(format!("{victim} came back with web frozen = {frozen:?}, the cluster says false"));
    }
    Ok(format!(
        "{victim}'s state on a {size} KiB filesystem filled up: entries committed meanwhile ({}); a restart \
         refused with \"No space left on device\"; space freed, it caught up with the cluster",
        if ran_on { "it kept running" } else { "it stopped" }
    ))
}

fn corrupt_state_file(lab: &mut Lab, rng: &mut Rng, owner: &str) -> Result<String, String> {
    let victim = pick(rng, &others(lab, owner));
    stop(lab, std::slice::from_ref(&victim))?;
    let state = lab.dir.join(&victim);
    let file = state.join("raft.redb");
    let mut bytes = std::fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let how = if rng.chance(500) {
        let head = 512.min(bytes.len());
        bytes[..head].fill(0xa5);
        "its first 512 bytes overwritten"
    } else {
        bytes.truncate(bytes.len() / 2);
        "cut to half its length"
    };
    std::fs::write(&file, &bytes).map_err(|e| e.to_string())?;
    lab.start(&victim)?;
    if !wait_until(Duration::from_secs(10), || lab.agent_pid(&victim).is_none()) {
        return Err(format!("{victim} started from a damaged state file"));
    }
    let log = std::fs::read_to_string(lab.dir.join(format!("{victim}.log"))).unwrap_or_default();
    if !log.contains("baton rejoin") {
        return Err(format!("{victim} refused its damaged state file without naming `baton rejoin`"));
    }
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns(&victim)?])
        .arg(crate::baton_exe())
        .args(["rejoin", "--config"])
        .arg(lab.dir.join("cluster.toml"))
        .args(["--node", &victim, "--state-dir"])
        .arg(&state)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("baton rejoin on {victim}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    lab.start(&victim)?;
    settle(lab, Duration::from_secs(30))?;
    Ok(format!("{victim}'s state file {how}: refused at start; `baton rejoin` brought it back from its peers"))
}

fn flood(lab: &mut Lab, owner: &str) -> Result<String, String> {
    let i = lab.nodes.iter().position(|n| n == owner).expect("the owner is a node");
    let config = baton_config::load(&lab.dir.join("cluster.toml")).map_err(|e| e.to_string())?;
    let target = format!("{}:{}", Lab::address(i, 0), config.cluster.port);
    let before = holders(lab);
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client")?])
        .arg(crate::lab_exe())
        .args(["flood", "--target", &target, "--seconds", "10"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("the flood: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let after = holders(lab);
    if after != before {
        return Err(format!("during the flood the address moved from {before:?} to {after:?}"));
    }
    Ok(format!("{} at {owner}: no failover", String::from_utf8_lossy(&out.stdout).trim()))
}

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// When `node` recorded the operator event with `reason`, by its own wall clock.
fn event_ms(lab: &Lab, node: &str, reason: &str) -> Result<u64, String> {
    let out = baton_on(lab, node, &["events", "--json"])?;
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["node"] == node && v["message"].as_str().is_some_and(|m| m.contains(reason)))
        .find_map(|v| v["unix_ms"].as_u64())
        .ok_or_else(|| format!("{node} recorded no event with \"{reason}\""))
}

fn clock_step(lab: &mut Lab, rng: &mut Rng, owner: &str) -> Result<String, String> {
    if !std::path::Path::new(FAKETIME).exists() {
        return Err(format!("{FAKETIME} is missing: install Debian's faketime package"));
    }
    let victim = pick(rng, &others(lab, owner));
    let clock = lab.dir.join(format!("clock-{victim}"));
    std::fs::write(&clock, "+0\n").map_err(|e| e.to_string())?;
    stop(lab, std::slice::from_ref(&victim))?;
    let env = [
        ("LD_PRELOAD", FAKETIME.to_string()),
        ("FAKETIME_TIMESTAMP_FILE", clock.display().to_string()),
        ("FAKETIME_NO_CACHE", "1".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ];
    lab.start_with(&victim, &env)?;
    settle(lab, Duration::from_secs(30))?;
    baton_on(lab, owner, &["move", "web", &victim, "--reason", "chaos"])?;
    let result = (|| {
        if settle(lab, Duration::from_secs(30))? != victim {
            return Err(format!("web did not move to {victim}"));
        }
        let mut steps = Vec::new();
        for (spec, hours) in [("+6h", 6i64), ("-6h", -6)] {
            std::fs::write(&clock, format!("{spec}\n")).map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_secs(4));
            // Unique per run: a soak repeats this scenario on the same nodes.
            let reason = format!("clock step {spec} #{}", rng.next_u64());
            baton_on(lab, &victim, &["freeze", "web", "--reason", &reason])?;
            baton_on(lab, &victim, &["unfreeze", "web", "--reason", &reason])?;
            // The step took: the victim's own events carry its stepped clock.
            let skew = event_ms(lab, &victim, &reason)? as i64 - baton_agent::events::now_ms() as i64;
            if (skew - hours * 3_600_000).abs() > 600_000 {
                return Err(format!("{victim}'s clock is {skew} ms off, not {spec}: the step did not take"));
            }
            let held = holders(lab);
            let doc = node_status(&lab.dir, &victim)?;
            if held != [victim.clone()] || doc["quorum"] != true {
                return Err(format!("after {spec}: address held by {held:?}, {victim}'s quorum {}", doc["quorum"]));
            }
            steps.push(spec);
        }
        Ok(steps)
    })();
    stop(lab, std::slice::from_ref(&victim))?;
    lab.start(&victim)?;
    let steps = result?;
    Ok(format!(
        "{victim} (the owner) had its wall clock stepped {}: it kept its lease and the set, its events show the jumps",
        steps.join(" then ")
    ))
}

/// Rounds of KillDuringStart in one run.
const KILL_ROUNDS: usize = 10;

fn kill_during_start(lab: &mut Lab, rng: &mut Rng, owner: &str) -> Result<String, String> {
    let mut owner = owner.to_string();
    let mut lines = Vec::new();
    for round in 1..=KILL_ROUNDS {
        let target = pick(rng, &others(lab, &owner));
        let mut mover = Command::new(crate::baton_exe())
            .args(["move", "web", &target, "--reason", "chaos", "--socket"])
            .arg(lab.dir.join(&owner).join("baton.sock"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        // Somewhere in the hand-over: the release, the commit, the start.
        let after = rng.range(0, 800);
        std::thread::sleep(Duration::from_millis(after));
        lab.kill(&target)?;
        // The command line would wait for a move that can no longer finish.
        let _ = mover.kill();
        let _ = mover.wait();
        emptied(lab, &target, Duration::from_secs(5)).map_err(|e| format!("round {round}: {target} killed: {e}"))?;
        lab.start(&target)?;
        owner = settle(lab, Duration::from_secs(60)).map_err(|e| format!("round {round}: {e}"))?;
        lines.push(format!("{target}@{after}ms"));
    }
    Ok(format!("{KILL_ROUNDS} moves, the destination killed during each ({}); web on {owner}", lines.join(", ")))
}

fn pause_with_disk(lab: &mut Lab, owner: &str) -> Result<String, String> {
    let parts = Parts::web(lab);
    let before = held_by(lab, owner, &parts);
    if !before.iter().any(|p| p.starts_with("mount")) {
        return Err(format!("{owner} owns web but does not mount its disk: {before:?}"));
    }
    let pid = lab.agent_pid(owner).ok_or("the owner's agent is not running")? as i32;
    signal(pid, libc::SIGSTOP);
    let moved = taken_over(lab, owner);
    let paused_holds = held_by(lab, owner, &parts);
    signal(pid, libc::SIGCONT);
    let moved = moved?;
    if !paused_holds.is_empty() {
        return Err(format!("{owner}, paused, still holds {}", paused_holds.join("; ")));
    }
    Ok(format!(
        "{owner}'s agent paused past its lease with the disk mounted and its daemon writing: its guard killed the \
         daemon and cut the disk off; {moved} took web"
    ))
}

fn guard_and_agent_paused(lab: &mut Lab, owner: &str) -> Result<String, String> {
    let agent = lab.agent_pid(owner).ok_or("the owner's agent is not running")? as i32;
    let guards = pids_with(lab, owner, "baton-guard");
    if guards.is_empty() {
        return Err(format!("no guard runs in {owner}"));
    }
    let fences = |lab: &Lab| {
        std::fs::read_to_string(lab.dir.join("fence.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("action=off") && l.contains(&format!("plug={owner} ")))
            .count()
    };
    let fenced_before = fences(lab);
    for &p in guards.iter().chain([&agent]) {
        signal(p, libc::SIGSTOP);
    }
    let moved = taken_over(lab, owner);
    let fenced = fences(lab) > fenced_before;
    let off = lab.empty(owner);
    // Powered off or not, nothing of it may be left stopped.
    for &p in guards.iter().chain([&agent]) {
        signal(p, libc::SIGCONT);
    }
    let moved = moved?;
    if !fenced || !off {
        return Err(format!("web moved to {moved} without {owner} being fenced off (fenced {fenced}, off {off})"));
    }
    lab.heal()?;
    lab.start(owner)?;
    Ok(format!("{owner}'s agent and guard both stopped: fenced (powered off), then {moved} took web"))
}
