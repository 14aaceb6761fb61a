//! The shared model of a Miroir cluster.
//!
//! One definition, used by the filter (compiled to wasm32) and by the control plane (native): the
//! JSON form of [`Topology`] is the filter's plugin configuration, and the placement functions must
//! give the same answers on every target, so they only use integer hashing (XXH3-64, seed 0).

mod allocator;
pub mod deserr;
pub mod keys;
pub mod limits;
mod model;
mod placement;
pub mod reserved;
mod shard_map;
pub mod stats_tags;
pub mod tasks;

pub use model::{
    ControlPlaneRef, IndexRef, Node, NodeState, PluginConfig, Topology, TopologyError,
    CONTROL_PLANE_CLUSTER,
};
pub use placement::{canonical_key, rotation, shard_for_key, CoveringSet};
pub use shard_map::{CopyState, ShardCopy, ShardMap, UnavailableShards};

pub use reserved::{is_reserved, SEQ_FIELD, SHARD_FIELD, VERSION_FIELD};

/// Name of the Envoy cluster that reaches a node. Clusters are named by stable node id, never by
/// address, so an address change is not a routing change.
pub fn cluster_name(node_id: &str) -> String {
    format!("miroir-node-{node_id}")
}
