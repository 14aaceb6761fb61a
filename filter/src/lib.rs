//! Miroir's Envoy HTTP filter.
//!
//! Everything the filter decides lives in host-agnostic modules tested natively through
//! [`host::Host`] and [`mock::MockHost`]; `glue` (wasm32 only) moves bytes between Envoy's
//! proxy-wasm ABI and [`exchange::Exchange`].

pub mod background;
pub mod control_plane;
mod ctx;
pub mod documents;
pub mod documents_list;
pub mod epoch;
pub mod error;
pub mod exchange;
pub mod fanout;
pub mod host;
pub mod limits;
pub mod node_error;
mod ops;
pub mod request;
pub mod reserved_refs;
pub mod route;
pub mod search;
pub mod seq;
pub mod sequence;
pub mod settings_cache;
pub mod stats;
pub mod tasks;

#[cfg(any(test, feature = "mock"))]
pub mod mock;

#[cfg(target_arch = "wasm32")]
mod glue;
