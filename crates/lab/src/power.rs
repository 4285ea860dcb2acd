//! The lab's power switch on the network, for fence agents that run inside
//! machines (baton's agent with `--fencing power`, Pacemaker's
//! `pacemaker-fenced`): a machine cannot reach the host's namespaces to
//! power a peer off, so the lab runs its fence device as a tiny network
//! power switch, the way a real cluster reaches an IPMI board or a PDU over
//! a management network — one the lab never cuts (`mgmt0` in every node,
//! 10.87.0.N; the switch at 10.87.0.254).
//!
//! [`serve`] runs on the host side, with its socket in the lab's switch
//! namespace and the host's mount and PID namespaces, and answers each
//! request with the lab's own fence device ([`crate::fence::act`]).
//! [`agent`] is `fence_lab` inside a machine: a fence-agents-style agent
//! (its metadata on `-o metadata`, arguments as `key=value` lines on stdin)
//! that forwards the request to the switch and exits with its answer.
//!
//! The wire: the request's `key=value` lines, an empty line, then one line
//! back with the exit code.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::net::{ip, Lab};

/// Where the switch listens: its address on the management network.
pub const ADDRESS: &str = "10.87.0.254";
pub const PORT: u16 = 7079;
/// A request's size limit, in lines and bytes.
const LINES_MAX: usize = 64;
const BYTES_MAX: u64 = 16 * 1024;
/// How long the agent waits for the switch's answer: `off` waits up to
/// 5 s for the node's processes to go.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves requests for the lab in `dir` until killed, one thread each.
pub fn serve(dir: &Path, listen: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(listen).map_err(|e| format!("binding the power switch to {listen}: {e}"))?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let dir = dir.to_path_buf();
        std::thread::spawn(move || answer(stream, &dir));
    }
    Ok(())
}

/// Reads one request (bounded), acts on it, writes the exit code back.
fn answer(stream: TcpStream, dir: &Path) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut lines = Vec::new();
    for line in BufReader::new(stream.take(BYTES_MAX)).lines().take(LINES_MAX) {
        match line {
            Ok(l) if l.is_empty() => break,
            Ok(l) => lines.push(l),
            Err(_) => return,
        }
    }
    let code = act(dir, &lines);
    let _ = writeln!(writer, "{code}");
}

/// The lab's fence device on the request's arguments, with the lab and the
/// log set by the switch (never by the caller).
fn act(dir: &Path, lines: &[String]) -> i32 {
    let lab = dir.display().to_string();
    let log = dir.join("fence.log").display().to_string();
    let mut args: BTreeMap<&str, &str> =
        lines.iter().filter_map(|l| l.split_once('=')).filter(|(k, _)| *k != "lab" && *k != "log").collect();
    args.insert("lab", &lab);
    args.insert("log", &log);
    crate::fence::act(&args)
}

/// The agent's meta-data in the fence-agents format, which Pacemaker reads
/// to learn its parameters and actions.
const METADATA: &str = r#"<?xml version="1.0" ?>
<resource-agent name="fence_lab" shortdesc="The baton lab's network power switch">
<longdesc>Powers a lab machine off (its links cut, every process killed) through the lab's power switch on the host.</longdesc>
<parameters>
  <parameter name="action" unique="0" required="1">
    <getopt mixed="-o, --action=[action]" />
    <content type="string" default="reboot" />
    <shortdesc lang="en">Fencing action</shortdesc>
  </parameter>
  <parameter name="ipaddr" unique="0" required="1">
    <getopt mixed="-a, --ip=[ip]" />
    <content type="string" />
    <shortdesc lang="en">The power switch's address</shortdesc>
  </parameter>
  <parameter name="ipport" unique="0" required="0">
    <getopt mixed="-u, --ipport=[port]" />
    <content type="integer" default="7079" />
    <shortdesc lang="en">The power switch's TCP port</shortdesc>
  </parameter>
  <parameter name="password" unique="0" required="0">
    <getopt mixed="-p, --password=[password]" />
    <content type="string" />
    <shortdesc lang="en">The power switch's password</shortdesc>
  </parameter>
  <parameter name="plug" unique="0" required="1" obsoletes="port">
    <getopt mixed="-n, --plug=[id]" />
    <content type="string" />
    <shortdesc lang="en">The machine to act on (its node name)</shortdesc>
  </parameter>
  <parameter name="port" unique="0" required="0" deprecated="1">
    <getopt mixed="-n, --plug=[id]" />
    <content type="string" />
    <shortdesc lang="en">The machine to act on (its node name)</shortdesc>
  </parameter>
</parameters>
<actions>
  <action name="on" automatic="0" />
  <action name="off" />
  <action name="reboot" />
  <action name="status" />
  <action name="monitor" />
  <action name="metadata" />
  <action name="validate-all" />
</actions>
</resource-agent>
"#;

/// `fence_lab` inside a machine; `argv` is what it was called with (only
/// `-o metadata` is read from it: Pacemaker passes the rest on stdin).
/// Returns the exit code.
pub fn agent(argv: &[String]) -> i32 {
    let wants_metadata = argv.windows(2).any(|w| w[0] == "-o" && w[1] == "metadata")
        || argv.iter().any(|a| a == "--action=metadata" || a == "-o=metadata");
    if wants_metadata {
        print!("{METADATA}");
        return 0;
    }
    let mut input = String::new();
    if std::io::stdin().take(BYTES_MAX).read_to_string(&mut input).is_err() {
        return 1;
    }
    let args: BTreeMap<&str, &str> = input.lines().filter_map(|l| l.split_once('=')).collect();
    match args.get("action").copied().unwrap_or("reboot") {
        "metadata" => {
            print!("{METADATA}");
            0
        }
        "validate-all" => i32::from(!args.contains_key("ipaddr")),
        _ => forward(&args).unwrap_or_else(|e| {
            eprintln!("fence_lab: {e}");
            1
        }),
    }
}

/// Sends the request to the switch named by `ipaddr` and `ipport`.
fn forward(args: &BTreeMap<&str, &str>) -> Result<i32, String> {
    let ip = args.get("ipaddr").ok_or("no ipaddr")?;
    let port = args.get("ipport").map_or(Ok(PORT), |p| p.parse().map_err(|_| format!("ipport {p}")))?;
    let switch: SocketAddr = format!("{ip}:{port}").parse().map_err(|_| format!("ipaddr {ip} is not an address"))?;
    let mut stream = TcpStream::connect_timeout(&switch, Duration::from_secs(5))
        .map_err(|e| format!("reaching the power switch at {switch}: {e}"))?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut request = String::new();
    for (k, v) in args {
        request += &format!("{k}={v}\n");
    }
    request.push('\n');
    stream.write_all(request.as_bytes()).map_err(|e| format!("asking the power switch at {switch}: {e}"))?;
    let mut reply = String::new();
    BufReader::new(stream.take(64))
        .read_line(&mut reply)
        .map_err(|e| format!("waiting for the power switch at {switch}: {e}"))?;
    reply.trim().parse().map_err(|_| format!("the power switch at {switch} answered {reply:?}"))
}

/// Where every machine has the agent: where Pacemaker looks for fence agents.
pub const AGENT: &str = "/usr/sbin/fence_lab";

/// The script laid in every machine as [`AGENT`]: the lab's program, bound
/// into the machine read-only at the host's path.
pub fn script(lab_exe: &Path) -> String {
    format!("#!/bin/sh\n# Laid here by `baton lab up`.\nexec {} fence-lab \"$@\"\n", lab_exe.display())
}

impl Lab {
    /// The management network and the power switch on it: a bridge in the
    /// switch's namespace with the switch's address, `mgmt0` in every node
    /// at 10.87.0.(i+1) (the lab's cuts and partitions never touch it), and
    /// the switch's program with its socket there (`lab down` kills it with
    /// everything in the lab's namespaces).
    pub fn start_power_switch(&self) -> Result<(), String> {
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
        let log = self.dir.join("power-switch.log");
        let log = std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let mut server = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{switch}"))
            .arg("--")
            .arg(crate::lab_exe())
            .arg("power-switch")
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting the lab's power switch: {e}"))?;
        // Reaped here, it leaves no zombie in a bench that makes lab after lab.
        std::thread::spawn(move || server.wait());
        Ok(())
    }

    /// A fence device of baton's configuration on machines: `fence_lab`
    /// asking the switch.
    pub fn power_device(&self, nodes: &str, delay: &str) -> String {
        format!(
            "\n[[fencing.devices]]\nagent = \"{AGENT}\"\nnodes = [{nodes}]\n\
             params = {{ ipaddr = \"{ADDRESS}\", ipport = \"{PORT}\" }}\npassword_file = \"fence.pw\"\n\
             timeout = \"20s\"\n{delay}"
        )
    }
}

/// The switch's address with its port.
pub fn listen_address() -> SocketAddr {
    format!("{ADDRESS}:{PORT}").parse().expect("a literal address")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_forwards_its_arguments_and_exits_with_the_switch_s_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let switch = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let lines: Vec<String> =
                BufReader::new(stream).lines().map_while(Result::ok).take_while(|l| !l.is_empty()).collect();
            writeln!(writer, "2").unwrap();
            lines
        });
        let port = port.to_string();
        let args: BTreeMap<&str, &str> =
            [("action", "status"), ("ipaddr", "127.0.0.1"), ("ipport", port.as_str()), ("plug", "beta")].into();
        assert_eq!(forward(&args), Ok(2));
        let seen = switch.join().unwrap();
        assert!(seen.contains(&"action=status".to_string()) && seen.contains(&"plug=beta".to_string()), "{seen:?}");
    }

    #[test]
    fn an_unreachable_switch_is_a_failure_that_names_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        drop(listener);
        let args: BTreeMap<&str, &str> = [("action", "off"), ("ipaddr", "127.0.0.1"), ("ipport", port.as_str())].into();
        let err = forward(&args).unwrap_err();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    }

    #[test]
    fn metadata_names_every_action_pacemaker_calls() {
        for action in ["on", "off", "reboot", "status", "monitor", "metadata", "validate-all"] {
            assert!(METADATA.contains(&format!("<action name=\"{action}\"")), "{action}");
        }
        assert_eq!(agent(&["-o".into(), "metadata".into()]), 0);
    }
}
