//! The operator commands: each is one request to the local agent's socket.

use std::path::PathBuf;

use baton_agent::api::{self, Request, Response};
use serde_json::Value;

use crate::cli::{Cli, Command, Failure};

fn socket(cli: &Cli) -> Result<PathBuf, Failure> {
    if let Some(s) = &cli.socket {
        return Ok(s.clone());
    }
    let state_dir = match &cli.state_dir {
        Some(d) => d.clone(),
        None => baton_config::load(&cli.config).map_err(|e| Failure::Usage(e.to_string()))?.cluster.state_dir,
    };
    Ok(state_dir.join("baton.sock"))
}

pub fn call(cli: &Cli, req: Request) -> Result<Response, Failure> {
    call_within(cli, req, None)
}

/// One request, answered within `limit` at most (else the usual limit).
fn call_within(cli: &Cli, req: Request, limit: Option<std::time::Duration>) -> Result<Response, Failure> {
    let path = socket(cli)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let asked = async {
        match limit {
            Some(l) => tokio::time::timeout(l, api::call(&path, &req))
                .await
                .unwrap_or_else(|_| Err(format!("the agent did not answer within {l:?}"))),
            None => api::call(&path, &req).await,
        }
    };
    let response = rt.block_on(asked).map_err(Failure::Failed)?;
    if response.ok {
        Ok(response)
    } else {
        Err(Failure::Failed(response.error.unwrap_or_else(|| "the agent refused without a reason".into())))
    }
}

fn table(doc: &Value) -> String {
    let s = |v: &Value| v.as_str().map_or_else(|| "-".to_string(), str::to_string);
    let mut out = format!(
        "cluster {}  node {}  leader {}  quorum {}\n\nNODE        STATE     LINKS\n",
        s(&doc["cluster"]),
        s(&doc["node"]),
        s(&doc["leader"]),
        if doc["quorum"] == true { "yes" } else { "no" }
    );
    for n in doc["nodes"].as_array().into_iter().flatten() {
        let links: Vec<String> = n["links"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| format!("{} {}", s(&l["address"]), s(&l["state"])))
            .collect();
        let role = if n["witness"] == true { " (witness)" } else { "" };
        out += &format!("{:<11} {:<9} {}{role}\n", s(&n["name"]), s(&n["state"]), links.join(", "));
    }
    if doc["maintenance"] == true {
        out += "\nMAINTENANCE MODE: nothing is started, stopped or recovered (`baton maintenance off` ends it)\n";
    }
    if doc["config_drift"] == true {
        out += "\nCONFIGURATION DRIFT: a node's file differs from the agreed configuration (`baton config diff` \
                on it shows how; `baton config apply` agrees one)\n";
    }
    if let Some(alone) = doc["alone"].as_str() {
        out +=
            &format!("\nALONE: {alone} fenced its peer and is the only voter until the peer is back and votes again\n");
    }
    out += "\nSET         OWNER       STATE\n";
    for set in doc["sets"].as_array().into_iter().flatten() {
        let moving = set["moving_to"].as_str().map_or(String::new(), |to| format!(" (moving to {to})"));
        out += &format!("{:<11} {:<11} {}{moving}\n", s(&set["name"]), s(&set["owner"]), s(&set["state"]));
    }
    out
}

fn events(cli: &Cli, follow: bool, json: bool, set: Option<String>, since: Option<&str>) -> Result<(), Failure> {
    use baton_agent::events::{human, now_ms, Record};
    let window = match since {
        Some(text) => Some(baton_config::parse_duration(text).map_err(|e| Failure::Usage(format!("--since: {e}")))?),
        None => None,
    };
    let mut since_ms = window.map_or(0, |w| now_ms().saturating_sub(w.as_millis() as u64));
    loop {
        let r = call(cli, Request::Events { since_ms, set: set.clone() })?;
        let records: Vec<Record> = serde_json::from_value(r.data.unwrap_or_default())
            .map_err(|e| Failure::Failed(format!("the agent answered unreadable events: {e}")))?;
        for rec in &records {
            if json {
                println!("{}", serde_json::to_string(rec).expect("json"));
            } else {
                println!("{}", human(rec));
            }
            since_ms = since_ms.max(rec.unix_ms + 1);
        }
        if !follow {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// `status --watch`: the table redrawn in place on a terminal (appended
/// otherwise), or one JSON document per line; an unreachable agent is shown
/// and asked again, as `watch` would.
fn watch(cli: &Cli, json: bool, interval: &str) -> Result<(), Failure> {
    use std::io::IsTerminal;
    let every = baton_config::parse_duration(interval).map_err(|e| Failure::Usage(format!("--interval: {e}")))?;
    if every.is_zero() {
        return Err(Failure::Usage("--interval: must be longer than 0ms".into()));
    }
    let terminal = std::io::stdout().is_terminal();
    loop {
        let answer = call(cli, Request::Status).map(|r| r.data.unwrap_or(Value::Null));
        let stamp = baton_agent::events::timestamp(baton_agent::events::now_ms());
        match (answer, json) {
            (Ok(doc), true) => println!("{}", serde_json::to_string(&doc).expect("json")),
            (Err(Failure::Failed(why)), true) => println!("{}", serde_json::json!({ "error": why })),
            (Ok(doc), false) => {
                let clear = if terminal { "\x1b[H\x1b[2J" } else { "" };
                print!("{clear}{stamp}  every {interval}\n\n{}", table(&doc));
            }
            (Err(Failure::Failed(why)), false) => println!("{stamp}  {why}"),
            (Err(other), _) => return Err(other),
        }
        std::thread::sleep(every);
    }
}

/// `baton lock NAME -- CMD`: wait for the lock, run CMD in its own process
/// group with the fencing token, ask every 100 ms whether the lock is still
/// held, and SIGKILL the group the moment it is not — or the moment the last
/// answer's `valid_ms` (this node's lease, less a third of its length) runs
/// out without a newer one, as when the agent stops answering: before any
/// other node can be given the lock, which needs this node evicted.
fn lock(cli: &Cli, name: &str, wait: Option<&str>, command: &[String]) -> Result<(), Failure> {
    use std::os::unix::process::CommandExt;
    let wait_ms = match wait {
        Some(t) => {
            baton_config::parse_duration(t).map_err(|e| Failure::Usage(format!("--wait: {e}")))?.as_millis() as u64
        }
        None => u64::MAX,
    };
    let granted = call(cli, Request::Lock { name: name.to_string(), wait_ms })?;
    let token = granted
        .data
        .as_ref()
        .and_then(|d| d["token"].as_u64())
        .ok_or_else(|| Failure::Failed(format!("the agent granted {name} without a fencing token")))?;
    let valid_ms = |d: &Value| std::time::Duration::from_millis(d["valid_ms"].as_u64().unwrap_or(0));
    // The grant may have waited long; how long it may be acted on is asked
    // again in a quick round trip, counted from before the question: never
    // later than the agent meant.
    let asked_at = std::time::Instant::now();
    let state = call(cli, Request::LockState { name: name.to_string() })?.data.unwrap_or_default();
    if state["valid"] != true || state["token"] != token {
        let _ = call(cli, Request::Unlock { name: name.to_string(), token });
        return Err(Failure::Failed(format!("lost the lock {name} right after it was granted")));
    }
    let mut valid_until = asked_at + valid_ms(&state);
    let mut child = std::process::Command::new(&command[0])
        .args(&command[1..])
        .env("BATON_LOCK", name)
        .env("BATON_LOCK_TOKEN", token.to_string())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            let _ = call(cli, Request::Unlock { name: name.to_string(), token });
            Failure::Failed(format!("running {}: {e}", command[0]))
        })?;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| Failure::Failed(e.to_string()))? {
            let _ = call(cli, Request::Unlock { name: name.to_string(), token });
            return match status.code() {
                Some(0) => Ok(()),
                Some(code) => Err(Failure::Code(code.clamp(1, 255) as u8)),
                None => Err(Failure::Failed(format!("{} was killed by a signal", command[0]))),
            };
        }
        let left = valid_until.saturating_duration_since(std::time::Instant::now());
        let asked_at = std::time::Instant::now();
        let state = if left.is_zero() {
            Err(Failure::Failed("no answer renewed it in time".into()))
        } else {
            call_within(cli, Request::LockState { name: name.to_string() }, Some(left))
        };
        let held = match state.as_ref().ok().and_then(|r| r.data.as_ref()) {
            Some(d) if d["valid"] == true && d["token"] == token => {
                valid_until = asked_at + valid_ms(d);
                true
            }
            _ => false,
        };
        if !held {
            // SAFETY: kill(2) of the process group this command started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            let why = match state {
                Err(Failure::Failed(e)) => e,
                _ => "this node's lease is ending".to_string(),
            };
            return Err(Failure::Failed(format!("lost the lock {name} ({why}): {} was killed", command[0])));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub fn run(cli: &Cli, command: &Command) -> Result<(), Failure> {
    let json = cli.json;
    // What an operation did, as text and as JSON.
    let done = |text: String, doc: Value| {
        if json {
            println!("{}", serde_json::json!({ "ok": true, "data": doc }));
        } else {
            println!("{text}");
        }
    };
    match command {
        Command::Status { watch: false, .. } => {
            let doc = call(cli, Request::Status)?.data.unwrap_or(Value::Null);
            if json {
                println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
            } else {
                print!("{}", table(&doc));
            }
        }
        Command::Status { watch: true, interval } => watch(cli, json, interval)?,
        Command::Move { set, to, reason } => {
            let r = call(cli, Request::Move { set: set.clone(), node: to.clone(), reason: reason.clone() })?;
            let target = r.data.as_ref().and_then(|d| d["target"].as_str()).unwrap_or("?").to_string();
            done(format!("{set} runs on {target}"), serde_json::json!({ "set": set, "node": target }));
        }
        Command::Freeze { set, reason } | Command::Unfreeze { set, reason } => {
            let frozen = matches!(command, Command::Freeze { .. });
            call(cli, Request::Freeze { set: set.clone(), frozen, reason: reason.clone() })?;
            let word = if frozen { "frozen" } else { "unfrozen" };
            done(format!("{set} {word}"), serde_json::json!({ "set": set, "frozen": frozen }));
        }
        Command::Standby { target, reason } | Command::Online { target, reason } => {
            let standby = matches!(command, Command::Standby { .. });
            call(cli, Request::Standby { node: target.clone(), standby, reason: reason.clone() })?;
            let word = if standby { "in standby, running nothing" } else { "online" };
            done(format!("{target} {word}"), serde_json::json!({ "node": target, "standby": standby }));
        }
        Command::Cleanup { set, reason } => {
            call(cli, Request::Cleanup { set: set.clone(), reason: reason.clone() })?;
            done(format!("{set}: exclusions cleared"), serde_json::json!({ "set": set, "excluded": [] }));
        }
        Command::Lock { name, wait, command } => lock(cli, name, wait.as_deref(), command)?,
        Command::Maintenance { mode, reason } => {
            call(cli, Request::Maintenance { on: mode == "on", reason: reason.clone() })?;
            done(format!("maintenance mode {mode}"), serde_json::json!({ "maintenance": mode == "on" }));
        }
        Command::Alone { reason } => {
            call(cli, Request::Alone { reason: reason.clone() })?;
            done("this node goes on alone".to_string(), serde_json::json!({ "alone": true }));
        }
        Command::Handover { reason } => {
            let r = call(cli, Request::Handover { reason: reason.clone() })?.data.unwrap_or_default();
            let running: Vec<&str> = r["running"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
            back_after_handover(cli)?;
            let left = if running.is_empty() { "nothing".to_string() } else { running.join(", ") };
            done(format!("handed over to {}; left running: {left}", r["exe"].as_str().unwrap_or("?")), r);
        }
        Command::Simulate { kill, standby, cut } => simulate(cli, kill, standby, cut)?,
        Command::Events { follow, set, since } => events(cli, *follow, json, set.clone(), since.as_deref())?,
        Command::IsActive { set } => {
            let r = call(cli, Request::IsActive { set: set.clone() })?;
            let active = r.data.as_ref().is_some_and(|d| d["active"] == true);
            if json {
                println!("{}", serde_json::json!({ "ok": true, "data": { "set": set, "active": active } }));
            }
            if !active {
                return Err(Failure::Quiet);
            }
        }
        other => unreachable!("{other:?} is dispatched elsewhere"),
    }
    Ok(())
}

/// How long `baton handover` waits for the new program to answer.
const HANDOVER_BACK: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until the agent's new program answers on the control socket.
fn back_after_handover(cli: &Cli) -> Result<(), Failure> {
    let since = std::time::Instant::now();
    // The old program answers, then executes the new one: give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(200));
    while since.elapsed() < HANDOVER_BACK {
        if call_within(cli, Request::Status, Some(std::time::Duration::from_secs(1))).is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(Failure::Failed(format!(
        "the agent's new program did not answer within {}s of the handover: its guard releases everything at the \
         lease's end and the sets fail over (see the agent's log)",
        HANDOVER_BACK.as_secs()
    )))
}

/// `baton simulate`: the agreed state from the agent, the prediction here
/// (the configuration file gives the names and policies).
fn simulate(cli: &Cli, kill: &[String], standby: &[String], cut: &[String]) -> Result<(), Failure> {
    use baton_core::simulate::{predict, Fault};
    let config = baton_config::load(&cli.config).map_err(|e| Failure::Usage(e.to_string()))?;
    let topo = config.topology();
    let id = |name: &String| {
        topo.nodes
            .iter()
            .position(|n| &n.name == name)
            .map(|i| i as baton_core::NodeId)
            .ok_or_else(|| Failure::Usage(format!("no node named {name:?} in {}", cli.config.display())))
    };
    let mut faults = Vec::new();
    for n in kill {
        faults.push(Fault::Kill(id(n)?));
    }
    for n in standby {
        faults.push(Fault::Standby(id(n)?));
    }
    for c in cut {
        let (node, link) = match c.split_once(':') {
            Some((node, link)) => (node.to_string(), Some(link)),
            None => (c.clone(), None),
        };
        let node = id(&node)?;
        let links = topo.nodes[usize::from(node)].links;
        let link = link
            .map(|l| match l.parse::<usize>() {
                Ok(l) if l < links => Ok(l),
                _ => Err(Failure::Usage(format!("--cut {c}: the link is an index from 0 to {}", links - 1))),
            })
            .transpose()?;
        faults.push(Fault::Cut(node, link));
    }
    let data = call(cli, Request::AgreedState)?.data.unwrap_or_default();
    let state: baton_state::ClusterState = serde_json::from_value(data)
        .map_err(|e| Failure::Failed(format!("the agent's agreed state is unreadable: {e}")))?;
    // The sets the cluster runs: the agreed configuration's, once agreed.
    let mut topo = topo;
    if let Some(agreed) = &state.config {
        topo.sets.clone_from(&agreed.sets);
    }
    if (state.nodes.len(), state.sets.len()) != (topo.nodes.len(), topo.sets.len()) {
        return Err(Failure::Failed(format!(
            "{} does not describe the running cluster ({} nodes and {} sets agreed)",
            cli.config.display(),
            state.nodes.len(),
            state.sets.len()
        )));
    }
    let name = |n: Option<baton_core::NodeId>| n.map(|n| topo.node_name(n).to_string());
    let mut predictions = predict(&topo, &state, &faults).map_err(|e| Failure::Failed(e.to_string()))?;
    // A set a configuration change retired is not the cluster's any more.
    predictions.retain(|p| !state.retired(p.set));
    if cli.json {
        let sets: Vec<Value> = predictions
            .iter()
            .map(|p| {
                serde_json::json!({ "set": topo.set_name(p.set), "before": name(p.before), "after": name(p.after), "why": p.why })
            })
            .collect();
        println!("{}", serde_json::json!({ "ok": true, "data": { "sets": sets } }));
        return Ok(());
    }
    for p in predictions {
        let show = |n| name(n).unwrap_or_else(|| "nowhere".into());
        println!("{}: {} -> {} ({})", topo.set_name(p.set), show(p.before), show(p.after), p.why);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_set_being_moved_says_where_to() {
        let doc = serde_json::json!({
            "cluster": "lab", "node": "alpha", "leader": "beta", "quorum": true, "nodes": [],
            "sets": [
                {"name": "web", "owner": "alpha", "state": "stopping", "moving_to": "beta"},
                {"name": "db", "owner": "beta", "state": "running", "moving_to": null},
            ],
        });
        let t = super::table(&doc);
        assert!(t.contains("\nweb         alpha       stopping (moving to beta)\n"), "{t}");
        assert!(t.contains("\ndb          beta        running\n"), "{t}");
    }
}
