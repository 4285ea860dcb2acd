//! The guard's watchdog, against a stand-in: no real watchdog device can be
//! exercised here (it would reset this machine), so a plain file stands in
//! for /dev/watchdog — every pet is a byte written to it, and the magic
//! close a final `V`. What is tested is the petting rule on the real guard
//! process: it pets while a reset, were it to stop, would come before its
//! deadline; not in the last watchdog timeout before it; again once it has
//! released everything; and it disarms the watchdog when the agent lets it go.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use baton_agent::guard::{monotonic_ms, Order};

fn size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A guard started with `args`, once it said it is ready: the process,
/// its stdin and its stdout.
fn ready_guard(args: &[&std::ffi::OsStr]) -> (Child, ChildStdin, BufReader<ChildStdout>) {
    let mut guard = Command::new(env!("CARGO_BIN_EXE_baton-guard"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting baton-guard");
    let mut out = BufReader::new(guard.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let stdin = guard.stdin.take().unwrap();
    (guard, stdin, out)
}

#[test]
fn the_guard_stops_petting_a_timeout_before_its_deadline_and_resumes_once_released() {
    let file = std::env::temp_dir().join(format!("baton-watchdog-{}", std::process::id()));
    std::fs::write(&file, "").unwrap();
    let (mut guard, mut stdin, mut out) =
        ready_guard(&["--watchdog".as_ref(), file.as_os_str(), "--watchdog-timeout-ms".as_ref(), "400".as_ref()]);
    let t0 = Instant::now();
    let deadline = monotonic_ms() + 1500;
    writeln!(stdin, "{}", serde_json::to_string(&Order::Deadline(Some(deadline))).unwrap()).unwrap();
    let at = |ms: u64| std::thread::sleep(Duration::from_millis(ms).saturating_sub(t0.elapsed()));
    at(900);
    let early = size(&file);
    assert!(early >= 3, "pets while the deadline is far: {early} bytes");
    at(1200);
    let quiet_from = size(&file);
    at(1450);
    assert_eq!(size(&file), quiet_from, "no pet within a watchdog timeout of the deadline");
    let mut fired = String::new();
    out.read_line(&mut fired).unwrap();
    assert_eq!(fired.trim(), format!("fired {deadline}"), "the report names the deadline it fired");
    let released = size(&file);
    std::thread::sleep(Duration::from_millis(500));
    assert!(size(&file) > released, "pets again once everything is released");
    drop(stdin);
    assert!(guard.wait().unwrap().success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.ends_with('V'), "the magic close when the agent lets the guard go: {text:?}");
    let _ = std::fs::remove_file(&file);
}

/// One guard at a time per node: a guard whose agent died may still be
/// releasing; the next agent's guard is ready only once it has finished.
#[test]
fn a_second_guard_is_ready_only_once_the_first_has_let_go() {
    let lock = std::env::temp_dir().join(format!("baton-guard-lock-{}", std::process::id()));
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_baton-guard"))
            .arg("--lock")
            .arg(&lock)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting baton-guard")
    };
    let ready = |child: &mut std::process::Child| {
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        line.trim().to_string()
    };
    let mut first = start();
    assert_eq!(ready(&mut first), "ready");
    let mut second = start();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut out = BufReader::new(second.stdout.take().unwrap());
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
    });
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err(), "the second guard waits");
    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().trim(), "ready");
    drop(second.stdin.take());
    assert!(second.wait().unwrap().success());
    let _ = std::fs::remove_file(&lock);
}

/// A stop program runs once per firing: when the agent dies after its
/// guard fired, the set may already run on another node, so the guard
/// undoes only what a syscall undoes again (the soak caught a fired
/// guard running a set's stop command a second time, beside the owner).
#[test]
fn a_fired_guard_does_not_run_stop_programs_again_when_its_agent_dies() {
    use baton_resources::undo::Undo;
    let file = std::env::temp_dir().join(format!("baton-guard-stops-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let (mut guard, mut stdin, mut out) = ready_guard(&[]);
    let stop = Undo::Program {
        argv: vec!["sh".into(), "-c".into(), format!("echo stopped >> {}", file.display())],
        env: vec![],
    };
    let deadline = monotonic_ms() + 200;
    for order in [Order::Hold(stop), Order::Deadline(Some(deadline))] {
        writeln!(stdin, "{}", serde_json::to_string(&order).unwrap()).unwrap();
    }
    let mut fired = String::new();
    out.read_line(&mut fired).unwrap();
    assert_eq!(fired.trim(), format!("fired {deadline}"));
    drop(stdin);
    assert!(guard.wait().unwrap().success());
    let ran = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    assert_eq!(ran.lines().count(), 1, "the stop program ran once: {ran:?}");
}
