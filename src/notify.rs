//! The `baton-notify` binary: delivers one webhook or mail for the agent
//! (`crates/agent/src/deliver.rs`), which starts it for each delivery with
//! the delivery as JSON on its stdin. A program of its own, so that the TLS
//! stack, the HTTP client and the mail library are on a node only while a
//! notification is on its way. Exit codes: 0 delivered, 1 not delivered
//! (the last line on stderr says why), 2 on bad usage.

use std::io::Read;
use std::process::ExitCode;

use baton_agent::deliver::Delivery;

fn main() -> ExitCode {
    if std::env::args_os().len() > 1 {
        eprintln!(
            "baton-notify: takes no arguments; baton's agent hands it one delivery as JSON on its stdin \
             (not meant to be run by hand)"
        );
        return ExitCode::from(2);
    }
    let mut input = String::new();
    let delivery = match std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str::<Delivery>(&input).map_err(|e| format!("not a delivery on stdin: {e}")))
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("baton-notify: {e}");
            return ExitCode::from(2);
        }
    };
    let sent = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(delivery.send()));
    match sent {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
