//! False failovers: a settled lab left alone for minutes with both cores
//! busy (stress-ng) and 5 % of the packets lost on every link (nftables
//! `numgen random` drop rules in every node namespace — this kernel has no
//! netem). Every time a node takes the address is an ownership change no
//! fault caused.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::watch::Watch;
use crate::net::Lab;

pub struct Quiet {
    pub takeovers: usize,
    pub dual_ms: u64,
}

/// The nftables table of the loss rule.
pub const LOSS_TABLE: &str = "inet baton_lab_loss";

/// The drop rule, in its own table so it cannot touch anything else.
pub fn loss_rules(percent: u32) -> String {
    format!(
        "table {LOSS_TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    \
         iifname \"eth*\" numgen random mod 100 < {percent} drop\n  }}\n}}\n"
    )
}

pub fn nft(ns: &str, script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft (nftables): {e}"))?;
    child.stdin.take().expect("piped").write_all(script.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("nft in {ns}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Kills stress-ng however the measurement ends.
struct Stress(std::process::Child);

impl Drop for Stress {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group of the stress-ng started here.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

pub fn false_failovers(lab: &Lab, window: Duration) -> Result<Quiet, String> {
    use std::os::unix::process::CommandExt;
    lab.wait_running(Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(3));
    let holder = lab.vip_holder().ok_or("the address is nowhere")?;
    for node in &lab.nodes {
        nft(&lab.ns(node)?, &loss_rules(5))?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _stress = Stress(
        Command::new("stress-ng")
            .args(["--cpu", &cores.to_string(), "--timeout", &format!("{}s", window.as_secs() + 5), "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting stress-ng (apt-get install stress-ng): {e}"))?,
    );
    let marker = lab.nodes.iter().find(|n| **n != holder).unwrap_or(&holder).clone();
    let watch = Watch::start(lab, &marker)?;
    std::thread::sleep(window);
    let w = watch.finish()?;
    Ok(Quiet { takeovers: w.takeovers(), dual_ms: w.dual_us([holder].into()) / 1000 })
}
