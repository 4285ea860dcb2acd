//! The `ip` resource on real interfaces: two network namespaces joined by a
//! veth pair. Needs root (it creates namespaces); without it the test fails
//! and says so.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use baton_resources::ip::{self, IpSpec};
use baton_resources::netlink::Netlink;

fn sh(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces `a` and `b`, linked by veth `va` ↔ `vb`; removed on drop.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root: it creates network namespaces");
        let id = std::process::id();
        let p = Pair { a: format!("btnt-{id}-{tag}a"), b: format!("btnt-{id}-{tag}b") };
        sh(&["netns", "add", &p.a]);
        sh(&["netns", "add", &p.b]);
        sh(&["-n", &p.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &p.b]);
        sh(&["-n", &p.a, "addr", "add", "10.99.0.1/24", "dev", "va"]);
        sh(&["-n", &p.b, "addr", "add", "10.99.0.2/24", "dev", "vb"]);
        sh(&["-n", &p.a, "link", "set", "va", "up"]);
        sh(&["-n", &p.b, "link", "set", "vb", "up"]);
        p
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread inside namespace `ns`, with its own tokio runtime.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("namespace file");
    std::thread::spawn(move || {
        // SAFETY: setns on a namespace fd moves only this thread.
        assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
        f()
    })
}

/// Waits up to `limit` for a frame of `ethertype` on this thread's
/// namespace's interfaces that `wanted` accepts (given the frame).
fn capture(ethertype: u16, limit: Duration, wanted: impl Fn(&[u8]) -> bool) -> bool {
    // SAFETY: a packet socket with a receive timeout, read into a buffer of its length.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(ethertype.to_be()));
        assert!(fd >= 0, "packet socket");
        let tv = libc::timeval { tv_sec: 0, tv_usec: 200_000 };
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), 16);
        let start = Instant::now();
        let mut buf = [0u8; 1500];
        let mut seen = false;
        while start.elapsed() < limit && !seen {
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            seen = n > 0 && wanted(&buf[..n as usize]);
        }
        libc::close(fd);
        seen
    }
}

/// An ARP frame whose sender is `ip` (a gratuitous ARP).
fn capture_garp(ip: [u8; 4], limit: Duration) -> bool {
    capture(0x0806, limit, |f| f.len() >= 42 && f[28..32] == ip && f[38..42] == ip)
}

/// An ICMPv6 neighbour advertisement (Ethernet 14 + IPv6 40: next header
/// 58, type 136) whose target is `ip`.
fn capture_na(ip: [u8; 16], limit: Duration) -> bool {
    capture(0x86dd, limit, |f| f.len() >= 78 && f[20] == 58 && f[54] == 136 && f[62..78] == ip)
}

#[test]
fn an_address_is_added_announced_checked_and_removed() {
    let pair = Pair::new("4");
    let listener = in_netns(&pair.b, || capture_garp([10, 99, 0, 100], Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(100));
    let owner = in_netns(&pair.a, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let nl = Netlink::connect().unwrap();
            let addr: IpAddr = "10.99.0.100".parse().unwrap();
            let spec = IpSpec {
                ip: addr,
                prefix: None,
                interface: None,
                garp_count: 3,
                garp_interval: Duration::from_millis(100),
            };
            assert!(!ip::check(&nl, addr).await.unwrap());
            let placed = ip::start(&nl, &spec).await.unwrap();
            assert_eq!(placed.prefix, 24, "the prefix comes from the interface in that subnet");
            assert!(ip::check(&nl, addr).await.unwrap());
            ip::start(&nl, &spec).await.expect("starting twice is harmless");
            tokio::time::sleep(Duration::from_millis(300)).await;
            ip::stop(&nl, addr).await.unwrap();
            assert!(!ip::check(&nl, addr).await.unwrap());
            ip::stop(&nl, addr).await.expect("stopping twice is harmless");
        })
    });
    owner.join().expect("the owner side");
    assert!(listener.join().unwrap(), "no gratuitous ARP for 10.99.0.100 reached the other namespace");
    drop(pair);
}

/// keepalived's reason for NODAD: an IPv6 service address must be usable at
/// once after a takeover, not "tentative" while duplicate detection runs.
#[test]
fn an_ipv6_address_is_usable_at_once_and_announced() {
    let pair = Pair::new("6");
    sh(&["-n", &pair.a, "addr", "add", "fd00:99::1/64", "dev", "va", "nodad"]);
    sh(&["-n", &pair.b, "addr", "add", "fd00:99::2/64", "dev", "vb", "nodad"]);
    let addr: IpAddr = "fd00:99::100".parse().unwrap();
    let IpAddr::V6(v6) = addr else { unreachable!() };
    let listener = in_netns(&pair.b, move || capture_na(v6.octets(), Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(100));
    let a = pair.a.clone();
    let owner = in_netns(&pair.a, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let nl = Netlink::connect().unwrap();
            let spec = IpSpec {
                ip: addr,
                prefix: None,
                interface: None,
                garp_count: 3,
                garp_interval: Duration::from_millis(100),
            };
            let placed = ip::start(&nl, &spec).await.unwrap();
            assert_eq!(placed.prefix, 64);
            let out = Command::new("ip").args(["-n", &a, "-6", "addr", "show", "dev", "va"]).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let line = text.lines().find(|l| l.contains("fd00:99::100")).expect("the address is on va").to_string();
            tokio::time::sleep(Duration::from_millis(300)).await;
            ip::stop(&nl, addr).await.unwrap();
            line
        })
    });
    let line = owner.join().expect("the owner side");
    assert!(!line.contains("tentative"), "the service address is tentative: {line}");
    assert!(line.contains("nodad"), "added without duplicate address detection: {line}");
    assert!(listener.join().unwrap(), "no unsolicited neighbour advertisement for fd00:99::100 reached b");
    drop(pair);
}
