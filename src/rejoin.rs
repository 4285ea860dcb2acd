//! `baton rejoin`: a node whose Raft state is damaged or lost (or a node
//! added live, before its first start) asks its peers to take it out of
//! the voters (only the leader can; the others say who leads), then sets
//! its old state file aside and keeps what the leader answered: the shape
//! of the cluster's first state, the node slots, and the mark that makes
//! the next agent start wait for the cluster's log.

use baton_agent::api::{self, Request};
use baton_agent::shell::RAFT_FILE;

use crate::cli::{Cli, Failure};

pub fn run(cli: &Cli) -> Result<(), Failure> {
    let config = baton_config::load(&cli.config).map_err(|e| Failure::Usage(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let me = rt.block_on(baton_agent::whoami::node(&config, cli.node.as_deref())).map_err(Failure::Usage)?;
    let name = &config.nodes[me].name;
    let state_dir = cli.state_dir.clone().unwrap_or_else(|| config.cluster.state_dir.clone());
    let socket = cli.socket.clone().unwrap_or_else(|| state_dir.join("baton.sock"));
    if rt.block_on(api::call(&socket, &Request::Status)).is_ok() {
        return Err(Failure::Failed(format!(
            "the agent of {name} answers on {}: stop it first (rejoin replaces its state)",
            socket.display()
        )));
    }
    let (leader, rejoined) =
        rt.block_on(baton_agent::raft::membership::ask_rejoin(&config, me)).map_err(Failure::Failed)?;
    let file = state_dir.join(RAFT_FILE);
    let mut kept = None;
    if file.exists() {
        let stamp = baton_agent::events::now_ms() / 1000;
        let aside = state_dir.join(format!("{RAFT_FILE}.damaged-{stamp}"));
        std::fs::rename(&file, &aside).map_err(|e| Failure::Failed(format!("moving {} aside: {e}", file.display())))?;
        if !cli.json {
            println!("{} kept as {}", file.display(), aside.display());
        }
        kept = Some(aside);
    }
    baton_agent::raft::membership::keep_rejoined(&state_dir, rejoined, &leader).map_err(Failure::Failed)?;
    if cli.json {
        let doc = serde_json::json!({ "node": name, "leader": leader.to_string(), "kept": kept });
        println!("{}", serde_json::json!({ "ok": true, "data": doc }));
    } else {
        println!(
            "{name} is out of the voters ({leader} leads); start its agent: it copies the cluster's log and \
             becomes a voter once it has caught up"
        );
    }
    Ok(())
}
