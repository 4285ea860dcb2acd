//! The guard: a small process beside the agent that holds the lease
//! deadline and what this node runs (addresses, process groups). When the
//! deadline passes — the agent may be paused — or the agent dies, the guard
//! kills every process group and removes every address. A `kill -9` of the
//! agent therefore cannot leave a set running (keepalived fails here).
//!
//! The agent speaks to it in lines on its stdin:
//! `deadline MS` (CLOCK_MONOTONIC milliseconds) or `deadline none`,
//! `hold ip ADDR`, `drop ip ADDR`, `hold pgid N`, `drop pgid N`; the guard
//! answers `fired` on its stdout each time it killed everything.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use baton_resources::netlink::Netlink;
use baton_resources::process::signal_group;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Milliseconds on CLOCK_MONOTONIC, the clock the agent and guard share.
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub deadline_ms: Option<u64>,
    pub ips: BTreeSet<IpAddr>,
    pub pgids: BTreeSet<i32>,
}

impl Held {
    /// Applies one line from the agent.
    pub fn update(&mut self, line: &str) -> Result<(), String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("guard: cannot understand {line:?}");
        match words[..] {
            ["deadline", "none"] => self.deadline_ms = None,
            ["deadline", ms] => self.deadline_ms = Some(ms.parse().map_err(|_| bad())?),
            ["hold", "ip", a] => {
                self.ips.insert(a.parse().map_err(|_| bad())?);
            }
            ["drop", "ip", a] => {
                self.ips.remove(&a.parse().map_err(|_| bad())?);
            }
            ["hold", "pgid", n] => {
                let n: i32 = n.parse().map_err(|_| bad())?;
                if n <= 1 {
                    return Err(bad());
                }
                self.pgids.insert(n);
            }
            ["drop", "pgid", n] => {
                self.pgids.remove(&n.parse().map_err(|_| bad())?);
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.ips.is_empty() && self.pgids.is_empty()
    }
}

/// Kill every held process group and remove every held address.
pub async fn kill_all(nl: &Netlink, held: &mut Held) {
    for pgid in std::mem::take(&mut held.pgids) {
        signal_group(pgid, libc::SIGKILL);
    }
    for ip in std::mem::take(&mut held.ips) {
        if let Err(e) = nl.del_address(ip).await {
            eprintln!("baton guard: removing {ip}: {e}");
        }
    }
}

/// The guard's main loop (`baton guard`), until the agent closes stdin.
pub async fn run() -> io::Result<()> {
    let nl = Netlink::connect()?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    let mut held = Held::default();
    loop {
        let wait = held.deadline_ms.map(|d| Duration::from_millis(d.saturating_sub(monotonic_ms())));
        let deadline = async {
            match wait {
                Some(w) => tokio::time::sleep(w).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) => {
                    if let Err(e) = held.update(&line) {
                        eprintln!("{e}");
                    }
                }
                None => {
                    // The agent is gone, whatever the deadline says.
                    if !held.is_empty() {
                        eprintln!("baton guard: the agent died; killing everything it ran");
                    }
                    kill_all(&nl, &mut held).await;
                    return Ok(());
                }
            },
            () = deadline => {
                eprintln!("baton guard: the lease ended; killing everything this node ran");
                kill_all(&nl, &mut held).await;
                held.deadline_ms = None;
                stdout.write_all(b"fired\n").await?;
                stdout.flush().await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_update_what_is_held() {
        let mut h = Held::default();
        for line in ["deadline 1234", "hold ip 10.0.0.100", "hold pgid 4242", "hold ip fd00::1", "drop ip 10.0.0.100"] {
            h.update(line).unwrap();
        }
        assert_eq!(h.deadline_ms, Some(1234));
        assert_eq!(h.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(), ["fd00::1"]);
        assert_eq!(h.pgids.iter().copied().collect::<Vec<_>>(), [4242]);
        h.update("deadline none").unwrap();
        assert_eq!(h.deadline_ms, None);
        assert!(h.update("hold pgid 1").is_err(), "never process group 1");
        assert!(h.update("hold ip nonsense").is_err());
        assert!(h.update("rm -rf /").is_err());
    }
}
