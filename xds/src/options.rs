//! What the resources are built from besides the topology: where Envoy listens, where the filter's
//! code comes from, how the control plane is reached, how nodes are health checked.

use std::net::SocketAddr;
use std::path::PathBuf;

use miroir_envoy::model;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceOptions {
    /// Envoy's client listener (the Meilisearch API).
    pub listen: SocketAddr,
    /// The filter's code.
    pub wasm: WasmSource,
    /// `host:port` of the control plane's HTTP listener, the target of the
    /// `miroir-control-plane` cluster (task registry, remote wasm code).
    pub control_plane_http: String,
    /// Active health checking of every node cluster.
    pub health: HealthCheckOptions,
    /// Floor of the deadline the HCM timeouts are sized for; the plugin configuration's own
    /// `nodeTimeoutMs` raises it.
    pub node_timeout_ms: u64,
}

/// Where Envoy loads the filter's `.wasm` from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WasmSource {
    /// A file on the Envoy's host (absolute: Envoy resolves paths against its own cwd).
    Local(PathBuf),
    /// Fetched by Envoy over HTTP through the `miroir-control-plane` cluster, checked against
    /// `sha256` (hex) before it is loaded.
    Remote { uri: String, sha256: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckOptions {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

impl HealthCheckOptions {
    /// The health check these options describe.
    pub fn model(&self) -> model::HealthCheck {
        model::HealthCheck::new(
            self.interval_ms,
            self.timeout_ms,
            self.unhealthy_threshold,
            self.healthy_threshold,
        )
    }
}

impl Default for HealthCheckOptions {
    /// The static renderer's values ([`model::HealthCheck::default`]): a restarted node is back
    /// within about a second, a dead one is out after two missed checks.
    fn default() -> Self {
        let d = model::HealthCheck::default();
        HealthCheckOptions {
            interval_ms: d.interval_ms,
            timeout_ms: d.timeout_ms,
            unhealthy_threshold: d.unhealthy_threshold,
            healthy_threshold: d.healthy_threshold,
        }
    }
}

impl WasmSource {
    /// Where the filter's code comes from, as the model says it (remote code goes through the
    /// control plane's cluster).
    pub fn model(&self) -> model::WasmCode {
        match self {
            WasmSource::Local(path) => model::WasmCode::Local(path.clone()),
            WasmSource::Remote { uri, sha256 } => model::WasmCode::remote(uri, sha256),
        }
    }
}
