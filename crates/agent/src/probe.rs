//! Carries out the core's probes: asks the segment who holds a set's IPv4
//! addresses, and which hardware addresses the nodes' own link addresses
//! answer from, then reports the holders that are not the named owner.
//! The core decides what a sighting means; this only looks.
//!
//! Not covered: IPv6 service addresses (not probed yet), and an owner whose
//! address moved to a standby adapter that has no node address of its own
//! (its hardware address is unknown here, so it would look like a stranger).
//! A sighting counts once the cluster agrees on it at the set's generation
//! (`Command::Duplicate`), so a prober whose view is behind cannot raise a
//! false alarm.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use baton_config::{Config, ResourceKind};
use baton_core::{Input, NodeId, SetId, Stranger};
use baton_resources::netlink::Netlink;
use baton_resources::probe;
use tokio::sync::mpsc;

/// How long answers are collected.
const ANSWER_WAIT: Duration = Duration::from_millis(200);

/// What one set's probe needs: its IPv4 addresses, and per address the
/// link it lives on.
#[derive(Clone, Debug)]
pub struct Targets {
    /// (service address, link index).
    addresses: Vec<(Ipv4Addr, usize)>,
}

/// Every node's address on each link, and the probe targets of each set.
#[derive(Clone, Debug)]
pub struct Prober {
    me: NodeId,
    /// [node][link]
    node_addresses: Vec<Vec<IpAddr>>,
    sets: Vec<Targets>,
}

impl Prober {
    pub fn new(config: &Config, me: NodeId) -> Prober {
        let sets = config
            .sets
            .iter()
            .map(|set| Targets {
                addresses: set
                    .resources
                    .iter()
                    .filter_map(|r| match &r.kind {
                        ResourceKind::Ip { address, .. } => match address.ip {
                            IpAddr::V4(v4) => config.link_of(address).map(|l| (v4, l)),
                            IpAddr::V6(_) => None,
                        },
                        _ => None,
                    })
                    .collect(),
            })
            .collect();
        let node_addresses = config.nodes.iter().map(|n| n.addresses.iter().map(|a| a.ip).collect()).collect();
        Prober { me, node_addresses, sets }
    }

    /// Probes the sets `asks` names in the background and answers each on
    /// `results`.
    pub fn probe(&self, nl: Netlink, asks: Vec<Ask>, results: mpsc::Sender<Input>) {
        let me = self.clone();
        tokio::spawn(async move {
            match me.strangers(&nl, &asks).await {
                Ok(found) => {
                    for (ask, strangers) in asks.into_iter().zip(found) {
                        let input = Input::Probed { set: ask.set, generation: ask.generation, strangers };
                        let _ = results.send(input).await;
                    }
                }
                Err(e) => tracing::warn!("baton: probing the addresses of {} sets: {e}", asks.len()),
            }
        });
    }

    /// Per ask, the holders of its set's addresses other than its owner:
    /// this node itself if it holds one, else whoever answers when the
    /// segment is asked — once per link for every address asked there.
    async fn strangers(&self, nl: &Netlink, asks: &[Ask]) -> Result<Vec<Vec<Stranger>>, String> {
        let ifaces = nl.interfaces().await.map_err(|e| e.to_string())?;
        let mut found = vec![Vec::new(); asks.len()];
        // (ask, service address) to ask the segment about, per link.
        let mut per_link: BTreeMap<usize, Vec<(usize, Ipv4Addr)>> = BTreeMap::new();
        for (k, ask) in asks.iter().enumerate() {
            for &(vip, link) in &self.sets[usize::from(ask.set)].addresses {
                match ifaces.iter().find(|i| i.addresses.iter().any(|(a, _)| *a == IpAddr::V4(vip))) {
                    // This node holds an address of a set it does not own.
                    Some(iface) => found[k].push(Stranger { mac: iface.mac.unwrap_or_default(), node: Some(self.me) }),
                    None => per_link.entry(link).or_default().push((k, vip)),
                }
            }
        }
        for (link, vips) in per_link {
            // The interface on this link: the one holding this node's own
            // address there.
            let Some(&mine) = self.node_addresses[usize::from(self.me)].get(link) else { continue };
            let Some(iface) = ifaces.iter().find(|i| i.addresses.iter().any(|(a, _)| *a == mine)) else { continue };
            let Some(mac) = iface.mac else { continue };
            let nodes: Vec<(NodeId, Ipv4Addr)> = (0..self.node_addresses.len())
                .filter(|&n| n != usize::from(self.me))
                .filter_map(|n| match self.node_addresses[n].get(link)? {
                    IpAddr::V4(v4) => Some((n as NodeId, *v4)),
                    IpAddr::V6(_) => None,
                })
                .collect();
            let mut targets: Vec<Ipv4Addr> =
                vips.iter().map(|(_, v)| *v).chain(nodes.iter().map(|(_, a)| *a)).collect();
            targets.sort_unstable();
            targets.dedup();
            let index = iface.index;
            let answers = tokio::task::spawn_blocking(move || probe::who_has(index, mac, &targets, ANSWER_WAIT))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            for (k, vip) in vips {
                found[k].extend(classify(&answers, vip, &nodes, asks[k].owner));
            }
        }
        Ok(found)
    }
}

/// A set to probe, as the core asked: its owner as agreed, at which
/// generation.
pub struct Ask {
    pub set: SetId,
    pub owner: Option<NodeId>,
    pub generation: u64,
}

/// The holders of `vip` among `answers` that are not `owner`: the owner is
/// known by the hardware addresses its node addresses answered from.
fn classify(
    answers: &[(Ipv4Addr, [u8; 6])],
    vip: Ipv4Addr,
    nodes: &[(NodeId, Ipv4Addr)],
    owner: Option<NodeId>,
) -> Vec<Stranger> {
    let node_of = |mac: [u8; 6]| nodes.iter().find(|(_, a)| answers.contains(&(*a, mac))).map(|(n, _)| *n);
    answers
        .iter()
        .filter(|(ip, _)| *ip == vip)
        .map(|(_, mac)| Stranger { mac: *mac, node: node_of(*mac) })
        .filter(|s| s.node.is_none() || s.node != owner)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_holders_other_than_the_owner_are_strangers() {
        let vip = Ipv4Addr::new(10, 0, 0, 100);
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let nodes = [(0, a), (1, b)];
        let (mac_a, mac_b, mac_x) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 9]);
        let answers = [(a, mac_a), (b, mac_b), (vip, mac_a)];
        assert!(classify(&answers, vip, &nodes, Some(0)).is_empty(), "the owner itself");
        assert_eq!(classify(&answers, vip, &nodes, Some(1)), [Stranger { mac: mac_a, node: Some(0) }]);
        assert_eq!(classify(&answers, vip, &nodes, None), [Stranger { mac: mac_a, node: Some(0) }]);
        let by_hand = [(a, mac_a), (vip, mac_x)];
        assert_eq!(classify(&by_hand, vip, &nodes, Some(0)), [Stranger { mac: mac_x, node: None }]);
    }
}
