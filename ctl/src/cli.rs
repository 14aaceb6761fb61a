//! The command line.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use reqwest::Url;

/// Operate a Miroir cluster through its control plane's admin REST API (`/_miroir/*`).
#[derive(Debug, Parser)]
#[command(name = "miroirctl", version, propagate_version = true)]
pub struct Cli {
    /// The control plane's admin URL.
    #[arg(
        long,
        env = "MIROIR_URL",
        default_value = "http://127.0.0.1:7701",
        global = true
    )]
    pub url: Url,

    /// The admin key, sent as `Authorization: Bearer <key>`.
    #[arg(long, env = "MIROIR_ADMIN_KEY", hide_env_values = true, global = true)]
    pub admin_key: Option<String>,

    /// Print the server's JSON answers instead of text (`jobs watch`: one JSON job per line).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, drain or remove a node.
    Node {
        #[command(subcommand)]
        action: NodeAction,
    },
    /// Add or remove a replica group.
    Group {
        #[command(subcommand)]
        action: GroupAction,
    },
    /// Change a group's replication factor.
    Rf {
        #[command(subcommand)]
        action: RfAction,
    },
    /// Set the replication policy: in-sync copies a write needs, what a search without a shard
    /// answers. A new epoch; nothing moves.
    Replication {
        /// In-sync copies of every shard a write must reach before it is acknowledged.
        #[arg(long)]
        min_copies: Option<u32>,
        /// `error` (503 without every shard, the default) or `partial` (what the other shards
        /// hold, the missing ones named in `X-Miroir-Degraded`).
        #[arg(long, value_parser = ["error", "partial"])]
        unavailable_shards: Option<String>,
    },
    /// List rebalancing jobs (the default), or show, watch, pause, resume or cancel one.
    Jobs {
        #[command(subcommand)]
        action: Option<JobsAction>,
    },
    /// The topology, shards per node and their balance, copies not active, the fleet's epochs.
    Status,
}

/// Watching the job a change starts.
#[derive(Debug, Args)]
pub struct WatchOpts {
    /// Watch the job this change starts until it ends (exit 1 if it fails).
    #[arg(long)]
    pub watch: bool,

    /// How often `--watch` polls the job (`500ms`, `2s`; a bare number is milliseconds).
    #[arg(long, default_value = "500ms", value_parser = parse_interval)]
    pub interval: Duration,
}

#[derive(Debug, Subcommand)]
pub enum NodeAction {
    /// Add a node to a group; a job moves its share of the shards to it.
    Add {
        /// The new node's id.
        id: String,
        /// Where Envoy reaches it (`host:port`).
        address: String,
        /// The replica group it joins.
        #[arg(long)]
        group: String,
        /// Its share of the group's shards, relative to the other nodes'.
        #[arg(long)]
        weight: Option<u64>,
        #[command(flatten)]
        watch: WatchOpts,
    },
    /// Move every shard off a node (a job); it keeps serving until they moved.
    Drain {
        id: String,
        #[command(flatten)]
        watch: WatchOpts,
    },
    /// Remove a node; without `--force` the server may first move its shards off (a job).
    Remove {
        id: String,
        /// Remove it now, without moving its shards first.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        watch: WatchOpts,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupAction {
    /// Add a replica group with its nodes; a job fills it with every shard.
    Add {
        /// The group's name.
        name: String,
        /// A node of the group, as `<ID>=<HOST:PORT>` (repeat for each node).
        #[arg(long = "node", value_name = "ID=HOST:PORT", required = true, value_parser = parse_node)]
        nodes: Vec<(String, String)>,
        #[command(flatten)]
        watch: WatchOpts,
    },
    /// Remove a replica group and its nodes.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum RfAction {
    /// Set how many nodes of a group hold each shard (a job adds or retires copies).
    Set {
        /// The replication factor.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        factor: u64,
        /// The group it applies to.
        #[arg(long)]
        group: String,
        #[command(flatten)]
        watch: WatchOpts,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// List the jobs (what `jobs` alone does).
    List,
    /// One job in full, with its moves.
    Show { id: String },
    /// Progress bars until the job (or, without an id, every unfinished job and the ones that
    /// start meanwhile) ends; exit 1 if one failed or was canceled.
    Watch {
        id: Option<String>,
        /// How often to poll (`500ms`, `2s`; a bare number is milliseconds).
        #[arg(long, default_value = "500ms", value_parser = parse_interval)]
        interval: Duration,
    },
    /// Pause a running job.
    Pause { id: String },
    /// Resume a paused job.
    Resume { id: String },
    /// Cancel a job.
    Cancel { id: String },
}

/// `500ms`, `2s`, `1.5s`, `1m`, or a bare number of milliseconds; at least 10 ms.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 0.001)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 500ms or 2s)"))?;
    let seconds = value * scale;
    if !seconds.is_finite() || !(0.01..=3600.0).contains(&seconds) {
        return Err(format!("`{text}` must be between 10ms and 1h"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `<ID>=<HOST:PORT>`.
pub fn parse_node(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((id, address)) if !id.trim().is_empty() && !address.trim().is_empty() => {
            Ok((id.trim().to_string(), address.trim().to_string()))
        }
        _ => Err(format!("`{text}` is not <ID>=<HOST:PORT>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("fast").is_err());
        assert!(parse_interval("2h").is_err());
    }

    #[test]
    fn node_specs() {
        assert_eq!(
            parse_node("n1=10.0.0.1:7700"),
            Ok(("n1".into(), "10.0.0.1:7700".into()))
        );
        assert!(parse_node("n1").is_err());
        assert!(parse_node("=x:1").is_err());
        assert!(parse_node("n1=").is_err());
    }

    #[test]
    fn jobs_alone_lists() {
        let cli = Cli::try_parse_from(["miroirctl", "jobs"]).unwrap();
        assert!(matches!(cli.command, Command::Jobs { action: None }));
        let cli = Cli::try_parse_from([
            "miroirctl",
            "group",
            "add",
            "b",
            "--node",
            "n5=h5:7700",
            "--node",
            "n6=h6:7700",
        ])
        .unwrap();
        let Command::Group {
            action: GroupAction::Add { nodes, .. },
        } = cli.command
        else {
            panic!("not group add");
        };
        assert_eq!(nodes.len(), 2);
        assert!(Cli::try_parse_from(["miroirctl", "rf", "set", "0", "--group", "a"]).is_err());
    }
}
