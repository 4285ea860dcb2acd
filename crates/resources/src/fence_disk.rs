//! A shared disk as a fence device, in the model of SBD's poison pill: a
//! header block (the slot names, how often each node reads its slot, how
//! long a fencer waits) and one block per node. Fencing writes `off` into
//! the victim's slot and waits `msgwait`; the victim's guard, reading its
//! slot every `watch`, takes the node down on a pill — or when it cannot
//! read the disk for `msgwait / 2` — well before `msgwait` ends
//! (ARCHITECTURE.md, "The shared disk as the fence device").
//!
//! After the slots, one more block records which node of a pair went on
//! alone last (two-node mode), so that a node booting alone knows whether
//! its own log may be stale (ARCHITECTURE.md, "Booting alone, with a fence
//! disk").
//!
//! Every read and write bypasses the page cache (`O_DIRECT`) and every
//! write is synced: two machines on one disk see each other's writes, not
//! their own cached copies. Blocks are text (`key = value` lines padded
//! with zeros), so `dd` and `strings` can read a slot too.

use std::fs::File;
use std::io::{self, Seek};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The size of the header and of every slot, and their alignment.
pub const BLOCK: usize = 4096;
const MAGIC: &str = "baton fence disk 1";
/// The most slots a disk holds.
pub const MAX_SLOTS: usize = 255;

/// One block of memory aligned as `O_DIRECT` requires.
#[repr(C, align(4096))]
struct Block([u8; BLOCK]);

impl Block {
    fn new() -> Box<Block> {
        Box::new(Block([0; BLOCK]))
    }

    fn text(text: &str) -> Box<Block> {
        let mut b = Block::new();
        b.0[..text.len()].copy_from_slice(text.as_bytes());
        b
    }

    /// The `key = value` lines up to the first zero byte.
    fn fields(&self) -> Vec<(String, String)> {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(BLOCK);
        String::from_utf8_lossy(&self.0[..end])
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }
}

/// What the disk says about itself (written by `baton disk init`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Node names, one slot each, in slot order.
    pub slots: Vec<String>,
    /// How often every node reads its slot.
    pub watch: Duration,
    /// How long a fencer waits after writing a pill before it counts the
    /// node off.
    pub msgwait: Duration,
}

impl Header {
    /// Checks what `init` would write: names, timing.
    pub fn check(&self) -> Result<(), String> {
        if self.slots.is_empty() || self.slots.len() > MAX_SLOTS {
            return Err(format!("a fence disk has 1 to {MAX_SLOTS} slots, not {}", self.slots.len()));
        }
        for (i, name) in self.slots.iter().enumerate() {
            if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'=') {
                return Err(format!("\"{name}\" is not a node name for a slot (1 to 64 printable characters, no '=')"));
            }
            if self.slots[..i].contains(name) {
                return Err(format!("node {name} is named twice"));
            }
        }
        if self.watch < Duration::from_millis(10) {
            return Err(format!("watch {:?} is too short: at least 10ms", self.watch));
        }
        if self.msgwait > Duration::from_secs(30) {
            return Err(format!(
                "msgwait {:?} is over 30s: a fenced node's next start waits msgwait, and an agent waits at most a \
                 minute for its guard",
                self.msgwait
            ));
        }
        if self.msgwait < 4 * self.watch {
            return Err(format!(
                "msgwait {:?} is under four times watch {:?}: a node must see a pill, or give up on an unreadable \
                 disk, well before a fencer counts it off",
                self.msgwait, self.watch
            ));
        }
        Ok(())
    }

    /// How long a guard may go without reading its slot before it takes
    /// the node down.
    pub fn unread_limit(&self) -> Duration {
        self.msgwait / 2
    }

    fn text(&self) -> String {
        format!(
            "{MAGIC}\nslots = {}\nwatch_ms = {}\nmsgwait_ms = {}\n",
            self.slots.join(","),
            self.watch.as_millis(),
            self.msgwait.as_millis()
        )
    }

    fn parse(block: &Block, path: &Path) -> io::Result<Header> {
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()));
        if !block.0.starts_with(format!("{MAGIC}\n").as_bytes()) {
            return Err(bad("not a baton fence disk (no header: `baton disk init` writes one)"));
        }
        let fields = block.fields();
        let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let ms = |k: &str| {
            get(k).and_then(|v| v.parse::<u64>().ok()).map(Duration::from_millis).ok_or_else(|| bad(&format!("{k}?")))
        };
        let slots: Vec<String> = get("slots").ok_or_else(|| bad("slots?"))?.split(',').map(str::to_string).collect();
        let header = Header { slots, watch: ms("watch_ms")?, msgwait: ms("msgwait_ms")? };
        header.check().map_err(|e| bad(&e))?;
        Ok(header)
    }
}

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    Clear,
    /// The poison pill: the node must go down.
    Off,
}

impl Message {
    pub fn parse(text: &str) -> Result<Message, String> {
        match text {
            "clear" => Ok(Message::Clear),
            "off" => Ok(Message::Off),
            _ => Err(format!("\"{text}\" is not a message: \"clear\" or \"off\"")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Message::Clear => "clear",
            Message::Off => "off",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub node: String,
    pub message: Message,
    /// Who wrote it (`-` after `init`).
    pub from: String,
    /// Random, new with every write: a node waiting out a pill sees
    /// whether another came meanwhile.
    pub nonce: u64,
}

/// A random number (getrandom(2)).
fn nonce() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom(2) writes at most `bytes.len()` bytes into `bytes`.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n == 8 {
        u64::from_ne_bytes(bytes)
    } else {
        0
    }
}

/// An open fence disk.
pub struct Disk {
    file: File,
    path: PathBuf,
    pub header: Header,
}

fn open(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT | libc::O_DSYNC).open(path).map_err(
        |e| {
            let hint = if e.raw_os_error() == Some(libc::EINVAL) {
                " (its file system cannot bypass the page cache: use a block device or a file on one that can)"
            } else {
                ""
            };
            io::Error::new(e.kind(), format!("opening the fence disk {}: {e}{hint}", path.display()))
        },
    )
}

impl Disk {
    /// Opens a disk written by [`Disk::init`].
    pub fn open(path: &Path) -> io::Result<Disk> {
        let file = open(path)?;
        let mut block = Block::new();
        file.read_exact_at(&mut block.0, 0)
            .map_err(|e| io::Error::new(e.kind(), format!("reading {}'s header: {e}", path.display())))?;
        let header = Header::parse(&block, path)?;
        Ok(Disk { file, path: path.to_path_buf(), header })
    }

    /// Writes a header and a clear slot for every node. A disk that holds
    /// one already is refused unless `force`.
    pub fn init(path: &Path, header: Header, force: bool) -> io::Result<Disk> {
        header.check().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if !force {
            if let Ok(old) = Disk::open(path) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} already is a fence disk (slots {}): --force writes a new one, clearing every slot",
                        path.display(),
                        old.header.slots.join(", ")
                    ),
                ));
            }
        }
        let mut file = open(path)?;
        let size = file.seek(io::SeekFrom::End(0))?;
        let need = ((header.slots.len() + 2) * BLOCK) as u64;
        if size < need {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} has {size} bytes; {} slots and the record of who went on alone need {need}",
                    path.display(),
                    header.slots.len()
                ),
            ));
        }
        let disk = Disk { file, path: path.to_path_buf(), header };
        for node in &disk.header.slots {
            disk.write(node, Message::Clear, "-")?;
        }
        disk.set_alone(None)?;
        disk.put(0, &Block::text(&disk.header.text()))?;
        Ok(disk)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn index(&self, node: &str) -> io::Result<usize> {
        self.header.slots.iter().position(|n| n == node).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} has no slot for {node} (slots: {})", self.path.display(), self.header.slots.join(", ")),
            )
        })
    }

    fn put(&self, block_no: usize, block: &Block) -> io::Result<()> {
        self.file
            .write_all_at(&block.0, (block_no * BLOCK) as u64)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", self.path.display())))
    }

    /// Reads `node`'s slot from the disk itself.
    pub fn slot(&self, node: &str) -> io::Result<Slot> {
        let i = self.index(node)?;
        let mut block = Block::new();
        self.file
            .read_exact_at(&mut block.0, ((i + 1) * BLOCK) as u64)
            .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", self.path.display())))?;
        let fields = block.fields();
        let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", self.path.display()));
        if get("node").as_deref() != Some(node) {
            return Err(bad(format!("slot {} does not name {node}", i + 1)));
        }
        let message = Message::parse(&get("message").unwrap_or_default()).map_err(bad)?;
        let nonce = get("nonce").and_then(|n| n.parse().ok()).unwrap_or(0);
        Ok(Slot { node: node.to_string(), message, from: get("from").unwrap_or_else(|| "-".into()), nonce })
    }

    /// Writes `message` into `node`'s slot, synced, signed `from`.
    pub fn write(&self, node: &str, message: Message, from: &str) -> io::Result<()> {
        let i = self.index(node)?;
        let text = format!("node = {node}\nmessage = {}\nfrom = {from}\nnonce = {}\n", message.name(), nonce());
        self.put(i + 1, &Block::text(&text))
    }

    /// Every slot, in order.
    pub fn slots(&self) -> io::Result<Vec<Slot>> {
        self.header.slots.iter().map(|n| self.slot(n)).collect()
    }

    /// The block after the slots: who went on alone last.
    fn record_block(&self) -> usize {
        self.header.slots.len() + 1
    }

    /// The node that went on alone last and has not voted together with
    /// its peer since (`None`: nobody). A disk written by a baton that kept
    /// no record is an error, not "nobody".
    pub fn alone(&self) -> io::Result<Option<String>> {
        let mut block = Block::new();
        let at = (self.record_block() * BLOCK) as u64;
        self.file
            .read_exact_at(&mut block.0, at)
            .map_err(|e| io::Error::new(e.kind(), format!("reading {}'s alone record: {e}", self.path.display())))?;
        match block.fields().into_iter().find(|(k, _)| k == "alone") {
            Some((_, v)) if v == "-" => Ok(None),
            Some((_, v)) if self.header.slots.contains(&v) => Ok(Some(v)),
            Some((_, v)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: the alone record names {v}, which has no slot", self.path.display()),
            )),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: no alone record (`baton disk init` writes one)", self.path.display()),
            )),
        }
    }

    /// Records, synced, that `node` goes on alone (`None`: nobody does).
    pub fn set_alone(&self, node: Option<&str>) -> io::Result<()> {
        if let Some(n) = node {
            self.index(n)?;
        }
        self.put(self.record_block(), &Block::text(&format!("alone = {}\n", node.unwrap_or("-"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(watch: u64, msgwait: u64) -> Header {
        Header {
            slots: vec!["alpha".into(), "beta".into()],
            watch: Duration::from_millis(watch),
            msgwait: Duration::from_millis(msgwait),
        }
    }

    #[test]
    fn headers_are_checked() {
        assert!(header(250, 1000).check().is_ok());
        assert!(header(250, 999).check().unwrap_err().contains("four times watch"));
        assert!(header(5, 1000).check().unwrap_err().contains("too short"));
        assert!(header(1000, 31_000).check().unwrap_err().contains("over 30s"));
        let mut h = header(250, 1000);
        h.slots.push("alpha".into());
        assert!(h.check().unwrap_err().contains("named twice"));
        h.slots = vec!["a=b".into()];
        assert!(h.check().is_err());
        h.slots = vec![];
        assert!(h.check().is_err());
    }

    #[test]
    fn a_header_reads_back_as_written() {
        let h = header(250, 2000);
        let parsed = Header::parse(&Block::text(&h.text()), Path::new("d")).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(parsed.unread_limit(), Duration::from_millis(1000));
        let err = Header::parse(&Block::text("ext4 junk"), Path::new("d")).unwrap_err();
        assert!(err.to_string().contains("not a baton fence disk"), "{err}");
    }

    #[test]
    fn the_alone_record_is_written_read_and_cleared_by_init() {
        let path = std::env::temp_dir().join(format!("baton-fence-disk-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; 3 * BLOCK]).unwrap();
        let short = Disk::init(&path, header(250, 2000), true).err().expect("two slots and the record need 4 blocks");
        assert!(short.to_string().contains("the record of who went on alone"), "{short}");
        std::fs::write(&path, vec![0u8; 4 * BLOCK]).unwrap();
        let disk = Disk::init(&path, header(250, 2000), true).unwrap();
        assert_eq!(disk.alone().unwrap(), None);
        disk.set_alone(Some("beta")).unwrap();
        assert_eq!(Disk::open(&path).unwrap().alone().unwrap().as_deref(), Some("beta"));
        assert!(disk.set_alone(Some("gamma")).is_err(), "gamma has no slot");
        assert_eq!(disk.alone().unwrap().as_deref(), Some("beta"), "a refused write changes nothing");
        let again = Disk::init(&path, header(250, 2000), true).unwrap();
        assert_eq!(again.alone().unwrap(), None, "init forgets who went on alone");
        // A disk written before the record existed: an error, never "nobody".
        again.put(3, &Block::new()).unwrap();
        assert!(again.alone().unwrap_err().to_string().contains("no alone record"));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn messages_parse() {
        assert_eq!(Message::parse("off"), Ok(Message::Off));
        assert_eq!(Message::parse("clear"), Ok(Message::Clear));
        assert!(Message::parse("reset").unwrap_err().contains("\"reset\""));
    }
}
