//! Which configured node this host is: `--node`, else the node one of whose
//! addresses is configured on this host, else the hostname.

use baton_config::Config;

pub async fn node(config: &Config, named: Option<&str>) -> Result<usize, String> {
    let file = config.file.display();
    if let Some(name) = named {
        return config.node_index(name).ok_or_else(|| format!("{file}: no node named \"{name}\""));
    }
    let nl = baton_resources::netlink::Netlink::connect().map_err(|e| format!("opening netlink: {e}"))?;
    let local: Vec<std::net::IpAddr> =
        nl.interfaces().await.map_err(|e| e.to_string())?.into_iter().flat_map(|i| i.addresses).map(|a| a.0).collect();
    if let Some(i) = config.nodes.iter().position(|n| n.addresses.iter().any(|a| local.contains(&a.ip))) {
        return Ok(i);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    config.node_index(host).ok_or_else(|| {
        format!("{file}: cannot tell which node this is: no node's address is on this host and the hostname \"{host}\" is not a node; use --node")
    })
}
