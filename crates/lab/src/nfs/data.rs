//! `nfs-client`: look a file up once and then, with that same file handle
//! and never a new lookup, write a record and read the whole file back at a
//! fixed pace — across a failover of the server underneath it. READ and
//! WRITE use the anonymous stateid, so the client holds no open state: what
//! it shows is that the next server honours the last one's file handles
//! and serves the bytes the last one wrote. It prints one JSON summary.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::Connection;

/// The bytes of one record the client writes: "0000042\n".
const RECORD: usize = 8;

/// `nfs-client`: look `path` up on `server` once, then write a record and
/// read everything back every `interval` for `seconds`, reconnecting after
/// any failure; print the summary as one JSON line.
pub fn client(server: IpAddr, path: &str, interval: Duration, seconds: u64) -> Result<(), String> {
    let addr = SocketAddr::new(server, 2049);
    let began = Instant::now();
    let deadline = began + Duration::from_secs(seconds);
    let mut conn: Option<Connection> = None;
    let mut handle = None;
    while handle.is_none() {
        if Instant::now() > deadline {
            return Err(format!("no file handle for {path} from {addr} in {seconds} s"));
        }
        match Connection::open(addr).and_then(|mut c| c.lookup(path).map(|fh| (c, fh))) {
            Ok((c, fh)) => (conn, handle) = (Some(c), Some(fh)),
            Err(_) => std::thread::sleep(interval),
        }
    }
    let fh = handle.expect("looked up");
    let (mut written, mut ok, mut failed, mut mismatches) = (Vec::<u64>::new(), 0u64, 0u64, 0u64);
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    // Per run of failed rounds, from the last good round before it to the
    // first good one after: the outages a user of the files saw, in order.
    let (mut last_ok, mut failing, mut gaps) = (Instant::now(), false, Vec::<u64>::new());
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let record = format!("{n:07}\n");
        let round = (|| -> io::Result<()> {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert(Connection::open(addr)?),
            };
            c.write(&fh, (n - 1) * RECORD as u64, record.as_bytes())?;
            written.push(n);
            let data = c.read(&fh, (n * RECORD as u64) as u32)?;
            for &k in &written {
                let at = ((k - 1) as usize) * RECORD;
                if data.get(at..at + RECORD) != Some(format!("{k:07}\n").as_bytes()) {
                    mismatches += 1;
                }
            }
            Ok(())
        })();
        match round {
            Ok(()) => {
                ok += 1;
                if std::mem::take(&mut failing) {
                    gaps.push(last_ok.elapsed().as_millis() as u64);
                }
                last_ok = Instant::now();
            }
            Err(e) => {
                failed += 1;
                failing = true;
                *errors.entry(e.to_string()).or_default() += 1;
                conn = None;
            }
        }
        std::thread::sleep(interval);
    }
    let hex: String = fh.iter().map(|b| format!("{b:02x}")).collect();
    let summary = serde_json::json!({
        "handle": hex,
        "rounds_ok": ok,
        "rounds_failed": failed,
        "records_written": written.len(),
        "mismatches": mismatches,
        "outages_ms": gaps,
        "last_round_ok": !failing,
        "errors": errors,
    });
    println!("{summary}");
    Ok(())
}
