//! Scale in the lab: seven nodes and three hundred sets, each an address
//! and a program, every set preferring three nodes in turn. What a node
//! costs at rest at that size and, when one node's machine is lost (its
//! agent killed and its links cut at once), how soon each set it held
//! answers a client again from another node: ICMP echo requests from the
//! client's namespace to every address the lost node held, every 20 ms.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cost::{self, Cost};
use super::BenchArgs;
use crate::net::Lab;
use crate::UpArgs;

pub const NODES: usize = 7;
pub const SETS: usize = 300;
/// The lease the scale lab runs (baton's default).
pub const LEASE_MS: u64 = 1000;

pub struct Scale {
    /// From the agents' start until every set ran.
    pub settled_ms: u64,
    pub cost: Cost,
    pub victim: String,
    /// Per set the lost node held: how long after the loss its address
    /// answered again (sorted); `None` never within the limit.
    pub answers_ms: Vec<Option<u64>>,
}

/// The address of set `i`: outside the lab's link subnets, on link 0.
fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 88, 1 + (i / 200) as u8, (i % 200) as u8 + 1)
}

/// The sets, as `lab up --extra` appends them to the lab's file.
fn extra(nodes: &[String]) -> String {
    let mut t = String::new();
    for i in 0..SETS {
        let prefs: Vec<String> = (0..3).map(|k| format!("{:?}", nodes[(i + k) % nodes.len()])).collect();
        t += &format!(
            "\n[sets.s{i:03}]\nnodes = [{}]\n\n[[sets.s{i:03}.resources]]\ntype = \"ip\"\naddress = \"{}/24\"\n\
             interface = \"eth0\"\n\n[[sets.s{i:03}.resources]]\ntype = \"process\"\n\
             command = [\"/bin/sleep\", \"1000000\"]\n",
            prefs.join(", "),
            address(i)
        );
    }
    t
}

pub fn measure(args: &BenchArgs) -> Result<Scale, String> {
    let names: Vec<String> = crate::net::NAMES[..NODES].iter().map(|n| n.to_string()).collect();
    let file = PathBuf::from(format!("{}.scale.toml", args.dir.dir.display()));
    std::fs::write(&file, extra(&names)).map_err(|e| format!("writing {}: {e}", file.display()))?;
    let up = UpArgs {
        nodes: NODES,
        lease: Some(format!("{LEASE_MS}ms")),
        extra: Some(file.clone()),
        ..UpArgs::plain(args.dir.clone(), args.prefix.clone())
    };
    let began = Instant::now();
    let result = Lab::up(&up).and_then(|lab| {
        let result = trial(args, &lab, began);
        Lab::down(&lab.dir).and(result)
    });
    let _ = std::fs::remove_file(file);
    result
}

fn trial(args: &BenchArgs, lab: &Lab, began: Instant) -> Result<Scale, String> {
    let everything = SETS + 1;
    let settled = crate::wait_until(Duration::from_secs(180), || running(&lab.dir, &lab.nodes[0]) == everything);
    if !settled {
        let n = running(&lab.dir, &lab.nodes[0]);
        return Err(format!("{n} of {everything} sets running after 180 s; see the logs in {}", lab.dir.display()));
    }
    let settled_ms = began.elapsed().as_millis() as u64;
    eprintln!("scale: {everything} sets running on {NODES} nodes after {settled_ms} ms");
    std::thread::sleep(Duration::from_secs(10));
    let window = Duration::from_secs(args.cost_seconds);
    let cost = cost::idle_of(lab, window, |node| Ok(agent_and_guard(&lab.ns(node)?)))?;
    let victim = lab.nodes[NODES / 2].clone();
    let held = held_by(&lab.dir, &lab.nodes[0], &victim)?;
    let client = lab.ns("client")?;
    for subnet in ["10.88.1.0/24", "10.88.2.0/24"] {
        crate::net::ip(&["-n", &client, "route", "replace", subnet, "dev", "eth0"])?;
    }
    let limit = Duration::from_millis(LEASE_MS) * 10;
    let answers = first_answers(&client, &held, limit, || {
        lab.kill(&victim)?;
        lab.cut(&victim, None)
    })?;
    let mut answers_ms: Vec<Option<u64>> = answers.iter().map(|a| a.map(|d| d.as_millis() as u64)).collect();
    answers_ms.sort_unstable_by_key(|a| a.unwrap_or(u64::MAX));
    eprintln!("scale: {victim}'s {} sets answering again after (ms): {answers_ms:?}", held.len());
    Ok(Scale { settled_ms, cost, victim, answers_ms })
}

/// How many sets run, as `node` sees the agreed state.
fn running(dir: &Path, node: &str) -> usize {
    crate::node_status(dir, node)
        .ok()
        .and_then(|d| d["sets"].as_array().map(|s| s.iter().filter(|s| s["state"] == "running").count()))
        .unwrap_or(0)
}

/// The addresses of the sets `victim` runs, as `node` sees them.
fn held_by(dir: &Path, node: &str, victim: &str) -> Result<Vec<Ipv4Addr>, String> {
    let doc = crate::node_status(dir, node)?;
    let sets = doc["sets"].as_array().ok_or("a status without sets")?;
    let held: Vec<Ipv4Addr> = sets
        .iter()
        .filter(|s| s["owner"] == victim && s["name"] != "web")
        .filter_map(|s| s["name"].as_str()?.strip_prefix('s')?.parse::<usize>().ok())
        .map(address)
        .collect();
    if held.is_empty() {
        return Err(format!("{victim} runs no set"));
    }
    Ok(held)
}

/// baton's own processes in a namespace (not the sets' programs).
fn agent_and_guard(ns: &str) -> Vec<u32> {
    crate::net::namespace_pids(ns)
        .into_iter()
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            matches!(comm.trim(), "batond" | "baton-guard")
        })
        .map(|pid| pid as u32)
        .collect()
}

/// From inside the namespace `ns`: every address in `targets` answers an
/// echo request first; then `fault` runs, and for each address, how long
/// after the fault was complete an echo request sent since was answered
/// (within `limit`).
fn first_answers(
    ns: &str,
    targets: &[Ipv4Addr],
    limit: Duration,
    fault: impl FnOnce() -> Result<(), String>,
) -> Result<Vec<Option<Duration>>, String> {
    let ns = std::fs::File::open(format!("/run/netns/{ns}")).map_err(|e| format!("namespace {ns}: {e}"))?;
    let targets = targets.to_vec();
    let (ready, answered) = (std::sync::mpsc::channel::<()>(), std::sync::mpsc::channel::<Instant>());
    let pinger = std::thread::spawn(move || -> Result<Vec<Option<Duration>>, String> {
        // SAFETY: setns on a namespace fd moves only this thread.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("entering the client's namespace: {}", std::io::Error::last_os_error()));
        }
        let echo = Echo::open()?;
        let before = echo.round(&targets, Instant::now(), Duration::from_secs(10));
        if let Some(i) = before.iter().position(Option::is_none) {
            return Err(format!("{} does not answer before the fault", targets[i]));
        }
        let _ = ready.0.send(());
        let at = answered.1.recv().map_err(|_| "the fault did not happen")?;
        Ok(echo.round(&targets, at, limit))
    });
    let faulted = ready.1.recv().is_ok().then(fault);
    if matches!(faulted, Some(Ok(()))) {
        let _ = answered.0.send(Instant::now());
    }
    drop(answered.0);
    let answers = pinger.join().map_err(|_| "the pinger panicked")?;
    faulted.transpose()?;
    answers
}

/// A raw ICMP socket (the client is root in its namespace).
struct Echo {
    fd: OwnedFd,
    id: u16,
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Echo {
    fn open() -> Result<Echo, String> {
        // SAFETY: socket(2) with constant arguments; the fd is owned below.
        let fd = unsafe {
            libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMP)
        };
        if fd < 0 {
            return Err(format!("opening an ICMP socket: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: a descriptor just opened, owned from here on.
        Ok(Echo { fd: unsafe { OwnedFd::from_raw_fd(fd) }, id: std::process::id() as u16 })
    }

    fn send(&self, to: Ipv4Addr, seq: u16) {
        let mut p = [8u8, 0, 0, 0, 0, 0, 0, 0];
        p[4..6].copy_from_slice(&self.id.to_be_bytes());
        p[6..8].copy_from_slice(&seq.to_be_bytes());
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from(to).to_be() },
            sin_zero: [0; 8],
        };
        // SAFETY: sendto(2) of a local buffer to a fully initialised address.
        unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                p.as_ptr().cast(),
                p.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            );
        }
    }

    /// An echo reply of ours, if one is waiting: who sent it and its seq.
    fn reply(&self) -> Option<(Ipv4Addr, u16)> {
        let mut b = [0u8; 128];
        loop {
            // SAFETY: recv(2) into a local buffer of its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len(), 0) };
            if n < 28 {
                return None;
            }
            let ihl = usize::from(b[0] & 0x0f) * 4;
            let icmp = &b[ihl..n as usize];
            if icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == self.id.to_be_bytes() {
                let from = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
                return Some((from, u16::from_be_bytes([icmp[6], icmp[7]])));
            }
        }
    }

    /// Echo requests to every target every 20 ms until each answered one
    /// sent after `start`, or `limit` passed: when each did, from `start`.
    fn round(&self, targets: &[Ipv4Addr], start: Instant, limit: Duration) -> Vec<Option<Duration>> {
        let mut sent: Vec<Instant> = Vec::new();
        let mut answered: Vec<Option<Duration>> = vec![None; targets.len()];
        while start.elapsed() < limit && answered.iter().any(Option::is_none) {
            let seq = sent.len() as u16;
            sent.push(Instant::now());
            for (t, a) in targets.iter().zip(&answered) {
                if a.is_none() {
                    self.send(*t, seq);
                }
            }
            let next = Instant::now() + Duration::from_millis(20);
            while Instant::now() < next {
                while let Some((from, seq)) = self.reply() {
                    let Some(i) = targets.iter().position(|t| *t == from) else { continue };
                    if answered[i].is_none() && sent.get(usize::from(seq)).is_some_and(|s| *s >= start) {
                        answered[i] = Some(start.elapsed());
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        answered
    }
}
