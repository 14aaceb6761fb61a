//! The binary's configuration: a JSON file (`--config`) with command-line overrides. Secrets
//! never come from the command line: each is read from its environment variable, else from the
//! file its `…File` field names, else from the configuration file itself ([`Config::load_secrets`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use miroir_topology::{Node, ShardMap, Topology, UnavailableShards};
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Serialize, Deserialize)]
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
    /// `/metrics`. Without it those routes are open (development only, and only on a loopback
    /// `httpListen`).
    pub admin_key: Option<String>,
    pub admin_key_file: Option<PathBuf>,
    /// Shared secret the filter presents (`x-miroir-token`) on `/_miroir/internal/*`.
    pub filter_token: Option<String>,
    pub filter_token_file: Option<PathBuf>,
    /// The nodes' master key: the control plane's own node calls (task polling, settings checks,
    /// key creation, reading a client key's rights). It never leaves the control plane: the
    /// filter gets a key of its own, created with it ([`crate::filter_key`]).
    pub master_key: Option<String>,
    pub master_key_file: Option<PathBuf>,
    /// Without `masterKey`: the key of the control plane's own node calls. Never given to the
    /// filter (whose lookups then use each client's key).
    pub node_api_key: Option<String>,
    pub node_api_key_file: Option<PathBuf>,
    /// Bearer token every Envoy must present on its xDS stream (`authorization: Bearer <token>`
    /// in the gRPC metadata). Required when `xdsListen` is not a loopback address.
    pub xds_token: Option<String>,
    pub xds_token_file: Option<PathBuf>,
    /// Used only when the store holds no topology yet.
    pub topology: Option<InitialTopology>,
    /// The client listener every Envoy exposes (the Meilisearch API).
    pub envoy_listen: SocketAddr,
    /// The filter's `.wasm` (a path on the Envoys' hosts, or `{uri, sha256}`). A binary set by
    /// `PUT /_miroir/filter` is kept in the store and wins over this one.
    pub wasm: Option<WasmSpec>,
    pub health: HealthConfig,
    /// How jobs copy shards (docs/operations.md).
    pub jobs: JobsConfig,
    /// How the leader compares in-sync copies in the background (docs/control-plane.md).
    pub anti_entropy: crate::jobs::anti_entropy::AntiEntropyConfig,
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

impl Config {
    /// This replica's name in the leader lease and in the fleet reports.
    pub fn replica_name(&self) -> String {
        self.replica_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "control-plane".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 7701)),
            http_advertise: None,
            xds_listen: SocketAddr::from(([127, 0, 0, 1], 18000)),
            store: "embedded:./miroir-data".into(),
            admin_key: None,
            admin_key_file: None,
            filter_token: None,
            filter_token_file: None,
            master_key: None,
            master_key_file: None,
            node_api_key: None,
            node_api_key_file: None,
            xds_token: None,
            xds_token_file: None,
            topology: None,
            envoy_listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            wasm: None,
            health: HealthConfig::default(),
            jobs: JobsConfig::default(),
            anti_entropy: Default::default(),
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
    /// Fixed for the cluster's life: a document's shard is its key's hash modulo this count.
    #[serde(default = "default_shards")]
    pub shards: u32,
    pub replication_factor: u32,
    pub nodes: Vec<Node>,
    /// In-sync copies of every shard a write must reach before it is acknowledged (absent: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_copies: Option<u32>,
    /// What a search answers when no copy of some shard answers (absent: `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_shards: Option<UnavailableShards>,
}

fn one() -> u64 {
    1
}

/// Enough shards that any node count up to a few dozen is balanced within one shard of the
/// mean (a node's share of 64 differs from the mean by under one shard, i.e. 1/64 of the data).
pub const DEFAULT_SHARDS: u32 = 64;

fn default_shards() -> u32 {
    DEFAULT_SHARDS
}

impl InitialTopology {
    /// The topology with its shard map recorded (the allocator's placement of the nodes).
    pub fn topology(&self) -> Topology {
        let topology = Topology {
            epoch: self.epoch,
            shards: self.shards,
            shard_map: ShardMap {
                min_copies: self.min_copies,
                unavailable_shards: self.unavailable_shards,
                ..ShardMap::default()
            },
            replication_factor: self.replication_factor,
            nodes: self.nodes.clone(),
        };
        topology.clone().with_explicit_map().unwrap_or(topology)
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

/// How a job copies: shards copied at once, and a ceiling on documents written per second (0: none)
/// so a migration leaves the nodes room for the clients' traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JobsConfig {
    pub copy_concurrency: usize,
    pub copy_documents_per_second: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            copy_concurrency: 4,
            copy_documents_per_second: 0,
        }
    }
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
                              (a Redis URL with a password: config file or MIROIR_STORE only)
  --envoy-listen <addr>       envoyListen (default 127.0.0.1:7700)
  --wasm <path>               wasm
  --node-timeout-ms <ms>      nodeTimeoutMs
  --replica-id <id>           replicaId
  -h, --help                  this text

secrets are never flags: each is read from its environment variable, else from the file its
`…File` field names, else from the config file's field:
  MIROIR_ADMIN_KEY      adminKey      / adminKeyFile
  MIROIR_FILTER_TOKEN   filterToken   / filterTokenFile
  MIROIR_MASTER_KEY     masterKey     / masterKeyFile
  MIROIR_NODE_API_KEY   nodeApiKey    / nodeApiKeyFile
  MIROIR_XDS_TOKEN      xdsToken      / xdsTokenFile
  MIROIR_STORE          store (e.g. redis://:password@host:6379)
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
    config.load_secrets(|name| std::env::var(name).ok())?;
    config.check()?;
    Ok(config)
}

/// Each secret: its environment variable, its `…File` field, its config field.
const SECRETS: [(&str, &str); 5] = [
    ("MIROIR_ADMIN_KEY", "adminKey"),
    ("MIROIR_FILTER_TOKEN", "filterToken"),
    ("MIROIR_MASTER_KEY", "masterKey"),
    ("MIROIR_NODE_API_KEY", "nodeApiKey"),
    ("MIROIR_XDS_TOKEN", "xdsToken"),
];

/// Reads a secret file: its content without surrounding whitespace (a trailing newline is
/// normal in a file). The error names the file, never the content.
fn read_secret(field: &str, path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{field}File {}: {e}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{field}File {}: the file is empty", path.display()));
    }
    Ok(text.to_string())
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn secret_eq(expected: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// `redis://user:password@host` → `redis://user:***@host`: what logs and errors may show.
pub fn redact_url(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        return spec.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => spec.to_string(),
    }
}

/// Whether a store spec carries a password (so it must not be given on the command line).
fn has_password(spec: &str) -> bool {
    redact_url(spec) != spec
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
        "--store" if has_password(&value) => {
            return Err(format!(
                "--store {}: a password does not belong on the command line (other users see it); put the URL in the config file or MIROIR_STORE",
                redact_url(&value)
            ))
        }
        "--store" => config.store = value,
        "--http-advertise" => config.http_advertise = Some(value),
        "--admin-key" | "--filter-token" | "--node-api-key" | "--master-key" | "--xds-token" => {
            return Err(format!(
                "{name}: secrets are not taken from the command line (other users see it); use the environment or a file\n\n{USAGE}"
            ))
        }
        "--wasm" => config.wasm = Some(WasmSpec::Path(PathBuf::from(value))),
        "--replica-id" => config.replica_id = Some(value),
        "--node-timeout-ms" => {
            config.node_timeout_ms = value.parse().map_err(|e| format!("{name} {value}: {e}"))?
        }
        _ => return Err(format!("unknown option {name}\n\n{USAGE}")),
    }
    Ok(())
}

impl std::fmt::Debug for Config {
    /// The configuration with every secret (and the store URL's password) masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        for (_, field) in SECRETS {
            if let Some(v) = value.get_mut(field).filter(|v| !v.is_null()) {
                *v = serde_json::Value::String("***".into());
            }
        }
        value["store"] = serde_json::Value::String(redact_url(&self.store));
        write!(f, "Config {value}")
    }
}

impl Config {
    /// Fills every secret from its environment variable (`env`), else its `…File`. A secret set
    /// twice (variable or file, and the config field) takes the first of those.
    pub fn load_secrets(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(store) = env("MIROIR_STORE").filter(|s| !s.is_empty()) {
            self.store = store;
        }
        let slots: [(&mut Option<String>, &Option<PathBuf>); 5] = [
            (&mut self.admin_key, &self.admin_key_file),
            (&mut self.filter_token, &self.filter_token_file),
            (&mut self.master_key, &self.master_key_file),
            (&mut self.node_api_key, &self.node_api_key_file),
            (&mut self.xds_token, &self.xds_token_file),
        ];
        for ((variable, field), (value, file)) in SECRETS.into_iter().zip(slots) {
            if let Some(v) = env(variable).filter(|v| !v.trim().is_empty()) {
                *value = Some(v.trim().to_string());
            } else if let Some(path) = file {
                *value = Some(read_secret(field, path)?);
            }
            if value.as_deref().is_some_and(str::is_empty) {
                *value = None;
            }
        }
        Ok(())
    }

    /// The key of the control plane's own node calls: the master key, else `nodeApiKey`.
    pub fn node_key(&self) -> Option<&str> {
        self.master_key
            .as_deref()
            .or(self.node_api_key.as_deref())
            .filter(|k| !k.is_empty())
    }

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
        let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        if !self.http_listen.ip().is_loopback() && !set(&self.admin_key) {
            return Err(format!(
                "httpListen {} is not a loopback address and no adminKey is set: the admin API would be open to the network (set adminKey, MIROIR_ADMIN_KEY or adminKeyFile, or listen on 127.0.0.1)",
                self.http_listen
            ));
        }
        if self.wasm.is_some() && !self.xds_listen.ip().is_loopback() && !set(&self.xds_token) {
            return Err(format!(
                "xdsListen {} is not a loopback address and no xdsToken is set: anyone reaching it would get the filter's keys (set xdsToken, MIROIR_XDS_TOKEN or xdsTokenFile, or listen on 127.0.0.1)",
                self.xds_listen
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

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
        let path = path.to_str().expect("utf-8");
        let config = from_args(&args(&[
            "--config",
            path,
            "--http-listen=127.0.0.1:9001",
            "--store",
            "redis://127.0.0.1:1",
        ]))
        .expect("config");
        assert_eq!(config.http_listen.port(), 9001);
        assert_eq!(config.admin_key.as_deref(), Some("a"));
        assert_eq!(config.store, "redis://127.0.0.1:1");
        assert_eq!(config.health.interval_ms, 100);
        assert_eq!(config.health.unhealthy_threshold, 3);
        assert_eq!(config.topology.map(|t| t.topology().epoch), Some(1));
        assert!(matches!(config.wasm, Some(WasmSpec::Remote { .. })));
        assert!(from_args(&["--nope".into(), "x".into()]).is_err());
    }

    /// Issue 10: no secret on the command line (other users see it in `ps`).
    #[test]
    fn secrets_are_refused_on_the_command_line() {
        for flag in [
            "--admin-key",
            "--filter-token",
            "--node-api-key",
            "--master-key",
            "--xds-token",
        ] {
            let e = from_args(&args(&[flag, "s3cret"])).expect_err(flag);
            assert!(e.contains("not taken from the command line"), "{flag}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        let e =
            from_args(&args(&["--store", "redis://:s3cret@127.0.0.1:6379"])).expect_err("store");
        assert!(!e.contains("s3cret"), "{e}");
        assert!(e.contains("redis://:***@127.0.0.1:6379"), "{e}");
    }

    #[test]
    fn secrets_come_from_the_environment_or_files() {
        let dir = crate::testutil::TempDir::new("config-secrets");
        let file = dir.path().join("master");
        std::fs::write(&file, "from-file\n").expect("write");
        let mut config = Config {
            admin_key: Some("inline".into()),
            master_key_file: Some(file.clone()),
            filter_token: Some("inline-token".into()),
            ..Config::default()
        };
        let env = |name: &str| match name {
            "MIROIR_ADMIN_KEY" => Some("from-env".to_string()),
            "MIROIR_XDS_TOKEN" => Some("xds-from-env".to_string()),
            "MIROIR_STORE" => Some("redis://:pw@10.0.0.1:6379/2".to_string()),
            _ => None,
        };
        config.load_secrets(env).expect("secrets");
        assert_eq!(config.admin_key.as_deref(), Some("from-env"));
        assert_eq!(config.master_key.as_deref(), Some("from-file"));
        assert_eq!(config.filter_token.as_deref(), Some("inline-token"));
        assert_eq!(config.xds_token.as_deref(), Some("xds-from-env"));
        assert_eq!(config.store, "redis://:pw@10.0.0.1:6379/2");
        let missing = Config {
            xds_token_file: Some(dir.path().join("nope")),
            ..Config::default()
        };
        let e = missing
            .clone()
            .load_secrets(|_| None)
            .expect_err("missing file");
        assert!(e.starts_with("xdsTokenFile "), "{e}");
    }

    /// Issue 10: logs and `{:?}` never show a secret, nor the Redis URL's password.
    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact_url("redis://user:pw@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(
            redact_url("redis://:pw@host:6379"),
            "redis://:***@host:6379"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact_url("embedded:./data"), "embedded:./data");
        let config = Config {
            store: "redis://:storepw@h:1".into(),
            admin_key: Some("adminpw".into()),
            filter_token: Some("tokenpw".into()),
            master_key: Some("masterpw".into()),
            node_api_key: Some("nodepw".into()),
            xds_token: Some("xdspw".into()),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        for secret in [
            "storepw", "adminpw", "tokenpw", "masterpw", "nodepw", "xdspw",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abcd"));
    }

    /// Issue 10: an admin API reachable from the network needs a key; so does the xDS server
    /// (its resources carry the filter's key and token).
    #[test]
    fn a_non_loopback_listener_needs_its_key() {
        let open = Config {
            http_listen: "0.0.0.0:7701".parse().expect("addr"),
            ..Config::default()
        };
        let e = open.check().expect_err("open admin API");
        assert!(e.contains("adminKey"), "{e}");
        let keyed = Config {
            admin_key: Some("k".into()),
            ..open
        };
        keyed.check().expect("with a key");
        Config::default().check().expect("loopback");

        let xds = Config {
            xds_listen: "0.0.0.0:18000".parse().expect("addr"),
            wasm: Some(WasmSpec::Path("/f.wasm".into())),
            ..Config::default()
        };
        let e = xds.check().expect_err("open xDS");
        assert!(e.contains("xdsToken"), "{e}");
        Config {
            xds_token: Some("t".into()),
            ..xds
        }
        .check()
        .expect("with a token");
    }
}
