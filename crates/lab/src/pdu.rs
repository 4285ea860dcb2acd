//! The lab's network power switch, for machine labs (`lab up --machines DEB
//! --fencing power`): what a rack's PDU or a server's BMC is to a real
//! cluster. A management network the lab never cuts joins every machine
//! (`mgmt0`, 10.87.0.N) to the switch's server at 10.87.0.254, which powers a
//! machine off as the host-side fence agent does (every process of it
//! killed, its links cut). Inside each machine `/usr/local/sbin/fence_lab`
//! speaks the fence-agents stdin protocol and asks the switch over TCP, one
//! line per request: `ACTION PLUG PASSWORD`, answered `ok`, `on`, `off` or
//! `error: WHY`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::net::{ip, Lab};

/// The switch's address on the management network, and its port.
pub const ADDRESS: &str = "10.87.0.254";
pub const PORT: u16 = 2300;
/// The fence agent inside every machine.
pub const AGENT: &str = "/usr/local/sbin/fence_lab";
/// What the switch writes once it listens.
const LISTENING: &str = "listening";

impl Lab {
    /// The management network: a bridge in the switch's namespace with the
    /// switch's address, and `mgmt0` in every node at 10.87.0.(i+1). The
    /// lab's cuts and partitions never touch it.
    pub fn build_management(&self) -> Result<(), String> {
        let switch = &self.switch();
        ip(&["-n", switch, "link", "add", "mgmt", "type", "bridge"])?;
        ip(&["-n", switch, "addr", "add", &format!("{ADDRESS}/24"), "dev", "mgmt"])?;
        ip(&["-n", switch, "link", "set", "mgmt", "up"])?;
        for (i, node) in self.all().iter().enumerate() {
            let (ns, port) = (self.ns(node)?, format!("mg{i}"));
            ip(&["-n", switch, "link", "add", &port, "type", "veth", "peer", "name", "mgmt0", "netns", &ns])?;
            ip(&["-n", switch, "link", "set", &port, "master", "mgmt", "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("10.87.0.{}/24", i + 1), "dev", "mgmt0"])?;
            ip(&["-n", &ns, "link", "set", "mgmt0", "up"])?;
        }
        Ok(())
    }

    /// Starts the switch's server in the switch's namespace (the lab's
    /// `down` kills it with everything there) and waits until it listens.
    pub fn start_pdu(&self) -> Result<(), String> {
        let log_path = self.dir.join("pdu.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        Command::new("ip")
            .args(["netns", "exec", &self.switch()])
            .arg(crate::lab_exe())
            .args(["pdu", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting the lab's power switch: {e}"))?;
        let listening = || std::fs::read_to_string(&log_path).is_ok_and(|t| t.contains(LISTENING));
        if super::wait_until(Duration::from_secs(5), listening) {
            Ok(())
        } else {
            Err(format!("the lab's power switch did not start; see {}", log_path.display()))
        }
    }

    /// The fence device of the machines' configuration.
    pub fn pdu_device(&self, nodes: &str, delay: &str) -> String {
        format!(
            "\n[[fencing.devices]]\nagent = \"{AGENT}\"\nnodes = [{nodes}]\n\
             params = {{ ipaddr = \"{ADDRESS}\", ipport = \"{PORT}\" }}\npassword_file = \"fence.pw\"\n\
             timeout = \"20s\"\n{delay}"
        )
    }
}

/// The machine's fence agent: `baton-lab fence-pdu` through the lab's
/// binary, which every machine has at the host's path.
pub fn agent_script() -> String {
    format!("#!/bin/sh\nexec {} fence-pdu\n", crate::lab_exe().display())
}

/// `baton-lab pdu --dir DIR`: the switch's server, until killed.
pub fn serve(dir: &Path) -> Result<(), String> {
    let listener = TcpListener::bind((ADDRESS, PORT)).map_err(|e| format!("listening on {ADDRESS}:{PORT}: {e}"))?;
    println!("{LISTENING} on {ADDRESS}:{PORT}");
    for stream in listener.incoming().map_while(Result::ok) {
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            let _ = answer(&dir, stream);
        });
    }
    Ok(())
}

/// One request: `ACTION PLUG PASSWORD`, carried out as the host-side agent
/// does, and answered.
fn answer(dir: &Path, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new(&stream).take(1024).read_line(&mut line)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let reply = match words[..] {
        [action, plug, password] => {
            let checked = password == super::fence::PASSWORD;
            super::fence::log(&dir.join("fence.log"), action, plug, plug, if checked { "checked" } else { "wrong" });
            match (checked, Lab::load(dir)) {
                (false, _) => "error: wrong password".to_string(),
                (true, Err(e)) => format!("error: {e}"),
                (true, Ok(lab)) => match (action, super::fence::act(&lab, action, plug)) {
                    ("status", 0) => "on".into(),
                    ("status", 2) => "off".into(),
                    (_, 0) => "ok".into(),
                    _ => format!("error: {action} {plug} failed"),
                },
            }
        }
        _ => format!("error: expected ACTION PLUG PASSWORD, got {:?}", line.trim()),
    };
    println!("{} -> {reply}", words.iter().take(2).copied().collect::<Vec<_>>().join(" "));
    stream.write_all(format!("{reply}\n").as_bytes())
}

/// `baton-lab fence-pdu`: a fence agent (fence-agents stdin protocol:
/// `action`, `plug` or `nodename`, `password`, `ipaddr`, `ipport`) that
/// asks the switch. Exit 0 done (`status`: on), 2 `status` off, 1 failed.
pub fn fence_agent() -> i32 {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        return 1;
    }
    let args: std::collections::BTreeMap<&str, &str> = input.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| args.get(k).copied().unwrap_or("");
    let action = get("action");
    if matches!(action, "monitor" | "list" | "metadata") {
        return 0;
    }
    let plug = args.get("plug").or(args.get("nodename")).copied().unwrap_or("");
    let address = format!("{}:{}", get("ipaddr"), get("ipport"));
    let asked = TcpStream::connect(&address).and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.write_all(format!("{action} {plug} {}\n", get("password")).as_bytes())?;
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply)?;
        Ok(reply.trim().to_string())
    });
    match asked.as_deref() {
        Ok("ok" | "on") => 0,
        Ok("off") => 2,
        Ok(other) => {
            eprintln!("fence_lab: the switch at {address} says {other}");
            1
        }
        Err(e) => {
            eprintln!("fence_lab: the switch at {address}: {e}");
            1
        }
    }
}
