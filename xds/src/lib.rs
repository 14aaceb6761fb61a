//! Miroir's xDS server: pushes the topology to a fleet of Envoys over ADS (state of the world).
//!
//! - [`resources`] turns a `PluginConfig` plus [`ResourceOptions`] into Envoy resources: a cluster
//!   per node, the control plane's cluster, the listener, and the filter's ECDS config.
//! - [`cache`] holds them as snapshots with per-type versions computed from the model
//!   ([`version`]).
//! - [`connection`] is one Envoy's ADS stream as a state machine without I/O; [`server`] drives it.
//! - [`rollout`] orders a change as clusters old ∪ new → filter config → pruning, each step gated
//!   on every connected Envoy's ACK.

pub mod cache;
pub mod connection;
pub mod fleet;
mod options;
mod report;
pub mod resources;
pub mod rollout;
pub mod server;
mod shared;
pub mod version;
mod xds;

pub use fleet::{EnvoyView, Fleet, FleetView, NackView, TypeView};
pub use options::{HealthCheckOptions, ResourceOptions, WasmSource};
pub use report::{RolloutError, RolloutReport, RolloutStatus, RolloutStep};
pub use server::AdsService;
pub use xds::Xds;

pub const CLUSTER_TYPE_URL: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const LISTENER_TYPE_URL: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// ECDS resources are `TypedExtensionConfig`s.
pub const ECDS_TYPE_URL: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
/// What the ECDS resource wraps (the HCM's `config_discovery.type_urls`).
pub const WASM_FILTER_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// Name of the HTTP filter, of its ECDS resource, of its wasm root context and VM; name of the
/// listener (and of its route configuration): the model's, shared with the static renderer.
pub use miroir_envoy::model::{FILTER_NAME, LISTENER_NAME};
