//! `baton config apply | diff | show`: a configuration file offered to the
//! running cluster, compared with what it runs, or the agreed one shown.

use std::path::{Path, PathBuf};

use baton_agent::api::Request;
use serde_json::Value;

use crate::cli::{Cli, ConfigCommand, Failure};
use crate::control::call;

fn read(cli: &Cli, file: &Option<PathBuf>) -> Result<(PathBuf, String), Failure> {
    let file = file.clone().unwrap_or_else(|| cli.config.clone());
    let text =
        std::fs::read_to_string(&file).map_err(|e| Failure::Usage(format!("{}: cannot read: {e}", file.display())))?;
    Ok((file, text))
}

/// The plan, one line per set.
fn plan_lines(file: &Path, plan: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut out = if plan["agreed"] == true {
        format!("{} is the agreed configuration already: nothing to do\n", file.display())
    } else {
        format!("{} as configuration generation {}:\n", file.display(), plan["generation"])
    };
    out += "SET         CHANGE    RUNS ON     WHY\n";
    for set in plan["sets"].as_array().into_iter().flatten() {
        out +=
            &format!("{:<11} {:<9} {:<11} {}\n", s(&set["set"]), s(&set["change"]), s(&set["runs_on"]), s(&set["why"]));
    }
    for change in plan["nodes"].as_array().into_iter().flatten() {
        out += &format!("{}\n", s(change));
    }
    for (key, what) in [("heartbeat_interval_ms", "heartbeat interval"), ("lease_ms", "lease")] {
        let (now, then) = (&plan[key]["now"], &plan[key]["then"]);
        if now != then {
            out += &format!(
                "the {what} changes from {now} ms to {then} ms: each node switches as it applies the change, \
                 keeping every promise it gave\n"
            );
        }
    }
    let budget = &plan["guard_budget_ms"];
    if budget["then"].as_u64() > budget["now"].as_u64() {
        out += &format!(
            "the guard's release budget grows from {} ms to {} ms: every lease is held that much shorter from \
             the change on\n",
            budget["now"], budget["then"]
        );
    }
    out
}

pub fn run(cli: &Cli, command: &ConfigCommand) -> Result<(), Failure> {
    match command {
        ConfigCommand::Diff { file } => {
            let (file, text) = read(cli, file)?;
            let plan = call(cli, Request::ConfigDiff { text })?.data.unwrap_or_default();
            if cli.json {
                println!("{}", serde_json::json!({ "ok": true, "data": plan }));
            } else {
                print!("{}", plan_lines(&file, &plan));
            }
            Ok(())
        }
        ConfigCommand::Apply { file } => {
            let (file, text) = read(cli, file)?;
            let plan = call(cli, Request::ConfigDiff { text: text.clone() })?.data.unwrap_or_default();
            let agreed = call(cli, Request::ConfigApply { text, reason: None })?.data.unwrap_or_default();
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": true,
                        "data": { "generation": agreed["generation"], "sets": plan["sets"], "nodes": plan["nodes"] }
                    })
                );
            } else {
                print!("{}", plan_lines(&file, &plan));
                println!("agreed: the cluster runs configuration generation {}", agreed["generation"]);
            }
            Ok(())
        }
        ConfigCommand::Show => {
            let doc = call(cli, Request::ConfigShow)?.data.unwrap_or_default();
            if cli.json {
                println!("{}", serde_json::json!({ "ok": true, "data": doc }));
                return Ok(());
            }
            match doc["text"].as_str() {
                Some(text) => {
                    let drift = if doc["drift"] == true { " (this node's file differs: drift)" } else { "" };
                    println!("# configuration generation {}, digest {}{drift}", doc["generation"], doc["digest"].as_str().unwrap_or("-"));
                    print!("{text}");
                }
                None => println!(
                    "no configuration agreed yet: every node runs its own file (this node's: {}); `baton config apply` agrees one",
                    doc["file"].as_str().unwrap_or("-")
                ),
            }
            Ok(())
        }
        ConfigCommand::Check { .. } => unreachable!("checked without an agent"),
    }
}
