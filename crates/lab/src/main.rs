//! `baton-lab`: the lab's command line (also reached as `baton lab`).

use std::process::ExitCode;

use baton_lab::{Failure, LabCommand};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "baton-lab", version, about = "A throw-away baton cluster in network namespaces on this machine")]
struct Cli {
    #[command(subcommand)]
    command: LabCommand,
}

fn main() -> ExitCode {
    match baton_lab::run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(msg)) => {
            eprintln!("baton-lab: {msg}");
            ExitCode::from(1)
        }
    }
}
