//! The one way baton runs a program: no shell, a clean environment, a time
//! limit (the program is killed if it overruns), its output captured and
//! capped, and — for anything a set runs — placed in the set's cgroup
//! before it executes.
//!
//! A program that starts a daemon often leaves that daemon holding its
//! stdout and stderr; waiting for the end of its output would then wait
//! for the daemon. So the runner waits for the program itself to exit and
//! takes what it printed until then, plus a moment.

use std::ffi::OsStr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::cgroup::Cgroup;

/// The PATH every program gets.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How much of a program's output is kept.
const OUTPUT_MAX_BYTES: usize = 64 * 1024;
/// How long output is still collected after the program exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(50);

/// What a program left: its exit code (-1 for a signal), its stdout, and
/// all it printed (stdout then stderr), trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub text: String,
}

impl Ran {
    /// Ok on exit 0, else an error naming the program, its code and output.
    pub fn success(self, what: &str) -> Result<Ran, String> {
        if self.code == 0 {
            Ok(self)
        } else {
            Err(format!("{what} exited with {}: {}", self.code, self.tail()))
        }
    }

    /// The last part of what it printed, for a log line or an error.
    pub fn tail(&self) -> &str {
        let cut = self.text.len().saturating_sub(2000);
        let start = (cut..self.text.len()).find(|&i| self.text.is_char_boundary(i)).unwrap_or(self.text.len());
        &self.text[start..]
    }
}

/// One program to run.
pub struct Program {
    cmd: tokio::process::Command,
    name: String,
    input: Vec<u8>,
    limit: Duration,
    cgroup: Option<Cgroup>,
}

impl Program {
    /// `argv[0]` with its arguments, with PATH as the only variable.
    pub fn new<S: AsRef<OsStr>>(argv: &[S]) -> Program {
        let (first, rest) = argv.split_first().expect("a program has a name");
        let mut cmd = tokio::process::Command::new(first);
        cmd.args(rest).env_clear().env("PATH", PATH).kill_on_drop(true);
        inherit_nothing(&mut cmd);
        Program {
            cmd,
            name: first.as_ref().to_string_lossy().into_owned(),
            input: Vec::new(),
            limit: Duration::from_secs(20),
            cgroup: None,
        }
    }

    pub fn env(mut self, vars: &[(String, String)]) -> Program {
        self.cmd.envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self
    }

    /// Written to its stdin, which is then closed.
    pub fn input(mut self, bytes: &[u8]) -> Program {
        self.input = bytes.to_vec();
        self
    }

    pub fn limit(mut self, limit: Duration) -> Program {
        self.limit = limit;
        self
    }

    /// Runs it inside `cgroup`, from before its first instruction.
    pub fn cgroup(mut self, cgroup: Option<&Cgroup>) -> Program {
        self.cgroup = cgroup.cloned();
        self
    }

    pub async fn run(self) -> Result<Ran, String> {
        let Program { mut cmd, name, input, limit, cgroup } = self;
        if let Some(cg) = &cgroup {
            cg.placement().map_err(|e| format!("running {name}: {e}"))?.apply(&mut cmd);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = spawn(cmd).await.map_err(|e| format!("running {name}: {e}"))?;
        let mut stdin = child.stdin.take().expect("piped");
        let out = collect(child.stdout.take().expect("piped"));
        let err = collect(child.stderr.take().expect("piped"));
        let exited = async move {
            // A program that does not read its input may close it early: not an error.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
            child.wait().await
        };
        let status = match tokio::time::timeout(limit, exited).await {
            Err(_) => return Err(format!("{name} did not finish within {limit:?}")),
            Ok(Err(e)) => return Err(format!("running {name}: {e}")),
            Ok(Ok(status)) => status,
        };
        let stdout = gather(out).await;
        let stderr = gather(err).await;
        let text = format!("{stdout}{stderr}").trim().to_string();
        Ok(Ran { code: status.code().unwrap_or(-1), stdout, text })
    }
}

/// A stream's bytes as they arrive, capped.
type Collected = (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<u8>>>);

fn collect(mut stream: impl AsyncRead + Unpin + Send + 'static) -> Collected {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&buf);
    let reader = tokio::spawn(async move {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            let mut buf = into.lock().expect("not poisoned");
            let room = OUTPUT_MAX_BYTES.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..n.min(room)]);
        }
    });
    (reader, buf)
}

/// What a reader collected, waiting at most a moment for the end of a
/// stream that a daemon may keep open.
async fn gather((reader, buf): Collected) -> String {
    let abort = reader.abort_handle();
    if tokio::time::timeout(OUTPUT_GRACE, reader).await.is_err() {
        abort.abort();
    }
    let bytes = std::mem::take(&mut *buf.lock().expect("not poisoned"));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Starts `cmd` on a thread of the blocking pool, not the caller's. Fork
/// and exec return only once the child entered its cgroup and executed,
/// and entering a cgroup takes the kernel's cgroup locks: with tens of sets
/// starting and stopping at once (a lab of 7 nodes and 300 sets) one start
/// took 1.2 s, and on the agent's loop it held the heartbeats that long.
pub async fn spawn(mut cmd: tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    tokio::task::spawn_blocking(move || cmd.spawn()).await.map_err(std::io::Error::other)?
}

/// The child keeps no descriptor of the agent's but its standard ones: each
/// above stderr is closed as it executes. A program or script a set runs
/// never holds the agent's sockets (a packet socket a program inherited
/// received every ARP on its link, for as long as the program ran).
pub fn inherit_nothing(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure makes one system call, close_range(2), which is
    // async-signal-safe; marking descriptors close-on-exec leaves the ones
    // the standard library still needs until the exec open.
    unsafe {
        cmd.pre_exec(|| {
            let all = libc::c_uint::MAX;
            match libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, all, libc::CLOSE_RANGE_CLOEXEC) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_program_inherits_no_descriptor_of_the_agents() {
        // SAFETY: open(2) of a constant path; the descriptor is closed below.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
        assert!(fd > 2, "{fd}");
        let ran = Program::new(&["sh", "-c", &format!("test -e /proc/self/fd/{fd} && echo inherited || echo none")])
            .run()
            .await
            .unwrap();
        // SAFETY: the descriptor opened above, closed once.
        unsafe { libc::close(fd) };
        assert_eq!(ran.stdout, "none\n");
    }

    #[tokio::test]
    async fn a_program_runs_with_a_clean_environment_and_its_input() {
        let ran = Program::new(&["sh", "-c", "read x; echo \"$x $FOO ${HOME:-nohome}\"; echo oops >&2; exit 3"])
            .env(&[("FOO".into(), "bar".into())])
            .input(b"hello\n")
            .run()
            .await
            .unwrap();
        assert_eq!(ran.code, 3);
        assert_eq!(ran.stdout, "hello bar nohome\n");
        assert_eq!(ran.text, "hello bar nohome\noops");
        assert!(ran.success("sh").unwrap_err().contains("exited with 3"));
    }

    #[tokio::test]
    async fn an_overrun_is_an_error_and_a_daemon_holding_the_output_is_not_waited_for() {
        let err = Program::new(&["sleep", "5"]).limit(Duration::from_millis(100)).run().await.unwrap_err();
        assert!(err.contains("did not finish within"), "{err}");
        let started = std::time::Instant::now();
        // The background sleep keeps stdout open after sh exits.
        let ran = Program::new(&["sh", "-c", "sleep 3 & echo started"]).run().await.unwrap();
        assert_eq!((ran.code, ran.stdout.as_str()), (0, "started\n"));
        assert!(started.elapsed() < Duration::from_secs(2), "waited for the daemon: {:?}", started.elapsed());
    }
}
