use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::shard_map::ShardMap;

/// Largest shard count accepted. Shards are cheap (a filter value), but every search names the
/// shards each node serves, so the count stays far below Meilisearch's filter size limits.
pub const MAX_SHARDS: u32 = 4096;

/// The placement-relevant state of a cluster at one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Topology {
    /// Bumped by every change; echoed by the filter so a fleet's convergence is visible.
    pub epoch: u64,
    /// Number of shards S every index is striped over.
    pub shards: u32,
    /// Copies of each shard inside every replica group.
    pub replication_factor: u32,
    pub nodes: Vec<Node>,
    /// Which nodes hold which shards (empty: the allocator's placement of `nodes`).
    #[serde(default, skip_serializing_if = "ShardMap::is_empty")]
    pub shard_map: ShardMap,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// Stable identity: placement hashes it, the Envoy cluster is named after it.
    pub id: String,
    /// `host:port` of the node's Meilisearch HTTP listener.
    pub address: String,
    /// Replica group. Every group holds a full copy of every index.
    pub group: String,
    #[serde(default)]
    pub state: NodeState,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeState {
    /// Serves reads and takes writes.
    #[default]
    Active,
    /// Keeps its placement (so nothing moves) but is skipped for reads while another owner can serve.
    Failed,
}

/// The filter's plugin configuration: the topology plus the knobs of the request path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    pub topology: Topology,
    /// Deadline of every call to a node.
    #[serde(default = "default_node_timeout_ms")]
    pub node_timeout_ms: u64,
    /// Key for Miroir's own reads of index metadata (an index's primary key before routing a
    /// write, faceting settings before a merge): `indexes.get` and `settings.get` suffice.
    /// Requests made on a client's behalf always carry the client's key; without this key the
    /// lookups do too, so a client key must then also allow them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_api_key: Option<String>,
    /// Where the filter registers tasks. Without it (a static, single-Envoy setup) task uids are
    /// allocated inside the Envoy process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlaneRef>,
    /// The control plane's index registry: the primary key of every index it knows one of, so a
    /// document write routes without asking every node first. Only a hint: the filter checks
    /// it at the copies the write goes to, so a registry this Envoy has not received yet (an
    /// index deleted, re-created, swapped) costs a lookup, never a misrouted document.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub indexes: BTreeMap<String, IndexRef>,
}

/// What the filter is told of one index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexRef {
    pub primary_key: String,
}

/// How the filter reaches the control plane's HTTP API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControlPlaneRef {
    /// Envoy cluster of the control plane's HTTP listener.
    #[serde(default = "default_control_plane_cluster")]
    pub cluster: String,
    /// `:authority` of the calls.
    pub authority: String,
    /// Shared secret the filter presents (`x-miroir-token`) on the internal routes.
    pub token: String,
    /// Deadline of a registration; past it the filter falls back to its leased uids.
    #[serde(default = "default_control_plane_timeout_ms")]
    pub timeout_ms: u64,
}

/// Envoy cluster name of the control plane's HTTP API (task registry, uid leases).
pub const CONTROL_PLANE_CLUSTER: &str = "miroir-control-plane";

fn default_control_plane_cluster() -> String {
    CONTROL_PLANE_CLUSTER.to_string()
}

fn default_control_plane_timeout_ms() -> u64 {
    2_000
}

fn default_node_timeout_ms() -> u64 {
    30_000
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyError(pub String);

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TopologyError {}

fn invalid(msg: impl Into<String>) -> TopologyError {
    TopologyError(msg.into())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl PluginConfig {
    pub fn new(topology: Topology) -> Self {
        PluginConfig {
            topology,
            node_timeout_ms: default_node_timeout_ms(),
            node_api_key: None,
            control_plane: None,
            indexes: BTreeMap::new(),
        }
    }

    /// Parses and validates; the filter refuses (NACKs) anything this refuses.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TopologyError> {
        let config: PluginConfig =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
        config.topology.validate()?;
        if config.node_timeout_ms == 0 {
            return Err(invalid("nodeTimeoutMs must be positive"));
        }
        Ok(config)
    }

    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Topology {
    pub fn validate(&self) -> Result<(), TopologyError> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(invalid(format!(
                "shards must be between 1 and {MAX_SHARDS}, got {}",
                self.shards
            )));
        }
        if self.replication_factor == 0 {
            return Err(invalid("replicationFactor must be at least 1"));
        }
        if self.nodes.is_empty() {
            return Err(invalid("a topology needs at least one node"));
        }
        let mut ids = BTreeSet::new();
        for node in &self.nodes {
            if !valid_id(&node.id) {
                return Err(invalid(format!(
                    "node id `{}` must be 1 to 64 characters of [A-Za-z0-9_-]",
                    node.id
                )));
            }
            if !valid_id(&node.group) {
                return Err(invalid(format!(
                    "group `{}` of node `{}` must be 1 to 64 characters of [A-Za-z0-9_-]",
                    node.group, node.id
                )));
            }
            if !ids.insert(node.id.as_str()) {
                return Err(invalid(format!("node id `{}` appears twice", node.id)));
            }
            match node.address.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                _ => {
                    return Err(invalid(format!(
                        "address `{}` of node `{}` must be host:port",
                        node.address, node.id
                    )))
                }
            }
        }
        for (group, members) in self.groups() {
            let rf = self.replication_of(group);
            if rf == 0 {
                return Err(invalid(format!(
                    "group `{group}`: replication must be at least 1"
                )));
            }
            if (members.len() as u64) < u64::from(rf) {
                return Err(invalid(format!(
                    "group `{group}` has {} node(s), fewer than replicationFactor {rf}",
                    members.len(),
                )));
            }
        }
        self.validate_map()
    }

    /// A recorded map must place every shard of every group on nodes of that group, each node at
    /// most once per shard, with at least one copy (a shard with none would be lost).
    fn validate_map(&self) -> Result<(), TopologyError> {
        let map = &self.shard_map;
        for node in map.weights.keys() {
            if self.node(node).is_none() {
                return Err(invalid(format!(
                    "shardMap.weights names unknown node `{node}`"
                )));
            }
        }
        let groups = self.groups();
        for group in map.replication.keys() {
            if !groups.contains_key(group.as_str()) {
                return Err(invalid(format!(
                    "shardMap.replication names unknown group `{group}`"
                )));
            }
        }
        if let Some(min) = map.min_copies {
            let copies = groups
                .keys()
                .map(|g| u64::from(self.replication_of(g)))
                .fold(0u64, u64::saturating_add);
            if min == 0 || u64::from(min) > copies {
                return Err(invalid(format!(
                    "shardMap.minCopies must be between 1 and the copies of a shard ({copies}), got {min}"
                )));
            }
        }
        if map.groups.is_empty() {
            return self.balanced().map(|_| ());
        }
        for group in groups.keys() {
            if !map.groups.contains_key(*group) {
                return Err(invalid(format!(
                    "shardMap has no shards for group `{group}`"
                )));
            }
        }
        for (group, shards) in &map.groups {
            if !groups.contains_key(group.as_str()) {
                return Err(invalid(format!("shardMap names unknown group `{group}`")));
            }
            if shards.len() != self.shards as usize {
                return Err(invalid(format!(
                    "shardMap group `{group}` has {} shard(s), expected {}",
                    shards.len(),
                    self.shards
                )));
            }
            for (shard, copies) in shards.iter().enumerate() {
                if copies.is_empty() {
                    return Err(invalid(format!(
                        "shard {shard} has no copy in group `{group}`"
                    )));
                }
                let mut seen = BTreeSet::new();
                for copy in copies {
                    match self.node(&copy.node) {
                        Some(n) if n.group == *group => {}
                        _ => {
                            return Err(invalid(format!(
                            "shard {shard} of group `{group}` names `{}`, not a node of that group",
                            copy.node
                        )))
                        }
                    }
                    if !seen.insert(copy.node.as_str()) {
                        return Err(invalid(format!(
                            "shard {shard} of group `{group}` names `{}` twice",
                            copy.node
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Replica groups by name, each with its nodes sorted by id.
    pub fn groups(&self) -> BTreeMap<&str, Vec<&Node>> {
        let mut groups: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
        for node in &self.nodes {
            groups.entry(node.group.as_str()).or_default().push(node);
        }
        for members in groups.values_mut() {
            members.sort_by(|a, b| a.id.cmp(&b.id));
        }
        groups
    }

    pub fn group_names(&self) -> Vec<&str> {
        self.groups().into_keys().collect()
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

#[cfg(test)]
mod tests;
