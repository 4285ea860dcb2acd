//! `baton lab demo`: three nodes, the set `web` (an address and a tiny web
//! server), a client asking every 10 ms; the owner's agent is killed with
//! SIGKILL and its links are cut; the timeline shows what the client saw.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use baton_agent::guard::monotonic_ms;

use super::net::{Lab, VIP};
use super::web::read_probe;
use super::{node_status, wait_until, UpArgs};

pub fn run(args: &UpArgs) -> Result<(), String> {
    println!("baton lab demo: {} nodes, {} links, set web = {VIP}/24 + a web server", args.nodes, args.links);
    let mut lab = Lab::up(args)?;
    let result = demo(&mut lab);
    let down = Lab::down(&lab.dir);
    result.and(down)
}

fn owner(lab: &Lab) -> Option<String> {
    lab.nodes.iter().find_map(|n| {
        let doc = node_status(&lab.dir, n).ok()?;
        let set = &doc["sets"][0];
        (set["state"] == "running").then(|| set["owner"].as_str().map(str::to_string)).flatten()
    })
}

fn demo(lab: &mut Lab) -> Result<(), String> {
    lab.wait_running(Duration::from_secs(30))?;
    let first = owner(lab).ok_or("web runs nowhere")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut probe = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client")?])
        .arg(exe)
        .args(["lab", "probe", "--url", &format!("http://{VIP}/"), "--interval-ms", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the probe: {e}"))?;
    let out = probe.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read_probe(out));
    });
    std::thread::sleep(Duration::from_secs(2));
    let killed_at = monotonic_ms();
    lab.kill(&first)?;
    lab.cut(&first, None)?;
    println!("killed the agent of {first} (SIGKILL) and cut its links");
    let moved = wait_until(Duration::from_secs(20), || owner(lab).is_some_and(|o| o != first));
    std::thread::sleep(Duration::from_secs(2));
    let _ = probe.kill();
    let _ = probe.wait();
    let samples = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    if !moved {
        return Err(format!("web did not move off {first} within 20 s; logs in {}", lab.dir.display()));
    }
    let Some(&(t0, _)) = samples.first() else { return Err("the probe recorded nothing".into()) };
    let at = |t: u64| format!("{:>7.3}s", (t - t0) as f64 / 1000.0);
    println!("\ntimeline (client in its own namespace, GET http://{VIP}/ every 10 ms):");
    if let Some((t, who)) = samples.iter().find(|(_, w)| w != "-") {
        println!("  {}  first answer, from {who}", at(*t));
    }
    println!("  {}  {first}'s agent killed, links cut", at(killed_at));
    let last_old = samples.iter().rfind(|(t, w)| *w == first && *t <= killed_at + 5000);
    let first_new = samples.iter().find(|(t, w)| *t > killed_at && w != "-" && *w != first);
    if let Some((t, _)) = last_old {
        println!("  {}  last answer from {first}", at(*t));
    }
    match (last_old, first_new) {
        (Some((a, _)), Some((b, who))) => {
            println!("  {}  first answer from {who}", at(*b));
            let failed = samples.iter().filter(|(t, w)| t > a && t < b && w == "-").count();
            println!("\noutage seen by the client: {} ms ({failed} failed requests)", b - a);
            Ok(())
        }
        _ => Err("the client never got an answer from the new owner".into()),
    }
}
