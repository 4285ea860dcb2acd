//! End-to-end: Pacemaker+Corosync in the lab (`lab up --pacemaker`), three
//! machine nodes and a client in its own namespace. When the owner of `web`
//! is powered off, Pacemaker fences it through the lab's power switch and
//! moves the group; the client is served by another node. Needs root and
//! the Pacemaker root (built once, from Debian's mirror); the lab's names
//! start with `btpm-`, apart from the other lab tests'.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const VIP: &str = "10.88.0.100";
const PREFIX: &str = "btpm-";
const NODES: [&str; 3] = ["alpha", "beta", "gamma"];

fn lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton-lab")).args(args).output().expect("running baton-lab")
}

/// A Pacemaker lab; `down` on drop, also when the test fails.
struct Lab {
    dir: PathBuf,
}

impl Lab {
    fn up(token: &str) -> Lab {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "the lab tests need root: they create network namespaces");
        let lab = Lab { dir: std::env::temp_dir().join(format!("btpm-e2e-{}", std::process::id())) };
        let out = lab.run(&["up", "--pacemaker", token, "--prefix", PREFIX]);
        assert!(out.status.success(), "lab up --pacemaker: {}", String::from_utf8_lossy(&out.stderr));
        lab
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec![args[0], "--dir", self.dir.to_str().expect("utf-8 path")];
        all.extend_from_slice(&args[1..]);
        lab(&all)
    }

    fn has_vip(&self, node: &str) -> bool {
        let out = Command::new("ip").args(["-n", &format!("{PREFIX}{node}"), "-o", "addr"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP}/"))
    }

    /// One GET of the service from the client's namespace: who answered.
    fn fetch(&self) -> Option<String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &format!("{PREFIX}client"), env!("CARGO_BIN_EXE_baton-lab"), "probe"])
            .args(["--url", &format!("http://{VIP}/"), "--interval-ms", "1000"])
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let line = BufReader::new(child.stdout.take()?).lines().next()?.ok();
        let _ = child.kill();
        let _ = child.wait();
        let who = line?.split_once(' ')?.1.to_string();
        (who != "-").then_some(who)
    }

    /// The lab's power switch turns `node` off, as a power failure would
    /// (this request is not logged: the log holds Pacemaker's only).
    fn power_off(&self, node: &str) {
        let mut switch =
            Command::new(env!("CARGO_BIN_EXE_baton-lab")).arg("fence").stdin(Stdio::piped()).spawn().unwrap();
        let input = format!("action=off\nplug={node}\nlab={}\npassword=lab-fence-password\n", self.dir.display());
        std::io::Write::write_all(&mut switch.stdin.take().unwrap(), input.as_bytes()).unwrap();
        assert!(switch.wait().unwrap().success(), "the power switch did not turn {node} off");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

fn wait(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn pacemaker_fences_a_powered_off_owner_and_moves_web_to_a_node_the_client_reaches() {
    let lab = Lab::up("1000");
    let mut owner = None;
    assert!(
        wait(Duration::from_secs(60), || {
            owner = lab.fetch();
            owner.is_some()
        }),
        "the client was never served by web"
    );
    let owner = owner.unwrap();
    assert!(NODES.contains(&owner.as_str()), "answered by {owner:?}");
    assert!(lab.has_vip(&owner), "{owner} answers but does not hold {VIP}");
    lab.power_off(&owner);
    let mut next = None;
    assert!(
        wait(Duration::from_secs(30), || {
            next = lab.fetch().filter(|n| *n != owner);
            next.is_some()
        }),
        "no other node served the client within 30 s of {owner}'s power-off"
    );
    let next = next.unwrap();
    let holders: Vec<&str> = NODES.iter().copied().filter(|n| lab.has_vip(n)).collect();
    assert_eq!(holders, vec![next.as_str()], "{VIP} is held by {holders:?}");
    // Pacemaker recovered only after fencing the lost node, through the
    // lab's power switch, with the device's password.
    let log = std::fs::read_to_string(lab.dir.join("fence.log")).unwrap_or_default();
    assert!(
        log.lines().any(|l| l.starts_with("action=reboot ")
            && l.contains(&format!(" plug={owner} "))
            && l.ends_with("password=checked")),
        "the power switch logged no fencing of {owner} by Pacemaker:\n{log}"
    );
}
