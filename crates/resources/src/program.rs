//! Running a system program for a resource: no shell, a clean environment,
//! a time limit, killed if it overruns.

use std::time::Duration;

/// What a program left: its exit code (-1 for a signal), its stdout, and
/// all it printed (stdout then stderr), trimmed.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub text: String,
}

pub async fn run(argv: &[&str], limit: Duration) -> Result<Ran, String> {
    let out = tokio::time::timeout(
        limit,
        tokio::process::Command::new(argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("{} did not finish within {limit:?}", argv.join(" ")))?
    .map_err(|e| format!("running {}: {e}", argv[0]))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)).trim().to_string();
    Ok(Ran { code: out.status.code().unwrap_or(-1), stdout, text })
}
