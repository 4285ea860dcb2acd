//! The lab's service and its client: a tiny HTTP server that answers with
//! its node's name, and a probe that asks every few milliseconds.

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// Starts the web server in namespace `ns`, answering with `node`, in its
/// own process group: the service beside a daemon that only moves the
/// address (keepalived, ucarp).
pub fn start_server(ns: &str, node: &str, log: std::fs::File) -> Result<(), String> {
    std::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(crate::lab_exe())
        .args(["serve", "--port", "80"])
        .env("BATON_NODE", node)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("starting the web server on {node}: {e}"))
}

/// Serves until killed; each answer is `$BATON_NODE`.
pub fn serve(port: u16) -> io::Result<()> {
    let name = std::env::var("BATON_NODE").unwrap_or_else(|_| "unknown".into());
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let body = format!("{name}\n");
        std::thread::spawn(move || {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        });
    }
    Ok(())
}

fn target(url: &str) -> Result<SocketAddr, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url} is not an http:// URL"))?;
    let host = rest.split('/').next().unwrap_or(rest);
    let with_port = if host.contains(':') { host.to_string() } else { format!("{host}:80") };
    with_port.parse().map_err(|_| format!("{url}: only numeric addresses are supported"))
}

fn ask(addr: SocketAddr) -> Option<String> {
    let limit = Duration::from_millis(100);
    let mut s = TcpStream::connect_timeout(&addr, limit).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    io::BufReader::new(s).read_to_string(&mut text).ok()?;
    text.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string()).filter(|b| !b.is_empty())
}

/// Prints `MONOTONIC_MS NAME` (or `-`) per attempt, until stdout closes or
/// `seconds` pass.
pub fn probe(url: &str, interval_ms: u64, seconds: u64) -> Result<(), String> {
    let addr = target(url)?;
    let start = Instant::now();
    let interval = Duration::from_millis(interval_ms.max(1));
    // Each request runs on its own thread, so a request that times out
    // does not delay the next one: the cadence holds during an outage.
    let (tx, rx) = std::sync::mpsc::channel::<(u64, String)>();
    std::thread::spawn(move || {
        let mut out = io::stdout().lock();
        for (t, who) in rx {
            if writeln!(out, "{t} {who}").and_then(|_| out.flush()).is_err() {
                std::process::exit(0);
            }
        }
    });
    let mut next = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let t = baton_agent::guard::monotonic_ms();
            let who = ask(addr).unwrap_or_else(|| "-".into());
            let _ = tx.send((t, who));
        });
        next += interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(())
}

/// Reads probe lines from `input` into `samples` as (monotonic ms, answer),
/// as they come. Requests overlap, so lines arrive in finishing order: sort
/// by start before reading a timeline.
pub fn read_probe_into(input: impl Read, samples: &std::sync::Mutex<Vec<(u64, String)>>) {
    for line in io::BufReader::new(input).lines().map_while(Result::ok) {
        if let Some((t, who)) = line.split_once(' ') {
            if let Ok(t) = t.parse() {
                samples.lock().expect("not poisoned").push((t, who.to_string()));
            }
        }
    }
}

/// Junk at `target` for `seconds` (at most a minute): UDP datagrams of
/// random bytes back to back, and every thousandth one a TCP connection
/// that sends junk too. Says how much it sent.
pub fn flood(target: SocketAddr, seconds: u64) -> Result<(), String> {
    let seconds = seconds.min(60);
    let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).map_err(|e| e.to_string())?;
    let mut rng = baton_sim::rng::Rng::new(seconds);
    let mut datagram = [0u8; 200];
    let (mut sent, mut connections) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        for b in datagram.chunks_mut(8) {
            b.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let len = 1 + rng.index(datagram.len());
        if socket.send_to(&datagram[..len], target).is_ok() {
            sent += 1;
        }
        if sent % 1000 == 0 {
            if let Ok(mut s) = TcpStream::connect_timeout(&target, Duration::from_millis(100)) {
                let _ = s.write_all(&datagram);
                connections += 1;
            }
        }
    }
    println!("{sent} UDP datagrams and {connections} TCP connections of junk in {seconds} s");
    Ok(())
}

/// The client in its own namespace, asking for the service every interval.
pub struct Probe {
    child: std::process::Child,
    reader: Option<std::thread::JoinHandle<()>>,
    /// (monotonic ms, who answered or `-`), in finishing order.
    pub samples: std::sync::Arc<std::sync::Mutex<Vec<(u64, String)>>>,
}

impl Probe {
    pub fn start(lab: &super::Lab, interval_ms: u64, seconds: u64) -> Result<Probe, String> {
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.ns("client")?])
            .arg(crate::lab_exe())
            .args(["probe", "--url", &format!("http://{}/", super::net::VIP)])
            .args(["--interval-ms", &interval_ms.to_string(), "--seconds", &seconds.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the probe: {e}"))?;
        let samples = std::sync::Arc::default();
        let out = child.stdout.take().expect("piped");
        let reader = {
            let samples = std::sync::Arc::clone(&samples);
            std::thread::spawn(move || read_probe_into(out, &samples))
        };
        Ok(Probe { child, reader: Some(reader), samples })
    }

    /// Stops it; every sample, in the order the requests started.
    pub fn stop(mut self) -> Vec<(u64, String)> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let mut samples = std::mem::take(&mut *self.samples.lock().expect("not poisoned"));
        samples.sort_by_key(|(t, _)| *t);
        samples
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
