//! Services managed by the system: `lsb` init scripts (LSB exit codes:
//! `status` 0 = running, 1–3 = not running, 4 = unknown) and `systemd`
//! units (`systemctl start/stop/is-active`). Both run without a shell.

use std::path::PathBuf;
use std::time::Duration;

/// An init script named without a path lives in /etc/init.d.
pub fn lsb_path(script: &str) -> PathBuf {
    if script.contains('/') {
        PathBuf::from(script)
    } else {
        PathBuf::from("/etc/init.d").join(script)
    }
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Lsb(String),
    Systemd(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Status,
}

/// Runs one action; Ok(exit code).
pub async fn run(kind: &Kind, action: Action, env: &[(String, String)], limit: Duration) -> Result<i32, String> {
    let argv = command(kind, action);
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(limit, cmd.status()).await {
        Err(_) => Err(format!("{} did not finish within {limit:?}", argv.join(" "))),
        Ok(Err(e)) => Err(format!("running {}: {e}", argv.join(" "))),
        Ok(Ok(status)) => Ok(status.code().unwrap_or(1)),
    }
}

/// A unit enabled at boot may be started by systemd on a node that does not
/// own its set: say so.
pub async fn enabled_at_boot(unit: &str) -> bool {
    let out = tokio::process::Command::new("systemctl").args(["is-enabled", unit]).output().await;
    out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "enabled")
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
