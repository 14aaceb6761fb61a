//! Miroir's Envoy HTTP filter.
//!
//! A request goes one way through the stages, each a folder:
//!
//! 1. [`config`]: the plugin configuration, compiled once per topology epoch;
//! 2. [`request`]: the client's request, its route and what is refused before any node sees it;
//! 3. [`plan`]: the calls the request makes, as values (nodes, shards, bodies);
//! 4. `ops`: small state machines that send a plan's calls and collect the replies, driven by
//!    [`exchange::Exchange`];
//! 5. [`merge`]: the replies combined into the client's answer.
//!
//! Everything the filter decides is host-agnostic and tested natively through [`host::Host`]
//! and [`host::mock::MockHost`]; `glue` (wasm32 only) moves bytes between Envoy's proxy-wasm
//! ABI and the exchange. [`tasks`] holds task uids and the root context's background work.

pub mod config;
pub mod error;
pub mod exchange;
pub mod host;
pub mod merge;
pub mod metrics;
mod ops;
pub mod plan;
pub mod request;
pub mod tasks;

#[cfg(target_arch = "wasm32")]
mod glue;
