//! The `baton` binary: the command line of SPEC, parsed by clap and handed
//! to the crates. Exit codes: 0 success, 1 the operation failed, 2 usage or
//! configuration error.

mod cli;
mod control;
mod lab;
mod whoami;

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
            println!("{}: ok: {}", file.display(), config.summary());
            Ok(())
        }
        Command::Guard => runtime().block_on(baton_agent::guard::run()).map_err(|e| Failure::Failed(e.to_string())),
        Command::Agent => {
            let config = baton_config::load(&cli.config).map_err(|e| Failure::Usage(e.to_string()))?;
            let me = runtime().block_on(whoami::node(&config, cli.node.as_deref())).map_err(Failure::Usage)?;
            let state_dir = cli.state_dir.clone().unwrap_or_else(|| config.cluster.state_dir.clone());
            let socket = cli.socket.clone().unwrap_or_else(|| state_dir.join("baton.sock"));
            let opts = baton_agent::shell::Options { config, me, state_dir, socket };
            runtime().block_on(baton_agent::shell::run(opts)).map_err(Failure::Failed)
        }
        Command::Lab { command } => lab::run(command),
        Command::Events { .. } => {
            Err(Failure::Failed("`events` is not implemented in this build yet (the event history comes later)".into()))
        }
        ref other => control::run(&cli, other),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(msg)) => {
            eprintln!("baton: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Quiet) => ExitCode::from(1),
    }
}
