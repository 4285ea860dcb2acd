//! The command lines baton's programs pass each other: `baton agent` to
//! the daemon (`batond`), the agent to its guard (`baton-guard`). They are
//! an interface between two programs of baton, not a user's command line,
//! and are read here without a command-line library, so that clap is not
//! resident in the daemon or the guard (docs/footprint.md).

use std::ffi::OsString;
use std::process::ExitCode;

/// One argument: a switch (`--realtime`) or an option and its value
/// (`--lock FILE`).
#[derive(Debug, PartialEq)]
pub enum Arg {
    Switch(String),
    Value(String, OsString),
}

/// Reads `args` as options named in `valued` (each followed by its value)
/// and switches named in `switches`; `Ok(None)` for `--help`.
pub fn read(
    mut args: impl Iterator<Item = OsString>,
    valued: &[&str],
    switches: &[&str],
) -> Result<Option<Vec<Arg>>, String> {
    let mut out = Vec::new();
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(|a| format!("{} is not an option", a.to_string_lossy()))?;
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        if valued.contains(&arg.as_str()) {
            let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
            out.push(Arg::Value(arg, value));
        } else if switches.contains(&arg.as_str()) {
            out.push(Arg::Switch(arg));
        } else {
            return Err(format!("unknown argument {arg}"));
        }
    }
    Ok(Some(out))
}

/// A value that must be text (a node's name, a log level).
pub fn text(name: &str, value: OsString) -> Result<String, String> {
    value.into_string().map_err(|_| format!("{name}: not UTF-8"))
}

/// The `main` of such a program, `name`: its arguments read by `parse`
/// (the usage on stdout for `--help`, exit 0; on stderr with the error for
/// a bad one, exit 2), then `run`, whose failure is its message and exit
/// code.
pub fn main<A>(
    name: &str,
    usage: &str,
    parse: impl FnOnce(std::iter::Skip<std::env::ArgsOs>) -> Result<Option<A>, String>,
    run: impl FnOnce(A) -> Result<(), (String, u8)>,
) -> ExitCode {
    let args = match parse(std::env::args_os().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{name}: {e}\n{usage}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((msg, code)) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}
