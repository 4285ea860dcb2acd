//! baton's configuration file, `cluster.toml`: parsed and validated once
//! into a [`Config`] (STYLE: validate once, into another type).
//!
//! Every problem is collected with its place — `file:line:column: key:
//! what is wrong` — so `baton config check` names them all in one run. The
//! only I/O here is reading the file and looking at the secret file's size
//! and mode; nothing is started, bound or written.

mod model;
mod parse;
mod resource;
mod secret;
mod topology;
mod tree;
mod values;
mod walk;

use std::fmt;
use std::path::Path;

pub use model::*;
pub use secret::SECRET_MIN_BYTES;
pub use topology::{HOOK_TIMEOUT, MAX_DRIFT_PPM};
pub use walk::Problem;

/// Parses a duration as the configuration writes them ("100ms", "2s", "5m", "1h").
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    values::duration(text)
}

/// The first 16 hex digits of the SHA-256 of `bytes`: how a configuration
/// file (meant to be identical on every node, byte for byte) and a set's
/// definition are compared.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Everything wrong with one configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.line == 0 {
                write!(f, "{}: {}", self.file, p.message)?;
            } else {
                write!(f, "{}:{p}", self.file)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Read and validate the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        problems: vec![Problem { line: 0, column: 0, key: String::new(), message: format!("cannot read: {e}") }],
    })?;
    parse_str(path, &text)
}

/// Validate `text` as if read from `path` (relative paths in it, such as the
/// secret file, are resolved against `path`'s directory).
pub fn parse_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let mut ctx = walk::Ctx::new(text);
    let config = match tree::parse(text) {
        Ok(root) => parse::config(&mut ctx, path, &root),
        Err(e) => {
            ctx.at(&e.span, "syntax", e.message);
            None
        }
    };
    match config {
        Some(c) if ctx.problems.is_empty() => Ok(c),
        _ => {
            let mut problems = ctx.problems;
            problems.sort_by_key(|p| (p.line, p.column));
            assert!(!problems.is_empty(), "a configuration was refused without a reason");
            Err(ConfigError { file, problems })
        }
    }
}
