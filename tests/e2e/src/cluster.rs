//! A Miroir cluster for one test: Meilisearch nodes, the rendered Envoy config, and Envoy.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use miroir_envoy::{filter_config, filter_config_raw, render, write_filter_config, RenderOptions};
use miroir_topology::{Node as TopologyNode, NodeState, Topology};
use serde_json::Value;

use crate::envoy::{Envoy, LogLevels};
use crate::http::Client;
use crate::node::{wait_for_tasks, Node, NodeKind};
use crate::paths;
use crate::wait::{poll, DEFAULT_TIMEOUT};

/// Prefix of the filter's ECDS stats, e.g. `<prefix>update_success`, `<prefix>update_rejected`,
/// `<prefix>version_text` (text readout: the `version_info` of the last accepted file).
pub const ECDS_STAT_PREFIX: &str = "extension_config_discovery.http_filter.miroir.";

/// The cluster's shape: `(node id, replica group)` per node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub nodes: Vec<(String, String)>,
    pub shards: u32,
    pub replication_factor: u32,
}

impl Spec {
    pub fn new(nodes: &[(&str, &str)], shards: u32, replication_factor: u32) -> Spec {
        Spec {
            nodes: nodes
                .iter()
                .map(|(id, group)| (id.to_string(), group.to_string()))
                .collect(),
            shards,
            replication_factor,
        }
    }
}

/// Knobs with defaults that suit most tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The filter's per-call deadline (`nodeTimeoutMs`).
    pub node_timeout_ms: u64,
    /// Envoy's listener; port 0 (the default) picks a free one.
    pub listen: SocketAddr,
    /// The nodes' master key; `None` makes one unique to the cluster.
    pub master_key: Option<String>,
    /// The tests' by default; `make bench` runs Envoy with [`LogLevels::Production`].
    pub envoy_log_levels: LogLevels,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            node_timeout_ms: 10_000,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            master_key: None,
            envoy_log_levels: LogLevels::Test,
        }
    }
}

/// Everything one test started. Dropping it (also on panic) SIGKILLs every process.
/// Each test needs its own name: it names the log directory.
#[derive(Debug)]
pub struct Cluster {
    // Envoy first: it goes down before the nodes it talks to.
    envoy: Option<Envoy>,
    nodes: Vec<Mutex<Node>>,
    node_urls: Vec<(String, String)>,
    topology: Mutex<Topology>,
    render_opts: Option<RenderOptions>,
    master_key: String,
    dir: PathBuf,
    _name: NameGuard,
}

impl Cluster {
    pub fn start(name: &str, spec: Spec) -> Cluster {
        Cluster::start_with(name, spec, Options::default())
    }

    pub fn start_with(name: &str, spec: Spec, options: Options) -> Cluster {
        let guard = NameGuard::claim(name);
        // Find every binary before starting anything.
        paths::envoy_bin();
        let wasm = paths::filter_wasm();
        let kind = NodeKind::from_env();

        let dir = paths::fresh_test_dir(name);
        let master_key = options
            .master_key
            .clone()
            .unwrap_or_else(|| master_key(name));
        let nodes = launch_nodes(&spec.nodes, &kind, &dir, &master_key);
        let topology = Topology {
            epoch: 1,
            shards: spec.shards,
            shard_map: Default::default(),
            replication_factor: spec.replication_factor,
            nodes: nodes
                .iter()
                .map(|n| TopologyNode {
                    id: n.id.clone(),
                    address: n.address(),
                    group: n.group.clone(),
                    state: NodeState::Active,
                })
                .collect(),
        };
        if let Err(e) = topology.validate() {
            panic!("Cluster::start({name}): invalid spec {spec:?}: {e}");
        }

        let loopback_any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let render_opts = RenderOptions {
            listen: options.listen,
            admin: loopback_any_port,
            wasm_path: wasm,
            config_dir: dir.join("envoy"),
            node_timeout_ms: options.node_timeout_ms,
            // Miroir's own lookups use the master key; clients' requests keep their own key.
            node_api_key: Some(master_key.clone()),
        };
        let bootstrap = render(&topology, &render_opts)
            .write(&render_opts.config_dir)
            .unwrap_or_else(|e| panic!("cannot write the Envoy config: {e}"));
        let mut envoy = Envoy::start_with_log_levels(&bootstrap, &dir, options.envoy_log_levels);
        envoy.wait_for_filter(&master_key);
        Cluster {
            envoy: Some(envoy),
            node_urls: nodes.iter().map(|n| (n.id.clone(), n.url())).collect(),
            nodes: nodes.into_iter().map(Mutex::new).collect(),
            topology: Mutex::new(topology),
            render_opts: Some(render_opts),
            master_key,
            dir,
            _name: guard,
        }
    }

    /// One node and no Envoy: the "one big node" reference that sharded answers are compared
    /// with. [`Cluster::url`] and [`Cluster::client`] point at the node.
    pub fn single_node(name: &str) -> Cluster {
        let guard = NameGuard::claim(name);
        let kind = NodeKind::from_env();
        let dir = paths::fresh_test_dir(name);
        let master_key = master_key(name);
        let nodes = launch_nodes(
            &[("single".to_string(), "single".to_string())],
            &kind,
            &dir,
            &master_key,
        );
        let topology = Topology {
            epoch: 1,
            shards: 1,
            shard_map: Default::default(),
            replication_factor: 1,
            nodes: nodes
                .iter()
                .map(|n| TopologyNode {
                    id: n.id.clone(),
                    address: n.address(),
                    group: n.group.clone(),
                    state: NodeState::Active,
                })
                .collect(),
        };
        Cluster {
            envoy: None,
            node_urls: nodes.iter().map(|n| (n.id.clone(), n.url())).collect(),
            nodes: nodes.into_iter().map(Mutex::new).collect(),
            topology: Mutex::new(topology),
            render_opts: None,
            master_key,
            dir,
            _name: guard,
        }
    }

    pub fn master_key(&self) -> &str {
        &self.master_key
    }

    /// The test's directory: logs, node databases, Envoy config.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn has_envoy(&self) -> bool {
        self.envoy.is_some()
    }

    fn envoy(&self) -> &Envoy {
        self.envoy.as_ref().unwrap_or_else(|| {
            panic!("this cluster has no Envoy (Cluster::single_node); use url()/client()")
        })
    }

    /// Envoy's process id (for memory measurements in `/proc/<pid>/status`).
    pub fn envoy_pid(&self) -> u32 {
        self.envoy().pid()
    }

    pub fn envoy_url(&self) -> String {
        self.envoy().url().to_string()
    }

    pub fn admin_url(&self) -> String {
        self.envoy().admin_url().to_string()
    }

    /// What Envoy logged so far.
    pub fn envoy_log(&self) -> String {
        std::fs::read_to_string(self.envoy().log_path()).unwrap_or_default()
    }

    /// Where clients go: Envoy, or the node of a single-node cluster.
    pub fn url(&self) -> String {
        match &self.envoy {
            Some(envoy) => envoy.url().to_string(),
            None => self.node_urls[0].1.clone(),
        }
    }

    /// A client of [`Cluster::url`] with the master key.
    pub fn client(&self) -> Client {
        Client::new(&self.url(), Some(&self.master_key))
    }

    pub fn node_client(&self, node_id: &str) -> Client {
        Client::new(&self.node_url(node_id), Some(&self.master_key))
    }

    pub fn node_url(&self, node_id: &str) -> String {
        self.node_urls
            .iter()
            .find(|(id, _)| id == node_id)
            .map(|(_, url)| url.clone())
            .unwrap_or_else(|| panic!("no node `{node_id}`; nodes: {:?}", self.node_ids()))
    }

    /// The process id of every running node, in [`Cluster::node_ids`] order (for CPU time in
    /// `/proc/<pid>/stat`).
    pub fn node_pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|n| lock(n).pid()).collect()
    }

    pub fn node_ids(&self) -> Vec<String> {
        self.node_urls.iter().map(|(id, _)| id.clone()).collect()
    }

    /// The topology last pushed (or started with).
    pub fn topology(&self) -> Topology {
        lock(&self.topology).clone()
    }

    fn node(&self, node_id: &str) -> MutexGuard<'_, Node> {
        let index = self
            .node_urls
            .iter()
            .position(|(id, _)| id == node_id)
            .unwrap_or_else(|| panic!("no node `{node_id}`; nodes: {:?}", self.node_ids()));
        lock(&self.nodes[index])
    }

    /// SIGKILLs a node (a crash). Its port stays reserved for [`Cluster::restart_node`].
    pub fn kill_node(&self, node_id: &str) {
        self.node(node_id).kill();
    }

    /// Starts a killed node again on the same port and database. The test node keeps its data
    /// in memory, so it comes back empty; real Meilisearch keeps it.
    pub fn restart_node(&self, node_id: &str) {
        self.node(node_id).start();
    }

    fn render_opts(&self) -> &RenderOptions {
        self.render_opts
            .as_ref()
            .unwrap_or_else(|| panic!("this cluster has no Envoy (Cluster::single_node)"))
    }

    /// Rewrites the ECDS file (atomically) with `topology`, valid or not: Envoy reloads it and
    /// the filter accepts or rejects it. Does not wait; see [`Cluster::push_topology_and_wait`].
    pub fn push_topology(&self, topology: &Topology) {
        let opts = self.render_opts();
        self.push_ecds(&filter_config(topology, opts));
        *lock(&self.topology) = topology.clone();
    }

    /// Pushes and waits until Envoy has processed the file; `Err` if it was rejected.
    pub fn push_topology_and_wait(&self, topology: &Topology) -> Result<(), String> {
        let before = self.ecds_outcomes();
        self.push_topology(topology);
        self.wait_for_ecds_outcome(before)
    }

    /// Pushes an arbitrary plugin configuration string (what the filter's `on_configure`
    /// reads), e.g. malformed JSON to check that it is rejected.
    pub fn push_raw_filter_config(&self, plugin_config_json: &str) {
        static RAW: AtomicU64 = AtomicU64::new(0);
        let version = format!("raw-{}", RAW.fetch_add(1, Ordering::Relaxed));
        let opts = self.render_opts();
        self.push_ecds(&filter_config_raw(
            &version,
            plugin_config_json,
            &opts.wasm_path,
        ));
    }

    /// Replaces the whole ECDS file (a `DiscoveryResponse`).
    pub fn push_ecds(&self, discovery_response: &Value) {
        let dir = self.render_opts().ecds_dir();
        write_filter_config(&dir, discovery_response)
            .unwrap_or_else(|e| panic!("cannot write the ECDS file in {}: {e}", dir.display()));
    }

    /// `(update_success, update_rejected + update_failure)` for the filter's ECDS resource.
    pub fn ecds_outcomes(&self) -> (u64, u64) {
        let stat = |s: &str| {
            self.envoy_stat(&format!("{ECDS_STAT_PREFIX}{s}"))
                .unwrap_or(0)
        };
        (
            stat("update_success"),
            stat("update_rejected") + stat("update_failure"),
        )
    }

    /// Waits until an ECDS update after `before` (from [`Cluster::ecds_outcomes`]) was
    /// processed. Envoy counts a success even when the new file equals the old one.
    pub fn wait_for_ecds_outcome(&self, before: (u64, u64)) -> Result<(), String> {
        poll(
            "Envoy to process the new ECDS file",
            DEFAULT_TIMEOUT,
            &self.log_hint(),
            || {
                let now = self.ecds_outcomes();
                if now.1 > before.1 {
                    Ok(Err(format!(
                        "the filter config was rejected (see `Unable to create Wasm plugin` in {})",
                        self.envoy().log_path().display()
                    )))
                } else if now.0 > before.0 {
                    Ok(Ok(()))
                } else {
                    Err(format!("success/rejected still {now:?}"))
                }
            },
        )
    }

    /// A counter or gauge from the admin `/stats`.
    pub fn envoy_stat(&self, name: &str) -> Option<u64> {
        self.stat_value(name)?.as_u64()
    }

    /// A text readout, e.g. `<ECDS_STAT_PREFIX>version_text`.
    pub fn envoy_stat_text(&self, name: &str) -> Option<String> {
        match self.stat_value(name)? {
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        }
    }

    fn stat_value(&self, name: &str) -> Option<Value> {
        let stats = self.envoy().stats().ok()?;
        stats.into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Waits until the stat exists and satisfies `predicate`; returns its value.
    pub fn wait_for_stat(
        &self,
        name: &str,
        predicate: impl Fn(u64) -> bool,
        timeout: Duration,
    ) -> u64 {
        poll(
            &format!("Envoy stat {name} to match"),
            timeout,
            &self.log_hint(),
            || match self.envoy_stat(name) {
                Some(v) if predicate(v) => Ok(v),
                other => Err(format!("{name} = {other:?}")),
            },
        )
    }

    /// Waits until no node has an enqueued or processing task.
    pub fn wait_all_nodes_idle(&self) {
        for (_, url) in &self.node_urls {
            wait_for_tasks(url, &self.master_key);
        }
    }

    fn log_hint(&self) -> String {
        format!("logs in {}", self.dir.display())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock left nothing half-updated worth refusing.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Nodes start in parallel: real Meilisearch takes a while to open its database.
pub(crate) fn launch_nodes(
    specs: &[(String, String)],
    kind: &NodeKind,
    dir: &Path,
    master_key: &str,
) -> Vec<Node> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .iter()
            .map(|(id, group)| {
                let node_dir = dir.join("nodes").join(id);
                scope.spawn(move || Node::launch(id, group, kind, node_dir, master_key))
            })
            .collect();
        // A panicking launch re-panics here; the nodes that did start are dropped (killed).
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Unique per cluster and ≥ 16 bytes, as Meilisearch requires outside development.
pub(crate) fn master_key(name: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(name.as_bytes());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("miroir-e2e-{:016x}", hasher.finish())
}

/// Two live clusters with one name would wipe and share one directory.
#[derive(Debug)]
pub(crate) struct NameGuard(String);

fn names() -> MutexGuard<'static, HashSet<String>> {
    static NAMES: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    lock(NAMES.get_or_init(Default::default))
}

impl NameGuard {
    pub(crate) fn claim(name: &str) -> NameGuard {
        assert!(
            names().insert(name.to_string()),
            "a cluster named `{name}` is already running: each test needs its own name"
        );
        NameGuard(name.to_string())
    }
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        names().remove(&self.0);
    }
}
