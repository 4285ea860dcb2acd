//! Running a system program for a resource: no shell, a clean environment,
//! a time limit, killed if it overruns.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// What a program left: its exit code (-1 for a signal), its stdout, and
/// all it printed (stdout then stderr), trimmed.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub text: String,
}

pub async fn run(argv: &[&str], limit: Duration) -> Result<Ran, String> {
    run_with_input(argv, b"", limit).await
}

/// The same, with `input` written to the program's stdin (then closed).
pub async fn run_with_input(argv: &[&str], input: &[u8], limit: Duration) -> Result<Ran, String> {
    let mut child = tokio::process::Command::new(argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("running {}: {e}", argv[0]))?;
    let mut stdin = child.stdin.take().expect("piped");
    let finished = async move {
        // A program that does not read its input may close it early: not an error.
        let _ = stdin.write_all(input).await;
        drop(stdin);
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(limit, finished)
        .await
        .map_err(|_| format!("{} did not finish within {limit:?}", argv.join(" ")))?
        .map_err(|e| format!("running {}: {e}", argv[0]))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)).trim().to_string();
    Ok(Ran { code: out.status.code().unwrap_or(-1), stdout, text })
}
