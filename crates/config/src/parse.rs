//! The schema of `cluster.toml`: which tables and keys exist, their types and
//! defaults, and the checks between them that need the file's positions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_core::Failback;

use crate::model::*;
use crate::resource;
use crate::secret;
use crate::tree::{Entry, Span, Table, Val};
use crate::values::show;
use crate::walk::{strings_of, Ctx, Fields};

/// A node of a pair that boots alone waits this long for its peer before
/// it fences it (Pacemaker's `dc-deadtime`, whose default is the same).
pub const STARTUP_FENCE_AFTER: Duration = Duration::from_secs(20);

pub fn config(ctx: &mut Ctx, file: &Path, root: &Table) -> Option<Config> {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut top = Fields::new("", root);
    let cluster = match top.table(ctx, "cluster") {
        Some(t) => cluster(ctx, base, t),
        None => {
            if root.entries.iter().all(|e| e.key != "cluster") {
                ctx.at(&None, "cluster", "missing table [cluster]");
            }
            None
        }
    };
    let mut nodes_span = None;
    let nodes = match top.table(ctx, "nodes") {
        Some(t) => {
            nodes_span = t.span.clone();
            nodes(ctx, t)
        }
        None => {
            if root.entries.iter().all(|e| e.key != "nodes") {
                ctx.at(&None, "nodes", "missing table: define at least one [nodes.NAME]");
            }
            Vec::new()
        }
    };
    let links = link_subnets(&nodes);
    let sets = top.table(ctx, "sets").map(|t| sets(ctx, t, &nodes, &links)).unwrap_or_default();
    let fencing = top.table(ctx, "fencing").and_then(|t| fencing(ctx, base, t, &nodes));
    let notify = top.table(ctx, "notify").map(|t| notify(ctx, base, t)).unwrap_or_default();
    top.finish(ctx, |_| None);
    let cluster = cluster?;
    if !ctx.problems.is_empty() || nodes.is_empty() {
        return None;
    }
    let config = Config { file: file.to_path_buf(), cluster, nodes, sets, fencing, notify };
    timing(ctx, &config);
    pair(ctx, &config, &nodes_span);
    ctx.problems.is_empty().then_some(config)
}

/// Two voters are each other's only majority: either loses the lease the
/// moment the other is silent. With a fence device for each, the survivor
/// fences the other and goes on alone (two-node mode); without, nothing
/// can be agreed to take over.
fn pair(ctx: &mut Ctx, config: &Config, span: &Span) {
    if config.nodes.len() != 2 || config.nodes.iter().any(|n| n.witness) || config.fenceable().iter().all(|&f| f) {
        return;
    }
    ctx.at(
        span,
        "nodes",
        "two nodes are each other's only majority: when one is silent the other can agree nothing, so no set \
         would ever fail over; give both a fence device in [fencing] (two-node mode: the survivor fences the \
         other and goes on alone) — a power fence agent, or a small shared disk (`disk = \"/dev/...\"`, set up \
         by `baton disk init`) — or add a witness node (`witness = true`: any small machine, on one link or \
         behind a router)"
            .to_string(),
    );
}

/// The lease must leave time to hold sets once the guard's release budget
/// is set aside, and a watchdog must be petted while a lease is held.
fn timing(ctx: &mut Ctx, config: &Config) {
    let span = &config.cluster.spans.lease;
    let t = config.timing();
    let budget = config.release_phases().iter().map(|p| format!("{p:?} {}", show(p.budget()))).collect::<Vec<_>>();
    if let Err(why) = t.validate() {
        let mut least = t;
        while least.validate().is_err() && least.lease < Duration::from_secs(3600) {
            least.lease += Duration::from_millis(10);
        }
        ctx.at(
            span,
            "cluster.lease",
            format!(
                "{why}: the guard's release budget of this cluster's sets ({}: {}) comes out of every lease; \
                 make the lease at least {}",
                show(t.guard_margin),
                budget.join(", "),
                show(least.lease)
            ),
        );
        return;
    }
    if config.cluster.watchdog.is_some() {
        let room = t.hold().saturating_sub(t.heartbeat_interval * 2);
        if config.cluster.watchdog_timeout >= room {
            ctx.at(
                &config.cluster.spans.watchdog_timeout,
                "cluster.watchdog_timeout",
                format!(
                    "{} leaves no time to pet the watchdog while a lease is held: the guard pets it only while \
                     a reset would come before the lease ends, and a lease of {} is held for {} at a time; \
                     make the lease longer or the timeout shorter than {}",
                    show(config.cluster.watchdog_timeout),
                    show(t.lease),
                    show(t.hold()),
                    show(room)
                ),
            );
        }
    }
}

fn cluster(ctx: &mut Ctx, base: &Path, t: &Table) -> Option<Cluster> {
    let mut f = Fields::new("cluster", t);
    let table_span = f.span().clone();
    let name = f.required_string(ctx, "name");
    let secret = f.required_string(ctx, "secret_file");
    let state_dir = f.string(ctx, "state_dir").map_or_else(|| PathBuf::from("/var/lib/baton"), |(s, _)| s.into());
    let port = f.int(ctx, "port", 1, 65535).map_or(5405, |(p, _)| p as u16);
    let hb = f.duration(ctx, "heartbeat_interval");
    let lease = f.duration(ctx, "lease");
    let http = match f.string(ctx, "http") {
        Some((s, span)) => s.parse::<SocketAddr>().map_err(|_| {
            ctx.at(&span, "cluster.http", format!("\"{s}\" is not an address and port, e.g. \"127.0.0.1:9405\""))
        }),
        None => Ok(SocketAddr::from(([127, 0, 0, 1], 9405))),
    };
    let http_token_file =
        f.string(ctx, "http_token_file").map(|v| secret_path(ctx, base, v, "cluster.http_token_file"));
    let (watchdog, watchdog_span) = match f.string(ctx, "watchdog") {
        Some((s, span)) => (Some(PathBuf::from(s)), span),
        None => (None, None),
    };
    let watchdog_timeout = f.duration(ctx, "watchdog_timeout");
    let failure_timeout = f.duration(ctx, "failure_timeout").map(|d| d.0);
    let realtime = f.bool(ctx, "realtime").unwrap_or(true);
    let accept = f.strings(ctx, "accept_secret_files").unwrap_or_default();
    let accept_secret_files =
        accept.into_iter().map(|v| secret_path(ctx, base, v, "cluster.accept_secret_files")).collect();
    f.finish(ctx, |_| None);
    let heartbeat_interval = hb.as_ref().map_or(Duration::from_millis(100), |(d, _)| *d);
    if heartbeat_interval.is_zero() {
        ctx.at(&hb.as_ref().and_then(|h| h.1.clone()), "cluster.heartbeat_interval", "must be longer than 0ms");
    }
    let lease_d = lease.as_ref().map_or(Duration::from_secs(1), |(d, _)| *d);
    if lease_d < heartbeat_interval * 3 {
        let span = lease.as_ref().and_then(|l| l.1.clone()).or_else(|| hb.as_ref().and_then(|h| h.1.clone()));
        ctx.at(
            &span,
            "cluster.lease",
            format!(
                "{} is shorter than 3 heartbeat intervals (3 x {} = {})",
                show(lease_d),
                show(heartbeat_interval),
                show(heartbeat_interval * 3)
            ),
        );
    }
    let secret_file = secret.map(|v| secret_path(ctx, base, v, "cluster.secret_file"));
    Some(Cluster {
        name: name?.0,
        secret_file: secret_file?,
        state_dir,
        port,
        heartbeat_interval,
        lease: lease_d,
        http: http.ok()?,
        http_token_file,
        accept_secret_files,
        realtime,
        watchdog,
        watchdog_timeout: watchdog_timeout.as_ref().map_or(Duration::from_secs(1), |(d, _)| *d),
        failure_timeout,
        spans: ClusterSpans {
            lease: lease.and_then(|l| l.1).or_else(|| table_span.clone()),
            watchdog_timeout: watchdog_timeout.and_then(|w| w.1).or_else(|| watchdog_span.clone()),
        },
    })
}

/// A file named relative to the config that must hold a secret.
fn secret_path(ctx: &mut Ctx, base: &Path, (name, span): (String, Span), key: &str) -> PathBuf {
    let path = base.join(name);
    if let Err(why) = secret::check(&path) {
        ctx.at(&span, key, why);
    }
    path
}

fn nodes(ctx: &mut Ctx, t: &Table) -> Vec<NodeConfig> {
    let mut out: Vec<NodeConfig> = Vec::new();
    // Each node's first address, where a wrong count is reported (`None`:
    // some address did not parse, and was reported).
    let mut firsts = Vec::new();
    for e in &t.entries {
        let path = format!("nodes.{}", e.key);
        let Val::Table(nt) = &e.value else {
            ctx.at(&e.span, &path, format!("expected a table, found {}", e.value.kind()));
            continue;
        };
        let mut f = Fields::new(path.clone(), nt);
        let witness = f.bool(ctx, "witness").unwrap_or(false);
        let mut addresses = Vec::new();
        let mut spans = Vec::new();
        let mut listed = 0;
        match f.strings(ctx, "addresses") {
            None if nt.entries.iter().all(|e| e.key != "addresses") => f.missing(ctx, "addresses"),
            None => {}
            Some(list) if list.is_empty() => ctx.at(
                &f.get("addresses").and_then(|e| e.span.clone()),
                &f.key("addresses"),
                "needs one address per link",
            ),
            Some(list) => {
                listed = list.len();
                for (i, (text, span)) in list.into_iter().enumerate() {
                    match Address::parse(&text) {
                        Ok(a) => {
                            addresses.push(a);
                            spans.push(span);
                        }
                        Err(why) => ctx.at(&span, &format!("{path}.addresses[{i}]"), why),
                    }
                }
            }
        }
        f.finish(ctx, |_| None);
        let node = NodeConfig { name: e.key.clone(), addresses, witness };
        let complete = node.addresses.len() == listed;
        if complete {
            check_addresses(ctx, &path, &node, &spans, &out);
        }
        firsts.push(complete.then(|| spans.first().cloned().flatten()));
        out.push(node);
    }
    check_links(ctx, &out, &firsts);
    out
}

/// No address is used twice, and the addresses of one link share a subnet
/// where prefixes are given — but a witness's, which may be reached through
/// a router (a remote witness).
fn check_addresses(ctx: &mut Ctx, path: &str, node: &NodeConfig, spans: &[Span], before: &[NodeConfig]) {
    let addrs = &node.addresses;
    for (i, a) in addrs.iter().enumerate() {
        let key = format!("{path}.addresses[{i}]");
        let earlier = addrs[..i].iter().position(|b| b.ip == a.ip).map(|j| format!("{path}.addresses[{j}]"));
        let other = before.iter().find_map(|n| {
            let j = n.addresses.iter().position(|b| b.ip == a.ip)?;
            Some(format!("nodes.{}.addresses[{j}]", n.name))
        });
        if let Some(dup) = earlier.or(other) {
            ctx.at(&spans[i], &key, format!("{} is already used by {dup}", a.ip));
            continue;
        }
        let peer = before
            .iter()
            .filter(|n| !n.witness)
            .find_map(|n| n.addresses.get(i).filter(|b| b.prefix.is_some()).map(|b| (n, b)));
        if let (Some((n, b)), Some(_), false) = (peer, a.prefix, node.witness) {
            if a.subnet() != b.subnet() {
                let msg = format!(
                    "{a} is not in link {i}'s subnet {} (from nodes.{})",
                    b.subnet().map_or_else(String::new, |s| s.to_string()),
                    n.name
                );
                ctx.at(&spans[i], &key, msg);
            }
        }
    }
}

/// Every full node has one address per link, in the same order; a witness
/// one for each of the first links, at least one (a remote witness may be
/// on one link only).
fn check_links(ctx: &mut Ctx, nodes: &[NodeConfig], spans: &[Option<Span>]) {
    let complete = |(n, span): &(&NodeConfig, &Option<Span>)| !n.witness && !n.addresses.is_empty() && span.is_some();
    let Some((first, _)) = nodes.iter().zip(spans).find(complete) else { return };
    let want = first.addresses.len();
    let plural = |n| if n == 1 { "address" } else { "addresses" };
    for (n, span) in nodes.iter().zip(spans) {
        let Some(span) = span else { continue };
        let have = n.addresses.len();
        let wrong = if n.witness { have > want } else { have != want };
        if have == 0 || !wrong {
            continue;
        }
        let msg = if n.witness {
            format!(
                "has {have} {}, but the cluster has {want} link{} (nodes.{} has {want}); a witness has one \
                 address for each of the first links, or fewer",
                plural(have),
                if want == 1 { "" } else { "s" },
                first.name
            )
        } else {
            format!(
                "has {have} {}, but nodes.{} has {want}; every node needs one address per link, in the same order",
                plural(have),
                first.name
            )
        };
        ctx.at(span, &format!("nodes.{}.addresses", n.name), msg);
    }
}

/// For each link, the subnet its addresses are in, if any node gave a prefix.
/// (A witness's addresses say nothing of it: it may be behind a router.)
pub fn link_subnets(nodes: &[NodeConfig]) -> Vec<Option<Address>> {
    let full = || nodes.iter().filter(|n| !n.witness);
    let links = full().map(|n| n.addresses.len()).max().unwrap_or(0);
    (0..links).map(|l| full().find_map(|n| n.addresses.get(l).and_then(Address::subnet))).collect()
}

fn sets(ctx: &mut Ctx, t: &Table, nodes: &[NodeConfig], links: &[Option<Address>]) -> Vec<SetConfig> {
    let mut out = Vec::new();
    for e in &t.entries {
        let path = format!("sets.{}", e.key);
        let Val::Table(st) = &e.value else {
            ctx.at(&e.span, &path, format!("expected a table, found {}", e.value.kind()));
            continue;
        };
        let mut f = Fields::new(path.clone(), st);
        let prefs = match f.strings(ctx, "nodes") {
            Some(names) => preference(ctx, &path, names, nodes),
            None => (0..nodes.len()).filter(|&i| !nodes[i].witness).collect(),
        };
        let failback_delay = f.duration(ctx, "failback_delay").map_or(Duration::ZERO, |d| d.0);
        let failback = match f.string(ctx, "failback") {
            None => Failback::Never,
            Some((s, _)) if s == "never" => Failback::Never,
            Some((s, _)) if s == "auto" => Failback::Auto { delay: failback_delay },
            Some((s, span)) => {
                ctx.at(
                    &span,
                    &f.key("failback"),
                    format!("\"{s}\" is not a failback policy: use \"never\" or \"auto\""),
                );
                Failback::Never
            }
        };
        let max_restarts = f.int(ctx, "max_restarts", 0, 1000).map_or(3, |(n, _)| n as u32);
        let restart_window = f.duration(ctx, "restart_window").map_or(Duration::from_secs(600), |d| d.0);
        let failure_timeout = f.duration(ctx, "failure_timeout").map(|d| d.0);
        let hooks = f.string(ctx, "hooks").map(|(s, _)| PathBuf::from(s));
        let mut resources: Vec<Resource> = f
            .tables(ctx, "resources")
            .into_iter()
            .filter_map(|(i, rt)| resource::parse(ctx, &format!("{path}.resources[{i}]"), rt, links))
            .collect();
        ganesha_addresses(ctx, &e.key_span, &path, &mut resources);
        f.finish(ctx, |_| None);
        if prefs.is_empty() && !nodes.is_empty() && ctx.problems.is_empty() {
            ctx.at(&e.key_span, &format!("{path}.nodes"), "no node may run this set");
        }
        out.push(SetConfig {
            name: e.key.clone(),
            nodes: prefs,
            failback,
            max_restarts,
            restart_window,
            failure_timeout,
            hooks,
            resources,
        });
    }
    out
}

/// An NFS server of a set binds to the set's service address: the first
/// ip resource's, unless the resource names one.
fn ganesha_addresses(ctx: &mut Ctx, span: &Span, path: &str, resources: &mut [Resource]) {
    let service = resources.iter().find_map(|r| match &r.kind {
        ResourceKind::Ip { address, .. } => Some(address.ip),
        _ => None,
    });
    for (i, r) in resources.iter_mut().enumerate() {
        if let ResourceKind::Nfs { server: NfsServer::Ganesha { address: address @ None, .. }, .. } = &mut r.kind {
            *address = service;
            if service.is_none() {
                let why = "server = \"ganesha\" binds to the set's service address: add an ip resource to the set, \
                           or give the address";
                ctx.at(span, &format!("{path}.resources[{i}].address"), why);
            }
        }
    }
}

fn preference(ctx: &mut Ctx, path: &str, names: Vec<(String, Span)>, nodes: &[NodeConfig]) -> Vec<usize> {
    let mut prefs = Vec::new();
    for (i, (name, span)) in names.into_iter().enumerate() {
        let key = format!("{path}.nodes[{i}]");
        match nodes.iter().position(|n| n.name == name) {
            None => ctx.at(&span, &key, format!("no node is named \"{name}\"")),
            Some(n) if nodes[n].witness => {
                ctx.at(&span, &key, format!("\"{name}\" is a witness; witnesses never run sets"))
            }
            Some(n) if prefs.contains(&n) => ctx.at(&span, &key, format!("\"{name}\" is listed twice")),
            Some(n) => prefs.push(n),
        }
    }
    prefs
}

fn node_list(ctx: &mut Ctx, f: &mut Fields, nodes: &[NodeConfig]) -> Vec<usize> {
    let Some(names) = f.strings(ctx, "nodes") else {
        f.missing(ctx, "nodes");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, (name, span)) in names.into_iter().enumerate() {
        match nodes.iter().position(|n| n.name == name) {
            Some(n) => out.push(n),
            None => ctx.at(&span, &format!("{}[{i}]", f.key("nodes")), format!("no node is named \"{name}\"")),
        }
    }
    out
}

fn fencing(ctx: &mut Ctx, base: &Path, t: &Table, nodes: &[NodeConfig]) -> Option<Fencing> {
    let mut f = Fields::new("fencing", t);
    let mode = match f.string(ctx, "mode") {
        None => FenceMode::Lease,
        Some((s, _)) if s == "lease" => FenceMode::Lease,
        Some((s, _)) if s == "required" => FenceMode::Required,
        Some((s, span)) => {
            ctx.at(&span, "fencing.mode", format!("\"{s}\" is not a fencing mode: use \"lease\" or \"required\""));
            FenceMode::Lease
        }
    };
    let startup_fence_after = match f.string(ctx, "startup_fence_after") {
        None => Some(STARTUP_FENCE_AFTER),
        Some((s, _)) if s == "never" => None,
        Some((s, span)) => match crate::values::duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                ctx.at(&span, "fencing.startup_fence_after", format!("{e}, or \"never\""));
                None
            }
        },
    };
    let mut devices = Vec::new();
    for (i, dt) in f.tables(ctx, "devices") {
        let mut d = Fields::new(format!("fencing.devices[{i}]"), dt);
        let agent = d.string(ctx, "agent");
        let disk = d.string(ctx, "disk");
        let targets = node_list(ctx, &mut d, nodes);
        let params = d.string_map(ctx, "params").unwrap_or_default();
        let password_file = d.string(ctx, "password_file").map(|(s, _)| base.join(s));
        let delay = d.duration(ctx, "delay").map_or(Duration::ZERO, |x| x.0);
        let delay_max = d.duration(ctx, "delay_max").map_or(Duration::ZERO, |x| x.0);
        let timeout = d.duration(ctx, "timeout").map_or(Duration::from_secs(60), |x| x.0);
        if let Some((k, _)) = params.iter().find(|(k, _)| k == "password" || k == "passwd") {
            let at = dt.entries.iter().find(|e| e.key == "params").and_then(|e| e.span.clone());
            let path = format!("fencing.devices[{i}].params.{k}");
            ctx.at(&at, &path, "passwords go in a file named by password_file, never in the configuration");
        }
        let path = format!("fencing.devices[{i}]");
        let kind = match (agent, disk) {
            (Some((agent, _)), None) => Some(FenceKind::Agent { agent, params, password_file }),
            (None, Some((disk, span))) => {
                if !disk.starts_with('/') {
                    ctx.at(&span, &format!("{path}.disk"), "the fence disk is named by its absolute path");
                }
                if !params.is_empty() || password_file.is_some() {
                    ctx.at(&span, &path, "a fence disk takes no params and no password_file: they are for agents");
                }
                Some(FenceKind::Disk { path: PathBuf::from(disk) })
            }
            (Some((_, span)), Some(_)) => {
                ctx.at(&span, &path, "a device is a fence agent (`agent`) or a fence disk (`disk`), not both");
                None
            }
            (None, None) => {
                ctx.at(d.span(), &path, "a device needs `agent` (a fence agent) or `disk` (a shared fence disk)");
                None
            }
        };
        d.finish(ctx, |_| None);
        if let Some(kind) = kind {
            devices.push(FenceDevice { kind, nodes: targets, delay, delay_max, timeout });
        }
    }
    if mode == FenceMode::Required && devices.is_empty() {
        ctx.at(f.span(), "fencing.mode", "\"required\" needs at least one [[fencing.devices]]");
    } else if mode == FenceMode::Required {
        for (i, n) in nodes.iter().enumerate().filter(|(_, n)| !n.witness) {
            if !devices.iter().any(|d: &FenceDevice| d.nodes.contains(&i)) {
                let msg = format!("\"required\" but no device fences node {}: its sets could never move", n.name);
                ctx.at(f.span(), "fencing.mode", msg);
            }
        }
    }
    f.finish(ctx, |_| None);
    Some(Fencing { mode, devices, startup_fence_after })
}

/// A file the config names, relative to it, that must exist.
fn readable(ctx: &mut Ctx, base: &Path, fx: &mut Fields, key: &str) -> Option<PathBuf> {
    let (name, span) = fx.string(ctx, key)?;
    let path = base.join(name);
    if let Err(e) = std::fs::read(&path) {
        ctx.at(&span, &fx.key(key), format!("cannot read {}: {e}", path.display()));
    }
    Some(path)
}

fn notify(ctx: &mut Ctx, base: &Path, t: &Table) -> Notify {
    let mut f = Fields::new("notify", t);
    let mut out = Notify::default();
    // Each notifier is a short form (a command, a URL, an address) or a
    // table with that target and an `events` filter.
    if let Some(e) = f.get("exec") {
        out.exec = match &e.value {
            Val::Array(items) => {
                strings_of(ctx, "notify.exec", items).map(|target| Notifier { target, events: vec![] })
            }
            Val::Table(t) => {
                notifier(ctx, "notify.exec", t, "command", |ctx, fx| fx.strings(ctx, "command").map(strip))
            }
            other => wrong(ctx, e, "a command (an array of strings) or a table", other),
        };
    }
    if let Some(e) = f.get("webhook") {
        let hook = |url| Webhook { url, secret_file: None, ca_file: None };
        out.webhook = match &e.value {
            Val::Str(url) => Some(Notifier { target: hook(url.clone()), events: vec![] }),
            Val::Table(t) => notifier(ctx, "notify.webhook", t, "url", |ctx, fx| {
                let mut target = hook(fx.string(ctx, "url")?.0);
                target.secret_file =
                    fx.string(ctx, "secret_file").map(|v| secret_path(ctx, base, v, "notify.webhook.secret_file"));
                target.ca_file = readable(ctx, base, fx, "ca_file");
                Some(target)
            }),
            other => wrong(ctx, e, "a URL or a table", other),
        };
        if let Some(w) = out
            .webhook
            .as_ref()
            .filter(|w| !w.target.url.starts_with("http://") && !w.target.url.starts_with("https://"))
        {
            ctx.at(&e.span, "notify.webhook", format!("\"{}\" is not an http:// or https:// URL", w.target.url));
        }
    }
    if let Some(e) = f.get("email") {
        let email = |to| Email {
            to,
            from: "baton@localhost".into(),
            smtp: "localhost:25".into(),
            tls: SmtpTls::None,
            username: None,
            password_file: None,
            ca_file: None,
        };
        out.email = match &e.value {
            Val::Str(to) => Some(Notifier { target: email(vec![to.clone()]), events: vec![] }),
            Val::Table(t) => notifier(ctx, "notify.email", t, "to", |ctx, fx| {
                let mut target = email(fx.strings(ctx, "to").map(strip)?);
                if let Some((from, _)) = fx.string(ctx, "from") {
                    target.from = from;
                }
                if let Some((smtp, _)) = fx.string(ctx, "smtp") {
                    target.smtp = smtp;
                }
                target.tls = match fx.string(ctx, "tls") {
                    None => SmtpTls::None,
                    Some((s, _)) if s == "none" => SmtpTls::None,
                    Some((s, _)) if s == "starttls" => SmtpTls::StartTls,
                    Some((s, _)) if s == "tls" => SmtpTls::Tls,
                    Some((s, span)) => {
                        let why =
                            format!("\"{s}\" is not a way to reach a relay: use \"none\", \"starttls\" or \"tls\"");
                        ctx.at(&span, "notify.email.tls", why);
                        SmtpTls::None
                    }
                };
                target.username = fx.string(ctx, "username").map(|x| x.0);
                target.password_file = readable(ctx, base, fx, "password_file");
                if target.username.is_some() != target.password_file.is_some() {
                    ctx.at(&None, "notify.email", "username and password_file go together");
                }
                target.ca_file = readable(ctx, base, fx, "ca_file");
                Some(target)
            }),
            other => wrong(ctx, e, "an address or a table", other),
        };
    }
    f.finish(ctx, |_| None);
    out
}

fn wrong<T>(ctx: &mut Ctx, e: &Entry, want: &str, found: &Val) -> Option<T> {
    ctx.at(&e.span, &format!("notify.{}", e.key), format!("expected {want}, found {}", found.kind()));
    None
}

fn strip(v: Vec<(String, Span)>) -> Vec<String> {
    v.into_iter().map(|x| x.0).collect()
}

/// The table form of a notifier.
fn notifier<T>(
    ctx: &mut Ctx,
    path: &str,
    t: &Table,
    main_key: &str,
    target: impl FnOnce(&mut Ctx, &mut Fields) -> Option<T>,
) -> Option<Notifier<T>> {
    let mut fx = Fields::new(path, t);
    if t.entries.iter().all(|x| x.key != main_key) {
        fx.missing(ctx, main_key);
    }
    let target = target(ctx, &mut fx);
    let events = fx.strings(ctx, "events").unwrap_or_default();
    for (kind, span) in &events {
        if !EVENT_KINDS.contains(&kind.as_str()) {
            ctx.at(
                span,
                &format!("{path}.events"),
                format!("unknown event kind \"{kind}\"; one of {}", EVENT_KINDS.join(", ")),
            );
        }
    }
    let events = strip(events);
    fx.finish(ctx, |_| None);
    Some(Notifier { target: target?, events })
}
