//! A Miroir fleet run through the control plane: test nodes, an optional Redis, one or more
//! `miroir-control-plane` processes, and Envoys started with the ADS bootstrap (they know only the
//! control plane and receive the listener, the clusters and the filter configuration over xDS).
//!
//! Everything lives under `<target>/e2e-logs/<test>/` and is SIGKILLed when the [`Fleet`] drops
//! (Envoys first, then the control planes, Redis and the nodes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use miroir_envoy::{ads_bootstrap, write_atomically, AdsBootstrapOptions};
use serde_json::{json, Value};

use crate::cluster::{launch_nodes, master_key, NameGuard, Spec};
use crate::envoy::{Envoy, LogLevels};
use crate::http::{Client, Reply};
use crate::node::{Node, NodeKind};
use crate::paths;
use crate::ports::free_port;
use crate::process::{tail, ChildProcess};
use crate::redis::Redis;
use crate::wait::{poll, try_poll, WaitError, DEFAULT_TIMEOUT};

/// `node.cluster` of every Envoy the harness starts.
pub const ENVOY_CLUSTER: &str = "miroir";
/// What the control plane prints once both listeners are bound.
const READY_LINE: &str = "miroir-control-plane ready";

/// Where the control planes keep their state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// `embedded:<dir>`: one replica.
    Embedded,
    /// `redis://…` on a Redis the fleet starts: one or more replicas.
    Redis,
}

/// The control plane's active health checks (also the Envoy clusters' own checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

impl Default for Health {
    /// Quick enough for tests, lenient enough for a loaded 2-core machine.
    fn default() -> Self {
        Health {
            interval_ms: 500,
            timeout_ms: 2_000,
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetOptions {
    pub store: StoreKind,
    /// Control-plane replicas (more than one needs [`StoreKind::Redis`]).
    pub control_planes: usize,
    /// Envoys, all connected to the first control plane.
    pub envoys: usize,
    pub health: Health,
    /// Leader lease (Redis).
    pub leader_ttl_ms: u64,
    pub task_poll_interval_ms: u64,
    /// The filter's deadline for the control plane; past it, leased uids are used.
    pub control_plane_timeout_ms: u64,
    pub node_timeout_ms: u64,
    /// Every Envoy's client listener; port 0 (the default) gives each Envoy its own free port.
    pub envoy_listen: SocketAddr,
    /// The nodes' master key; `None` makes one unique to the fleet.
    pub master_key: Option<String>,
    /// The control plane's admin key; `None` makes one.
    pub admin_key: Option<String>,
    /// The token Envoys present to the xDS server; `None` makes a random one.
    pub xds_token: Option<String>,
    /// The tests' by default; `make start` runs Envoy with [`LogLevels::Production`].
    pub envoy_log_levels: LogLevels,
    /// The control plane's `jobs` section: shard copies at once, documents per second (0: no
    /// ceiling). A test that must act in the middle of a copy slows it down.
    pub copy_concurrency: usize,
    pub copy_documents_per_second: u64,
    /// The topology's `minCopies` (absent: the control plane's default, 1).
    pub min_copies: Option<u32>,
    /// The control plane's `antiEntropy.intervalMs`; 0 (the default here) turns it off, so a
    /// test sees only what the write path and the repair do.
    pub anti_entropy_interval_ms: u64,
    /// The control plane's `otlpEndpoint` (spans exported there over OTLP/gRPC).
    pub otlp_endpoint: Option<String>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            store: StoreKind::Embedded,
            control_planes: 1,
            envoys: 1,
            health: Health::default(),
            leader_ttl_ms: 3_000,
            task_poll_interval_ms: 200,
            control_plane_timeout_ms: 2_000,
            node_timeout_ms: 10_000,
            envoy_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            master_key: None,
            admin_key: None,
            xds_token: None,
            envoy_log_levels: LogLevels::Test,
            copy_concurrency: 4,
            copy_documents_per_second: 0,
            min_copies: None,
            anti_entropy_interval_ms: 0,
            otlp_endpoint: None,
        }
    }
}

/// One `miroir-control-plane` process. Its ports, configuration file and store survive
/// [`ControlPlane::kill`] + [`ControlPlane::restart`], so a restarted replica is the same one.
#[derive(Debug)]
pub struct ControlPlane {
    replica_id: String,
    dir: PathBuf,
    config: Value,
    http: SocketAddr,
    xds: SocketAddr,
    admin_key: Option<String>,
    process: Option<ChildProcess>,
}

impl ControlPlane {
    /// Starts a replica in `dir` with `config` (the JSON configuration without `httpListen` and
    /// `xdsListen`, which are picked here) and waits until it serves.
    pub fn start(replica_id: &str, dir: &Path, config: Value) -> ControlPlane {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let admin_key = config["adminKey"].as_str().map(str::to_string);
        let mut cp = ControlPlane {
            replica_id: replica_id.to_string(),
            dir: dir.to_path_buf(),
            config,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            xds: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_key,
            process: None,
        };
        let mut last = String::new();
        for _ in 0..3 {
            cp.http = SocketAddr::from(([127, 0, 0, 1], free_port()));
            cp.xds = SocketAddr::from(([127, 0, 0, 1], free_port()));
            match cp.try_start() {
                Ok(()) => return cp,
                Err(why) => last = why,
            }
        }
        panic!(
            "control plane {replica_id} did not start: its ports were taken 3 times; last: {last}"
        )
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// `host:port` of the ADS listener (what Envoys' bootstraps point at).
    pub fn xds_address(&self) -> String {
        self.xds.to_string()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("control-plane.log")
    }

    /// A client of the HTTP listener with the admin key.
    pub fn admin(&self) -> Client {
        Client::new(&self.url(), self.admin_key.as_deref())
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.exited().is_none())
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::id)
    }

    /// Whether the harness started it and did not kill it since (it may have died by itself:
    /// see [`ControlPlane::is_running`]).
    pub fn is_started(&self) -> bool {
        self.process.is_some()
    }

    /// SIGKILL: no graceful stop, the leader lease is not released.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the replica again on its ports, configuration and store; waits until it serves.
    pub fn restart(&mut self) {
        if self.is_running() {
            return;
        }
        if let Err(why) = self.try_start() {
            panic!("control plane {} did not restart: {why}", self.replica_id)
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        self.kill();
        let mut config = self.config.clone();
        config["httpListen"] = json!(self.http.to_string());
        config["xdsListen"] = json!(self.xds.to_string());
        config["replicaId"] = json!(self.replica_id);
        let config_path = self.dir.join("control-plane.json");
        let text = serde_json::to_vec_pretty(&config).unwrap_or_default();
        write_atomically(&config_path, &text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        let log = self.log_path();
        let before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut command = Command::new(paths::control_plane_bin());
        command
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .current_dir(&self.dir);
        // The settings and secrets are in the (private) configuration file: no `MIROIR_*`
        // variable inherited from the environment overrides them (the control plane reads its
        // settings and secrets from `MIROIR_*`; `make start` itself reads MIROIR_MASTER_KEY).
        for (variable, _) in std::env::vars_os() {
            if variable.to_string_lossy().starts_with("MIROIR_") {
                command.env_remove(variable);
            }
        }
        let name = format!("control plane {}", self.replica_id);
        let mut process = ChildProcess::spawn(&name, command, &log);
        let client = Client::new(&self.url(), None);
        let up = try_poll(
            DEFAULT_TIMEOUT,
            || process.check_alive(),
            || {
                let printed = tail(&log, u64::MAX);
                let printed = printed.get(before as usize..).unwrap_or("");
                if !printed.contains(READY_LINE) {
                    return Err(format!("`{READY_LINE}` not printed yet"));
                }
                // The HTTP server answers (ready or not: a fresh store may have no leader yet).
                let reply = client.try_send("GET", "/_miroir/live", None)?;
                match reply.status {
                    200 => Ok(()),
                    s => Err(format!("GET /_miroir/live: {s} {}", reply.text())),
                }
            },
        );
        match up {
            Ok(()) => {
                self.process = Some(process);
                Ok(())
            }
            Err(WaitError::Aborted(why)) if why.to_ascii_lowercase().contains("in use") => {
                Err(why)
            }
            Err(WaitError::Aborted(why)) => panic!(
                "{name} did not start ({}; stale? `make build` rebuilds it): {why}",
                paths::control_plane_bin().display()
            ),
            Err(WaitError::TimedOut(last)) => panic!(
                "timed out after {DEFAULT_TIMEOUT:?} waiting for {name} at {}; last: {last}; see {}",
                self.url(),
                log.display()
            ),
        }
    }

    /// `GET /_miroir/ready` (200 or 503), or `Err` when nothing answers.
    pub fn ready(&self) -> Result<Reply, String> {
        Client::new(&self.url(), None).try_send("GET", "/_miroir/ready", None)
    }

    /// Whether this replica says it is the leader (`GET /_miroir/fleet`, which answers even
    /// while an Envoy is behind).
    pub fn is_leader(&self) -> Option<bool> {
        let reply = self.admin().try_send("GET", "/_miroir/fleet", None).ok()?;
        (reply.status == 200)
            .then(|| reply.try_json()?["leader"].as_bool())
            .flatten()
    }

    /// `GET /_miroir/fleet` (panics unless 200).
    pub fn fleet(&self) -> Value {
        let (status, body) = self.admin().get("/_miroir/fleet").pair();
        assert_eq!(status, 200, "GET /_miroir/fleet: {body}");
        body
    }

    /// `GET /_miroir/topology` (panics unless 200).
    pub fn topology(&self) -> Value {
        let (status, body) = self.admin().get("/_miroir/topology").pair();
        assert_eq!(status, 200, "GET /_miroir/topology: {body}");
        body
    }

    /// `GET /metrics` with the admin key, parsed ([`crate::prometheus`]).
    pub fn scrape(&self) -> Result<crate::prometheus::Scrape, String> {
        let reply = self.admin().try_send("GET", "/metrics", None)?;
        match reply.status {
            200 => Ok(crate::prometheus::Scrape::parse(&reply.text())),
            status => Err(format!("GET /metrics: {status} {}", reply.text())),
        }
    }

    /// The sum of every sample of a metric in `GET /metrics` (`None` if absent or unreachable).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let reply = self.admin().try_send("GET", "/metrics", None).ok()?;
        if reply.status != 200 {
            return None;
        }
        let text = reply.text();
        let samples: Vec<f64> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let metric = series.split('{').next()?;
                (metric == name).then(|| value.parse().ok()).flatten()
            })
            .collect();
        (!samples.is_empty()).then(|| samples.iter().sum())
    }
}

/// Writes the ADS bootstrap of an Envoy that only knows the control plane at `xds`, presenting
/// `xds_token` (if any) on its ADS stream, and starts that Envoy (waiting for its listener).
pub fn spawn_ads_envoy(dir: &Path, node_id: &str, xds: &str, xds_token: Option<&str>) -> Envoy {
    let path = write_ads_bootstrap(dir, node_id, xds, xds_token);
    Envoy::start(&path, dir)
}

/// [`start_ads_envoy`] with `levels`.
fn start_ads_envoy_with_log_levels(
    dir: &Path,
    node_id: &str,
    xds: &str,
    xds_token: Option<&str>,
    master_key: &str,
    levels: LogLevels,
) -> Envoy {
    let path = write_ads_bootstrap(dir, node_id, xds, xds_token);
    let mut envoy = Envoy::start_with_log_levels(&path, dir, levels);
    envoy.wait_for_filter(master_key);
    envoy
}

/// [`spawn_ads_envoy`] for an Envoy the control plane is expected to refuse: waits until it is
/// ready, not for a listener.
pub fn spawn_refused_ads_envoy(
    dir: &Path,
    node_id: &str,
    xds: &str,
    xds_token: Option<&str>,
) -> Envoy {
    let path = write_ads_bootstrap(dir, node_id, xds, xds_token);
    Envoy::start_without_listener(&path, dir)
}

fn write_ads_bootstrap(dir: &Path, node_id: &str, xds: &str, xds_token: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let bootstrap = ads_bootstrap(&AdsBootstrapOptions {
        node_id: node_id.to_string(),
        cluster: ENVOY_CLUSTER.to_string(),
        xds: xds.to_string(),
        admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        xds_token: xds_token.map(str::to_string),
    });
    let path = dir.join("envoy.json");
    let text = serde_json::to_vec_pretty(&bootstrap).unwrap_or_default();
    // Mode 0600: the bootstrap holds the xDS token.
    write_atomically(&path, &text)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// The ADS bootstrap of an Envoy that knows several control-plane replicas, `xds` in order of
/// preference: each gets its own priority, and a TCP health check every 500 ms marks a replica
/// that stopped listening unhealthy at the first failure, so the ADS stream (re)connects to the
/// first healthy one.
fn failover_ads_bootstrap(node_id: &str, xds: &[String], xds_token: Option<&str>) -> Value {
    assert!(
        !xds.is_empty(),
        "a failover bootstrap needs a control plane"
    );
    let mut bootstrap = ads_bootstrap(&AdsBootstrapOptions {
        node_id: node_id.to_string(),
        cluster: ENVOY_CLUSTER.to_string(),
        xds: xds[0].clone(),
        admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        xds_token: xds_token.map(str::to_string),
    });
    let endpoints: Vec<Value> = xds
        .iter()
        .enumerate()
        .map(|(priority, address)| {
            let (host, port) = address
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .unwrap_or_else(|| panic!("`{address}` is not host:port"));
            json!({
                "priority": priority,
                "lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": host, "port_value": port}},
                }}],
            })
        })
        .collect();
    let clusters = bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .expect("the ADS bootstrap has static clusters");
    let xds_cluster = clusters
        .iter_mut()
        .find(|c| c["name"] == miroir_envoy::XDS_CLUSTER)
        .expect("the ADS bootstrap has the xDS cluster");
    xds_cluster["load_assignment"]["endpoints"] = json!(endpoints);
    xds_cluster["health_checks"] = json!([{
        "timeout": "0.4s",
        "interval": "0.5s",
        "no_traffic_interval": "0.5s",
        "unhealthy_threshold": 1,
        "healthy_threshold": 1,
        "tcp_health_check": {},
    }]);
    bootstrap
}

/// [`spawn_ads_envoy`], then waits until its filter answers `GET /health` (the listener and the
/// filter configuration came over ADS).
pub fn start_ads_envoy(
    dir: &Path,
    node_id: &str,
    xds: &str,
    xds_token: Option<&str>,
    master_key: &str,
) -> Envoy {
    start_ads_envoy_with_log_levels(dir, node_id, xds, xds_token, master_key, LogLevels::Test)
}

/// Everything one control-plane test started. Dropping it (also on panic) SIGKILLs every
/// process. Each test needs its own name: it names the log directory.
#[derive(Debug)]
pub struct Fleet {
    // Drop order: Envoys, control planes, Redis, nodes.
    envoys: Vec<Envoy>,
    control_planes: Vec<ControlPlane>,
    redis: Option<Redis>,
    nodes: Vec<Node>,
    kind: NodeKind,
    master_key: String,
    admin_key: String,
    filter_token: String,
    xds_token: String,
    dir: PathBuf,
    _name: NameGuard,
}

impl Fleet {
    pub fn start(name: &str, spec: Spec, options: FleetOptions) -> Fleet {
        let guard = NameGuard::claim(name);
        // Find every binary before starting anything.
        paths::envoy_bin();
        paths::control_plane_bin();
        let wasm = paths::filter_wasm();
        let kind = NodeKind::from_env();
        assert!(
            options.control_planes >= 1
                && (options.control_planes == 1 || options.store == StoreKind::Redis),
            "Fleet::start({name}): {} control planes on {:?}: several replicas need Redis",
            options.control_planes,
            options.store
        );

        let dir = paths::fresh_test_dir(name);
        let master_key = options
            .master_key
            .clone()
            .unwrap_or_else(|| master_key(name));
        let admin_key = options
            .admin_key
            .clone()
            .unwrap_or_else(|| format!("{master_key}-admin"));
        // Unrelated to the master key: the filter holds the token, and must not hold anything
        // the master key could be read from.
        let filter_token = crate::cluster::master_key(&format!("{name}-filter"));
        let xds_token = options
            .xds_token
            .clone()
            .unwrap_or_else(|| crate::cluster::master_key(&format!("{name}-xds")));
        let nodes = launch_nodes(&spec.nodes, &kind, &dir, &master_key);
        let redis = (options.store == StoreKind::Redis).then(|| Redis::start(&dir.join("redis")));
        let topology_nodes: Vec<Value> = nodes
            .iter()
            .map(|n| json!({"id": n.id, "address": n.address(), "group": n.group}))
            .collect();
        let mut base = json!({
            "adminKey": admin_key,
            "filterToken": filter_token,
            // The control plane's own; the filter gets a key the control plane makes with it.
            "masterKey": master_key,
            "xdsToken": xds_token,
            "topology": {
                "epoch": 1,
                "shards": spec.shards,
                "replicationFactor": spec.replication_factor,
                "nodes": topology_nodes,
            },
            "envoyListen": options.envoy_listen.to_string(),
            "wasm": wasm,
            "health": {
                "intervalMs": options.health.interval_ms,
                "timeoutMs": options.health.timeout_ms,
                "unhealthyThreshold": options.health.unhealthy_threshold,
                "healthyThreshold": options.health.healthy_threshold,
            },
            "jobs": {
                "copyConcurrency": options.copy_concurrency,
                "copyDocumentsPerSecond": options.copy_documents_per_second,
            },
            "antiEntropy": {"intervalMs": options.anti_entropy_interval_ms},
            "nodeTimeoutMs": options.node_timeout_ms,
            "controlPlaneTimeoutMs": options.control_plane_timeout_ms,
            "rolloutAckTimeoutMs": 30_000,
            "taskPollIntervalMs": options.task_poll_interval_ms,
            "leaderTtlMs": options.leader_ttl_ms,
        });
        if let Some(min) = options.min_copies {
            base["topology"]["minCopies"] = json!(min);
        }
        if let Some(endpoint) = &options.otlp_endpoint {
            base["otlpEndpoint"] = json!(endpoint);
        }
        let control_planes: Vec<ControlPlane> = (0..options.control_planes)
            .map(|i| {
                let cp_dir = dir.join(format!("control-plane-{i}"));
                let mut config = base.clone();
                config["store"] = json!(match &redis {
                    Some(redis) => redis.url(),
                    None => format!("embedded:{}", cp_dir.join("store").display()),
                });
                ControlPlane::start(&format!("cp{i}"), &cp_dir, config)
            })
            .collect();
        let xds = control_planes[0].xds_address();
        let envoys: Vec<Envoy> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..options.envoys)
                .map(|i| {
                    let envoy_dir = dir.join(format!("envoy-{i}"));
                    let (xds, token, key) = (&xds, &xds_token, &master_key);
                    let levels = options.envoy_log_levels;
                    scope.spawn(move || {
                        start_ads_envoy_with_log_levels(
                            &envoy_dir,
                            &format!("envoy-{i}"),
                            xds,
                            Some(token),
                            key,
                            levels,
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let fleet = Fleet {
            envoys,
            control_planes,
            redis,
            nodes,
            kind,
            master_key,
            admin_key,
            filter_token,
            xds_token,
            dir,
            _name: guard,
        };
        fleet.wait_envoys_at_epoch(1);
        fleet
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn master_key(&self) -> &str {
        &self.master_key
    }

    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    pub fn filter_token(&self) -> &str {
        &self.filter_token
    }

    /// What every Envoy presents on its ADS stream (`authorization: Bearer <token>`).
    pub fn xds_token(&self) -> &str {
        &self.xds_token
    }

    pub fn redis_url(&self) -> Option<String> {
        self.redis.as_ref().map(Redis::url)
    }

    pub fn envoy_count(&self) -> usize {
        self.envoys.len()
    }

    pub fn envoy(&self, i: usize) -> &Envoy {
        &self.envoys[i]
    }

    /// SIGKILLs Envoy `i` (a crash: the requests it was serving end unanswered).
    pub fn kill_envoy(&mut self, i: usize) {
        self.envoys[i].process().kill();
    }

    /// `node.id` of Envoy `i`, as `/_miroir/fleet` names it.
    pub fn envoy_id(&self, i: usize) -> String {
        assert!(i < self.envoys.len(), "no Envoy {i}");
        format!("envoy-{i}")
    }

    pub fn envoy_url(&self, i: usize) -> String {
        self.envoys[i].url().to_string()
    }

    /// A client of Envoy `i` with the master key.
    pub fn client(&self, i: usize) -> Client {
        Client::new(&self.envoy_url(i), Some(&self.master_key))
    }

    /// A counter or gauge of Envoy `i`'s admin `/stats` (0 when absent).
    pub fn envoy_stat(&self, i: usize, name: &str) -> u64 {
        self.envoys[i]
            .stats()
            .ok()
            .and_then(|s| s.into_iter().find(|(n, _)| n == name))
            .and_then(|(_, v)| v.as_u64())
            .unwrap_or(0)
    }

    /// The sum of the samples of `name` with these labels in Envoy `i`'s `/stats/prometheus`
    /// (0 when absent).
    pub fn envoy_metric(&self, i: usize, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.envoys[i]
            .prometheus()
            .map(|s| s.sum(name, labels))
            .unwrap_or(0.0)
    }

    pub fn control_plane(&self, i: usize) -> &ControlPlane {
        &self.control_planes[i]
    }

    pub fn control_plane_mut(&mut self, i: usize) -> &mut ControlPlane {
        &mut self.control_planes[i]
    }

    pub fn control_plane_count(&self) -> usize {
        self.control_planes.len()
    }

    /// The admin client of control plane 0.
    pub fn admin(&self) -> Client {
        self.control_planes[0].admin()
    }

    pub fn node_ids(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.id.clone()).collect()
    }

    fn node_mut(&mut self, id: &str) -> &mut Node {
        let ids = self.node_ids();
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node `{id}`; nodes: {ids:?}"))
    }

    pub fn node_address(&self, id: &str) -> String {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(Node::address)
            .unwrap_or_else(|| panic!("no node `{id}`; nodes: {:?}", self.node_ids()))
    }

    /// A client of node `id` with the master key.
    pub fn node_client(&self, id: &str) -> Client {
        Client::new(
            &format!("http://{}", self.node_address(id)),
            Some(&self.master_key),
        )
    }

    /// Starts one more node, not in the topology yet (register it with `POST /_miroir/nodes`).
    pub fn launch_node(&mut self, id: &str, group: &str) -> String {
        let node = Node::launch(
            id,
            group,
            &self.kind,
            self.dir.join("nodes").join(id),
            &self.master_key,
        );
        let address = node.address();
        self.nodes.push(node);
        address
    }

    /// SIGKILLs node `id` (a crash).
    pub fn kill_node(&mut self, id: &str) {
        self.node_mut(id).kill();
    }

    /// SIGSTOPs node `id`: it hangs rather than dies ([`Node::pause`]).
    pub fn pause_node(&mut self, id: &str) {
        self.node_mut(id).pause();
    }

    /// SIGCONTs node `id` after [`Fleet::pause_node`].
    pub fn resume_node(&mut self, id: &str) {
        self.node_mut(id).resume();
    }

    /// Starts node `id` again after [`Fleet::kill_node`]: same port, same database; waits until
    /// it is available (a no-op while it runs).
    pub fn restart_node(&mut self, id: &str) {
        self.node_mut(id).start();
    }

    /// Saves the database of node `id`, which must be stopped ([`Node::save_database`]).
    pub fn save_node_database(&mut self, id: &str, name: &str) {
        self.node_mut(id).save_database(name);
    }

    /// Restores the database of node `id` saved as `name`; the node must be stopped.
    pub fn restore_node_database(&mut self, id: &str, name: &str) {
        self.node_mut(id).restore_database(name);
    }

    /// Index of the first control plane the harness did not kill (a stand-in for "the one a
    /// client reaches" once a replica is gone).
    pub fn first_started_control_plane(&self) -> usize {
        self.control_planes
            .iter()
            .position(ControlPlane::is_started)
            .unwrap_or_else(|| panic!("every control plane of {} is down", self.dir.display()))
    }

    /// Starts one more Envoy whose bootstrap knows the control planes `order` (indexes, in order
    /// of preference; see [`failover_ads_bootstrap`]): it connects to the first that listens and
    /// moves to the next when that one dies. Waits for its filter; returns its index.
    pub fn start_failover_envoy(&mut self, order: &[usize]) -> usize {
        let i = self.envoys.len();
        let dir = self.dir.join(format!("envoy-{i}"));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let xds: Vec<String> = order
            .iter()
            .map(|cp| self.control_planes[*cp].xds_address())
            .collect();
        let bootstrap = failover_ads_bootstrap(&format!("envoy-{i}"), &xds, Some(&self.xds_token));
        let path = dir.join("envoy.json");
        let text = serde_json::to_vec_pretty(&bootstrap).unwrap_or_default();
        write_atomically(&path, &text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        let mut envoy = Envoy::start_with_log_levels(&path, &dir, LogLevels::Test);
        envoy.wait_for_filter(&self.master_key);
        self.envoys.push(envoy);
        i
    }

    /// Waits until every Envoy's filter serves `epoch` (`x-miroir-topology-epoch` on `/health`).
    pub fn wait_envoys_at_epoch(&self, epoch: u64) {
        for (i, envoy) in self.envoys.iter().enumerate() {
            let client = Client::new(envoy.url(), Some(&self.master_key));
            let want = epoch.to_string();
            poll(
                &format!("Envoy {i} to serve topology epoch {epoch}"),
                DEFAULT_TIMEOUT,
                &self.log_hint(),
                || {
                    let reply = client.try_send("GET", "/health", None)?;
                    match reply.header("x-miroir-topology-epoch") {
                        Some(e) if reply.status == 200 && e == want => Ok(()),
                        other => Err(format!("{} with epoch {other:?}", reply.status)),
                    }
                },
            );
        }
    }

    /// Waits until control plane `cp`'s `/_miroir/fleet` shows every Envoy acknowledging
    /// `epoch`; returns that fleet view.
    pub fn wait_fleet_acked(&self, cp: usize, epoch: u64) -> Value {
        let ids: Vec<String> = (0..self.envoys.len()).map(|i| self.envoy_id(i)).collect();
        poll(
            &format!("every Envoy to acknowledge epoch {epoch} on control plane {cp}"),
            DEFAULT_TIMEOUT,
            &self.log_hint(),
            || {
                let reply =
                    self.control_planes[cp]
                        .admin()
                        .try_send("GET", "/_miroir/fleet", None)?;
                let view = reply.try_json().unwrap_or(Value::Null);
                let acked = |id: &str| {
                    view["fleet"]["envoys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|e| e["nodeId"] == id && e["epoch"] == epoch)
                };
                if reply.status == 200 && ids.iter().all(|id| acked(id)) {
                    Ok(view)
                } else {
                    Err(format!("{} {}", reply.status, reply.text()))
                }
            },
        )
    }

    /// Waits until `what` holds, with the default deadline; panics naming the logs.
    pub fn eventually<T>(&self, what: &str, probe: impl FnMut() -> Result<T, String>) -> T {
        poll(what, DEFAULT_TIMEOUT, &self.log_hint(), probe)
    }

    /// Like [`Fleet::eventually`] with another deadline.
    pub fn eventually_within<T>(
        &self,
        what: &str,
        timeout: Duration,
        probe: impl FnMut() -> Result<T, String>,
    ) -> T {
        poll(what, timeout, &self.log_hint(), probe)
    }

    fn log_hint(&self) -> String {
        format!("logs in {}", self.dir.display())
    }
}
