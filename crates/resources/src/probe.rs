//! Who holds an IPv4 address on a segment: ARP probes (RFC 5227: sender
//! address 0.0.0.0, so that no neighbour cache learns anything from them)
//! sent as raw frames on one interface, and every ARP reply or announcement
//! from the targets collected for a moment.

use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const ETH_P_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];

struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by us and is closed once.
        unsafe { libc::close(self.0) };
    }
}

fn check(r: isize, what: &str) -> io::Result<isize> {
    if r < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

/// An ARP probe for `target` from `mac` (RFC 5227 §2.1.1).
pub fn probe_frame(mac: [u8; 6], target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&BROADCAST);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0; 4]); // sender IP: none
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// (sender IP, sender MAC) of an ARP reply, or of a request announcing its
/// sender (a gratuitous ARP), if `frame` is one.
pub fn sender(frame: &[u8]) -> Option<(Ipv4Addr, [u8; 6])> {
    if frame.len() < 42 || frame[12..14] != ETH_P_ARP.to_be_bytes() || frame[14..20] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    let ip = Ipv4Addr::new(frame[28], frame[29], frame[30], frame[31]);
    if ip.is_unspecified() {
        return None; // another prober
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&frame[22..28]);
    Some((ip, mac))
}

/// Probes each of `targets` on interface `ifindex` (whose hardware address
/// is `mac`) and collects, for `wait`, who answers for them: (address,
/// hardware address) pairs, each once. Blocking: run it off the event loop.
pub fn who_has(
    ifindex: u32,
    mac: [u8; 6],
    targets: &[Ipv4Addr],
    wait: Duration,
) -> io::Result<Vec<(Ipv4Addr, [u8; 6])>> {
    // SAFETY: plain socket calls with fully initialised arguments; the
    // buffer outlives each recv.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(ETH_P_ARP.to_be()));
        let fd = Fd(check(fd as isize, "opening a packet socket")? as libc::c_int);
        let mut addr: libc::sockaddr_ll = mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ARP.to_be();
        addr.sll_ifindex = ifindex as i32;
        let len = mem::size_of::<libc::sockaddr_ll>() as u32;
        check(libc::bind(fd.0, (&addr as *const libc::sockaddr_ll).cast(), len) as isize, "binding the packet socket")?;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&BROADCAST);
        for &t in targets {
            let frame = probe_frame(mac, t);
            let sent = libc::sendto(
                fd.0,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                len,
            );
            check(sent, "sending an ARP probe")?;
        }
        let until = Instant::now() + wait;
        let mut found = Vec::new();
        let mut buf = [0u8; 1514];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(found);
            }
            let mut pfd = libc::pollfd { fd: fd.0, events: libc::POLLIN, revents: 0 };
            if libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) <= 0 {
                continue;
            }
            let n = libc::recv(fd.0, buf.as_mut_ptr().cast(), buf.len(), 0);
            let Ok(n) = check(n, "receiving ARP") else { continue };
            if let Some((ip, from)) = sender(&buf[..n as usize]) {
                if from != mac && targets.contains(&ip) && !found.contains(&(ip, from)) {
                    found.push((ip, from));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_has_no_sender_address_and_a_reply_names_its_sender() {
        let f = probe_frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[28..32], &[0, 0, 0, 0], "RFC 5227: the sender address is zero");
        assert_eq!(&f[38..42], &[10, 0, 0, 100]);
        assert_eq!(sender(&f), None, "a probe names nobody");
        let mut reply = f.clone();
        reply[21] = 2;
        reply[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        reply[28..32].copy_from_slice(&[10, 0, 0, 100]);
        assert_eq!(sender(&reply), Some((Ipv4Addr::new(10, 0, 0, 100), [2, 0, 0, 0, 0, 9])));
        assert_eq!(sender(&reply[..30]), None);
    }
}
