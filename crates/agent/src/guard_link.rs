//! The agent's end of the guard: starts `baton guard` in its own process
//! group (so signals to the agent's group do not reach it) and keeps it
//! told what this node holds and until when.

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use baton_core::Input;
use baton_resources::netlink::Netlink;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

use crate::guard::{kill_all, Held};

/// The guard died under a running agent. Without its guard a node must not
/// hold anything: the agent kills what the guard held, then exits and lets
/// its supervisor restart it.
async fn lost(why: &str, held: &mut Held) -> ! {
    eprintln!("baton: lost the guard ({why}); killing everything this node ran and exiting");
    match Netlink::connect() {
        Ok(nl) => kill_all(&nl, held).await,
        Err(e) => eprintln!("baton: netlink for removing the addresses: {e}"),
    }
    std::process::exit(70);
}

#[derive(Clone)]
pub struct GuardLink {
    tx: mpsc::Sender<String>,
}

impl GuardLink {
    /// Starts the guard; its "fired" reports arrive on `inputs`. The
    /// receiver resolves once the guard has ended after the agent let it go.
    pub fn spawn(exe: &Path, inputs: mpsc::Sender<Input>) -> io::Result<(GuardLink, oneshot::Receiver<()>)> {
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
        let (ended_tx, ended) = oneshot::channel();
        tokio::spawn(async move {
            // What the guard holds, mirrored: if it dies, the agent does its job.
            let mut held = Held::default();
            loop {
                tokio::select! {
                    line = rx.recv() => match line {
                        Some(line) => {
                            let _ = held.update(&line);
                            if let Err(e) = stdin.write_all(format!("{line}\n").as_bytes()).await {
                                lost(&format!("writing to it: {e}"), &mut held).await;
                            }
                        }
                        None => {
                            // The agent is done: closing stdin ends the guard.
                            drop(stdin);
                            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                            let _ = ended_tx.send(());
                            return;
                        }
                    },
                    status = child.wait() => {
                        let why = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                        lost(&why, &mut held).await;
                    }
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
        Ok((GuardLink { tx }, ended))
    }

    async fn say(&self, line: String) {
        // The guard's task exits the process if the guard is gone, so a
        // closed channel only happens during shutdown.
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
