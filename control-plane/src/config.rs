//! The binary's configuration ([`load`]): the defaults, then a TOML or JSON file (`--config`),
//! then the environment ([`ENVIRONMENT`]: `MIROIR_HTTP_LISTEN`, ...), then the command line
//! ([`Cli`]). Secrets never come from the command line: each is read from its environment
//! variable, else from the file its `…File` field names, else from the configuration file itself
//! ([`Config::load_secrets`]).

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
    /// `Authorization: Bearer <adminKey>` on `/_miroir/*` (except `/_miroir/live` and
    /// `/_miroir/ready`) and `/metrics`. Without it those routes are open (development only, and
    /// only on a loopback `httpListen`).
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
    /// OTLP/gRPC endpoint the spans are exported to (`http://collector:4317`); without it, the
    /// standard `OTEL_EXPORTER_OTLP_ENDPOINT`, else no export ([`crate::telemetry`]).
    pub otlp_endpoint: Option<String>,
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
            otlp_endpoint: None,
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

/// What `--help` says after the options: the environment and the secrets.
const ENV_HELP: &str = "\
Precedence, highest first: options, environment, configuration file, defaults.

Environment (each overrides the configuration file's field; see docs/control-plane.md):
  MIROIR_CONFIG                          --config
  MIROIR_HTTP_LISTEN                     httpListen
  MIROIR_HTTP_ADVERTISE                  httpAdvertise
  MIROIR_XDS_LISTEN                      xdsListen
  MIROIR_STORE                           store (may carry a Redis password, e.g. redis://:pw@host:6379)
  MIROIR_ENVOY_LISTEN                    envoyListen
  MIROIR_WASM                            wasm (a path, or {\"uri\": ..., \"sha256\": ...})
  MIROIR_NODE_TIMEOUT_MS                 nodeTimeoutMs
  MIROIR_CONTROL_PLANE_TIMEOUT_MS        controlPlaneTimeoutMs
  MIROIR_ROLLOUT_ACK_TIMEOUT_MS          rolloutAckTimeoutMs
  MIROIR_TASK_POLL_INTERVAL_MS           taskPollIntervalMs
  MIROIR_LEADER_TTL_MS                   leaderTtlMs
  MIROIR_REPLICA_ID                      replicaId
  MIROIR_HEALTH_INTERVAL_MS              health.intervalMs
  MIROIR_HEALTH_TIMEOUT_MS               health.timeoutMs
  MIROIR_HEALTH_UNHEALTHY_THRESHOLD      health.unhealthyThreshold
  MIROIR_HEALTH_HEALTHY_THRESHOLD        health.healthyThreshold
  MIROIR_JOBS_COPY_CONCURRENCY           jobs.copyConcurrency
  MIROIR_JOBS_COPY_DOCUMENTS_PER_SECOND  jobs.copyDocumentsPerSecond
  MIROIR_ANTI_ENTROPY_INTERVAL_MS        antiEntropy.intervalMs
  MIROIR_ANTI_ENTROPY_DOCUMENTS_PER_SECOND antiEntropy.documentsPerSecond
  MIROIR_OTLP_ENDPOINT                   otlpEndpoint

Secrets are never options: each is read from its environment variable, else from the file its
`…File` field names, else from the configuration file's field:
  MIROIR_ADMIN_KEY      adminKey      / adminKeyFile
  MIROIR_FILTER_TOKEN   filterToken   / filterTokenFile
  MIROIR_MASTER_KEY     masterKey     / masterKeyFile
  MIROIR_NODE_API_KEY   nodeApiKey    / nodeApiKeyFile
  MIROIR_XDS_TOKEN      xdsToken      / xdsTokenFile";

/// `miroir-control-plane`'s command line. Each option overrides the environment and the
/// configuration file ([`load`]).
#[derive(Clone, Debug, Default, PartialEq, clap::Parser)]
#[command(
    name = "miroir-control-plane",
    version,
    about = "Miroir's control plane: xDS (ADS) for the Envoys, admin REST, task registry, health checks, jobs.",
    after_help = ENV_HELP
)]
pub struct Cli {
    /// The configuration file: TOML if its name ends in `.toml`, else JSON.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// httpListen (default 127.0.0.1:7701).
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// httpAdvertise (default: httpListen).
    #[arg(long, value_name = "HOST:PORT")]
    pub http_advertise: Option<String>,
    /// xdsListen (default 127.0.0.1:18000).
    #[arg(long, value_name = "ADDR")]
    pub xds_listen: Option<SocketAddr>,
    /// store: embedded:<dir> (default embedded:./miroir-data) or redis://host:port (a Redis URL
    /// with a password: configuration file or MIROIR_STORE only).
    #[arg(long, value_name = "SPEC")]
    pub store: Option<String>,
    /// envoyListen (default 127.0.0.1:7700).
    #[arg(long, value_name = "ADDR")]
    pub envoy_listen: Option<SocketAddr>,
    /// wasm: the filter's .wasm, a path on the Envoys' hosts.
    #[arg(long, value_name = "PATH")]
    pub wasm: Option<PathBuf>,
    /// nodeTimeoutMs (default 30000).
    #[arg(long, value_name = "MS")]
    pub node_timeout_ms: Option<u64>,
    /// replicaId (default <HOSTNAME>-<pid>).
    #[arg(long, value_name = "ID")]
    pub replica_id: Option<String>,
}

impl Cli {
    /// A store URL with a password: refused, without showing the password.
    fn refuse_secrets(&self) -> Result<(), String> {
        if let Some(store) = self.store.as_deref().filter(|s| has_password(s)) {
            return Err(format!(
                "--store {}: a password does not belong on the command line (other users see it); put the URL in the config file or MIROIR_STORE",
                redact_url(store)
            ));
        }
        Ok(())
    }

    /// The options over `config`.
    fn apply(self, config: &mut Config) {
        if let Some(v) = self.http_listen {
            config.http_listen = v;
        }
        if let Some(v) = self.http_advertise {
            config.http_advertise = Some(v);
        }
        if let Some(v) = self.xds_listen {
            config.xds_listen = v;
        }
        if let Some(v) = self.store {
            config.store = v;
        }
        if let Some(v) = self.envoy_listen {
            config.envoy_listen = v;
        }
        if let Some(v) = self.wasm {
            config.wasm = Some(WasmSpec::Path(v));
        }
        if let Some(v) = self.node_timeout_ms {
            config.node_timeout_ms = v;
        }
        if let Some(v) = self.replica_id {
            config.replica_id = Some(v);
        }
    }
}

/// Options that would carry a secret: refused before the command line is parsed (other users
/// see it in `ps`), without showing the value. They are not declared to clap, which would
/// otherwise suggest them ("a similar argument exists").
pub const SECRET_FLAGS: [&str; 5] = [
    "--admin-key",
    "--filter-token",
    "--master-key",
    "--node-api-key",
    "--xds-token",
];

/// `Err` naming the first secret option of `args`.
pub fn refuse_secret_flags(args: &[String]) -> Result<(), String> {
    for flag in SECRET_FLAGS {
        if args
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        {
            return Err(format!(
                "{flag}: secrets are not taken from the command line (other users see it); use the environment or a file (see --help)"
            ));
        }
    }
    Ok(())
}

/// Parses a command line (without the program's name): the options, then [`load`] with the
/// process's environment. `Err` carries clap's message (a usage error, or the `--help` text).
pub fn from_args(args: &[String]) -> Result<Config, String> {
    use clap::Parser;
    refuse_secret_flags(args)?;
    let program = std::iter::once("miroir-control-plane".to_string());
    let cli =
        Cli::try_parse_from(program.chain(args.iter().cloned())).map_err(|e| e.to_string())?;
    load(cli, |name| std::env::var(name).ok())
}

/// The configuration: the defaults, the file (`--config`, else `MIROIR_CONFIG`), the
/// environment ([`ENVIRONMENT`]), the options, then the secrets ([`Config::load_secrets`]),
/// checked. `env` reads a variable (the process's environment outside tests).
pub fn load(cli: Cli, env: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
    cli.refuse_secrets()?;
    let path = cli
        .config
        .clone()
        .or_else(|| set_var(&env, "MIROIR_CONFIG").map(PathBuf::from));
    let mut config = match path {
        Some(path) => read_file(&path)?,
        None => Config::default(),
    };
    config.apply_env(&env)?;
    cli.apply(&mut config);
    config.load_secrets(&env)?;
    config.check()?;
    Ok(config)
}

/// A configuration file: TOML when its name ends in `.toml`, else JSON.
pub fn read_file(path: &std::path::Path) -> Result<Config, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        toml::from_str(&text).map_err(|e| format!("{shown}: {e}"))
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{shown}: {e}"))
    }
}

/// A variable that is set and not blank (a blank one is as if unset).
fn set_var(env: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Each setting the environment overrides: its variable and its field (secrets: [`SECRETS`]).
pub const ENVIRONMENT: [(&str, &str); 21] = [
    ("MIROIR_HTTP_LISTEN", "httpListen"),
    ("MIROIR_HTTP_ADVERTISE", "httpAdvertise"),
    ("MIROIR_XDS_LISTEN", "xdsListen"),
    ("MIROIR_STORE", "store"),
    ("MIROIR_ENVOY_LISTEN", "envoyListen"),
    ("MIROIR_WASM", "wasm"),
    ("MIROIR_NODE_TIMEOUT_MS", "nodeTimeoutMs"),
    ("MIROIR_CONTROL_PLANE_TIMEOUT_MS", "controlPlaneTimeoutMs"),
    ("MIROIR_ROLLOUT_ACK_TIMEOUT_MS", "rolloutAckTimeoutMs"),
    ("MIROIR_TASK_POLL_INTERVAL_MS", "taskPollIntervalMs"),
    ("MIROIR_LEADER_TTL_MS", "leaderTtlMs"),
    ("MIROIR_REPLICA_ID", "replicaId"),
    ("MIROIR_HEALTH_INTERVAL_MS", "health.intervalMs"),
    ("MIROIR_HEALTH_TIMEOUT_MS", "health.timeoutMs"),
    (
        "MIROIR_HEALTH_UNHEALTHY_THRESHOLD",
        "health.unhealthyThreshold",
    ),
    ("MIROIR_HEALTH_HEALTHY_THRESHOLD", "health.healthyThreshold"),
    ("MIROIR_JOBS_COPY_CONCURRENCY", "jobs.copyConcurrency"),
    (
        "MIROIR_JOBS_COPY_DOCUMENTS_PER_SECOND",
        "jobs.copyDocumentsPerSecond",
    ),
    ("MIROIR_ANTI_ENTROPY_INTERVAL_MS", "antiEntropy.intervalMs"),
    (
        "MIROIR_ANTI_ENTROPY_DOCUMENTS_PER_SECOND",
        "antiEntropy.documentsPerSecond",
    ),
    ("MIROIR_OTLP_ENDPOINT", "otlpEndpoint"),
];

fn parsed<T: std::str::FromStr>(variable: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| format!("{variable} {value}: {e}"))
}

impl Config {
    /// Sets every field whose variable ([`ENVIRONMENT`]) `env` has.
    pub fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), String> {
        for (variable, field) in ENVIRONMENT {
            let Some(v) = set_var(env, variable) else {
                continue;
            };
            match field {
                "httpListen" => self.http_listen = parsed(variable, &v)?,
                "httpAdvertise" => self.http_advertise = Some(v),
                "xdsListen" => self.xds_listen = parsed(variable, &v)?,
                "store" => self.store = v,
                "envoyListen" => self.envoy_listen = parsed(variable, &v)?,
                "wasm" if v.starts_with('{') => {
                    self.wasm =
                        Some(serde_json::from_str(&v).map_err(|e| format!("{variable}: {e}"))?)
                }
                "wasm" => self.wasm = Some(WasmSpec::Path(PathBuf::from(v))),
                "nodeTimeoutMs" => self.node_timeout_ms = parsed(variable, &v)?,
                "controlPlaneTimeoutMs" => self.control_plane_timeout_ms = parsed(variable, &v)?,
                "rolloutAckTimeoutMs" => self.rollout_ack_timeout_ms = parsed(variable, &v)?,
                "taskPollIntervalMs" => self.task_poll_interval_ms = parsed(variable, &v)?,
                "leaderTtlMs" => self.leader_ttl_ms = parsed(variable, &v)?,
                "replicaId" => self.replica_id = Some(v),
                "health.intervalMs" => self.health.interval_ms = parsed(variable, &v)?,
                "health.timeoutMs" => self.health.timeout_ms = parsed(variable, &v)?,
                "health.unhealthyThreshold" => {
                    self.health.unhealthy_threshold = parsed(variable, &v)?
                }
                "health.healthyThreshold" => self.health.healthy_threshold = parsed(variable, &v)?,
                "jobs.copyConcurrency" => self.jobs.copy_concurrency = parsed(variable, &v)?,
                "jobs.copyDocumentsPerSecond" => {
                    self.jobs.copy_documents_per_second = parsed(variable, &v)?
                }
                "antiEntropy.intervalMs" => self.anti_entropy.interval_ms = parsed(variable, &v)?,
                "otlpEndpoint" => self.otlp_endpoint = Some(v),
                "antiEntropy.documentsPerSecond" => {
                    self.anti_entropy.documents_per_second = parsed(variable, &v)?
                }
                other => return Err(format!("{variable}: no setting {other}")),
            }
        }
        Ok(())
    }
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
        config.apply_env(&env).expect("environment");
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

    fn cli(list: &[&str]) -> Cli {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("miroir-control-plane").chain(list.iter().copied()))
            .expect("command line")
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    /// Issue 12: options > environment > file > defaults, one setting at each level.
    #[test]
    fn options_then_environment_then_file_then_defaults() {
        let dir = crate::testutil::TempDir::new("config-precedence");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            r#"
httpListen = "127.0.0.1:9000"
xdsListen = "127.0.0.1:9100"
nodeTimeoutMs = 1000
replicaId = "from-file"

[health]
intervalMs = 100
timeoutMs = 50
"#,
        )
        .expect("write");
        let path = path.to_str().expect("utf-8");
        let env = env_of(&[
            ("MIROIR_HTTP_LISTEN", "127.0.0.1:9001"),
            ("MIROIR_NODE_TIMEOUT_MS", "2000"),
            ("MIROIR_HEALTH_INTERVAL_MS", "200"),
            ("MIROIR_JOBS_COPY_CONCURRENCY", "2"),
            ("MIROIR_STORE", "redis://:pw@127.0.0.1:6379/1"),
            ("MIROIR_REPLICA_ID", " "),
        ]);
        let config = load(
            cli(&["--config", path, "--http-listen", "127.0.0.1:9002"]),
            &env,
        )
        .expect("config");
        // Option over environment over file.
        assert_eq!(config.http_listen.port(), 9002);
        // Environment over file.
        assert_eq!(config.node_timeout_ms, 2000);
        assert_eq!(config.health.interval_ms, 200);
        assert_eq!(config.store, "redis://:pw@127.0.0.1:6379/1");
        // Environment over the default.
        assert_eq!(config.jobs.copy_concurrency, 2);
        // File over the default; a blank variable is as if unset.
        assert_eq!(config.xds_listen.port(), 9100);
        assert_eq!(config.health.timeout_ms, 50);
        assert_eq!(config.replica_id.as_deref(), Some("from-file"));
        // Defaults.
        assert_eq!(config.health.unhealthy_threshold, 3);
        assert_eq!(config.envoy_listen, Config::default().envoy_listen);
        assert_eq!(config.rollout_ack_timeout_ms, 30_000);

        // `--store` over MIROIR_STORE; MIROIR_CONFIG names the file when `--config` does not.
        let env = env_of(&[
            ("MIROIR_CONFIG", path),
            ("MIROIR_STORE", "redis://127.0.0.1:1"),
        ]);
        let config = load(cli(&["--store", "embedded:/tmp/x"]), &env).expect("config");
        assert_eq!(config.store, "embedded:/tmp/x");
        assert_eq!(config.http_listen.port(), 9000);

        // A malformed variable is named, and so is a malformed file.
        let e = load(cli(&[]), env_of(&[("MIROIR_HEALTH_TIMEOUT_MS", "soon")]))
            .expect_err("not a number");
        assert!(e.starts_with("MIROIR_HEALTH_TIMEOUT_MS soon"), "{e}");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "httpListen = 7701\n").expect("write");
        let e = load(
            cli(&["--config", bad.to_str().expect("utf-8")]),
            env_of(&[]),
        )
        .expect_err("bad toml");
        assert!(e.contains("bad.toml") && e.contains("httpListen"), "{e}");
    }

    /// Every variable of [`ENVIRONMENT`] sets its field.
    #[test]
    fn every_variable_sets_its_setting() {
        let mut config = Config::default();
        let values: Vec<(&str, &str)> = ENVIRONMENT
            .iter()
            .map(|(variable, field)| {
                let value = match *field {
                    "httpListen" | "xdsListen" | "envoyListen" => "10.1.2.3:4567",
                    "httpAdvertise" | "store" | "wasm" | "replicaId" => "text",
                    _ => "7",
                };
                (*variable, value)
            })
            .collect();
        config.apply_env(&env_of(&values)).expect("environment");
        let shown = serde_json::to_value(&config).expect("json");
        for (variable, field) in ENVIRONMENT {
            let mut value = &shown;
            for part in field.split('.') {
                value = &value[part];
            }
            let default = serde_json::to_value(Config::default()).expect("json");
            let mut before = &default;
            for part in field.split('.') {
                before = &before[part];
            }
            assert_ne!(value, before, "{variable} did not set {field}");
        }
        let mut config = Config::default();
        config
            .apply_env(&env_of(&[(
                "MIROIR_WASM",
                r#"{"uri": "https://x/f.wasm", "sha256": "ab"}"#,
            )]))
            .expect("wasm");
        assert!(matches!(config.wasm, Some(WasmSpec::Remote { .. })));
    }

    /// Issue 12: a TOML file gives what the same JSON file gives.
    #[test]
    fn toml_and_json_files_agree() {
        let dir = crate::testutil::TempDir::new("config-toml");
        let toml_path = dir.path().join("c.toml");
        std::fs::write(
            &toml_path,
            r#"
httpListen = "127.0.0.1:9000"
store = "embedded:/var/lib/miroir"
adminKeyFile = "/run/secrets/admin-key"
wasm = { uri = "https://example.com/miroir_filter.wasm", sha256 = "ab" }

[topology]
shards = 8
replicationFactor = 2
minCopies = 1
unavailableShards = "partial"

[[topology.nodes]]
id = "n0"
address = "127.0.0.1:7710"
group = "g0"

[[topology.nodes]]
id = "n1"
address = "127.0.0.1:7711"
group = "g0"

[health]
intervalMs = 1000

[jobs]
copyDocumentsPerSecond = 5000
"#,
        )
        .expect("write");
        let json_path = dir.path().join("c.json");
        std::fs::write(
            &json_path,
            r#"{"httpListen": "127.0.0.1:9000", "store": "embedded:/var/lib/miroir",
                "adminKeyFile": "/run/secrets/admin-key",
                "wasm": {"uri": "https://example.com/miroir_filter.wasm", "sha256": "ab"},
                "topology": {"shards": 8, "replicationFactor": 2, "minCopies": 1,
                             "unavailableShards": "partial",
                             "nodes": [{"id": "n0", "address": "127.0.0.1:7710", "group": "g0"},
                                       {"id": "n1", "address": "127.0.0.1:7711", "group": "g0"}]},
                "health": {"intervalMs": 1000}, "jobs": {"copyDocumentsPerSecond": 5000}}"#,
        )
        .expect("write");
        let from_toml = read_file(&toml_path).expect("toml");
        assert_eq!(from_toml, read_file(&json_path).expect("json"));
        assert_eq!(from_toml.topology.as_ref().map(|t| t.nodes.len()), Some(2));
        assert_eq!(from_toml.health.interval_ms, 1000);
        assert_eq!(from_toml.health.timeout_ms, 2000);
        // Unknown keys are refused in TOML as in JSON.
        std::fs::write(&toml_path, "httpListenn = \"127.0.0.1:1\"\n").expect("write");
        let e = read_file(&toml_path).expect_err("unknown key");
        assert!(e.contains("httpListenn"), "{e}");
    }

    /// The TOML example of docs/control-plane.md parses and passes the checks.
    #[test]
    fn the_documented_toml_example_parses() {
        let doc = include_str!("../../docs/control-plane.md");
        let start = doc.find("```toml\n").expect("a ```toml block") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("its end");
        let mut config: Config = toml::from_str(&doc[start..end]).expect("the example");
        assert!(config.admin_key_file.is_some() && config.topology.is_some());
        // What its secret files would give.
        config.admin_key = Some("admin".into());
        config.xds_token = Some("xds".into());
        config.check().expect("checked");
    }

    /// `--help` and `--version` are clap's (main exits 0 on them); a bad option is a usage error.
    #[test]
    fn help_and_version() {
        use clap::Parser;
        for (flag, kind) in [
            ("--help", clap::error::ErrorKind::DisplayHelp),
            ("--version", clap::error::ErrorKind::DisplayVersion),
            ("--bogus", clap::error::ErrorKind::UnknownArgument),
        ] {
            let e = Cli::try_parse_from(["miroir-control-plane", flag]).expect_err(flag);
            assert_eq!(e.kind(), kind, "{flag}");
        }
        let help = Cli::try_parse_from(["miroir-control-plane", "--help"])
            .expect_err("help")
            .to_string();
        for (variable, _) in ENVIRONMENT.iter().chain(SECRETS.iter()) {
            assert!(help.contains(variable), "--help lacks {variable}");
        }
        assert!(!help.contains("--admin-key"), "{help}");
        // No secret option is suggested for a mistyped one.
        let e = Cli::try_parse_from(["miroir-control-plane", "--admin", "x"]).expect_err("--admin");
        assert!(!e.to_string().contains("--admin-key"), "{e}");
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
