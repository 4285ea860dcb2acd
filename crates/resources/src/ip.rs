//! The `ip` resource: a service address added to the interface in its
//! subnet (or the one named), announced on the wire, checked by its monitor.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use crate::announce::announce;
use crate::netlink::{Iface, Netlink};
use crate::resource::{Done, Resource};
use crate::undo::Undo;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpSpec {
    pub ip: IpAddr,
    pub prefix: Option<u8>,
    pub interface: Option<String>,
    pub garp_count: u32,
    pub garp_interval: Duration,
}

/// Where an address was put, for the guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub prefix: u8,
}

fn in_subnet(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            u32::from(a) & m == u32::from(b) & m
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            u128::from(a) & m == u128::from(b) & m
        }
        _ => false,
    }
}

/// The interface for `spec` and the prefix to use: the named one, else the
/// first running interface with an address whose own network holds the
/// service address (so a host address such as a /32 on `lo` never draws it).
pub fn choose(ifaces: &[Iface], spec: &IpSpec) -> io::Result<(Iface, u8)> {
    let fits =
        |i: &Iface| i.addresses.iter().find(|(a, p)| *a != spec.ip && in_subnet(*a, spec.ip, *p)).map(|(_, p)| *p);
    if let Some(name) = &spec.interface {
        let iface = ifaces
            .iter()
            .find(|i| &i.name == name)
            .ok_or_else(|| io::Error::other(format!("no interface named {name} for {}", spec.ip)))?;
        let prefix = spec.prefix.or_else(|| fits(iface)).unwrap_or(if spec.ip.is_ipv4() { 32 } else { 128 });
        return Ok((iface.clone(), prefix));
    }
    let mut candidates = ifaces.iter().filter_map(|i| fits(i).map(|p| (i, p))).collect::<Vec<_>>();
    candidates.sort_by_key(|(i, _)| !i.running);
    let (iface, p) = candidates
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::other(format!("no interface has an address in the subnet of {}", spec.ip)))?;
    Ok((iface.clone(), spec.prefix.unwrap_or(p)))
}

pub async fn start(nl: &Netlink, spec: &IpSpec) -> io::Result<Placed> {
    let ifaces = nl.interfaces().await?;
    let (iface, prefix) = choose(&ifaces, spec)?;
    nl.add_address(iface.index, spec.ip, prefix).await?;
    let placed = Placed { ifindex: iface.index, ip: spec.ip, prefix };
    if let Some(mac) = iface.mac.filter(|_| spec.garp_count > 0) {
        announce(iface.index, mac, spec.ip)
            .map_err(|e| io::Error::new(e.kind(), format!("announcing {} on {}: {e}", spec.ip, iface.name)))?;
        let (ip, count, interval) = (spec.ip, spec.garp_count, spec.garp_interval);
        tokio::spawn(async move {
            for _ in 1..count {
                tokio::time::sleep(interval).await;
                // Later announcements are best effort: the address may be
                // released meanwhile, and then the send fails harmlessly.
                let _ = announce(iface.index, mac, ip);
            }
        });
    }
    Ok(placed)
}

pub async fn stop(nl: &Netlink, ip: IpAddr) -> io::Result<()> {
    nl.del_address(ip).await.map(|_| ())
}

pub async fn check(nl: &Netlink, ip: IpAddr) -> io::Result<bool> {
    Ok(nl.holder(ip).await?.is_some())
}

/// What the monitor of an address found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Present,
    Missing,
    /// Its interface lost carrier; the address moved to another interface
    /// on the same subnet (HACMP's adapter swap).
    Swapped {
        from: String,
        to: String,
    },
    /// Its interface lost carrier and no other interface is on the subnet.
    Stranded {
        on: String,
    },
}

/// The monitor: present and reachable, or moved to a standby adapter.
pub async fn monitor(nl: &Netlink, spec: &IpSpec) -> io::Result<Health> {
    let ifaces = nl.interfaces().await?;
    let Some(holder) = ifaces.iter().find(|i| i.addresses.iter().any(|(a, _)| *a == spec.ip)) else {
        return Ok(Health::Missing);
    };
    if holder.running || spec.interface.is_some() {
        return Ok(Health::Present);
    }
    let others: Vec<Iface> = ifaces.iter().filter(|i| i.index != holder.index && i.running).cloned().collect();
    let Ok((to, prefix)) = choose(&others, spec) else {
        return Ok(Health::Stranded { on: holder.name.clone() });
    };
    nl.add_address(to.index, spec.ip, prefix).await?;
    if let Some(mac) = to.mac {
        announce(to.index, mac, spec.ip)?;
    }
    // Only the old interface's copy goes: delete by interface.
    nl.del_address_on(holder.index, spec.ip).await?;
    // Linux keeps routing through a link without carrier unless told not
    // to; replies to clients must leave through the standby adapter.
    ignore_routes_on_dead_link(&holder.name)?;
    Ok(Health::Swapped { from: holder.name.clone(), to: to.name })
}

/// The `ip` resource.
pub struct Address {
    pub nl: Netlink,
    pub spec: IpSpec,
}

impl Resource for Address {
    fn undo(&self) -> Vec<Undo> {
        vec![Undo::Address { ip: self.spec.ip }]
    }

    fn start(&self, _: Duration) -> Done<'_> {
        Box::pin(async move { start(&self.nl, &self.spec).await.map(|_| ()).map_err(|e| e.to_string()) })
    }

    fn stop(&self, _: Duration) -> Done<'_> {
        Box::pin(async move { stop(&self.nl, self.spec.ip).await.map_err(|e| e.to_string()) })
    }

    fn monitor(&self, _: Duration) -> Done<'_> {
        Box::pin(async move {
            let ip = self.spec.ip;
            match monitor(&self.nl, &self.spec).await.map_err(|e| format!("checking {ip}: {e}"))? {
                Health::Present => Ok(()),
                Health::Swapped { from, to } => {
                    tracing::info!("baton: link event: {from} lost carrier; {ip} moved to {to}");
                    Ok(())
                }
                Health::Stranded { on } => Err(format!("{on} lost carrier and no other interface is on {ip}'s subnet")),
                Health::Missing => Err(format!("{ip} is not on any interface")),
            }
        })
    }
}

fn ignore_routes_on_dead_link(iface: &str) -> io::Result<()> {
    for family in ["ipv4", "ipv6"] {
        let path = format!("/proc/sys/net/{family}/conf/{iface}/ignore_routes_with_linkdown");
        match std::fs::write(&path, "1") {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("writing {path}: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(index: u32, name: &str, running: bool, addrs: &[(&str, u8)]) -> Iface {
        Iface {
            index,
            name: name.into(),
            mac: Some([2, 0, 0, 0, 0, index as u8]),
            running,
            addresses: addrs.iter().map(|(a, p)| (a.parse().unwrap(), *p)).collect(),
        }
    }

    fn spec(ip: &str, prefix: Option<u8>, interface: Option<&str>) -> IpSpec {
        IpSpec {
            ip: ip.parse().unwrap(),
            prefix,
            interface: interface.map(Into::into),
            garp_count: 5,
            garp_interval: Duration::from_millis(200),
        }
    }

    #[test]
    fn the_interface_in_the_subnet_is_chosen_a_running_one_first() {
        let ifs = [
            iface(1, "lo", true, &[("127.0.0.1", 8)]),
            iface(2, "eth0", false, &[("10.0.0.1", 24)]),
            iface(3, "eth1", true, &[("10.0.0.5", 24)]),
            iface(4, "eth2", true, &[("192.168.0.1", 24)]),
        ];
        let (i, p) = choose(&ifs, &spec("10.0.0.100", None, None)).unwrap();
        assert_eq!((i.name.as_str(), p), ("eth1", 24));
        let (i, p) = choose(&ifs, &spec("10.0.0.100", Some(25), Some("eth2"))).unwrap();
        assert_eq!((i.name.as_str(), p), ("eth2", 25));
        assert!(choose(&ifs, &spec("172.16.0.1", None, None)).is_err());
        assert!(choose(&ifs, &spec("10.0.0.100", None, Some("eth9"))).is_err());
    }

    /// Found by the chaos scenarios: with a /32 of the same range on `lo`
    /// (the ownership checker's marker; a load balancer's service address
    /// looks the same), the service address went to `lo`, whose route then
    /// swallowed the node's traffic to that network.
    #[test]
    fn a_host_address_on_lo_does_not_draw_the_service_address() {
        let ifs = [
            iface(1, "lo", true, &[("127.0.0.1", 8), ("10.0.0.249", 32)]),
            iface(2, "eth0", true, &[("10.0.0.1", 24)]),
        ];
        let (i, p) = choose(&ifs, &spec("10.0.0.100", Some(24), None)).unwrap();
        assert_eq!((i.name.as_str(), p), ("eth0", 24));
    }
}
