use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

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
            if (members.len() as u64) < u64::from(self.replication_factor) {
                return Err(invalid(format!(
                    "group `{group}` has {} node(s), fewer than replicationFactor {}",
                    members.len(),
                    self.replication_factor
                )));
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
