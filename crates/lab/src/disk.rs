//! A node's state directory moved onto a small loop-mounted ext4, so a
//! chaos scenario can fill it up. Undone on drop, whatever happened.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Room for the scenario's own writes, beyond what the state directory
/// already holds (which grows: `baton rejoin` keeps each damaged state file).
const IMAGE_MIB: u64 = 32;

/// The bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => bytes_under(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

pub struct StateDisk {
    state: PathBuf,
    /// The filesystem image's size in bytes.
    size: u64,
    backup: PathBuf,
    image: PathBuf,
    done: bool,
}

fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("running {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn copy_all(from: &Path, to: &Path) -> Result<(), String> {
    run("cp", &["-a".as_ref(), from.join(".").as_os_str(), to.as_os_str()])
}

impl StateDisk {
    /// `DIR/NODE` (the node's agent stopped) moved onto a fresh filesystem.
    pub fn mount(dir: &Path, node: &str) -> Result<StateDisk, String> {
        let state = dir.join(node);
        // What is there now, a quarter more for the filesystem's own
        // blocks, and the scenario's room.
        let size = bytes_under(&state) / 4 * 5 + (IMAGE_MIB << 20);
        let disk = StateDisk {
            backup: dir.join(format!("{node}.before-disk")),
            image: dir.join(format!("{node}-state.img")),
            state,
            size,
            done: false,
        };
        let file = std::fs::File::create(&disk.image).map_err(|e| e.to_string())?;
        file.set_len(size).map_err(|e| e.to_string())?;
        run("mkfs.ext4", &["-q".as_ref(), "-F".as_ref(), disk.image.as_os_str()])?;
        std::fs::rename(&disk.state, &disk.backup).map_err(|e| e.to_string())?;
        std::fs::create_dir(&disk.state).map_err(|e| e.to_string())?;
        run("mount", &["-o".as_ref(), "loop".as_ref(), disk.image.as_os_str(), disk.state.as_os_str()])?;
        copy_all(&disk.backup, &disk.state)?;
        Ok(disk)
    }

    fn filler(&self) -> PathBuf {
        self.state.join("filler")
    }

    /// Writes until the filesystem is full — one big file, then small ones
    /// for the blocks ext4 keeps back from big writes; its size in KiB.
    pub fn fill(&self) -> Result<u64, String> {
        std::fs::create_dir_all(self.filler()).map_err(|e| e.to_string())?;
        let full = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOSPC);
        for (i, size) in std::iter::once(64usize << 10).chain(std::iter::repeat(1 << 10)).take(20_000).enumerate() {
            let path = self.filler().join(i.to_string());
            let mut f = match std::fs::File::create(&path) {
                Ok(f) => f,
                Err(e) if full(&e) => return Ok(self.size >> 10),
                Err(e) => return Err(format!("filling {}: {e}", self.state.display())),
            };
            let block = vec![0u8; size];
            // The first file takes blocks until none is left; each later one, one block.
            let rounds = if i == 0 { (self.size >> 16) + 16 } else { 1 };
            for _ in 0..rounds {
                match f.write_all(&block).and_then(|()| f.sync_data()) {
                    Ok(()) => {}
                    Err(e) if full(&e) && i > 0 => return Ok(self.size >> 10),
                    Err(e) if full(&e) => break,
                    Err(e) => return Err(format!("filling {}: {e}", self.state.display())),
                }
            }
        }
        Err(format!("{} never filled up", self.state.display()))
    }

    pub fn unfill(&self) -> Result<(), String> {
        std::fs::remove_dir_all(self.filler()).map_err(|e| e.to_string())
    }

    /// Moves the state (as it is now) back to a plain directory.
    pub fn unmount(mut self) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(self.filler());
        let _ = std::fs::remove_dir(self.state.join("lost+found"));
        copy_all(&self.state, &self.backup)?;
        self.done = true;
        self.undo()
    }

    fn undo(&self) -> Result<(), String> {
        run("umount", &["-l".as_ref(), self.state.as_os_str()])?;
        std::fs::remove_dir_all(&self.state).map_err(|e| e.to_string())?;
        std::fs::rename(&self.backup, &self.state).map_err(|e| e.to_string())?;
        std::fs::remove_file(&self.image).map_err(|e| e.to_string())
    }
}

impl Drop for StateDisk {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.undo() {
                eprintln!("baton lab: putting {} back: {e}", self.state.display());
            }
        }
    }
}
