//! `baton handover`: the agent executes its program again — the binary at
//! the path it was started from, so an upgraded one — in the same process,
//! and the new program carries on with the sets still running. The core
//! decides whether it may (`Request::Handover`); this file writes down what
//! the next program needs ([`Record`], in the environment variable
//! [`ENV`]), keeps the guard's pipes and the programs' output pipes open
//! across exec, and reads it all back on the other side.
//! ARCHITECTURE.md, "A handover", gives the safety argument.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use baton_config::Config;
use baton_core::node::Handover;
use baton_core::{SetId, Time};
use serde::{Deserialize, Serialize};

use super::Agent;
use crate::exec::Books;
use crate::guard::monotonic_us;
use crate::guard_link::Kept;

/// The environment variable a handing-over agent passes its record in.
pub const ENV: &str = "BATON_HANDOVER";

/// What one program of the agent hands the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub incarnation: u64,
    pub epoch: u64,
    /// The lease's end (the guard's deadline), on CLOCK_MONOTONIC in µs.
    pub lease_end_us: Option<u64>,
    pub next_seq: u64,
    /// The sets running, by name, with the generation each runs at.
    pub running: Vec<(String, u64)>,
    /// How many commands the agreed state had applied, and the Raft log
    /// index it was at: the next program replays at least that far.
    pub applied: u64,
    pub raft_index: u64,
    pub guard: Kept,
    pub books: Books,
}

/// A record handed to this program, with the instant its clock starts at
/// (and that instant on CLOCK_MONOTONIC, in µs).
pub struct Handed {
    pub record: Record,
    pub start: Instant,
    start_us: u64,
}

impl Handed {
    /// The record in the environment, if this program was started by a
    /// handover; removed from the environment, so no child inherits it.
    pub fn take() -> Result<Option<Handed>, String> {
        let (start, start_us) = (Instant::now(), monotonic_us());
        let Some(text) = std::env::var_os(ENV) else { return Ok(None) };
        std::env::remove_var(ENV);
        let text = text.to_str().ok_or_else(|| format!("{ENV} is not UTF-8"))?;
        let record = serde_json::from_str(text).map_err(|e| format!("the handover record in {ENV}: {e}"))?;
        Ok(Some(Handed { record, start, start_us }))
    }

    /// A CLOCK_MONOTONIC µs on this program's clock (one ms early: the
    /// lease is only ever shortened by the conversion). The same `us`
    /// always gives the same time: the guard's report of a deadline must
    /// name exactly the one the core holds.
    pub fn time_of(&self, us: u64) -> Time {
        Time(us.saturating_sub(self.start_us).saturating_sub(1000))
    }

    /// The core's handover, with the sets' names mapped to this
    /// configuration's: a set handed over that this one lacks is an error
    /// (its resources run, and nothing here would watch them).
    pub fn handover(&self, config: &Config) -> Result<Handover, String> {
        let r = &self.record;
        let running = r
            .running
            .iter()
            .map(|(name, generation)| match config.sets.iter().position(|s| &s.name == name && !s.nodes.is_empty()) {
                Some(i) => Ok((i as SetId, *generation)),
                None => Err(format!(
                    "the set {name} was handed over running, but {} has no such set",
                    config.file.display()
                )),
            })
            .collect::<Result<_, String>>()?;
        Ok(Handover {
            incarnation: r.incarnation,
            epoch: r.epoch,
            lease_end: r.lease_end_us.map(|us| self.time_of(us)),
            next_seq: r.next_seq,
            running,
            applied: r.applied,
        })
    }
}

/// How long the old program gives the caller's answer to leave.
const ANSWER_LEAVES: Duration = Duration::from_millis(50);

/// Checks that the programs at `exe` (the daemon, `batond`) and beside it
/// (the command-line tool, `baton`) start, and that `baton config check`
/// accepts `config`, before the core is asked: a handover to a program
/// that cannot start would end in a failover.
pub fn check(exe: &Path, config: &Path) -> Result<(), String> {
    let cli = exe.with_file_name("baton");
    let mut config_check = std::process::Command::new(&cli);
    config_check.arg("--config").arg(config).args(["config", "check"]);
    let mut daemon = std::process::Command::new(exe);
    daemon.args(["agent", "--help"]);
    let refuses = format!("refuses {}", config.display());
    for (program, mut cmd, what) in [(cli.as_path(), config_check, refuses.as_str()), (exe, daemon, "does not start")] {
        let out = cmd.output().map_err(|e| format!("{} cannot be run: {e}", program.display()))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(format!("{} {what}: {}", program.display(), said.trim()));
        }
    }
    Ok(())
}

impl Agent {
    /// The core handed over: everything the next program needs is written
    /// down, the descriptors it needs stay open, and this process executes
    /// the program at the agent's path. Returns only if that fails.
    pub(super) async fn hand_over(self, h: Handover) -> String {
        let now = self.now();
        let mono = monotonic_us();
        let running: Vec<SetId> = h.running.iter().map(|&(s, _)| s).collect();
        let guard = match self.guard.keep().await {
            Ok(kept) => kept,
            Err(e) => return format!("handing the guard over: {e}"),
        };
        let record = Record {
            incarnation: h.incarnation,
            epoch: h.epoch,
            lease_end_us: h.lease_end.map(|t| (mono + t.0).saturating_sub(now.0)),
            next_seq: h.next_seq,
            running: h.running.iter().map(|&(s, g)| (self.config.sets[usize::from(s)].name.clone(), g)).collect(),
            applied: h.applied,
            raft_index: self.applied_index,
            guard,
            books: self.exec.keep(&running),
        };
        let names: Vec<&str> = record.running.iter().map(|(n, _)| n.as_str()).collect();
        let msg = format!(
            "handing over to {} (incarnation {}); left running: {}",
            self.exe.display(),
            h.incarnation,
            if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
        );
        tracing::info!("baton: {msg}");
        self.events.record("agent", None, msg, None, None);
        // Callers reach the next program's socket, not this one's.
        let _ = std::fs::remove_file(&self.socket);
        // The caller's answer and Raft's last words go out first.
        tokio::time::sleep(ANSWER_LEAVES).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.raft.shutdown()).await;
        let text = serde_json::to_string(&record).expect("a record serializes");
        let mut args = std::env::args_os();
        let name = args.next().unwrap_or_else(|| self.exe.clone().into_os_string());
        let err = std::process::Command::new(&self.exe).arg0(name).args(args).env(ENV, text).exec();
        format!("executing {} for the handover: {err}", self.exe.display())
    }
}
