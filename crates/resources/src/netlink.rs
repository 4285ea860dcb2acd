//! Interfaces and addresses through rtnetlink: the only way baton changes
//! the host's addresses.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::Handle;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// Administratively up and with carrier.
    pub running: bool,
    pub addresses: Vec<(IpAddr, u8)>,
}

/// An rtnetlink connection; its driver runs on the current tokio runtime.
/// The kernel runs one dump at a time per netlink socket and answers a
/// second one begun meanwhile with `EBUSY`, so dumps take turns (`dumps`):
/// a node starting tens of sets at once lists addresses for each.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
    dumps: Arc<tokio::sync::Mutex<()>>,
}

fn nl(op: &str, e: rtnetlink::Error) -> io::Error {
    io::Error::other(format!("{op}: {e}"))
}

fn address_of(msg: &AddressMessage) -> Option<IpAddr> {
    // IPv4 keeps the interface's own address in IFA_LOCAL; IPv6 only has IFA_ADDRESS.
    let local = msg.attributes.iter().find_map(|a| if let AddressAttribute::Local(ip) = a { Some(*ip) } else { None });
    local.or_else(|| {
        msg.attributes.iter().find_map(|a| if let AddressAttribute::Address(ip) = a { Some(*ip) } else { None })
    })
}

impl Netlink {
    pub fn connect() -> io::Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Netlink { handle, dumps: Arc::default() })
    }

    async fn links(&self) -> io::Result<Vec<LinkMessage>> {
        let _turn = self.dumps.lock().await;
        self.handle.link().get().execute().try_collect().await.map_err(|e| nl("listing interfaces", e))
    }

    async fn addresses(&self) -> io::Result<Vec<AddressMessage>> {
        let _turn = self.dumps.lock().await;
        self.handle.address().get().execute().try_collect().await.map_err(|e| nl("listing addresses", e))
    }

    pub async fn interfaces(&self) -> io::Result<Vec<Iface>> {
        let mut out = Vec::new();
        for link in self.links().await? {
            let mut iface = Iface {
                index: link.header.index,
                name: String::new(),
                mac: None,
                running: link.header.flags.contains(LinkFlags::Up) && link.header.flags.contains(LinkFlags::LowerUp),
                addresses: Vec::new(),
            };
            for attr in &link.attributes {
                match attr {
                    LinkAttribute::IfName(n) => iface.name = n.clone(),
                    LinkAttribute::Address(a) if a.len() == 6 => iface.mac = a[..].try_into().ok(),
                    _ => {}
                }
            }
            out.push(iface);
        }
        for msg in self.addresses().await? {
            if let (Some(ip), Some(iface)) = (address_of(&msg), out.iter_mut().find(|i| i.index == msg.header.index)) {
                iface.addresses.push((ip, msg.header.prefix_len));
            }
        }
        Ok(out)
    }

    /// Adds `ip/prefix` to interface `index`; an address already there is
    /// fine. An IPv6 address skips duplicate address detection (`NODAD`, as
    /// keepalived does): a service address is usable at once after a
    /// takeover, not "tentative" for a second — only one node holds it.
    pub async fn add_address(&self, index: u32, ip: IpAddr, prefix: u8) -> io::Result<()> {
        let mut req = self.handle.address().add(index, ip, prefix);
        if ip.is_ipv6() {
            let msg = req.message_mut();
            msg.header.flags = AddressHeaderFlags::Nodad;
            msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            Err(e) => Err(nl(&format!("adding {ip}/{prefix} on interface {index}"), e)),
        }
    }

    /// Removes `ip` from every interface that has it; returns how many.
    pub async fn del_address(&self, ip: IpAddr) -> io::Result<usize> {
        let found: Vec<AddressMessage> =
            self.addresses().await?.into_iter().filter(|msg| address_of(msg) == Some(ip)).collect();
        let n = found.len();
        for msg in found {
            let index = msg.header.index;
            match self.handle.address().del(msg).execute().await {
                Ok(()) => {}
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => {}
                Err(e) => return Err(nl(&format!("removing {ip} from interface {index}"), e)),
            }
        }
        Ok(n)
    }

    /// Removes `ip` from interface `index` only.
    pub async fn del_address_on(&self, index: u32, ip: IpAddr) -> io::Result<()> {
        let found =
            self.addresses().await?.into_iter().rfind(|msg| msg.header.index == index && address_of(msg) == Some(ip));
        if let Some(msg) = found {
            self.handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(|e| nl(&format!("removing {ip} from interface {index}"), e))?;
        }
        Ok(())
    }

    /// The interface that holds `ip`, if any.
    pub async fn holder(&self, ip: IpAddr) -> io::Result<Option<Iface>> {
        Ok(self.interfaces().await?.into_iter().find(|i| i.addresses.iter().any(|(a, _)| *a == ip)))
    }
}
