//! Miroir's control plane: the one place a fleet of Envoys learns the topology from, and the
//! owner of cluster-wide state (topology epochs, index registry, task registry).
//! See docs/control-plane.md.

pub mod error;
pub mod store;

#[cfg(test)]
pub(crate) mod testutil;
