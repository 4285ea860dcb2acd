//! The command-line contract (docs/reference.md, "Command line"): global flags
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
    /// Print a JSON document instead of text (a failure too, on stdout, as
    /// {"ok": false, "error": ...}); documented in docs/reference.md.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run this node's daemon in the foreground.
    Agent {
        /// What to log: a level (error, warn, info, debug, trace) for baton,
        /// or per-target levels as in RUST_LOG, e.g. "info,openraft=debug"
        /// (default: RUST_LOG, else info for baton and warn for the rest).
        #[arg(long, value_name = "LEVEL")]
        log_level: Option<String>,
    },
    /// Cluster, nodes, links, sets, owners, leader, quorum.
    Status {
        /// Redraw every --interval until interrupted (with --json: one document per line).
        #[arg(long)]
        watch: bool,
        /// How often --watch asks, e.g. 500ms, 2s.
        #[arg(long, default_value = "1s", requires = "watch")]
        interval: String,
    },
    /// Planned move of SET to NODE (default: the next preferred node).
    Move {
        /// The service set, by its name in the configuration.
        set: String,
        /// Where to (named apart from the global --node, this node's name).
        #[arg(value_name = "NODE")]
        to: Option<String>,
        /// Why, for the event history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// No automatic restart or failover for SET.
    Freeze {
        /// The service set, by its name in the configuration.
        set: String,
        /// Why, for the event history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Undo `freeze`.
    Unfreeze {
        /// The service set, by its name in the configuration.
        set: String,
        /// Why, for the event history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Move every set off NODE and keep them off.
    Standby {
        /// The node to empty.
        #[arg(value_name = "NODE")]
        target: String,
        /// Why, for the event history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Allow sets on NODE again.
    Online {
        /// The node to allow again.
        #[arg(value_name = "NODE")]
        target: String,
        /// Why, for the event history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// The cluster's event history, merged from every reachable node.
    Events {
        /// Keep printing new events.
        #[arg(long)]
        follow: bool,
        /// Only events about this set.
        #[arg(long)]
        set: Option<String>,
        /// Only events of the last DURATION, e.g. 10m, 1h.
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
    },
    /// Forget SET's exclusions (vetoes, failed starts, too many restarts) so
    /// those nodes may run it again.
    Cleanup {
        /// The service set, by its name in the configuration.
        set: String,
        /// Why, for the event history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Bring back a node whose state file is damaged or lost, or bring in a
    /// node `config apply` added (also `baton join`): a peer that leads
    /// takes it out of the Raft voters and says where it stands, its old
    /// state is kept aside, and the next agent start copies the cluster's
    /// log and becomes a voter once caught up. Run it with the node's agent
    /// stopped.
    #[command(visible_alias = "join")]
    Rejoin,
    /// A shared fence disk (a slot per node, SBD's model): set it up,
    /// read it, write a message by hand.
    #[command(subcommand)]
    Disk(DiskCommand),
    /// Cluster-wide maintenance mode: nothing is started, stopped or
    /// recovered while it is on; monitors still run and report.
    Maintenance {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        mode: String,
        /// Why, for the event history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Two-node mode, on your word that the peer is off: this node becomes
    /// the only voter and runs the sets without a fence device's
    /// confirmation, also when it booted alone and its state may be older
    /// than what the peer agreed alone (that is then given up). Refused
    /// while the peer's heartbeats arrive. The peer rejoins by itself.
    Alone {
        /// Why, for the event history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Replace this node's agent program with the binary at its path (an
    /// upgrade) without stopping or moving anything: the guard holds on,
    /// the new program carries on with the sets still running. Refused
    /// while a set here is starting, stopping or moving, and when the new
    /// binary does not accept the configuration.
    Handover {
        /// Why, for the event history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Run CMD only while this node holds the cluster-wide lock NAME through
    /// the agreed state; its fencing token is in BATON_LOCK_TOKEN. Released
    /// when CMD exits; CMD is killed if the node loses its lease or agent.
    Lock {
        /// The lock's name: 1 to 128 printable characters.
        name: String,
        /// How long to wait for the lock, e.g. 30s (default: as long as it takes).
        #[arg(long)]
        wait: Option<String>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Exit 0 if SET runs on this node, 1 if not.
    IsActive {
        /// The service set, by its name in the configuration.
        set: String,
    },
    /// Where every set would go after the given faults, from the live
    /// agreed state, by the cluster's own placement (nothing is changed).
    Simulate {
        /// A node that dies (repeatable).
        #[arg(long, value_name = "NODE")]
        kill: Vec<String>,
        /// A node put in standby (repeatable).
        #[arg(long, value_name = "NODE")]
        standby: Vec<String>,
        /// A node's links cut, all of them or one (NODE:LINK, the link's
        /// index in the node's addresses, from 0) (repeatable).
        #[arg(long, value_name = "NODE[:LINK]")]
        cut: Vec<String>,
    },
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// A throw-away cluster in network namespaces on this machine: runs
    /// `baton-lab` (built beside baton from source; never in the package).
    #[command(disable_help_flag = true)]
    Lab {
        /// `baton-lab`'s subcommand and its arguments (`baton lab --help` lists them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Shell completions for SHELL, on stdout.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// The manual page (roff), on stdout: `baton man | man -l -`; with
    /// --dir, baton.1, a page per command (baton-move.1, ...) and
    /// cluster.toml.5 there.
    Man {
        /// Write every page into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a configuration file (default: --config).
    Check {
        /// The configuration file (default: --config).
        file: Option<PathBuf>,
    },
    /// Make FILE the cluster's agreed configuration: validated, shown set
    /// by set as `diff` does, then agreed; every node applies it.
    Apply {
        /// The configuration file (default: --config).
        file: Option<PathBuf>,
    },
    /// What applying FILE would do, set by set (start, stop, restart,
    /// policy, nothing), against the running cluster.
    Diff {
        /// The configuration file (default: --config).
        file: Option<PathBuf>,
    },
    /// The agreed configuration and its generation.
    Show,
}

#[derive(Subcommand, Debug)]
pub enum DiskCommand {
    /// Write a header and a clear slot for each NODE on DEVICE (a small
    /// shared block device, or a file on storage that takes O_DIRECT).
    Init {
        /// The shared block device (or file) to write.
        device: PathBuf,
        /// The nodes, one slot each (the names of [nodes.NAME]).
        #[arg(required = true)]
        nodes: Vec<String>,
        /// How often every node's guard reads its slot.
        #[arg(long, default_value = "1s")]
        watch: String,
        /// How long a fencer waits after writing a pill: at least 4 × watch.
        #[arg(long, default_value = "10s")]
        msgwait: String,
        /// Overwrite a fence disk already there (every slot is cleared).
        #[arg(long)]
        force: bool,
    },
    /// The header and every slot.
    List {
        /// The fence disk to read.
        device: PathBuf,
    },
    /// Write MESSAGE into NODE's slot: `off` fences NODE by hand, `clear`
    /// takes a pill back.
    Message {
        /// The fence disk to write.
        device: PathBuf,
        /// The node whose slot gets the message.
        node: String,
        /// `off` (a pill: the node goes down) or `clear`.
        #[arg(value_parser = ["off", "clear"])]
        message: String,
    },
}

pub enum Failure {
    /// Exit 2: usage or configuration error.
    Usage(String),
    /// Exit 1: the operation failed.
    Failed(String),
    /// Exit 1 without a message (`is-active` of an inactive set).
    Quiet,
    /// Exit with this code, without a message (`lock`: its command's).
    Code(u8),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("baton").chain(args.iter().copied())).expect("parses")
    }

    #[test]
    fn every_command_and_argument_says_what_it_is() {
        fn walk(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                assert!(arg.get_help().is_some(), "{path} {}: no help", arg.get_id());
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                assert!(sub.get_about().is_some(), "{path} {}: no help", sub.get_name());
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&<Cli as clap::CommandFactory>::command(), "baton");
    }

    #[test]
    fn global_flags_go_on_either_side_and_never_become_a_positional_node() {
        let cli = parse(&["--node", "alpha", "move", "web"]);
        assert_eq!(cli.node.as_deref(), Some("alpha"));
        assert!(matches!(cli.command, Command::Move { ref to, .. } if to.is_none()), "{:?}", cli.command);
        let cli = parse(&["move", "web", "beta", "--node", "alpha"]);
        assert_eq!(cli.node.as_deref(), Some("alpha"));
        assert!(matches!(cli.command, Command::Move { ref to, .. } if to.as_deref() == Some("beta")));
        for cmd in ["standby", "online"] {
            let cli = parse(&[cmd, "beta", "--node", "alpha", "--socket", "/run/b.sock"]);
            assert_eq!(
                (cli.node.as_deref(), cli.socket.as_deref()),
                (Some("alpha"), Some(std::path::Path::new("/run/b.sock")))
            );
            assert!(
                matches!(cli.command, Command::Standby { ref target, .. } | Command::Online { ref target, .. } if target == "beta")
            );
        }
    }
}
