//! The `ocf` resource: the real OCF resource agents (Debian's
//! `resource-agents`), run the way Pacemaker runs them — `OCF_ROOT`,
//! `OCF_RESOURCE_INSTANCE/TYPE/PROVIDER`, every parameter as
//! `OCF_RESKEY_<name>`, `OCF_RESKEY_CRM_meta_interval` and `_timeout` in
//! milliseconds — with Pacemaker's table of exit codes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroup::Cgroup;
use crate::program::Program;
use crate::resource::{Context, Done, Resource};
use crate::undo::Undo;

pub const DEFAULT_ROOT: &str = "/usr/lib/ocf";

pub const OCF_SUCCESS: i32 = 0;
pub const OCF_NOT_RUNNING: i32 = 7;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub root: PathBuf,
    pub provider: String,
    pub kind: String,
    /// OCF_RESOURCE_INSTANCE: unique per resource in the cluster.
    pub instance: String,
    pub params: Vec<(String, String)>,
    /// HA_RSCTMP: where agents keep their run-time state (per node).
    pub tmp: Option<PathBuf>,
}

/// How bad a failure is (Pacemaker's classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Restart here, then move: generic errors (1), promoted-role errors (8, 9)
    /// and codes the table does not know. Code 1 is soft, as in Pacemaker:
    /// agents return it for transient trouble as often as for real breakage.
    Soft,
    /// Never on this node until cleared: bad arguments (2), unimplemented (3),
    /// permissions (4), not installed (5).
    Hard,
    /// Stopped everywhere: not configured (6) — no node can run it.
    Fatal,
}

pub fn severity(code: i32) -> Severity {
    match code {
        2..=5 => Severity::Hard,
        6 => Severity::Fatal,
        _ => Severity::Soft,
    }
}

/// What one run of an agent action said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    /// The `ocf-exit-reason:` lines the agent printed.
    pub reasons: Vec<String>,
}

impl Outcome {
    /// Success, or a degraded success (190, 191).
    pub fn ok(&self) -> bool {
        matches!(self.code, 0 | 190 | 191)
    }

    pub fn describe(&self, action: &str, agent: &Agent) -> String {
        let reason = if self.reasons.is_empty() { String::new() } else { format!(": {}", self.reasons.join("; ")) };
        format!(
            "{}:{} {action} exited with {} ({:?}){reason}",
            agent.provider,
            agent.kind,
            self.code,
            severity(self.code)
        )
    }
}

impl Agent {
    pub fn path(&self) -> PathBuf {
        self.root.join("resource.d").join(&self.provider).join(&self.kind)
    }

    pub fn installed(&self) -> bool {
        self.path().is_file()
    }

    pub fn env(&self, interval: Duration, timeout: Duration) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".into(), crate::program::PATH.into()),
            ("OCF_ROOT".into(), self.root.display().to_string()),
            ("OCF_RESOURCE_INSTANCE".into(), self.instance.clone()),
            ("OCF_RESOURCE_TYPE".into(), self.kind.clone()),
            ("OCF_RESOURCE_PROVIDER".into(), self.provider.clone()),
            ("OCF_RESKEY_CRM_meta_interval".into(), interval.as_millis().to_string()),
            ("OCF_RESKEY_CRM_meta_timeout".into(), timeout.as_millis().to_string()),
        ];
        env.extend(self.params.iter().map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.clone())));
        if let Some(tmp) = &self.tmp {
            env.push(("HA_RSCTMP".into(), tmp.display().to_string()));
        }
        env
    }

    /// Runs `action`; a timeout kills the agent and counts as a generic
    /// error. With a cgroup, the agent and every daemon it forks live in it.
    pub async fn run_in(
        &self,
        cgroup: Option<&Cgroup>,
        action: &str,
        interval: Duration,
        timeout: Duration,
    ) -> Outcome {
        let argv = [self.path().display().to_string(), action.to_string()];
        let ran = Program::new(&argv).env(&self.env(interval, timeout)).cgroup(cgroup).limit(timeout).run().await;
        match ran {
            Err(e) if e.contains("did not finish") => Outcome { code: 1, reasons: vec![e] },
            Err(e) => Outcome { code: 5, reasons: vec![e] },
            Ok(ran) => {
                let reasons = ran
                    .text
                    .lines()
                    .filter_map(|l| l.split_once("ocf-exit-reason:").map(|(_, r)| r.trim().to_string()))
                    .collect();
                // A signal is not an exit code; treat it as a generic error.
                Outcome { code: if ran.code < 0 { 1 } else { ran.code }, reasons }
            }
        }
    }

    pub async fn run(&self, action: &str, interval: Duration, timeout: Duration) -> Outcome {
        self.run_in(None, action, interval, timeout).await
    }

    /// The agent's advised timeouts from `meta-data`: (start, stop, monitor
    /// timeout, monitor interval), each if given.
    pub async fn advised(&self) -> [Option<Duration>; 4] {
        let argv = [self.path().display().to_string(), "meta-data".to_string()];
        let limit = Duration::from_secs(10);
        match Program::new(&argv).env(&self.env(Duration::ZERO, limit)).limit(limit).run().await {
            Ok(ran) if ran.code == 0 => parse_actions(&ran.stdout),
            _ => [None; 4],
        }
    }
}

/// The `ocf` resource: an agent run in the resource's cgroup.
pub struct Ocf {
    pub ctx: Context,
    pub agent: Agent,
    /// The monitor interval the agent is told (OCF_RESKEY_CRM_meta_interval).
    pub interval: Duration,
}

impl Resource for Ocf {
    fn undo(&self) -> Vec<Undo> {
        let argv = vec![self.agent.path().display().to_string(), "stop".to_string()];
        let env = self.agent.env(Duration::ZERO, baton_core::release::Phase::Programs.budget());
        vec![Undo::Cgroup { path: self.ctx.cgroup.path().to_path_buf() }, Undo::Program { argv, env }]
    }

    /// A probe first: an agent already running here needs no start.
    fn start(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move {
            let cg = Some(&self.ctx.cgroup);
            if self.agent.run_in(cg, "monitor", self.interval, limit).await.code == OCF_SUCCESS {
                return Ok(());
            }
            let out = self.agent.run_in(cg, "start", Duration::ZERO, limit).await;
            if out.ok() {
                Ok(())
            } else {
                Err(out.describe("start", &self.agent))
            }
        })
    }

    fn stop(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move {
            let out = self.agent.run_in(Some(&self.ctx.cgroup), "stop", Duration::ZERO, limit).await;
            if !(out.ok() || out.code == OCF_NOT_RUNNING) {
                return Err(out.describe("stop", &self.agent));
            }
            self.ctx.sweep(limit).await
        })
    }

    fn monitor(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move {
            let out = self.agent.run_in(Some(&self.ctx.cgroup), "monitor", self.interval, limit).await;
            if out.ok() {
                Ok(())
            } else {
                Err(out.describe("monitor", &self.agent))
            }
        })
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
    Some(tag[at..].split('"').next()?.to_string())
}

/// "20s", "20", "500ms", "2m" → a duration (OCF meta-data style).
fn ocf_duration(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n * 60),
        _ => return None,
    })
}

/// Reads `<action name=.. timeout=.. interval=..>` from meta-data XML.
pub fn parse_actions(xml: &str) -> [Option<Duration>; 4] {
    let mut out = [None; 4];
    for tag in xml.split('<').filter(|t| t.starts_with("action ")) {
        let timeout = attr(tag, "timeout").and_then(|t| ocf_duration(&t));
        match attr(tag, "name").as_deref() {
            Some("start") => out[0] = timeout,
            Some("stop") => out[1] = timeout,
            Some("monitor") if out[2].is_none() => {
                out[2] = timeout;
                out[3] = attr(tag, "interval").and_then(|i| ocf_duration(&i)).filter(|d| !d.is_zero());
            }
            _ => {}
        }
    }
    out
}

/// Where OCF agents live: `$OCF_ROOT` of the agent's own environment, else
/// Debian's place.
pub fn root() -> PathBuf {
    std::env::var_os("OCF_ROOT").map_or_else(|| Path::new(DEFAULT_ROOT).to_path_buf(), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacemaker_s_table() {
        assert_eq!(severity(1), Severity::Soft);
        for code in 2..=5 {
            assert_eq!(severity(code), Severity::Hard);
        }
        assert_eq!(severity(6), Severity::Fatal);
        assert_eq!(severity(9), Severity::Soft);
        assert!(Outcome { code: 190, reasons: vec![] }.ok());
        assert!(!Outcome { code: 7, reasons: vec![] }.ok());
    }

    #[test]
    fn advised_timeouts_come_from_the_action_tags() {
        let xml = r#"<actions>
<action name="start"        timeout="20s" />
<action name="stop"         timeout="30" />
<action name="monitor"      timeout="15s" interval="10s" depth="0" />
<action name="monitor"      timeout="99s" interval="60s" role="Promoted" />
<action name="meta-data"    timeout="5s" />
</actions>"#;
        let s = Duration::from_secs;
        assert_eq!(parse_actions(xml), [Some(s(20)), Some(s(30)), Some(s(15)), Some(s(10))]);
        assert_eq!(parse_actions("<resource-agent/>"), [None; 4]);
    }
}
