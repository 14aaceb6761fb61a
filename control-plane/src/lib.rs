//! Miroir's control plane: the one place a fleet of Envoys learns the topology from, and the
//! owner of cluster-wide state (topology epochs, index registry, task registry).
//! See docs/control-plane.md; the admin API is described in docs/admin-api.openapi.yaml.

pub mod admin;
pub mod app;
pub mod config;
pub mod default_keys;
pub mod error;
pub mod filter_key;
pub mod fleet_reports;
pub mod health;
pub mod in_sync;
pub mod intents;
pub mod jobs;
pub mod leader;
pub mod metrics;
pub mod nodes;
pub mod publisher;
pub mod routes;
pub mod server;
pub mod settings_check;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod time;
pub mod webhooks;

#[cfg(test)]
pub(crate) mod testutil;
