//! The `baton` binary: the command line of SPEC, parsed by clap and handed
//! to the crates. Exit codes: 0 success, 1 the operation failed, 2 usage or
//! configuration error.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(cli::Failure::Usage(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
        Err(cli::Failure::Failed(msg)) => {
            eprintln!("baton: {msg}");
            ExitCode::from(1)
        }
    }
}
