//! The `[[sets.NAME.resources]]` tables: one schema per resource type, and
//! the keys every type shares.

use std::time::Duration;

use crate::model::{Address, NfsServer, Resource, ResourceKind};
use crate::tree::{Span, Table, Val};
use crate::walk::{Ctx, Fields};

const COMMON: &[&str] = &["type", "timeout", "interval"];

/// Each type and the keys that belong to it (besides the common ones).
const TYPES: &[(&str, &[&str])] = &[
    ("ip", &["address", "interface", "garp_count", "garp_interval"]),
    ("process", &["command", "env"]),
    ("exec", &["start", "stop", "monitor"]),
    ("systemd", &["unit"]),
    ("lsb", &["script"]),
    ("ocf", &["agent", "params"]),
    ("mount", &["device", "path", "fstype", "options"]),
    ("nfs", &["path", "fsid", "clients", "options", "lock_dir", "server", "address", "grace"]),
];

pub fn parse(ctx: &mut Ctx, path: &str, t: &Table, links: &[Option<Address>]) -> Option<Resource> {
    let mut f = Fields::new(path, t);
    let (ty, ty_span) = f.required_string(ctx, "type")?;
    let Some(&(_, own)) = TYPES.iter().find(|(name, _)| *name == ty) else {
        let names: Vec<&str> = TYPES.iter().map(|t| t.0).collect();
        ctx.at(&ty_span, &f.key("type"), format!("unknown resource type \"{ty}\"; one of {}", names.join(", ")));
        return None;
    };
    let timeout = f.duration(ctx, "timeout").map(|d| d.0);
    let interval = f.duration(ctx, "interval").map(|d| d.0);
    let kind = kind(ctx, &mut f, &ty, links);
    f.finish(ctx, |key| {
        let owners: Vec<&str> = TYPES.iter().filter(|(_, keys)| keys.contains(&key)).map(|t| t.0).collect();
        (!owners.is_empty() && !own.contains(&key) && !COMMON.contains(&key))
            .then(|| format!("does not belong to a \"{ty}\" resource (it is a key of: {})", owners.join(", ")))
    });
    Some(Resource { kind: kind?, timeout, interval })
}

fn required_strings(ctx: &mut Ctx, f: &mut Fields, key: &str) -> Option<Vec<String>> {
    let Some(list) = f.strings(ctx, key) else {
        if f.get(key).is_none() {
            f.missing(ctx, key);
        }
        return None;
    };
    if list.is_empty() {
        let span = f.get(key).and_then(|e| e.span.clone());
        ctx.at(&span, &f.key(key), "needs at least the program to run");
        return None;
    }
    Some(list.into_iter().map(|x| x.0).collect())
}

fn kind(ctx: &mut Ctx, f: &mut Fields, ty: &str, links: &[Option<Address>]) -> Option<ResourceKind> {
    let req = |ctx: &mut Ctx, f: &mut Fields, key| f.required_string(ctx, key).map(|x| x.0);
    Some(match ty {
        "ip" => {
            let (text, span) = f.required_string(ctx, "address")?;
            let interface = f.string(ctx, "interface").map(|x| x.0);
            let garp_count = f.int(ctx, "garp_count", 0, 100).map_or(5, |x| x.0 as u32);
            let garp_interval = f.duration(ctx, "garp_interval").map_or(Duration::from_millis(200), |x| x.0);
            let address = match Address::parse(&text) {
                Ok(a) => a,
                Err(why) => {
                    ctx.at(&span, &f.key("address"), why);
                    return None;
                }
            };
            if interface.is_none() {
                check_subnet(ctx, &f.key("address"), &span, &address, links);
            }
            ResourceKind::Ip { address, interface, garp_count, garp_interval }
        }
        "process" => {
            let command = required_strings(ctx, f, "command");
            let env = f.string_map(ctx, "env").unwrap_or_default();
            ResourceKind::Process { command: command?, env }
        }
        "exec" => {
            let start = required_strings(ctx, f, "start");
            let stop = required_strings(ctx, f, "stop");
            let monitor = if f.get("monitor").is_some() { Some(required_strings(ctx, f, "monitor")?) } else { None };
            ResourceKind::Exec { start: start?, stop: stop?, monitor }
        }
        "systemd" => ResourceKind::Systemd { unit: req(ctx, f, "unit")? },
        "lsb" => ResourceKind::Lsb { script: req(ctx, f, "script")? },
        "ocf" => {
            let (agent, span) = f.required_string(ctx, "agent")?;
            let params = f.string_map(ctx, "params").unwrap_or_default();
            let Some((provider, name)) = agent.split_once(':').filter(|(p, n)| !p.is_empty() && !n.is_empty()) else {
                ctx.at(&span, &f.key("agent"), format!("\"{agent}\" is not provider:type, e.g. \"heartbeat:Dummy\""));
                return None;
            };
            ResourceKind::Ocf { provider: provider.into(), agent: name.into(), params }
        }
        "mount" => {
            let device = req(ctx, f, "device");
            let path = req(ctx, f, "path");
            let fstype = req(ctx, f, "fstype");
            let options = f.string(ctx, "options").map_or_else(|| "defaults".to_string(), |x| x.0);
            ResourceKind::Mount { device: device?, path: path?, fstype: fstype?, options }
        }
        "nfs" => {
            let path = req(ctx, f, "path");
            let fsid = match f.get("fsid").map(|e| (&e.value, e.span.clone())) {
                Some((Val::Str(s), _)) => Some(s.clone()),
                Some((Val::Int(n), _)) => Some(n.to_string()),
                Some((other, span)) => {
                    ctx.at(
                        &span,
                        &f.key("fsid"),
                        format!("expected an integer or a UUID string, found {}", other.kind()),
                    );
                    None
                }
                None => {
                    f.missing(ctx, "fsid");
                    None
                }
            };
            let clients = f.string(ctx, "clients").map_or_else(|| "*".to_string(), |x| x.0);
            let options = f.string(ctx, "options").map_or_else(|| "rw,sync,no_subtree_check".to_string(), |x| x.0);
            let lock_dir = req(ctx, f, "lock_dir");
            let server = nfs_server(ctx, f, fsid.as_deref());
            ResourceKind::Nfs { path: path?, fsid: fsid?, clients, options, lock_dir: lock_dir?, server: server? }
        }
        _ => unreachable!("type {ty} was checked against TYPES"),
    })
}

/// `server` of an `nfs` resource: "kernel" (the default) or "ganesha",
/// whose `address` and `grace` belong to it alone.
fn nfs_server(ctx: &mut Ctx, f: &mut Fields, fsid: Option<&str>) -> Option<NfsServer> {
    let address = f.string(ctx, "address");
    let grace = f.duration(ctx, "grace");
    let (server, span) = f.string(ctx, "server").unwrap_or_else(|| ("kernel".to_string(), None));
    match server.as_str() {
        "kernel" => {
            for (key, given) in [("address", address.is_some()), ("grace", grace.is_some())] {
                if given {
                    let at = f.get(key).and_then(|e| e.span.clone());
                    ctx.at(&at, &f.key(key), "belongs to server = \"ganesha\" (the kernel's server has its own)");
                }
            }
            Some(NfsServer::Kernel)
        }
        "ganesha" => {
            let address = address.and_then(|(a, span)| match a.parse() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    ctx.at(&span, &f.key("address"), format!("\"{a}\" is not an IP address"));
                    None
                }
            });
            if fsid.is_some_and(|id| !id.parse::<u16>().is_ok_and(|n| n > 0)) {
                let at = f.get("fsid").and_then(|e| e.span.clone());
                let why = "with server = \"ganesha\" the fsid is the export's Export_Id: an integer from 1 to 65535";
                ctx.at(&at, &f.key("fsid"), why);
            }
            Some(NfsServer::Ganesha { address, grace: grace.map_or(Duration::from_secs(90), |g| g.0) })
        }
        other => {
            let why = format!("\"{other}\" is not an NFS server: \"kernel\" or \"ganesha\"");
            ctx.at(&span, &f.key("server"), why);
            None
        }
    }
}

/// Without `interface`, the address must fall in one link's subnet, or the
/// agent could not know where to put it.
fn check_subnet(ctx: &mut Ctx, key: &str, span: &Span, address: &Address, links: &[Option<Address>]) {
    let known: Vec<&Address> = links.iter().flatten().collect();
    if known.is_empty() || known.iter().any(|s| s.contains(address.ip)) {
        return;
    }
    let list: Vec<String> = known.iter().map(|s| s.to_string()).collect();
    ctx.at(span, key, format!("{} is in no link's subnet ({}); name an interface", address.ip, list.join(", ")));
}
