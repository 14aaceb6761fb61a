//! End-to-end harness: real Envoy running the Miroir filter in front of Meilisearch nodes
//! (real Meilisearch when `MEILISEARCH_BIN` is set, else `miroir-test-node`).
//!
//! Every test gets `<target>/e2e-logs/<test>/` (wiped first) holding node databases and logs,
//! the rendered Envoy config and `envoy.log`; processes bind ephemeral ports and are SIGKILLed
//! when the [`Cluster`] drops, so tests run in parallel.
//!
//! Binaries (env override → default): `ENVOY_BIN` → `<workspace>/.venv/bin/envoy`;
//! `MIROIR_FILTER_WASM` → `<target>/wasm32-wasip1/release/miroir_filter.wasm`;
//! `MIROIR_TEST_NODE_BIN` → `<target>/debug/miroir-test-node`;
//! `MIROIR_CONTROL_PLANE_BIN` → `<target>/debug/miroir-control-plane`; `REDIS_SERVER_BIN` →
//! `redis-server` on `PATH`.
//!
//! [`Fleet`] runs the same through the control plane: Envoys on the ADS bootstrap, one or more
//! `miroir-control-plane` replicas (embedded store, or a [`Redis`] the fleet starts).

mod cluster;
mod control_plane;
pub mod corpus;
mod envoy;
mod http;
mod node;
pub mod paths;
mod ports;
mod process;
pub mod prometheus;
mod redis;
pub mod wait;

pub use cluster::{Cluster, Options, Spec, ECDS_STAT_PREFIX};
pub use control_plane::{
    spawn_ads_envoy, spawn_refused_ads_envoy, start_ads_envoy, ControlPlane, Fleet, FleetOptions,
    Health, StoreKind, ENVOY_CLUSTER,
};
pub use envoy::{Envoy, LogLevels};
pub use http::{Client, Reply};
pub use node::{wait_for_tasks, wait_for_tasks_within, Node, NodeKind};
pub use ports::free_port;
pub use process::ChildProcess;
pub use redis::{redis_server_bin, Redis};
