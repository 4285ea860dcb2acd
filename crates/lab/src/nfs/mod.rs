//! The lab's NFS clients, run in the client's namespace: just enough
//! NFSv4.0 over ONC RPC (RFC 7530, RFC 5531) to test an NFS server that
//! moves with its set. `data` writes and reads a file by one file handle
//! across a failover; `lock` holds a lock and reclaims it on the next
//! server, or contends for it.

pub mod data;
pub mod lock;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const NFS_PROGRAM: u32 = 100_003;
const NFS_V4: u32 = 4;
const COMPOUND: u32 = 1;
const AUTH_SYS: u32 = 1;

const OP_GETFH: u32 = 10;
const OP_LOOKUP: u32 = 15;
const OP_PUTFH: u32 = 22;
const OP_PUTROOTFH: u32 = 24;
const OP_READ: u32 = 25;
const OP_WRITE: u32 = 38;
const FILE_SYNC4: u32 = 2;

/// An XDR encoder (RFC 4506): big-endian words, opaques padded to four.
#[derive(Default)]
struct Xdr(Vec<u8>);

impl Xdr {
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn fixed(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    fn opaque(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32).fixed(b)
    }

    /// The anonymous stateid: seqid 0, twelve zero bytes.
    fn anonymous_stateid(&mut self) -> &mut Self {
        self.u32(0).fixed(&[0; 12])
    }
}

/// An XDR decoder over a reply.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        let end = self.at + n.next_multiple_of(4);
        let b = self.b.get(self.at..self.at + n).ok_or_else(|| io::Error::other("a short reply"))?;
        self.at = end;
        Ok(b)
    }

    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("four bytes")))
    }

    fn u64(&mut self) -> io::Result<u64> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }

    fn opaque(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

/// What an NFSv4 status means, for the summary.
fn status_name(status: u32) -> String {
    match status {
        13 => "NFS4ERR_ACCES".into(),
        70 => "NFS4ERR_STALE".into(),
        10010 => "NFS4ERR_DENIED".into(),
        10011 => "NFS4ERR_EXPIRED".into(),
        10022 => "NFS4ERR_STALE_CLIENTID".into(),
        10033 => "NFS4ERR_NO_GRACE".into(),
        10034 => "NFS4ERR_RECLAIM_BAD".into(),
        10013 => "NFS4ERR_GRACE".into(),
        10025 => "NFS4ERR_BAD_STATEID".into(),
        n => format!("NFS4 status {n}"),
    }
}

struct Connection {
    stream: TcpStream,
    xid: u32,
}

impl Connection {
    fn open(server: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&server, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        Ok(Connection { stream, xid: std::process::id() << 12 })
    }

    /// One COMPOUND of `ops` (each encoded with its opcode); returns the
    /// reply positioned at the first op's result.
    fn compound(&mut self, count: u32, ops: &Xdr) -> io::Result<Vec<u8>> {
        self.xid = self.xid.wrapping_add(1);
        let mut call = Xdr::default();
        call.u32(self.xid).u32(0).u32(2).u32(NFS_PROGRAM).u32(NFS_V4).u32(COMPOUND);
        let mut cred = Xdr::default();
        cred.u32(0).opaque(b"baton-lab-client").u32(0).u32(0).u32(0);
        call.u32(AUTH_SYS).opaque(&cred.0).u32(0).u32(0);
        call.opaque(b"").u32(0).u32(count).fixed(&ops.0);
        // One record, its last fragment (RFC 5531's record marking).
        let mut framed = (0x8000_0000 | call.0.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&call.0);
        self.stream.write_all(&framed)?;
        let mut reply = Vec::new();
        loop {
            let mut mark = [0u8; 4];
            self.stream.read_exact(&mut mark)?;
            let mark = u32::from_be_bytes(mark);
            let mut fragment = vec![0u8; (mark & 0x7fff_ffff) as usize];
            self.stream.read_exact(&mut fragment)?;
            reply.extend_from_slice(&fragment);
            if mark & 0x8000_0000 != 0 {
                return Ok(reply);
            }
        }
    }

    /// Runs `ops` and hands the reader, past every op result but the last's
    /// status, to `last` (each op before it must have succeeded).
    fn run<T>(&mut self, ops: &[(u32, Xdr)], last: impl FnOnce(&mut Reader) -> io::Result<T>) -> io::Result<T> {
        let mut all = Xdr::default();
        for (op, args) in ops {
            all.u32(*op).fixed(&args.0);
        }
        let reply = self.compound(ops.len() as u32, &all)?;
        let mut r = Reader { b: &reply, at: 0 };
        let (xid, kind, accepted) = (r.u32()?, r.u32()?, r.u32()?);
        if xid != self.xid || kind != 1 || accepted != 0 {
            return Err(io::Error::other(format!(
                "an RPC reply refused or out of turn (xid {xid}, {kind}, {accepted})"
            )));
        }
        r.u32()?;
        r.opaque()?; // the verifier
        if r.u32()? != 0 {
            return Err(io::Error::other("the RPC call was not accepted"));
        }
        r.u32()?; // the compound's status: the failing op's says more
        r.opaque()?; // the tag
        let results = r.u32()? as usize;
        for (i, (op, _)) in ops.iter().enumerate().take(results) {
            let (got, status) = (r.u32()?, r.u32()?);
            if got != *op {
                return Err(io::Error::other(format!("result {i} is of op {got}, not {op}")));
            }
            if status != 0 {
                return Err(io::Error::other(status_name(status)));
            }
            if i + 1 == ops.len() {
                return last(&mut r);
            }
            if *op == OP_GETFH {
                r.opaque()?;
            }
        }
        Err(io::Error::other("the reply has fewer results than ops"))
    }

    /// The file handle of `path`, one LOOKUP per component from the root.
    fn lookup(&mut self, path: &str) -> io::Result<Vec<u8>> {
        let mut ops = vec![(OP_PUTROOTFH, Xdr::default())];
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let mut name = Xdr::default();
            name.opaque(part.as_bytes());
            ops.push((OP_LOOKUP, name));
        }
        ops.push((OP_GETFH, Xdr::default()));
        self.run(&ops, |r| r.opaque())
    }

    fn putfh(fh: &[u8]) -> (u32, Xdr) {
        let mut x = Xdr::default();
        x.opaque(fh);
        (OP_PUTFH, x)
    }

    fn write(&mut self, fh: &[u8], offset: u64, data: &[u8]) -> io::Result<()> {
        let mut w = Xdr::default();
        w.anonymous_stateid().u64(offset).u32(FILE_SYNC4).opaque(data);
        let written = self.run(&[Self::putfh(fh), (OP_WRITE, w)], |r| r.u32())?;
        if written as usize != data.len() {
            return Err(io::Error::other(format!("wrote {written} of {} bytes", data.len())));
        }
        Ok(())
    }

    fn read(&mut self, fh: &[u8], count: u32) -> io::Result<Vec<u8>> {
        let mut rd = Xdr::default();
        rd.anonymous_stateid().u64(0).u32(count);
        self.run(&[Self::putfh(fh), (OP_READ, rd)], |r| {
            r.u32()?; // eof
            r.opaque()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdr_pads_opaques_to_four_bytes_and_reads_them_back() {
        let mut x = Xdr::default();
        x.opaque(b"abcde").u32(7).anonymous_stateid();
        assert_eq!(&x.0[..12], &[0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]);
        assert_eq!(x.0.len(), 12 + 4 + 16);
        let mut r = Reader { b: &x.0, at: 0 };
        assert_eq!(r.opaque().unwrap(), b"abcde");
        assert_eq!(r.u32().unwrap(), 7);
        assert!(Reader { b: &[0, 0, 0, 9, 1], at: 0 }.opaque().is_err(), "a short opaque is an error");
        assert_eq!(status_name(10013), "NFS4ERR_GRACE");
    }
}
