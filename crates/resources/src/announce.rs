//! Telling the segment an address moved: a gratuitous ARP (IPv4) or an
//! unsolicited neighbour advertisement (IPv6), sent as real frames so that
//! switches and the clients' caches follow the address to its new port.

use std::collections::BTreeMap;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

const ETH_P_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];

/// Owns an ICMPv6 socket for the life of one announcement.
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by us and is closed once.
        unsafe { libc::close(self.0) };
    }
}

fn check(r: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if r < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

/// The ARP request that announces `ip` at `mac` (sender = target = ip).
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&BROADCAST);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

/// The packet socket gratuitous ARPs leave by, one per network namespace
/// for the life of the process: opened with protocol 0, so it receives
/// nothing, and never closed, because closing a packet socket waits for an
/// RCU grace period — tens of milliseconds on a busy kernel, during which
/// the agent's thread, which announces, sent no heartbeat (a lab cluster
/// at heartbeat 10 ms lost its lease at every start this way).
fn packet_socket() -> io::Result<libc::c_int> {
    static SOCKETS: Mutex<BTreeMap<u64, libc::c_int>> = Mutex::new(BTreeMap::new());
    let netns = std::fs::metadata("/proc/thread-self/ns/net")
        .map_err(|e| io::Error::new(e.kind(), format!("finding this thread's network namespace: {e}")))?
        .ino();
    let mut sockets = SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&fd) = sockets.get(&netns) {
        return Ok(fd);
    }
    // SAFETY: a plain socket call; the descriptor is kept, never closed.
    let fd = check(
        unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) },
        "opening a packet socket",
    )?;
    sockets.insert(netns, fd);
    Ok(fd)
}

fn send_garp(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
    let fd = packet_socket()?;
    // SAFETY: sendto on our socket with a fully initialised sockaddr_ll.
    unsafe {
        let mut addr: libc::sockaddr_ll = mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ARP.to_be();
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&BROADCAST);
        let frame = garp_frame(mac, ip);
        check(
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as u32,
            ) as libc::c_int,
            "sending a gratuitous ARP",
        )?;
    }
    Ok(())
}

/// An unsolicited neighbour advertisement (RFC 4861 §7.2.6) for `ip`.
pub fn na_message(mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(&[136, 0, 0, 0]); // type, code, checksum (the kernel fills it in)
    m.extend_from_slice(&0x2000_0000u32.to_be_bytes()); // Override
    m.extend_from_slice(&ip.octets());
    m.extend_from_slice(&[2, 1]); // option: target link-layer address, 8 bytes
    m.extend_from_slice(&mac);
    m
}

fn send_na(ifindex: u32, mac: [u8; 6], ip: Ipv6Addr) -> io::Result<()> {
    // SAFETY: plain socket calls with fully initialised arguments.
    unsafe {
        let fd = Fd(check(
            libc::socket(libc::AF_INET6, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMPV6),
            "opening an ICMPv6 socket",
        )?);
        let hops: libc::c_int = 255;
        let opt = |name, value: *const libc::c_void, len| {
            check(libc::setsockopt(fd.0, libc::IPPROTO_IPV6, name, value, len), "configuring the ICMPv6 socket")
        };
        opt(libc::IPV6_MULTICAST_HOPS, (&hops as *const libc::c_int).cast(), 4)?;
        opt(libc::IPV6_MULTICAST_IF, (&ifindex as *const u32).cast(), 4)?;
        let mut to: libc::sockaddr_in6 = mem::zeroed();
        to.sin6_family = libc::AF_INET6 as u16;
        to.sin6_addr.s6_addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
        to.sin6_scope_id = ifindex;
        let msg = na_message(mac, ip);
        check(
            libc::sendto(
                fd.0,
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&to as *const libc::sockaddr_in6).cast(),
                mem::size_of::<libc::sockaddr_in6>() as u32,
            ) as libc::c_int,
            "sending a neighbour advertisement",
        )?;
    }
    Ok(())
}

/// Announce `ip` once on interface `ifindex`, whose hardware address is `mac`.
pub fn announce(ifindex: u32, mac: [u8; 6], ip: IpAddr) -> io::Result<()> {
    match ip {
        IpAddr::V4(v4) => send_garp(ifindex, mac, v4),
        IpAddr::V6(v6) => send_na(ifindex, mac, v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_garp_frame_is_a_broadcast_arp_request_about_itself() {
        let f = garp_frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[..6], &BROADCAST);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "a request");
        assert_eq!(&f[28..32], &[10, 0, 0, 100], "sender is the address");
        assert_eq!(&f[38..42], &[10, 0, 0, 100], "target is the address");
    }

    #[test]
    fn the_na_overrides_and_carries_the_link_layer_address() {
        let m = na_message([2, 0, 0, 0, 0, 1], "fd00::64".parse().unwrap());
        assert_eq!((m[0], m[4]), (136, 0x20));
        assert_eq!(&m[24..26], &[2, 1]);
        assert_eq!(&m[26..32], &[2, 0, 0, 0, 0, 1]);
    }
}
