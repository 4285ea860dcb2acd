//! `nfs-lock`: NFSv4 byte-range locks across a failover. The `holder`
//! takes a write lock on the whole file and renews its lease; when the
//! server is gone (its client ID unknown on the next server, or the
//! connection lost) it establishes its client ID again, under the same
//! name and boot verifier, and reclaims its open and its lock (`CLAIM_
//! PREVIOUS`, `reclaim = true`), as a kernel client does after a server
//! reboot. The `contender`, another client, tries to take the same lock
//! every half second and records what each attempt got: it must never
//! get it while the holder holds it, and a new server refuses it with
//! NFS4ERR_GRACE while the old one's clients reclaim.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{Connection, Xdr};

const OP_LOCK: u32 = 12;
const OP_OPEN: u32 = 18;
const OP_OPEN_CONFIRM: u32 = 20;
const OP_RENEW: u32 = 30;
const OP_SETCLIENTID: u32 = 35;
const OP_SETCLIENTID_CONFIRM: u32 = 36;
const WRITE_LT: u32 = 2;
const SHARE_ACCESS_BOTH: u32 = 3;
const CLAIM_NULL: u32 = 0;
const CLAIM_PREVIOUS: u32 = 1;
const OPEN4_RESULT_CONFIRM: u32 = 2;

/// A stateid as the server gave it (sequence number and twelve bytes).
type Stateid = Vec<u8>;

/// How an open names its file: by name in its directory, or (a reclaim
/// after a server restart) by the file handle itself.
enum Claim<'a> {
    Null { dir: &'a [u8], name: &'a str },
    Previous { file: &'a [u8] },
}

/// Establishes the client ID `id` (with the client's boot verifier).
fn set_client_id(conn: &mut Connection, id: &str, verifier: [u8; 8]) -> io::Result<u64> {
    let mut set = Xdr::default();
    // No callbacks: the program 0 and an empty address turn delegations off.
    set.fixed(&verifier).opaque(id.as_bytes()).u32(0).opaque(b"tcp").opaque(b"").u32(0);
    let (clientid, confirm) = conn.run(&[(OP_SETCLIENTID, set)], |r| Ok((r.u64()?, r.take(8)?.to_vec())))?;
    let mut ok = Xdr::default();
    ok.u64(clientid).fixed(&confirm);
    conn.run(&[(OP_SETCLIENTID_CONFIRM, ok)], |_| Ok(()))?;
    Ok(clientid)
}

/// Opens the file for reading and writing, denying nothing, as
/// `owner` (a new open owner: its sequence starts at 0); returns the open
/// stateid and the owner's next sequence number.
fn open(conn: &mut Connection, clientid: u64, owner: &str, file: &[u8], claim: Claim) -> io::Result<(Stateid, u32)> {
    let mut o = Xdr::default();
    o.u32(0).u32(SHARE_ACCESS_BOTH).u32(0).u64(clientid).opaque(owner.as_bytes()).u32(0);
    let current = match claim {
        Claim::Null { dir, name } => {
            o.u32(CLAIM_NULL).opaque(name.as_bytes());
            dir
        }
        Claim::Previous { file } => {
            o.u32(CLAIM_PREVIOUS).u32(0);
            file
        }
    };
    let (stateid, confirm) = conn.run(&[Connection::putfh(current), (OP_OPEN, o)], |r| {
        let stateid = r.take(16)?.to_vec();
        r.take(4 + 8 + 8)?; // change_info
        let flags = r.u32()?;
        let words = r.u32()? as usize;
        r.take(4 * words)?; // the attributes set
        match r.u32()? {
            0 => Ok((stateid, flags & OPEN4_RESULT_CONFIRM != 0)),
            kind => Err(io::Error::other(format!("a delegation of type {kind}, which this client cannot take"))),
        }
    })?;
    if !confirm {
        return Ok((stateid, 1));
    }
    let mut c = Xdr::default();
    c.fixed(&stateid).u32(1);
    let stateid = conn.run(&[Connection::putfh(file), (OP_OPEN_CONFIRM, c)], |r| Ok(r.take(16)?.to_vec()))?;
    Ok((stateid, 2))
}

/// A write lock on the whole file for a new lock owner of the open.
fn lock(
    conn: &mut Connection,
    file: &[u8],
    clientid: u64,
    open: &(Stateid, u32),
    owner: &str,
    reclaim: bool,
) -> io::Result<()> {
    let mut l = Xdr::default();
    l.u32(WRITE_LT).u32(u32::from(reclaim)).u64(0).u64(u64::MAX);
    l.u32(1).u32(open.1).fixed(&open.0).u32(0).u64(clientid).opaque(owner.as_bytes());
    conn.run(&[Connection::putfh(file), (OP_LOCK, l)], |_| Ok(()))
}

fn renew(conn: &mut Connection, clientid: u64) -> io::Result<()> {
    let mut r = Xdr::default();
    r.u64(clientid);
    conn.run(&[(OP_RENEW, r)], |_| Ok(()))
}

/// A file as an open names it: its directory's handle and its name, and
/// its own handle.
struct Handles {
    dir: Vec<u8>,
    file: Vec<u8>,
    name: String,
}

fn handles(conn: &mut Connection, path: &str) -> io::Result<Handles> {
    let (dir, name) = path.rsplit_once('/').ok_or_else(|| io::Error::other(format!("{path} is not a path")))?;
    Ok(Handles { dir: conn.lookup(dir)?, file: conn.lookup(path)?, name: name.to_string() })
}

/// Opens a connection and looks the file up, retrying every `pace` until
/// `deadline`.
fn connect(addr: SocketAddr, path: &str, pace: Duration, deadline: Instant) -> Result<(Connection, Handles), String> {
    loop {
        match Connection::open(addr).and_then(|mut c| handles(&mut c, path).map(|h| (c, h))) {
            Ok(found) => return Ok(found),
            Err(e) if Instant::now() > deadline => return Err(format!("{path} on {addr}: {e}")),
            Err(_) => std::thread::sleep(pace),
        }
    }
}

/// The holder: lock, renew every second, reclaim after losing the server.
pub fn holder(server: IpAddr, path: &str, seconds: u64) -> Result<(), String> {
    let addr = SocketAddr::new(server, 2049);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let pace = Duration::from_millis(200);
    let (mut conn, Handles { dir, file, name }) = connect(addr, path, pace, deadline)?;
    let id = format!("baton-lab holder {}", std::process::id());
    let verifier = (std::process::id() as u64).to_be_bytes();
    let setup = |conn: &mut Connection| -> io::Result<u64> {
        let clientid = set_client_id(conn, &id, verifier)?;
        let opened = open(conn, clientid, "holder", &file, Claim::Null { dir: &dir, name: &name })?;
        lock(conn, &file, clientid, &opened, "holder-lock", false)?;
        Ok(clientid)
    };
    let mut clientid = setup(&mut conn).map_err(|e| format!("taking the lock: {e}"))?;
    println!("locked");
    let (mut reclaims, mut errors) = (Vec::<u64>::new(), std::collections::BTreeMap::<String, u64>::new());
    let mut conn = Some(conn);
    let mut lost: Option<Instant> = None;
    while Instant::now() < deadline {
        std::thread::sleep(if lost.is_some() { pace } else { Duration::from_secs(1) });
        let round = (|| -> io::Result<()> {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert(Connection::open(addr)?),
            };
            if lost.is_none() {
                return renew(c, clientid);
            }
            // The server is another: the same client, reclaiming.
            clientid = set_client_id(c, &id, verifier)?;
            let opened = open(c, clientid, "holder", &file, Claim::Previous { file: &file })?;
            lock(c, &file, clientid, &opened, "holder-lock", true)
        })();
        match round {
            Ok(()) => {
                if let Some(at) = lost.take() {
                    reclaims.push(at.elapsed().as_millis() as u64);
                }
            }
            Err(e) => {
                *errors.entry(e.to_string()).or_default() += 1;
                lost.get_or_insert_with(Instant::now);
                conn = None;
            }
        }
    }
    let summary = serde_json::json!({
        "locked": true,
        "reclaimed_after_ms": reclaims,
        "holds_at_end": lost.is_none(),
        "errors": errors,
    });
    println!("{summary}");
    Ok(())
}

/// The contender: try the same lock every half second, as a new owner each
/// time; print what the attempts got, in runs (e.g. 12 × NFS4ERR_DENIED).
pub fn contender(server: IpAddr, path: &str, seconds: u64) -> Result<(), String> {
    let addr = SocketAddr::new(server, 2049);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let pace = Duration::from_millis(500);
    let (conn, Handles { dir, file, name }) = connect(addr, path, pace, deadline)?;
    let id = format!("baton-lab contender {}", std::process::id());
    let verifier = (u64::from(std::process::id()) << 1).to_be_bytes();
    let (mut conn, mut clientid) = (Some(conn), None);
    let mut runs: Vec<(String, u64)> = Vec::new();
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let attempt = (|| -> io::Result<()> {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert(Connection::open(addr)?),
            };
            let id = match clientid {
                Some(id) => id,
                None => *clientid.insert(set_client_id(c, &id, verifier)?),
            };
            let opened = open(c, id, &format!("contender-{n}"), &file, Claim::Null { dir: &dir, name: &name })?;
            lock(c, &file, id, &opened, &format!("contender-lock-{n}"), false)
        })();
        let outcome = match attempt {
            Ok(()) => "LOCKED".to_string(),
            Err(e) => {
                let e = e.to_string();
                if !e.starts_with("NFS4ERR_DENIED") && !e.starts_with("NFS4ERR_GRACE") {
                    (conn, clientid) = (None, None);
                }
                e
            }
        };
        match runs.last_mut() {
            Some((last, count)) if *last == outcome => *count += 1,
            _ => runs.push((outcome, 1)),
        }
        std::thread::sleep(pace);
    }
    let runs: Vec<serde_json::Value> = runs.into_iter().map(|(o, n)| serde_json::json!([o, n])).collect();
    println!("{}", serde_json::json!({ "attempts": runs }));
    Ok(())
}
