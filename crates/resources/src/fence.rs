//! Fence devices through the standard fence-agents interface: the agent
//! reads `key=value` lines on stdin (`action=`, `plug=`/`port=`/`nodename=`,
//! the device's parameters, `password=` read from a file — never a command
//! line argument), and answers with its exit status. An "off" counts only
//! once a `status` confirms the node off (exit 2).

use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub kind: Kind,
    /// Waited before fencing: in a two-node cluster, give one side a head
    /// start so the two never fence each other at once.
    pub delay: Duration,
    /// A random extra wait, up to this: two nodes fencing each other at
    /// once rarely both go ahead (Pacemaker's `pcmk_delay_max`).
    pub delay_max: Duration,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A fence agent (fence-agents stdin protocol).
    Agent { agent: PathBuf, params: Vec<(String, String)>, password_file: Option<PathBuf> },
    /// A shared disk with a slot per node ([`crate::fence_disk`]); `from`
    /// signs the pill.
    Disk { path: PathBuf, from: String },
}

/// A uniformly random duration up to `max` (getrandom(2)).
fn random_up_to(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom(2) writes at most `bytes.len()` bytes into `bytes`.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    let r = if n == 8 { u64::from_ne_bytes(bytes) } else { 0 };
    Duration::from_micros(r % (max.as_micros() as u64 + 1))
}

/// `status` exit code of a fence agent for "off".
pub const STATUS_OFF: i32 = 2;

/// An agent named without a path is looked up where Debian installs them.
pub fn resolve(agent: &str) -> PathBuf {
    if agent.contains('/') {
        return PathBuf::from(agent);
    }
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(agent))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(agent))
}

impl Device {
    /// What events call it: the agent's path, or the disk's.
    pub fn name(&self) -> String {
        match &self.kind {
            Kind::Agent { agent, .. } => agent.display().to_string(),
            Kind::Disk { path, .. } => format!("the fence disk {}", path.display()),
        }
    }

    /// Runs one action of a fence agent; returns its exit status.
    pub async fn run(&self, action: &str, node: &str) -> Result<i32, String> {
        let Kind::Agent { agent, params, password_file } = &self.kind else {
            return Err(format!("{} runs no fence agent", self.name()));
        };
        let mut input = format!("action={action}\nplug={node}\nport={node}\nnodename={node}\n");
        for (k, v) in params {
            input += &format!("{k}={v}\n");
        }
        if let Some(file) = password_file {
            let pw = std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
            input += &format!("password={}\n", pw.trim_end_matches('\n'));
        }
        let ran = crate::program::Program::new(&[agent])
            .input(input.as_bytes())
            .limit(self.timeout)
            .run()
            .await
            .map_err(|e| format!("fence agent ({action} {node}): {e}"))?;
        Ok(ran.code)
    }

    /// Powers `node` off and confirms it is off; for a disk, writes the
    /// pill and waits `msgwait`, after which the node's guard has taken it
    /// down (or the disk's header lied about its timing).
    pub async fn off(&self, node: &str) -> Result<(), String> {
        tokio::time::sleep(self.delay + random_up_to(self.delay_max)).await;
        match &self.kind {
            Kind::Agent { agent, .. } => {
                let code = self.run("off", node).await?;
                if code != 0 {
                    return Err(format!("fence agent {} could not turn {node} off (exit {code})", agent.display()));
                }
                match self.run("status", node).await? {
                    STATUS_OFF => Ok(()),
                    code => {
                        Err(format!("fence agent {} did not confirm {node} off (status exit {code})", agent.display()))
                    }
                }
            }
            Kind::Disk { path, from } => {
                let (path, from, victim) = (path.clone(), from.clone(), node.to_string());
                let write = tokio::task::spawn_blocking(move || -> std::io::Result<Duration> {
                    let disk = crate::fence_disk::Disk::open(&path)?;
                    disk.write(&victim, crate::fence_disk::Message::Off, &from)?;
                    Ok(disk.header.msgwait)
                });
                let msgwait = match tokio::time::timeout(self.timeout, write).await {
                    Ok(Ok(Ok(msgwait))) => msgwait,
                    Ok(Ok(Err(e))) => return Err(format!("writing {node}'s pill: {e}")),
                    Ok(Err(e)) => return Err(format!("writing {node}'s pill: {e}")),
                    Err(_) => return Err(format!("writing {node}'s pill took over {:?}", self.timeout)),
                };
                tokio::time::sleep(msgwait).await;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_random_delay_stays_within_its_bound_and_varies() {
        assert_eq!(random_up_to(Duration::ZERO), Duration::ZERO);
        let max = Duration::from_millis(50);
        let draws: Vec<Duration> = (0..64).map(|_| random_up_to(max)).collect();
        assert!(draws.iter().all(|&d| d <= max));
        assert!(draws.iter().any(|&d| d != draws[0]), "random, not fixed");
    }
}
