//! How the control plane reaches the fleet: the xDS server behind a small trait, so the admin
//! routes, the health checker and startup are tested without Envoys.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use miroir_topology::PluginConfig;
use serde_json::{json, Value};

use crate::config::WasmSpec;
use crate::store::BoxFuture;

/// Why a rollout did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishErrorKind {
    /// An Envoy rejected the configuration; it keeps serving the previous one.
    Nack,
    /// Some Envoys did not acknowledge in time.
    Timeout,
    /// The configuration cannot be turned into Envoy resources.
    Invalid,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PublishError {
    pub kind: PublishErrorKind,
    /// Human-readable, with Envoy's own `error_detail` for a NACK.
    pub message: String,
    /// The xDS server's structured error, reported as is.
    pub detail: Value,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One connected Envoy and the topology epoch it acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvoyAck {
    pub node_id: String,
    pub epoch: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fleet {
    /// The xDS server's fleet view, reported as is.
    pub view: Value,
    pub envoys: Vec<EnvoyAck>,
}

pub trait Publisher: Send + Sync + 'static {
    /// Rolls `config` out to every connected Envoy; `Ok` carries the rollout report.
    fn rollout(
        &self,
        config: PluginConfig,
        ack_timeout: Duration,
    ) -> BoxFuture<'_, Result<Value, PublishError>>;
    /// Replaces the filter binary (and rolls the current configuration out with it).
    fn set_wasm(
        &self,
        wasm: WasmSpec,
        ack_timeout: Duration,
    ) -> BoxFuture<'_, Result<Value, PublishError>>;
    fn fleet(&self) -> Fleet;
    fn rollout_status(&self) -> Value;
    /// What new Envoys receive; `None` before the first rollout.
    fn current(&self) -> Option<PluginConfig>;
}

/// A publisher without Envoys: keeps what it was given, and refuses what it is told to refuse.
/// Used by tests (as a fake fleet) and by a control plane run without an xDS server.
#[derive(Clone, Default)]
pub struct MemoryPublisher {
    inner: Arc<Mutex<MemoryState>>,
}

#[derive(Default)]
struct MemoryState {
    current: Option<PluginConfig>,
    rollouts: Vec<PluginConfig>,
    wasm: Option<WasmSpec>,
    nack_next: Option<String>,
    /// Rollouts still to time out.
    timeouts: usize,
    envoys: Vec<EnvoyAck>,
}

impl MemoryPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> T {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The next rollout or wasm change is NACKed with this message.
    pub fn nack_next(&self, message: &str) {
        self.with(|s| s.nack_next = Some(message.to_string()));
    }

    /// The next `count` rollouts time out (an Envoy does not acknowledge).
    pub fn time_out_next(&self, count: usize) {
        self.with(|s| s.timeouts = count);
    }

    /// Pretends these Envoys are connected, having acked `epoch`.
    pub fn set_envoys(&self, envoys: Vec<EnvoyAck>) {
        self.with(|s| s.envoys = envoys);
    }

    pub fn rollouts(&self) -> Vec<PluginConfig> {
        self.with(|s| s.rollouts.clone())
    }

    pub fn wasm(&self) -> Option<WasmSpec> {
        self.with(|s| s.wasm.clone())
    }

    fn nack(s: &mut MemoryState) -> Option<PublishError> {
        s.nack_next.take().map(|message| PublishError {
            kind: PublishErrorKind::Nack,
            message: format!("step 2 (filter configuration): Envoy envoy-0 rejected: {message}"),
            detail: json!({"kind": "nack", "envoy": "envoy-0", "message": message}),
        })
    }
}

impl Publisher for MemoryPublisher {
    fn rollout(
        &self,
        config: PluginConfig,
        _ack_timeout: Duration,
    ) -> BoxFuture<'_, Result<Value, PublishError>> {
        let out = self.with(|s| {
            if let Some(e) = Self::nack(s) {
                return Err(e);
            }
            if s.timeouts > 0 {
                s.timeouts -= 1;
                s.rollouts.push(config.clone());
                return Err(PublishError {
                    kind: PublishErrorKind::Timeout,
                    message: "step 1 (clusters): not acknowledged in time by envoy-0".into(),
                    detail: json!({"kind": "timeout", "waitingFor": ["envoy-0"]}),
                });
            }
            let epoch = config.topology.epoch;
            s.rollouts.push(config.clone());
            s.current = Some(config);
            for e in &mut s.envoys {
                e.epoch = Some(epoch);
            }
            Ok(json!({"epoch": epoch, "ackedBy": s.envoys.iter().map(|e| e.node_id.clone()).collect::<Vec<_>>()}))
        });
        Box::pin(async move { out })
    }

    fn set_wasm(
        &self,
        wasm: WasmSpec,
        _ack_timeout: Duration,
    ) -> BoxFuture<'_, Result<Value, PublishError>> {
        let out = self.with(|s| {
            if let Some(e) = Self::nack(s) {
                return Err(e);
            }
            s.wasm = Some(wasm);
            Ok(json!({"epoch": s.current.as_ref().map(|c| c.topology.epoch)}))
        });
        Box::pin(async move { out })
    }

    fn fleet(&self) -> Fleet {
        self.with(|s| Fleet {
            view: json!({"envoys": s.envoys.iter().map(|e| json!({"nodeId": e.node_id, "epoch": e.epoch})).collect::<Vec<_>>()}),
            envoys: s.envoys.clone(),
        })
    }

    fn rollout_status(&self) -> Value {
        json!({"state": "idle"})
    }

    fn current(&self) -> Option<PluginConfig> {
        self.with(|s| s.current.clone())
    }
}

/// The real fleet: the xDS server (`miroir_xds::Xds`) the Envoys hold ADS streams with.
#[derive(Clone)]
pub struct XdsPublisher {
    pub xds: miroir_xds::Xds,
}

pub fn wasm_source(wasm: &WasmSpec) -> miroir_xds::WasmSource {
    match wasm {
        WasmSpec::Path(p) => miroir_xds::WasmSource::Local(p.clone()),
        WasmSpec::Remote { uri, sha256 } => miroir_xds::WasmSource::Remote {
            uri: uri.clone(),
            sha256: sha256.clone(),
        },
    }
}

fn publish_error(e: miroir_xds::RolloutError) -> PublishError {
    let kind = match &e {
        miroir_xds::RolloutError::Nack { .. } => PublishErrorKind::Nack,
        miroir_xds::RolloutError::Timeout { .. } => PublishErrorKind::Timeout,
        miroir_xds::RolloutError::Invalid { .. } => PublishErrorKind::Invalid,
    };
    PublishError {
        kind,
        message: e.to_string(),
        detail: serde_json::to_value(&e).unwrap_or(Value::Null),
    }
}

fn report(r: miroir_xds::RolloutReport) -> Value {
    serde_json::to_value(&r).unwrap_or(Value::Null)
}

impl Publisher for XdsPublisher {
    fn rollout(
        &self,
        config: PluginConfig,
        ack_timeout: Duration,
    ) -> BoxFuture<'_, Result<Value, PublishError>> {
        Box::pin(async move {
            self.xds
                .rollout(config, ack_timeout)
                .await
                .map(report)
                .map_err(publish_error)
        })
    }

    fn set_wasm(
        &self,
        wasm: WasmSpec,
        ack_timeout: Duration,
    ) -> BoxFuture<'_, Result<Value, PublishError>> {
        Box::pin(async move {
            self.xds
                .set_wasm(wasm_source(&wasm), ack_timeout)
                .await
                .map(report)
                .map_err(publish_error)
        })
    }

    fn fleet(&self) -> Fleet {
        let view = self.xds.fleet();
        Fleet {
            envoys: view
                .envoys
                .iter()
                .map(|e| EnvoyAck {
                    node_id: e.node_id.clone(),
                    epoch: e.epoch,
                })
                .collect(),
            view: serde_json::to_value(&view).unwrap_or(Value::Null),
        }
    }

    fn rollout_status(&self) -> Value {
        serde_json::to_value(self.xds.rollout_status()).unwrap_or(Value::Null)
    }

    fn current(&self) -> Option<PluginConfig> {
        self.xds.current()
    }
}
