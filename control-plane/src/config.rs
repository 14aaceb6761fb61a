//! The binary's configuration: a JSON file (`--config`) with command-line overrides.

use std::net::SocketAddr;
use std::path::PathBuf;

use miroir_topology::{Node, Topology};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// Admin REST, `/metrics`, task routes, the filter's internal routes.
    pub http_listen: SocketAddr,
    /// `host:port` the Envoys reach `httpListen` at (the `miroir-control-plane` cluster and the
    /// filter's `:authority`); defaults to `httpListen`.
    pub http_advertise: Option<String>,
    /// gRPC ADS for the Envoys.
    pub xds_listen: SocketAddr,
    /// `embedded:<dir>` (one replica) or `redis://host:port[/db]` (several replicas).
    pub store: String,
    /// `Authorization: Bearer <adminKey>` on `/_miroir/*` (except `/_miroir/ready`) and
    /// `/metrics`. Without it those routes are open (development only).
    pub admin_key: Option<String>,
    /// Shared secret the filter presents (`x-miroir-token`) on `/_miroir/internal/*`.
    pub filter_token: Option<String>,
    /// Key for the nodes: Miroir's own reads (task polling) and the filter's metadata lookups.
    pub node_api_key: Option<String>,
    /// Used only when the store holds no topology yet.
    pub topology: Option<InitialTopology>,
    /// The client listener every Envoy exposes (the Meilisearch API).
    pub envoy_listen: SocketAddr,
    /// The filter's `.wasm` (a path on the Envoys' hosts, or `{uri, sha256}`). A binary set by
    /// `PUT /_miroir/filter` is kept in the store and wins over this one.
    pub wasm: Option<WasmSpec>,
    pub health: HealthConfig,
    /// Deadline of every call from an Envoy (and from the control plane) to a node.
    pub node_timeout_ms: u64,
    /// Deadline of a task registration from the filter; past it the filter uses its leased uids.
    pub control_plane_timeout_ms: u64,
    /// How long each rollout step waits for every Envoy's ACK.
    pub rollout_ack_timeout_ms: u64,
    /// How often the leader refreshes unfinished tasks from the nodes.
    pub task_poll_interval_ms: u64,
    /// Leader lease (Redis); renewed every third of it.
    pub leader_ttl_ms: u64,
    /// This replica's name in the leader lease; defaults to `<hostname-ish>-<pid>`.
    pub replica_id: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 7701)),
            http_advertise: None,
            xds_listen: SocketAddr::from(([127, 0, 0, 1], 18000)),
            store: "embedded:./miroir-data".into(),
            admin_key: None,
            filter_token: None,
            node_api_key: None,
            topology: None,
            envoy_listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            wasm: None,
            health: HealthConfig::default(),
            node_timeout_ms: 30_000,
            control_plane_timeout_ms: 2_000,
            rollout_ack_timeout_ms: 30_000,
            task_poll_interval_ms: 1_000,
            leader_ttl_ms: 10_000,
            replica_id: None,
        }
    }
}

/// The topology a fresh store starts from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitialTopology {
    #[serde(default = "one")]
    pub epoch: u64,
    pub shards: u32,
    pub replication_factor: u32,
    pub nodes: Vec<Node>,
}

fn one() -> u64 {
    1
}

impl InitialTopology {
    pub fn topology(&self) -> Topology {
        Topology {
            epoch: self.epoch,
            shards: self.shards,
            replication_factor: self.replication_factor,
            nodes: self.nodes.clone(),
        }
    }
}

/// Where Envoy loads the filter from: a path, or a URI with the binary's SHA-256 (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WasmSpec {
    Path(PathBuf),
    Remote { uri: String, sha256: String },
}

/// Active health checks of the nodes by the leader (and the Envoy clusters' own checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HealthConfig {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive failures before a node is marked failed.
    pub unhealthy_threshold: u32,
    /// Consecutive successes before a failed node is active again.
    pub healthy_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval_ms: 5_000,
            timeout_ms: 2_000,
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }
    }
}

pub const USAGE: &str = "\
usage: miroir-control-plane [--config <file.json>] [options]

options (each overrides the config file's field):
  --http-listen <addr>        httpListen (default 127.0.0.1:7701)
  --http-advertise <host:port> httpAdvertise (default: httpListen)
  --xds-listen <addr>         xdsListen (default 127.0.0.1:18000)
  --store <spec>              store: embedded:<dir> (default embedded:./miroir-data) or redis://host:port
  --admin-key <key>           adminKey
  --filter-token <token>      filterToken
  --node-api-key <key>        nodeApiKey
  --envoy-listen <addr>       envoyListen (default 127.0.0.1:7700)
  --wasm <path>               wasm
  --node-timeout-ms <ms>      nodeTimeoutMs
  --replica-id <id>           replicaId
  -h, --help                  this text
";

/// Reads `--config` (if given) then applies the other flags over it.
pub fn from_args(args: &[String]) -> Result<Config, String> {
    let mut config_path = None;
    let mut overrides = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => {
                let value = it
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))?;
                (flag.clone(), value.clone())
            }
        };
        if name == "--config" {
            config_path = Some(value);
        } else {
            overrides.push((name, value));
        }
    }
    let mut config = match config_path {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?
        }
        None => Config::default(),
    };
    for (name, value) in overrides {
        apply(&mut config, &name, value)?;
    }
    config.check()?;
    Ok(config)
}

fn addr(name: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|e| format!("{name} {value}: {e} (expected ip:port)"))
}

fn apply(config: &mut Config, name: &str, value: String) -> Result<(), String> {
    match name {
        "--http-listen" => config.http_listen = addr(name, &value)?,
        "--xds-listen" => config.xds_listen = addr(name, &value)?,
        "--envoy-listen" => config.envoy_listen = addr(name, &value)?,
        "--store" => config.store = value,
        "--http-advertise" => config.http_advertise = Some(value),
        "--admin-key" => config.admin_key = Some(value),
        "--filter-token" => config.filter_token = Some(value),
        "--node-api-key" => config.node_api_key = Some(value),
        "--wasm" => config.wasm = Some(WasmSpec::Path(PathBuf::from(value))),
        "--replica-id" => config.replica_id = Some(value),
        "--node-timeout-ms" => {
            config.node_timeout_ms = value.parse().map_err(|e| format!("{name} {value}: {e}"))?
        }
        _ => return Err(format!("unknown option {name}\n\n{USAGE}")),
    }
    Ok(())
}

impl Config {
    pub fn http_advertise(&self) -> String {
        self.http_advertise
            .clone()
            .unwrap_or_else(|| self.http_listen.to_string())
    }

    pub fn check(&self) -> Result<(), String> {
        if self.node_timeout_ms == 0 {
            return Err("nodeTimeoutMs must be positive".into());
        }
        if self.health.unhealthy_threshold == 0 || self.health.healthy_threshold == 0 {
            return Err("health thresholds must be at least 1".into());
        }
        if self.health.interval_ms == 0 || self.task_poll_interval_ms == 0 {
            return Err("intervals must be positive".into());
        }
        if let Some(t) = &self.topology {
            t.topology()
                .validate()
                .map_err(|e| format!("topology: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = crate::testutil::TempDir::new("config");
        let path = dir.path().join("c.json");
        std::fs::write(
            &path,
            r#"{"httpListen": "127.0.0.1:9000", "adminKey": "a",
                "topology": {"shards": 2, "replicationFactor": 1,
                             "nodes": [{"id": "n0", "address": "127.0.0.1:7700", "group": "g0"}]},
                "health": {"intervalMs": 100}, "wasm": {"uri": "http://x/f.wasm", "sha256": "ab"}}"#,
        )
        .expect("write");
        let args: Vec<String> = [
            "--config",
            path.to_str().expect("utf-8"),
            "--admin-key=b",
            "--store",
            "redis://127.0.0.1:1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let config = from_args(&args).expect("config");
        assert_eq!(config.http_listen.port(), 9000);
        assert_eq!(config.admin_key.as_deref(), Some("b"));
        assert_eq!(config.store, "redis://127.0.0.1:1");
        assert_eq!(config.health.interval_ms, 100);
        assert_eq!(config.health.unhealthy_threshold, 3);
        assert_eq!(config.topology.map(|t| t.topology().epoch), Some(1));
        assert!(matches!(config.wasm, Some(WasmSpec::Remote { .. })));
        assert!(from_args(&["--nope".into(), "x".into()]).is_err());
    }
}
