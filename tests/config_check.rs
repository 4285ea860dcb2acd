//! `baton config check` as an operator runs it: exit codes and output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("baton-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, [1u8; 48]).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn baton(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_baton")).args(args).output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

const CONFIG: &str = r#"[cluster]
name = "lab"
secret_file = "secret"
[nodes.alpha]
addresses = ["10.0.0.1/24"]
[nodes.beta]
addresses = ["10.0.0.2/24"]
[nodes.arbiter]
addresses = ["10.0.0.3/24"]
witness = true
[sets.web]
[[sets.web.resources]]
type = "ip"
address = "10.0.0.100/24"
"#;

fn write(dir: &Path, text: &str) -> String {
    let file = dir.join("cluster.toml");
    std::fs::write(&file, text).unwrap();
    file.display().to_string()
}

#[test]
fn a_valid_file_exits_0_with_a_summary() {
    let dir = Dir::new("ok");
    let file = write(&dir.0, CONFIG);
    let (code, out, err) = baton(&["config", "check", &file]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, format!("{file}: ok: cluster \"lab\": 3 nodes (1 witness), 1 link, 1 set, 1 resource\n"));
    // The global --config flag works before and after the subcommand.
    assert_eq!(baton(&["--config", &file, "config", "check"]).0, 0);
    assert_eq!(baton(&["config", "check", "--config", &file]).0, 0);
}

#[test]
fn an_invalid_file_exits_2_with_one_line_per_problem() {
    let dir = Dir::new("bad");
    let file = write(&dir.0, &CONFIG.replace("name = \"lab\"", "name = \"lab\"\nlease = \"soon\"\nport = 99999"));
    let (code, out, err) = baton(&["config", "check", &file]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(
        err,
        format!(
            "{file}:3:9: cluster.lease: \"soon\" is not a duration: write a number and a unit, e.g. \"100ms\", \"2s\", \"5m\", \"1h\"\n\
             {file}:4:8: cluster.port: 99999 is out of range (1 to 65535)\n"
        )
    );
}

#[test]
fn a_missing_file_exits_2_and_says_so() {
    let (code, _, err) = baton(&["config", "check", "/nonexistent/cluster.toml"]);
    assert_eq!(code, 2);
    assert_eq!(err, "/nonexistent/cluster.toml: cannot read: No such file or directory (os error 2)\n");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(baton(&["frobnicate"]).0, 2);
    assert_eq!(baton(&["move"]).0, 2);
}

#[test]
fn a_command_without_an_agent_to_talk_to_fails_and_says_so() {
    let (code, _, err) = baton(&["status", "--json", "--socket", "/nonexistent/baton.sock"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("baton: cannot reach the agent at /nonexistent/baton.sock"), "{err}");
    let (code, _, err) = baton(&["events", "--socket", "/nonexistent/baton.sock"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("baton: cannot reach the agent at /nonexistent/baton.sock"), "{err}");
}

#[test]
fn config_check_runs_validate_all_of_installed_ocf_agents() {
    assert!(
        Path::new("/usr/lib/ocf/resource.d/heartbeat/IPaddr2").is_file(),
        "this test needs Debian's resource-agents (apt-get install resource-agents)"
    );
    let dir = Dir::new("ocf");
    let ocf = |params: &str| {
        format!(
            "{CONFIG}[[sets.web.resources]]\ntype = \"ocf\"\nagent = \"heartbeat:IPaddr2\"\nparams = {{ {params} }}\n"
        )
    };
    let file = write(&dir.0, &ocf("cidr_netmask = \"24\""));
    let (code, out, err) = baton(&["config", "check", &file]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.starts_with(&format!("{file}: sets.web.resources[1]: heartbeat:IPaddr2 validate-all exited with ")),
        "{err}"
    );
    let file = write(&dir.0, &ocf("ip = \"10.0.0.50\", cidr_netmask = \"24\", nic = \"lo\""));
    let (code, out, err) = baton(&["config", "check", &file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("1 set, 2 resources\n"), "{out}");
    let file = write(&dir.0, &format!("{CONFIG}[[sets.web.resources]]\ntype = \"ocf\"\nagent = \"acme:Nothing\"\n"));
    let (code, _, err) = baton(&["config", "check", &file]);
    assert_eq!(code, 0, "an agent not installed here may be on the other nodes");
    assert_eq!(err, "sets.web.resources[1]: acme:Nothing is not installed on this host; not validated\n");
}

/// The guide's cluster (docs/guide.md, examples/cluster.toml) stays valid.
#[test]
fn the_example_of_the_guide_is_valid() {
    let dir = Dir::new("example");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cluster.toml")).unwrap();
    let file = write(&dir.0, &text);
    let (code, out, err) = baton(&["config", "check", &file]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(out.contains("3 nodes (1 witness), 2 links, 2 sets, 6 resources"), "{out}");
}

#[test]
fn completions_and_the_manual_page_come_from_the_command_line_definition() {
    let (code, out, _) = baton(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(out.contains("maintenance") && out.contains("is-active"), "every command completes");
    let dir = Dir::new("man");
    let (code, _, err) = baton(&["man", "--dir", &dir.0.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    for page in ["baton.1", "baton-move.1", "baton-simulate.1", "baton-config.1"] {
        let text = std::fs::read_to_string(dir.0.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is a manual page");
    }
    assert!(!dir.0.join("baton-guard.1").exists(), "hidden commands get no page");
    let (code, out, _) = baton(&["man"]);
    assert_eq!(code, 0);
    assert!(out.starts_with(".ie") || out.contains(".TH baton"), "{}", &out[..out.len().min(200)]);
    let (code, _, err) = baton(&["completions", "cmd.exe"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn status_watch_refuses_a_bad_interval_before_asking_anyone() {
    let (code, _, err) = baton(&["status", "--watch", "--interval", "0s", "--socket", "/nonexistent"]);
    assert_eq!((code, err.trim()), (2, "--interval: must be longer than 0ms"));
    let (code, _, err) = baton(&["status", "--interval", "1s"]);
    assert_eq!(code, 2, "--interval needs --watch: {err}");
    let (code, _, err) = baton(&["maintenance", "sideways"]);
    assert_eq!(code, 2, "{err}");
}

/// The command line talks only to a control socket that is root's (or the
/// caller's own) and closed to others, as the agent makes it: anything else
/// may be someone's trap for the operator's commands.
#[test]
fn a_socket_of_another_user_or_open_to_others_is_refused() {
    let dir = Dir::new("socket");
    let foreign = dir.0.join("foreign.sock");
    let _a = std::os::unix::net::UnixListener::bind(&foreign).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let (code, _, err) = baton(&["status", "--socket", foreign.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("owned by uid 65534, not root"), "{err}");

    let open = dir.0.join("open.sock");
    let _b = std::os::unix::net::UnixListener::bind(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, _, err) = baton(&["move", "web", "--socket", open.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("mode 0666"), "{err}");
}

/// `--json` on any command, on either side of it: a document on stdout,
/// for a failure too; the exit codes stay.
#[test]
fn json_is_printed_for_every_outcome() {
    let dir = Dir::new("json");
    let file = write(&dir.0, CONFIG);
    let doc =
        |out: &str| serde_json::from_str::<serde_json::Value>(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let (code, out, _) = baton(&["--json", "config", "check", &file]);
    assert_eq!(code, 0);
    let d = doc(&out);
    assert_eq!(
        (d["ok"].as_bool(), d["data"]["summary"].as_str().map(|s| s.starts_with("cluster \"lab\""))),
        (Some(true), Some(true)),
        "{d}"
    );
    assert!(d["data"]["warnings"].is_array());
    let bad = write(&dir.0, &CONFIG.replace("name = \"lab\"", "name = \"lab\"\nport = 99999"));
    let (code, out, _) = baton(&["config", "check", &bad, "--json"]);
    assert_eq!(code, 2);
    let d = doc(&out);
    assert_eq!(d["ok"], false);
    assert!(d["errors"][0].as_str().unwrap().ends_with("cluster.port: 99999 is out of range (1 to 65535)"), "{d}");
    for args in [
        &["move", "web", "beta"][..],
        &["freeze", "web"],
        &["standby", "beta"],
        &["maintenance", "on"],
        &["is-active", "web"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--json", "--socket", "/nonexistent/baton.sock"]);
        let (code, out, _) = baton(&all);
        assert_eq!(code, 1, "{args:?}");
        let d = doc(&out);
        assert_eq!(d["ok"], false, "{args:?}");
        assert!(d["error"].as_str().unwrap().contains("cannot reach the agent"), "{args:?}: {d}");
    }
}

#[test]
fn simulate_and_config_apply_name_a_bad_node_a_missing_file_and_an_absent_agent() {
    let dir = Dir::new("sim");
    let file = write(&dir.0, CONFIG);
    let (code, _, err) = baton(&["simulate", "--kill", "nobody", "--config", &file]);
    assert_eq!(code, 2);
    assert!(err.contains("no node named \"nobody\""), "{err}");
    let (code, _, err) = baton(&["simulate", "--cut", "alpha:7", "--config", &file]);
    assert_eq!(code, 2);
    assert!(err.contains("--cut alpha:7: the link is an index from 0 to"), "{err}");
    let (code, _, err) = baton(&["simulate", "--kill", "alpha", "--config", &file, "--socket", "/nonexistent/b.sock"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the agent"), "{err}");
    for sub in ["apply", "diff"] {
        let (code, _, err) = baton(&["config", sub, "/nonexistent/cluster.toml"]);
        assert_eq!(code, 2, "{sub}: {err}");
        assert!(err.contains("/nonexistent/cluster.toml: cannot read"), "{sub}: {err}");
        let (code, _, err) = baton(&["config", sub, &file, "--socket", "/nonexistent/b.sock"]);
        assert_eq!(code, 1, "{sub}: {err}");
        assert!(err.contains("cannot reach the agent"), "{sub}: {err}");
    }
    let (code, _, err) = baton(&["config", "show", "--socket", "/nonexistent/b.sock"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the agent"), "{err}");
}

/// The README's first cluster stays valid.
#[test]
fn the_first_cluster_of_the_readme_is_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```toml\n[cluster]\nname = \"first\"").expect("the README's first cluster") + 8;
    let end = start + readme[start..].find("```").unwrap();
    let dir = Dir::new("readme");
    let file = write(&dir.0, &readme[start..end]);
    let (code, out, err) = baton(&["config", "check", &file]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
}
