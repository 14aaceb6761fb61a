//! State shared by the ADS streams and the rollout driver: the cache, the fleet, the options.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use miroir_topology::PluginConfig;
use tokio::sync::watch;

use crate::cache::{Snapshot, SnapshotCache, TypeResources};
use crate::connection::{Event, NodeInfo};
use crate::fleet::Fleet;
use crate::resources::{self, ListenerTimeouts};
use crate::rollout::{Action, Rollout};
use crate::{
    FleetView, ResourceOptions, RolloutError, RolloutReport, RolloutStatus, RolloutStep,
    WasmSource, CLUSTER_TYPE_URL, ECDS_TYPE_URL, LISTENER_TYPE_URL,
};

struct State {
    cache: SnapshotCache,
    fleet: Fleet,
    options: ResourceOptions,
    /// The configuration whose filter config is in the cache.
    current: Option<PluginConfig>,
    status: RolloutStatus,
    next_connection: u64,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// The cache's revision: ADS streams look at the cache again when it moves.
    cache_changed: watch::Sender<u64>,
    /// The fleet's event counter: a waiting rollout step looks at the fleet again when it moves.
    fleet_changed: watch::Sender<u64>,
    /// One rollout at a time: each plans from the cache the previous one left.
    rollouts: tokio::sync::Mutex<()>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Shared {
    pub(crate) fn new(options: ResourceOptions) -> Self {
        Shared {
            state: Mutex::new(State {
                cache: SnapshotCache::new(),
                fleet: Fleet::new(),
                options,
                current: None,
                status: RolloutStatus::Idle,
                next_connection: 0,
            }),
            cache_changed: watch::Sender::new(0),
            fleet_changed: watch::Sender::new(0),
            rollouts: tokio::sync::Mutex::new(()),
        }
    }

    /// A poisoned lock only means another thread panicked mid-update of plain data; the data is
    /// still the best there is.
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn subscribe_cache(&self) -> watch::Receiver<u64> {
        self.cache_changed.subscribe()
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        let mut state = self.lock();
        state.next_connection += 1;
        state.next_connection
    }

    pub(crate) fn snapshot(&self, group: &str) -> Option<std::sync::Arc<Snapshot>> {
        self.lock().cache.snapshot(group)
    }

    pub(crate) fn record(&self, connection: u64, connected_ms: u64, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let seq = {
            let mut state = self.lock();
            let now = now_ms();
            for event in events {
                state.fleet.apply(connection, connected_ms, event, now);
            }
            state.fleet.seq()
        };
        self.fleet_changed.send_replace(seq);
    }

    pub(crate) fn disconnect(&self, connection: u64, node: Option<&NodeInfo>) {
        let seq = {
            let mut state = self.lock();
            state.fleet.disconnect(connection);
            state.fleet.seq()
        };
        if let Some(node) = node {
            tracing::info!(node = %node.id, cluster = %node.cluster, "Envoy disconnected");
        }
        self.fleet_changed.send_replace(seq);
    }

    pub(crate) fn fleet(&self) -> FleetView {
        self.lock().fleet.view()
    }

    pub(crate) fn current(&self) -> Option<PluginConfig> {
        self.lock().current.clone()
    }

    pub(crate) fn rollout_status(&self) -> RolloutStatus {
        self.lock().status.clone()
    }

    pub(crate) fn options(&self) -> ResourceOptions {
        self.lock().options.clone()
    }

    fn set_cache(&self, snapshot: Snapshot) -> u64 {
        let (seq, revision) = {
            let mut state = self.lock();
            let seq = state.fleet.seq();
            state.cache.set_default(snapshot);
            (seq, state.cache.revision())
        };
        self.cache_changed.send_replace(revision);
        seq
    }

    fn set_status(&self, status: RolloutStatus) {
        self.lock().status = status;
    }

    /// Drives a [`Rollout`] of `config` (default: the current one) with `wasm` (default: the
    /// current source).
    pub(crate) async fn rollout(
        &self,
        config: Option<PluginConfig>,
        wasm: Option<WasmSource>,
        ack_timeout: Duration,
    ) -> Result<RolloutReport, RolloutError> {
        let _one_at_a_time = self.rollouts.lock().await;
        let started = Instant::now();
        let (config, options, previous) = {
            let mut state = self.lock();
            let mut options = state.options.clone();
            if let Some(wasm) = wasm {
                options.wasm = wasm;
            }
            let Some(config) = config.or_else(|| state.current.clone()) else {
                // Nothing rolled out yet: the source waits for the first configuration.
                state.options = options;
                return Ok(RolloutReport {
                    epoch: 0,
                    ecds_version: String::new(),
                    cds_version: String::new(),
                    lds_version: String::new(),
                    acked_by: Vec::new(),
                    duration_ms: 0,
                });
            };
            let previous = (
                state.current.clone(),
                state.options.clone(),
                state.cache.default_snapshot(),
            );
            (config, options, previous)
        };
        let (previous_config, previous_options, current_snapshot) = previous;
        let epoch = config.topology.epoch;
        config
            .topology
            .validate()
            .map_err(|e| RolloutError::Invalid {
                message: e.to_string(),
            })?;
        let target = resources::build(&config, &options).map_err(|e| RolloutError::Invalid {
            message: e.to_string(),
        })?;
        let timeouts_for = |c: &PluginConfig| {
            ListenerTimeouts::for_node_timeout(options.node_timeout_ms.max(c.node_timeout_ms))
        };
        let mut transitional = timeouts_for(&config);
        if let Some(old) = &previous_config {
            transitional = transitional.union(timeouts_for(old));
        }
        let transitional = TypeResources::new([resources::listener(options.listen, transitional)]);
        let mut rollout = Rollout::plan(current_snapshot.as_deref(), &target, &transitional);
        let final_snapshot = rollout.final_snapshot().cloned().unwrap_or_default();
        tracing::info!(epoch, "rollout started");

        let mut fleet_changes = self.fleet_changed.subscribe();
        let mut deadline = tokio::time::Instant::now() + ack_timeout;
        let mut action = rollout.start();
        loop {
            action = match action {
                Action::Apply { step, snapshot } => {
                    if step == RolloutStep::Filter {
                        let mut state = self.lock();
                        state.current = Some(config.clone());
                        state.options = options.clone();
                    }
                    let seq = self.set_cache(snapshot);
                    rollout.applied(seq);
                    deadline = tokio::time::Instant::now() + ack_timeout;
                    tracing::info!(epoch, %step, "rollout step applied");
                    fleet_changes.borrow_and_update();
                    rollout.on_fleet(&self.fleet())
                }
                Action::Wait { step, waiting_for } => {
                    self.set_status(RolloutStatus::InProgress {
                        epoch,
                        step,
                        step_number: step.number(),
                        waiting_for,
                    });
                    tokio::select! {
                        changed = fleet_changes.changed() => {
                            if changed.is_err() {
                                // The sender lives in `self`: cannot happen while we run.
                                rollout.on_timeout(&self.fleet())
                            } else {
                                fleet_changes.borrow_and_update();
                                rollout.on_fleet(&self.fleet())
                            }
                        }
                        () = tokio::time::sleep_until(deadline) => rollout.on_timeout(&self.fleet()),
                    }
                }
                Action::Done { acked_by } => {
                    self.set_status(RolloutStatus::Idle);
                    tracing::info!(epoch, ?acked_by, "rollout done");
                    let version =
                        |t: &str| final_snapshot.version(t).unwrap_or_default().to_string();
                    return Ok(RolloutReport {
                        epoch,
                        ecds_version: version(ECDS_TYPE_URL),
                        cds_version: version(CLUSTER_TYPE_URL),
                        lds_version: version(LISTENER_TYPE_URL),
                        acked_by,
                        duration_ms: u64::try_from(started.elapsed().as_millis())
                            .unwrap_or(u64::MAX),
                    });
                }
                Action::Fail { restore, error } => {
                    if let Some(snapshot) = restore {
                        let restores_filter = snapshot.version(ECDS_TYPE_URL)
                            != final_snapshot.version(ECDS_TYPE_URL);
                        if restores_filter {
                            let mut state = self.lock();
                            state.current = previous_config.clone();
                            state.options = previous_options.clone();
                        }
                        self.set_cache(snapshot);
                    }
                    let status = match &error {
                        RolloutError::Nack {
                            step,
                            envoy,
                            type_url,
                            version,
                            message,
                        } => RolloutStatus::StoppedByNack {
                            epoch,
                            step: *step,
                            envoy: envoy.clone(),
                            type_url: type_url.clone(),
                            version: version.clone(),
                            message: message.clone(),
                        },
                        RolloutError::Timeout { step, waiting_for } => RolloutStatus::TimedOut {
                            epoch,
                            step: *step,
                            waiting_for: waiting_for.clone(),
                        },
                        RolloutError::Invalid { .. } => RolloutStatus::Idle,
                    };
                    self.set_status(status);
                    tracing::warn!(epoch, %error, "rollout stopped");
                    return Err(error);
                }
            };
        }
    }
}
