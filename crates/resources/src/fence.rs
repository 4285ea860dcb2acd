//! Fence devices through the standard fence-agents interface: the agent
//! reads `key=value` lines on stdin (`action=`, `plug=`/`port=`/`nodename=`,
//! the device's parameters, `password=` read from a file — never a command
//! line argument), and answers with its exit status. An "off" counts only
//! once a `status` confirms the node off (exit 2).

use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub agent: PathBuf,
    pub params: Vec<(String, String)>,
    pub password_file: Option<PathBuf>,
    /// Waited before fencing: in a two-node cluster, give one side a head
    /// start so the two never fence each other at once.
    pub delay: Duration,
    /// A random extra wait, up to this: two nodes fencing each other at
    /// once rarely both go ahead (Pacemaker's `pcmk_delay_max`).
    pub delay_max: Duration,
    pub timeout: Duration,
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
    fn stdin(&self, action: &str, node: &str) -> Result<String, String> {
        let mut text = format!("action={action}\nplug={node}\nport={node}\nnodename={node}\n");
        for (k, v) in &self.params {
            text += &format!("{k}={v}\n");
        }
        if let Some(file) = &self.password_file {
            let pw = std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
            text += &format!("password={}\n", pw.trim_end_matches('\n'));
        }
        Ok(text)
    }

    /// Runs one action; returns the agent's exit status.
    pub async fn run(&self, action: &str, node: &str) -> Result<i32, String> {
        let input = self.stdin(action, node)?;
        let ran = crate::program::Program::new(&[&self.agent])
            .input(input.as_bytes())
            .limit(self.timeout)
            .run()
            .await
            .map_err(|e| format!("fence agent ({action} {node}): {e}"))?;
        Ok(ran.code)
    }

    /// Powers `node` off and confirms it is off.
    pub async fn off(&self, node: &str) -> Result<(), String> {
        tokio::time::sleep(self.delay + random_up_to(self.delay_max)).await;
        let code = self.run("off", node).await?;
        if code != 0 {
            return Err(format!("fence agent {} could not turn {node} off (exit {code})", self.agent.display()));
        }
        match self.run("status", node).await? {
            STATUS_OFF => Ok(()),
            code => {
                Err(format!("fence agent {} did not confirm {node} off (status exit {code})", self.agent.display()))
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
