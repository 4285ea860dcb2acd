//! The agent's end of the guard: starts `baton guard` in its own process
//! group (so signals to the agent's group do not reach it) and keeps it
//! told what this node holds and until when.

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;

use baton_core::Input;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct GuardLink {
    tx: mpsc::Sender<String>,
}

impl GuardLink {
    /// Starts the guard; its "fired" reports arrive on `inputs`.
    pub fn spawn(exe: &Path, inputs: mpsc::Sender<Input>) -> io::Result<(GuardLink, Child)> {
        let mut child = Command::new(exe)
            .arg("guard")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting the guard ({}): {e}", exe.display())))?;
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, mut rx) = mpsc::channel::<String>(256);
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if let Err(e) = stdin.write_all(format!("{line}\n").as_bytes()).await {
                    // Without its guard a node must not hold anything: stop here,
                    // and let the supervisor restart the agent.
                    eprintln!("baton: lost the guard ({e}); exiting");
                    std::process::exit(70);
                }
            }
        });
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "fired" && inputs.send(Input::GuardFired).await.is_err() {
                    return;
                }
            }
        });
        Ok((GuardLink { tx }, child))
    }

    async fn say(&self, line: String) {
        // The writer exits the process if the guard is gone, so a closed
        // channel only happens during shutdown.
        let _ = self.tx.send(line).await;
    }

    pub async fn deadline(&self, monotonic_ms: Option<u64>) {
        self.say(monotonic_ms.map_or_else(|| "deadline none".into(), |ms| format!("deadline {ms}"))).await
    }

    pub async fn hold_ip(&self, ip: IpAddr) {
        self.say(format!("hold ip {ip}")).await
    }

    pub async fn drop_ip(&self, ip: IpAddr) {
        self.say(format!("drop ip {ip}")).await
    }

    pub async fn hold_pgid(&self, pgid: i32) {
        self.say(format!("hold pgid {pgid}")).await
    }

    pub async fn drop_pgid(&self, pgid: i32) {
        self.say(format!("drop pgid {pgid}")).await
    }
}
