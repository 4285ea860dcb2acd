//! systemd's notify protocol, spoken directly (one datagram per message, no
//! libsystemd): `READY=1` once the agent serves its control socket,
//! `WATCHDOG=1` from the main loop at half of `WatchdogSec=` (so a loop that
//! hangs is restarted by systemd, and the guard cleans up after it), and
//! `STATUS=` with what the node does (`systemctl status`), and
//! `STOPPING=1` on the way out. Outside systemd (no `NOTIFY_SOCKET`) every
//! call does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

pub struct Systemd {
    socket: Option<SocketAddr>,
    /// Half of the watchdog period systemd asked for, if any.
    feed_every: Option<Duration>,
    fed: Instant,
    /// The last `STATUS=` line told, and when it was last made.
    status: String,
    status_at: Option<Instant>,
}

impl Systemd {
    pub fn from_env() -> Systemd {
        let socket = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok(),
            None => SocketAddr::from_pathname(path).ok(),
        });
        // WATCHDOG_PID, when set, names the process meant to feed it.
        let ours = std::env::var("WATCHDOG_PID").map_or(true, |p| p == std::process::id().to_string());
        let feed_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|us| us.parse::<u64>().ok())
            .filter(|&us| ours && us > 0)
            .map(|us| Duration::from_micros(us / 2));
        Systemd { socket, feed_every, fed: Instant::now(), status: String::new(), status_at: None }
    }

    /// `STATUS=` for `systemctl status`: the line is made at most once a
    /// second, and told only when it changed.
    pub fn status(&mut self, line: impl FnOnce() -> String) {
        if self.socket.is_none() || self.status_at.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.status_at = Some(Instant::now());
        let line = line();
        if line != self.status {
            self.notify(&format!("STATUS={line}"));
            self.status = line;
        }
    }

    pub fn notify(&self, state: &str) {
        let Some(addr) = &self.socket else { return };
        let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(state.as_bytes(), addr));
        if let Err(e) = sent {
            tracing::warn!("baton: telling systemd {state}: {e}");
        }
    }

    /// Called on every turn of the main loop (which turns at least every
    /// heartbeat interval).
    pub fn feed(&mut self) {
        if self.feed_every.is_some_and(|every| self.fed.elapsed() >= every) {
            self.notify("WATCHDOG=1");
            self.fed = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Systemd;
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    #[test]
    fn ready_watchdog_and_status_reach_the_notify_socket() {
        let dir = std::env::temp_dir().join(format!("baton-sd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        listener.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut sd = Systemd {
            socket: Some(std::os::unix::net::SocketAddr::from_pathname(&path).unwrap()),
            feed_every: Some(Duration::ZERO),
            fed: std::time::Instant::now(),
            status: String::new(),
            status_at: None,
        };
        sd.notify("READY=1");
        sd.feed();
        sd.status(|| "quorum; leader alpha; runs 0 of 1 set".into());
        sd.status(|| unreachable!("made at most once a second"));
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=quorum; leader alpha; runs 0 of 1 set");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
