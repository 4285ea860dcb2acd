//! The command-line contract (SPEC, "The command line"): global flags
//! accepted before or after the subcommand, one subcommand per operation.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub const DEFAULT_CONFIG: &str = "/etc/baton/cluster.toml";

#[derive(Parser, Debug)]
#[command(name = "baton", version, about = "High-availability failover manager", propagate_version = true)]
pub struct Cli {
    /// The cluster configuration file.
    #[arg(long, global = true, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// This node's name (default: the node whose address is on this host, else the hostname).
    #[arg(long, global = true, value_name = "NAME")]
    pub node: Option<String>,
    /// Overrides cluster.state_dir.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The agent's control socket (default: <state_dir>/baton.sock).
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run this node's daemon in the foreground.
    Agent,
    /// Cluster, nodes, links, sets, owners, leader, quorum.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Planned move of SET to NODE (default: the next preferred node).
    Move { set: String, node: Option<String> },
    /// No automatic restart or failover for SET.
    Freeze { set: String },
    /// Undo `freeze`.
    Unfreeze { set: String },
    /// Move every set off NODE and keep them off.
    Standby { node: String },
    /// Allow sets on NODE again.
    Online { node: String },
    /// The cluster's event history.
    Events {
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 if SET runs on this node, 1 if not.
    IsActive { set: String },
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// A throw-away cluster in network namespaces on this machine.
    Lab {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a configuration file (default: --config).
    Check { file: Option<PathBuf> },
}

pub enum Failure {
    /// Exit 2: usage or configuration error.
    Usage(String),
    /// Exit 1: the operation failed.
    Failed(String),
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => {
            let file = file.unwrap_or(cli.config);
            let config = baton_config::load(&file).map_err(|e| Failure::Usage(e.to_string()))?;
            println!("{}: ok: {}", file.display(), config.summary());
            Ok(())
        }
        other => Err(Failure::Failed(format!(
            "`{}` is not implemented in this build yet: it needs the agent (see the README's status)",
            name(&other)
        ))),
    }
}

fn name(command: &Command) -> &'static str {
    match command {
        Command::Agent => "agent",
        Command::Status { .. } => "status",
        Command::Move { .. } => "move",
        Command::Freeze { .. } => "freeze",
        Command::Unfreeze { .. } => "unfreeze",
        Command::Standby { .. } => "standby",
        Command::Online { .. } => "online",
        Command::Events { .. } => "events",
        Command::IsActive { .. } => "is-active",
        Command::Config(_) => "config",
        Command::Lab { .. } => "lab",
    }
}
