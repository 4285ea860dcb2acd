//! The `baton` binary: the command line of docs/reference.md, parsed by clap and handed
//! to the crates. Exit codes: 0 success, 1 the operation failed, 2 usage or
//! configuration error.

mod cli;
mod configure;
mod control;
mod disk;
mod manpage;
mod rejoin;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConfigCommand, Failure};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Config(ConfigCommand::Check { ref file }) => {
            let file = file.clone().unwrap_or_else(|| cli.config.clone());
            let config = baton_config::load(&file).map_err(|e| Failure::Usage(e.to_string()))?;
            let refused = runtime().block_on(validate_agents(&config));
            if !refused.is_empty() {
                let lines: Vec<String> = refused.iter().map(|p| format!("{}: {p}", file.display())).collect();
                return Err(Failure::Usage(lines.join("\n")));
            }
            let warnings = config.warnings();
            if cli.json {
                let doc = serde_json::json!({ "file": file, "summary": config.summary(), "warnings": warnings });
                println!("{}", serde_json::json!({ "ok": true, "data": doc }));
                return Ok(());
            }
            for what in warnings {
                eprintln!("{}: warning: {what}", file.display());
            }
            println!("{}: ok: {}", file.display(), config.summary());
            Ok(())
        }
        Command::Config(ref command) => configure::run(&cli, command),
        Command::Agent { ref log_level } => agent(&cli, log_level.as_deref()),
        Command::Lab { ref args } => lab(args),
        Command::Rejoin => rejoin::run(&cli),
        Command::Disk(ref command) => disk::run(command),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "baton",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man { dir: None } => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(&mut std::io::stdout())
            .map_err(|e| Failure::Failed(format!("writing the manual page: {e}"))),
        Command::Man { dir: Some(ref dir) } => man_pages(dir),
        ref other => control::run(&cli, other),
    }
}

/// baton.1, one page per visible command (`baton-move.1`, ...) and
/// cluster.toml.5 in `dir`.
fn man_pages(dir: &std::path::Path) -> Result<(), Failure> {
    let write = |name: &str, cmd: clap::Command| {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out).map_err(|e| Failure::Failed(format!("rendering {name}: {e}")))?;
        std::fs::write(&path, out).map_err(|e| Failure::Failed(format!("writing {}: {e}", path.display())))
    };
    std::fs::create_dir_all(dir).map_err(|e| Failure::Failed(format!("creating {}: {e}", dir.display())))?;
    let top = <Cli as clap::CommandFactory>::command();
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("baton-{}", sub.get_name());
        write(&name, sub.clone().display_name(name.clone()))?;
    }
    write("baton", top)?;
    let path = dir.join("cluster.toml.5");
    std::fs::write(&path, manpage::cluster_toml())
        .map_err(|e| Failure::Failed(format!("writing {}: {e}", path.display())))
}

/// `baton agent`: the daemon is its own program, `batond`, beside this one.
/// Everything this command can refuse is refused here, as every command
/// refuses (the log level, the configuration, which node this is); then
/// `batond` replaces this process, under this program's name, with a
/// settled command line: `baton agent --config FILE --node NAME ...`.
fn agent(cli: &Cli, log_level: Option<&str>) -> Result<(), Failure> {
    use std::os::unix::process::CommandExt;
    baton_agent::log::init(log_level).map_err(Failure::Usage)?;
    let config = baton_config::load(&cli.config).map_err(|e| Failure::Usage(e.to_string()))?;
    let me = runtime().block_on(baton_agent::whoami::node(&config, cli.node.as_deref())).map_err(Failure::Usage)?;
    let daemon = baton_agent::beside_me("batond").map_err(Failure::Failed)?;
    let mut cmd = std::process::Command::new(&daemon);
    cmd.arg0(std::env::args_os().next().unwrap_or_else(|| "baton".into()));
    cmd.arg("agent").arg("--config").arg(&cli.config).arg("--node").arg(&config.nodes[me].name);
    if let Some(dir) = &cli.state_dir {
        cmd.arg("--state-dir").arg(dir);
    }
    if let Some(socket) = &cli.socket {
        cmd.arg("--socket").arg(socket);
    }
    if let Some(level) = log_level {
        cmd.arg("--log-level").arg(level);
    }
    let e = cmd.exec();
    Err(Failure::Failed(format!("running {}: {e}", daemon.display())))
}

/// `baton lab ARGS`: the lab is its own program, `baton-lab`, beside this
/// one (cargo builds both; the package holds only baton).
fn lab(args: &[String]) -> Result<(), Failure> {
    use std::os::unix::process::CommandExt;
    let lab = baton_agent::beside_me("baton-lab").map_err(|e| {
        Failure::Failed(format!(
            "{e} (the lab is test equipment, never packaged): build it from the source with `cargo build --release -p \
             baton-lab`"
        ))
    })?;
    let e = std::process::Command::new(&lab).args(args).exec();
    Err(Failure::Failed(format!("running {}: {e}", lab.display())))
}

/// Runs `validate-all` of every OCF agent installed here; agents that are
/// not installed are only mentioned (they may be on the other nodes).
async fn validate_agents(config: &baton_config::Config) -> Vec<String> {
    let mut refused = Vec::new();
    for set in &config.sets {
        for i in 0..set.resources.len() {
            let Some(agent) = baton_agent::preflight::ocf_agent(set, i, None) else { continue };
            let key = format!("sets.{}.resources[{i}]", set.name);
            if !agent.installed() {
                eprintln!("{key}: {}:{} is not installed on this host; not validated", agent.provider, agent.kind);
                continue;
            }
            let out = agent.run("validate-all", std::time::Duration::ZERO, std::time::Duration::from_secs(20)).await;
            if !out.ok() {
                refused.push(format!("{key}: {}", out.describe("validate-all", &agent)));
            }
        }
    }
    refused
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Agent { .. }) {
        // A command-line tool piped into `head` ends quietly, as Unix tools
        // do; the agent keeps ignoring SIGPIPE, it writes to sockets.
        // SAFETY: setting a signal disposition before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let json = cli.json;
    // With --json a failure is a document too: one line per problem.
    let say = |msg: &str| {
        if json {
            let lines: Vec<&str> = msg.lines().collect();
            println!("{}", serde_json::json!({ "ok": false, "error": lines.join("; "), "errors": lines }));
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            say(&msg);
            eprintln!("{msg}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(msg)) => {
            say(&msg);
            eprintln!("baton: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Quiet) => ExitCode::from(1),
        Err(Failure::Code(code)) => ExitCode::from(code),
    }
}
