//! The cluster secret: a file of at least 32 bytes that only its owner can
//! read. Messages about it name the file, never its content.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub const SECRET_MIN_BYTES: u64 = 32;

pub fn check(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("{shown} is readable by others (mode {mode:04o}); run chmod 600 {shown}"));
    }
    if meta.len() < SECRET_MIN_BYTES {
        return Err(format!("{shown} holds {} bytes; a secret needs at least {SECRET_MIN_BYTES}", meta.len()));
    }
    std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    Ok(())
}
