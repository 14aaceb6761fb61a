//! The state every handler and background loop shares, and the one way the topology changes:
//! compare-and-set a new epoch in the store, then roll it out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use miroir_topology::{
    ControlPlaneRef, CopyState, IndexRef, NodeState, PluginConfig, Topology, CONTROL_PLANE_CLUSTER,
};
use serde_json::Value;

use crate::config::{Config, WasmSpec};
use crate::error::ApiError;
use crate::metrics::{labels, Metrics};
use crate::publisher::{PublishError, PublishErrorKind, Publisher};
use crate::store::SharedStore;

/// First delay before a timed-out rollout is handed over again; doubled up to the last.
const ROLLOUT_RETRY_FIRST: Duration = Duration::from_secs(1);
const ROLLOUT_RETRY_MAX: Duration = Duration::from_secs(60);

/// Store setting holding the filter binary set by `PUT /_miroir/filter` (JSON of [`WasmSpec`]).
pub const WASM_SETTING: &str = "wasm";

pub struct App {
    pub config: Config,
    pub store: SharedStore,
    pub publisher: Arc<dyn Publisher>,
    pub metrics: Metrics,
    pub http: reqwest::Client,
    /// Set by the leader election; background work runs only while it holds.
    pub leader: Arc<AtomicBool>,
    /// Client `Authorization` values a node accepted recently, with when.
    pub auth_cache: Mutex<HashMap<String, Instant>>,
    /// Client `Authorization` values → what the key may see of the task queue, with when it
    /// was read (`GET /keys/{key}` with the master key).
    pub scope_cache: Mutex<HashMap<String, (Instant, crate::tasks::scope::Scope)>>,
    /// The last configuration handed to the publisher (acknowledged or not), so a NACKed
    /// configuration is not retried in a loop.
    pub last_rollout: Mutex<Option<PluginConfig>>,
    /// A rollout that timed out (some Envoy did not acknowledge a step in time) is handed over
    /// again at this time, with the delay that follows if it times out again.
    pub rollout_retry: Mutex<Option<(Instant, Duration)>>,
    pub last_wasm: Mutex<Option<WasmSpec>>,
    /// Serializes this replica's own topology changes (the store's compare-and-set covers the
    /// other replicas).
    pub topology_lock: tokio::sync::Mutex<()>,
    /// Serializes this replica's applying of finished task deletions, so a deletion two reads
    /// see finish at once is applied (and counted) once.
    pub deletion_lock: tokio::sync::Mutex<()>,
    /// Indexes a settings check found differing between nodes: anti-entropy's next round
    /// ([`crate::jobs::anti_entropy`]) converges them without waiting for its next pass.
    settings_suspects: Mutex<BTreeSet<String>>,
    settings_suspected: tokio::sync::Notify,
}

/// A topology change that was stored, and how its rollout went.
pub struct Change {
    pub topology: Topology,
    pub rollout: Result<Value, PublishError>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl App {
    pub fn new(config: Config, store: SharedStore, publisher: Arc<dyn Publisher>) -> Arc<App> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.node_timeout_ms.min(5_000)))
            .build()
            .unwrap_or_default();
        Arc::new(App {
            config,
            store,
            publisher,
            metrics: Metrics::new(),
            http,
            leader: Arc::new(AtomicBool::new(false)),
            auth_cache: Mutex::new(HashMap::new()),
            scope_cache: Mutex::new(HashMap::new()),
            last_rollout: Mutex::new(None),
            rollout_retry: Mutex::new(None),
            last_wasm: Mutex::new(None),
            topology_lock: tokio::sync::Mutex::new(()),
            deletion_lock: tokio::sync::Mutex::new(()),
            settings_suspects: Mutex::new(BTreeSet::new()),
            settings_suspected: tokio::sync::Notify::new(),
        })
    }

    /// A settings check found `index` differing between nodes.
    pub fn suspect_settings(&self, index: &str) {
        lock(&self.settings_suspects).insert(index.to_string());
        self.settings_suspected.notify_one();
    }

    /// The indexes suspected since the last call.
    pub fn take_settings_suspects(&self) -> BTreeSet<String> {
        std::mem::take(&mut *lock(&self.settings_suspects))
    }

    /// Resolves once an index is suspected (at once if one was since the last wait).
    pub async fn settings_suspected(&self) {
        self.settings_suspected.notified().await
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    pub fn node_timeout(&self) -> Duration {
        Duration::from_millis(self.config.node_timeout_ms)
    }

    /// Deadline of node calls made while a client waits (synchronous task refresh, key checks):
    /// within the filter's own deadline for the control plane, so the client gets an answer
    /// (possibly from the cache) rather than the filter's timeout.
    pub fn read_timeout(&self) -> Duration {
        let budget = (self.config.control_plane_timeout_ms / 2).max(100);
        Duration::from_millis(budget.min(self.config.node_timeout_ms))
    }

    /// What Miroir's own node reads send: the master key (else `nodeApiKey`), else the client's
    /// `authorization`.
    pub fn node_authorization(&self, client: Option<&str>) -> Option<String> {
        self.config
            .node_key()
            .map(|k| format!("Bearer {k}"))
            .or_else(|| client.map(str::to_string))
    }

    fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.config.rollout_ack_timeout_ms)
    }

    /// The filter's configuration for `topology`. Deterministic: the same stored topology and
    /// config give the same PluginConfig, hence the same xDS versions after a restart.
    pub fn plugin_config(
        &self,
        topology: &Topology,
        indexes: BTreeMap<String, IndexRef>,
    ) -> PluginConfig {
        let mut config = PluginConfig::new(topology.clone());
        config.indexes = indexes;
        config.node_timeout_ms = self.config.node_timeout_ms;
        // The filter's own key, never the master key (nor the control plane's `nodeApiKey`).
        config.node_api_key = self
            .config
            .master_key
            .as_deref()
            .map(crate::filter_key::value);
        config.control_plane = Some(ControlPlaneRef {
            cluster: CONTROL_PLANE_CLUSTER.to_string(),
            authority: self.config.http_advertise(),
            token: self.config.filter_token.clone().unwrap_or_default(),
            timeout_ms: self.config.control_plane_timeout_ms,
        });
        config
    }

    pub fn observe_topology(&self, topology: &Topology) {
        self.metrics.topology_epoch.set(topology.epoch as i64);
        let active = topology
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Active)
            .count();
        let failed = topology.nodes.len() - active;
        let draining = topology
            .nodes
            .iter()
            .filter(|n| topology.weight_of(&n.id) == 0)
            .count();
        self.metrics
            .nodes
            .get_or_create(&labels(&[("state", "draining")]))
            .set(draining as i64);
        self.metrics
            .nodes
            .get_or_create(&labels(&[("state", "active")]))
            .set(active as i64);
        self.metrics
            .nodes
            .get_or_create(&labels(&[("state", "failed")]))
            .set(failed as i64);
        let mut copies: std::collections::BTreeMap<&str, i64> = [
            CopyState::Active,
            CopyState::Copying,
            CopyState::Leaving,
            CopyState::OutOfSync,
        ]
        .into_iter()
        .map(|s| (s.as_str(), 0))
        .collect();
        for copy in topology.map().groups.values().flatten().flatten() {
            *copies.entry(copy.state.as_str()).or_default() += 1;
        }
        for (state, count) in copies {
            self.metrics
                .copies
                .get_or_create(&labels(&[("state", state)]))
                .set(count);
        }
    }

    /// The index registry as the filter gets it: the primary key of every index that has one.
    /// The store unreadable, the registry last handed over (it is only a hint to the filter).
    async fn pushed_indexes(&self) -> BTreeMap<String, IndexRef> {
        match self.store.list_indexes().await {
            Ok(entries) => entries
                .into_iter()
                .filter_map(|e| {
                    Some((
                        e.uid,
                        IndexRef {
                            primary_key: e.primary_key?,
                        },
                    ))
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "index registry not read: the last one is kept");
                lock(&self.last_rollout)
                    .as_ref()
                    .map(|c| c.indexes.clone())
                    .unwrap_or_default()
            }
        }
    }

    /// Rolls `topology` out and records the outcome in the metrics.
    pub async fn rollout(&self, topology: &Topology) -> Result<Value, PublishError> {
        let indexes = self.pushed_indexes().await;
        let config = self.plugin_config(topology, indexes);
        *lock(&self.last_rollout) = Some(config.clone());
        let result = self.publisher.rollout(config, self.ack_timeout()).await;
        self.count_rollout(&result);
        {
            let mut retry = lock(&self.rollout_retry);
            *retry = match &result {
                Err(e) if e.kind == PublishErrorKind::Timeout => {
                    let delay = retry
                        .map(|(_, d)| (d * 2).min(ROLLOUT_RETRY_MAX))
                        .unwrap_or(ROLLOUT_RETRY_FIRST);
                    tracing::info!(
                        epoch = topology.epoch,
                        retry_in_ms = delay.as_millis() as u64,
                        "rollout timed out: it is retried"
                    );
                    Some((Instant::now() + delay, delay))
                }
                // Done, or NACKed (the same configuration would be NACKed again).
                _ => None,
            };
        }
        match &result {
            Ok(_) => tracing::info!(epoch = topology.epoch, "topology rolled out"),
            Err(e) => tracing::warn!(epoch = topology.epoch, error = %e, "rollout incomplete"),
        }
        result
    }

    /// The filter binary the publisher already serves (given at its creation).
    pub fn remember_wasm(&self, wasm: WasmSpec) {
        *lock(&self.last_wasm) = Some(wasm);
    }

    pub async fn set_wasm(&self, wasm: WasmSpec) -> Result<Value, PublishError> {
        *lock(&self.last_wasm) = Some(wasm.clone());
        let result = self.publisher.set_wasm(wasm, self.ack_timeout()).await;
        self.count_rollout(&result);
        result
    }

    fn count_rollout(&self, result: &Result<Value, PublishError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => match e.kind {
                PublishErrorKind::Nack => "nack",
                PublishErrorKind::Timeout => "timeout",
                PublishErrorKind::Invalid => "invalid",
            },
        };
        if outcome == "nack" {
            self.metrics.rollout_nacks.inc();
        }
        self.metrics
            .rollouts
            .get_or_create(&labels(&[("result", outcome)]))
            .inc();
    }

    /// Makes this replica's xDS server serve what the store holds: at startup (no epoch bump,
    /// the stored topology as is), and when another replica changed it. A configuration already
    /// handed over is not handed over again once acknowledged or NACKed; one that timed out is,
    /// after 1 s, then at doubling delays up to 60 s, until every Envoy acknowledges it.
    pub async fn sync_from_store(&self) -> Result<(), ApiError> {
        let _guard = self.topology_lock.lock().await;
        if let Some(stored) = self
            .store
            .get_setting(WASM_SETTING)
            .await
            .map_err(ApiError::store)?
        {
            if let Ok(wasm) = serde_json::from_str::<WasmSpec>(&stored) {
                let known = lock(&self.last_wasm).clone();
                if known.as_ref() != Some(&wasm) {
                    if let Err(e) = self.set_wasm(wasm).await {
                        tracing::warn!(error = %e, "filter binary from the store not rolled out");
                    }
                }
            }
        }
        let Some(topology) = self.store.load_topology().await.map_err(ApiError::store)? else {
            return Ok(());
        };
        self.observe_topology(&topology);
        let wanted = self.plugin_config(&topology, self.pushed_indexes().await);
        let handed = lock(&self.last_rollout).clone();
        let retry_due = lock(&self.rollout_retry).is_some_and(|(at, _)| at <= Instant::now());
        if handed.as_ref() != Some(&wanted) || retry_due {
            let _ = self.rollout(&topology).await;
        }
        Ok(())
    }

    /// Derives the next topology from the stored one with `change`, stores it as epoch + 1 if
    /// no one else changed it meanwhile, and rolls it out.
    pub async fn change_topology(
        &self,
        change: impl FnOnce(&Topology) -> Result<Topology, ApiError>,
    ) -> Result<Change, ApiError> {
        let _guard = self.topology_lock.lock().await;
        let current = self
            .store
            .load_topology()
            .await
            .map_err(ApiError::store)?
            .ok_or_else(no_topology)?;
        let mut next = change(&current)?;
        next.epoch = current.epoch + 1;
        next.validate().map_err(|e| {
            ApiError::invalid("miroir_invalid_topology", format!("Invalid topology: {e}"))
        })?;
        let stored = self
            .store
            .cas_topology(Some(current.epoch), &next)
            .await
            .map_err(ApiError::store)?;
        if !stored {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "miroir_topology_conflict",
                "invalid_request",
                format!(
                    "The topology changed since epoch {} was read (another control-plane replica). Retry the request.",
                    current.epoch
                ),
            ));
        }
        self.observe_topology(&next);
        tracing::info!(epoch = next.epoch, "topology stored");
        let rollout = self.rollout(&next).await;
        Ok(Change {
            topology: next,
            rollout,
        })
    }
}

pub fn no_topology() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "miroir_no_topology",
        "invalid_request",
        "No topology is stored yet: start the control plane with an initial `topology` in its configuration.",
    )
}

/// Answers a rollout failure: 409 when an Envoy rejected the configuration (with Envoy's
/// message), 502 when it could not be completed.
pub fn rollout_failure(e: &PublishError, what: &str) -> ApiError {
    match e.kind {
        PublishErrorKind::Nack => ApiError::new(
            StatusCode::CONFLICT,
            "miroir_rollout_rejected",
            "invalid_request",
            format!("{what} was rejected by an Envoy: {}", e.message),
        ),
        PublishErrorKind::Timeout => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "miroir_rollout_incomplete",
            "system",
            format!(
                "{what} was not acknowledged by every Envoy in time: {}",
                e.message
            ),
        ),
        PublishErrorKind::Invalid => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "miroir_rollout_invalid",
            "system",
            format!(
                "{what} could not be turned into Envoy resources: {}",
                e.message
            ),
        ),
    }
}

/// Stops the loop as soon as shutdown is signalled, else after `period`.
pub async fn pause(shutdown: &mut tokio::sync::watch::Receiver<bool>, period: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(period) => !*shutdown.borrow(),
        _ = shutdown.changed() => false,
    }
}
