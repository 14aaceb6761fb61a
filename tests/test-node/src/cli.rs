//! Command line: the subset of Meilisearch's flags that tests pass when they start a node.

use std::net::SocketAddr;

use clap::Parser;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub master_key: Option<String>,
}

/// A Meilisearch-compatible in-memory test double. It takes Meilisearch's command line: the
/// flags other than `--http-addr` and `--master-key` are accepted and ignored, so the same
/// command line can start either binary.
#[derive(Debug, Parser)]
#[command(name = "miroir-test-node", version)]
pub struct Cli {
    /// Where to listen.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7700")]
    pub http_addr: SocketAddr,
    /// The master key (empty: none, every route open).
    #[arg(long, value_name = "KEY")]
    pub master_key: Option<String>,
    /// Ignored (Meilisearch's).
    #[arg(long, value_name = "P")]
    db_path: Option<String>,
    /// Ignored (Meilisearch's).
    #[arg(long, value_name = "E")]
    env: Option<String>,
    /// Ignored (Meilisearch's).
    #[arg(long, value_name = "L")]
    log_level: Option<String>,
    /// Ignored (Meilisearch's).
    #[arg(long, value_name = "M")]
    max_indexing_memory: Option<String>,
    /// Ignored (Meilisearch's).
    #[arg(long, value_name = "N")]
    max_indexing_threads: Option<String>,
    /// Ignored (Meilisearch's).
    #[arg(long, value_name = "DIR")]
    dump_dir: Option<String>,
    /// Ignored (Meilisearch's).
    #[arg(long, value_name = "DIR")]
    snapshot_dir: Option<String>,
    /// Ignored (Meilisearch's).
    #[arg(long, value_name = "SIZE")]
    http_payload_size_limit: Option<String>,
    /// Ignored (Meilisearch's).
    #[arg(long, value_name = "N")]
    experimental_max_number_of_batched_tasks: Option<String>,
    /// Ignored (Meilisearch's).
    #[arg(long, value_name = "NETWORKS")]
    experimental_allowed_ip_networks: Option<String>,
    /// Ignored (Meilisearch's).
    #[arg(long)]
    no_analytics: bool,
    /// Ignored (Meilisearch's).
    #[arg(long)]
    experimental_dumpless_upgrade: bool,
}

impl From<Cli> for Config {
    fn from(cli: Cli) -> Config {
        Config {
            http_addr: cli.http_addr,
            master_key: cli.master_key.filter(|k| !k.is_empty()),
        }
    }
}

/// Parses a command line without the program's name. `Err` carries clap's message (a usage
/// error, or the `--help` text).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Config, String> {
    let program = std::iter::once("miroir-test-node".to_string());
    Cli::try_parse_from(program.chain(args))
        .map(Config::from)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_meilisearch_style_command_line() {
        let c = parse(args(
            "--db-path /tmp/x --http-addr 127.0.0.1:7801 --master-key abcdefghijklmnop \
             --env development --no-analytics --log-level WARN --max-indexing-threads 2",
        ))
        .unwrap();
        assert_eq!(c.http_addr, "127.0.0.1:7801".parse().unwrap());
        assert_eq!(c.master_key.as_deref(), Some("abcdefghijklmnop"));
        let c = parse(args(
            "--experimental-dumpless-upgrade --max-indexing-memory=256MiB",
        ))
        .unwrap();
        assert_eq!(c.http_addr, "127.0.0.1:7700".parse().unwrap());
    }

    #[test]
    fn rejects_unknown_flags_and_missing_values() {
        assert!(parse(args("--bogus")).is_err());
        assert!(parse(args("--http-addr")).is_err());
        assert_eq!(
            parse(args("--http-addr=127.0.0.1:1 --master-key="))
                .unwrap()
                .master_key,
            None
        );
    }

    #[test]
    fn help_and_version() {
        for (flag, kind) in [
            ("--help", clap::error::ErrorKind::DisplayHelp),
            ("--version", clap::error::ErrorKind::DisplayVersion),
        ] {
            let e = Cli::try_parse_from(["miroir-test-node", flag]).expect_err(flag);
            assert_eq!(e.kind(), kind);
        }
    }
}
