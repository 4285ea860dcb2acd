//! Services and commands: `lsb` init scripts (LSB exit codes: `status` 0 =
//! running, 1–3 = not running, 4 = unknown), `systemd` units (`systemctl
//! start/stop/is-active`) and `exec` resources (your own start, stop and
//! monitor commands, exit 0 = success). All run through the one program
//! runner, without a shell, inside the resource's cgroup.

use std::path::PathBuf;
use std::time::Duration;

use crate::program::Program;
use crate::resource::{Context, Done, Resource};
use crate::undo::Undo;

/// An init script named without a path lives in /etc/init.d.
pub fn lsb_path(script: &str) -> PathBuf {
    if script.contains('/') {
        PathBuf::from(script)
    } else {
        PathBuf::from("/etc/init.d").join(script)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Status,
}

/// A service the system knows how to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Lsb(String),
    Systemd(String),
}

/// `systemctl ARGS...`, or the init script with one action.
pub fn command(kind: &Kind, action: Action) -> Vec<String> {
    match kind {
        Kind::Lsb(script) => vec![
            lsb_path(script).display().to_string(),
            match action {
                Action::Start => "start",
                Action::Stop => "stop",
                Action::Status => "status",
            }
            .into(),
        ],
        Kind::Systemd(unit) => {
            let verb = match action {
                Action::Start => "start",
                Action::Stop => "stop",
                Action::Status => "is-active",
            };
            let mut argv = vec!["systemctl".to_string(), verb.into()];
            if action == Action::Status {
                argv.push("--quiet".into());
            }
            argv.push(unit.clone());
            argv
        }
    }
}

/// Runs `argv` for a resource: in its cgroup, with its environment; Ok on exit 0.
async fn run(ctx: &Context, argv: &[String], limit: Duration) -> Result<(), String> {
    let ran = Program::new(argv).env(&ctx.env).cgroup(Some(&ctx.cgroup)).limit(limit).run().await?;
    for line in ran.tail().lines().filter(|l| !l.trim().is_empty()) {
        tracing::info!("baton: {}: {line}", argv[0]);
    }
    ran.success(&argv.join(" ")).map(|_| ())
}

/// An `lsb` or `systemd` resource.
pub struct Service {
    pub ctx: Context,
    pub kind: Kind,
}

impl Resource for Service {
    fn undo(&self) -> Vec<Undo> {
        match &self.kind {
            Kind::Systemd(unit) => vec![Undo::Unit { unit: unit.clone() }],
            Kind::Lsb(_) => vec![
                Undo::Cgroup { path: self.ctx.cgroup.path().to_path_buf() },
                Undo::Program { argv: command(&self.kind, Action::Stop), env: self.ctx.env.clone() },
            ],
        }
    }

    fn start(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move { run(&self.ctx, &command(&self.kind, Action::Start), limit).await })
    }

    fn stop(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move {
            run(&self.ctx, &command(&self.kind, Action::Stop), limit).await?;
            self.ctx.sweep(limit).await
        })
    }

    fn monitor(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move { run(&self.ctx, &command(&self.kind, Action::Status), limit).await })
    }
}

/// An `exec` resource: its own commands.
pub struct Exec {
    pub ctx: Context,
    pub start: Vec<String>,
    pub stop: Vec<String>,
    pub monitor: Option<Vec<String>>,
}

impl Resource for Exec {
    fn undo(&self) -> Vec<Undo> {
        vec![
            Undo::Cgroup { path: self.ctx.cgroup.path().to_path_buf() },
            Undo::Program { argv: self.stop.clone(), env: self.ctx.env.clone() },
        ]
    }

    fn start(&self, limit: Duration) -> Done<'_> {
        Box::pin(run(&self.ctx, &self.start, limit))
    }

    fn stop(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move {
            run(&self.ctx, &self.stop, limit).await?;
            self.ctx.sweep(limit).await
        })
    }

    /// Without a monitor command there is nothing to check.
    fn monitor(&self, limit: Duration) -> Done<'_> {
        Box::pin(async move {
            match &self.monitor {
                Some(argv) => run(&self.ctx, argv, limit).await,
                None => Ok(()),
            }
        })
    }
}

/// A unit enabled at boot may be started by systemd on a node that does not
/// own its set: say so.
pub async fn enabled_at_boot(unit: &str) -> bool {
    let ran = Program::new(&["systemctl", "is-enabled", unit]).limit(Duration::from_secs(5)).run().await;
    ran.is_ok_and(|r| r.stdout.trim() == "enabled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let lsb = Kind::Lsb("exim4".into());
        assert_eq!(command(&lsb, Action::Status), ["/etc/init.d/exim4", "status"]);
        let sd = Kind::Systemd("nginx.service".into());
        assert_eq!(command(&sd, Action::Start), ["systemctl", "start", "nginx.service"]);
        assert_eq!(command(&sd, Action::Status), ["systemctl", "is-active", "--quiet", "nginx.service"]);
    }
}
