//! `baton rejoin`: a node whose Raft state is damaged or lost asks its
//! peers to take it out of the voters (only the leader can; the others say
//! who leads), then sets its old state file aside and leaves the mark that
//! makes the next agent start wait for the cluster's log.

use std::time::Duration;

use baton_agent::api::{self, Request};
use baton_agent::raft::net::{Peers, Reply, Request as PeerRequest};
use baton_agent::shell::{GENESIS_FILE, RAFT_FILE, REJOIN_MARK};

use crate::cli::{Cli, Failure};

pub fn run(cli: &Cli) -> Result<(), Failure> {
    let config = baton_config::load(&cli.config).map_err(|e| Failure::Usage(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let me = rt.block_on(crate::whoami::node(&config, cli.node.as_deref())).map_err(Failure::Usage)?;
    let name = &config.nodes[me].name;
    let state_dir = cli.state_dir.clone().unwrap_or_else(|| config.cluster.state_dir.clone());
    let socket = cli.socket.clone().unwrap_or_else(|| state_dir.join("baton.sock"));
    if rt.block_on(api::call(&socket, &Request::Status)).is_ok() {
        return Err(Failure::Failed(format!(
            "the agent of {name} answers on {}: stop it first (rejoin replaces its state)",
            socket.display()
        )));
    }
    let peers = Peers::of(&config).map_err(Failure::Failed)?;
    // Right after this node stopped the others may still be electing a
    // leader (it may have led): ask every peer, for at most 30 s.
    let mut answers = Vec::new();
    let mut removed_by = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while removed_by.is_none() && std::time::Instant::now() < deadline {
        answers.clear();
        for peer in (0..config.nodes.len()).filter(|&p| p != me) {
            let peer_name = &config.nodes[peer].name;
            let req = PeerRequest::Rejoin { node: me as u64 };
            match rt.block_on(peers.call(peer as u64, &mut None, &req, Duration::from_secs(10))) {
                Ok(Reply::Rejoin(Ok(genesis))) => {
                    removed_by = Some((peer_name.clone(), genesis));
                    break;
                }
                Ok(Reply::Rejoin(Err(e))) => answers.push(format!("{peer_name}: {e}")),
                Ok(_) => answers.push(format!("{peer_name}: an answer of the wrong kind")),
                Err(e) => answers.push(format!("{peer_name}: {e}")),
            }
        }
        if removed_by.is_none() {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let Some((leader, genesis)) = removed_by else {
        return Err(Failure::Failed(format!(
            "no peer could take {name} out of the voters within 30 s (a leader with a majority is needed):\n  {}",
            answers.join("\n  ")
        )));
    };
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
    // The new store replays the cluster's log from its first state.
    let shape = serde_json::to_vec(&genesis).expect("serializes");
    std::fs::write(state_dir.join(GENESIS_FILE), shape)
        .map_err(|e| Failure::Failed(format!("writing {}: {e}", state_dir.join(GENESIS_FILE).display())))?;
    std::fs::write(state_dir.join(REJOIN_MARK), format!("removed from the voters by {leader}\n"))
        .map_err(|e| Failure::Failed(format!("writing {}: {e}", state_dir.join(REJOIN_MARK).display())))?;
    if cli.json {
        let doc = serde_json::json!({ "node": name, "leader": leader.to_string(), "kept": kept });
        println!("{}", serde_json::json!({ "ok": true, "data": doc }));
    } else {
        println!(
            "{name} is out of the voters ({leader} leads); start its agent: it copies the cluster's log and \
             becomes a voter again once it has caught up"
        );
    }
    Ok(())
}
