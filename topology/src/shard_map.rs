//! The shard map: for every replica group and shard, the nodes holding a copy and what each copy
//! is for. Placement is this explicit record, kept by the control plane and pushed to every Envoy,
//! rather than a function of the node list: a topology change then moves exactly the copies the
//! allocator decided to move, in steps a job controls (see docs/operations.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a copy of a shard is for. Reads only ever see `active` copies; writes go to every copy.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum CopyState {
    /// Holds every acknowledged write of the shard: serves reads, takes writes.
    #[default]
    Active,
    /// Being filled by a job: takes writes (so no write made during the copy is missed), serves
    /// no reads until the job verified it and cut over.
    Copying,
    /// Replaced by another copy: takes writes until the fleet no longer reads it, serves no reads,
    /// then leaves the map and its documents are deleted from the node.
    Leaving,
    /// Out of the shard's in-sync set: it missed an acknowledged write (its node did not take
    /// it, and the control plane recorded that before the write was acknowledged). It still
    /// takes writes, which need not reach it, and serves no reads until the leader repaired it
    /// from an in-sync copy and put it back (see docs/architecture.md, "Replication").
    OutOfSync,
}

impl CopyState {
    pub fn is_active(&self) -> bool {
        *self == CopyState::Active
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CopyState::Active => "active",
            CopyState::Copying => "copying",
            CopyState::Leaving => "leaving",
            CopyState::OutOfSync => "outOfSync",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardCopy {
    pub node: String,
    #[serde(default, skip_serializing_if = "CopyState::is_active")]
    pub state: CopyState,
}

impl ShardCopy {
    pub fn active(node: impl Into<String>) -> Self {
        ShardCopy {
            node: node.into(),
            state: CopyState::Active,
        }
    }
}

/// An empty map means "the allocator's balanced placement of the node list" (a static
/// configuration written by hand); the control plane always records an explicit one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardMap {
    /// Group → shard → its copies, in the order the allocator placed them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<Vec<ShardCopy>>>,
    /// Node → its share of the group's copies relative to the others (absent: 1). 0 drains the
    /// node: the allocator places nothing on it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, u32>,
    /// Group → copies of every shard in it, where it differs from the topology's replication
    /// factor.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replication: BTreeMap<String, u32>,
    /// How many in-sync copies of every shard a write must reach before it is acknowledged
    /// (absent: 1). The other in-sync copies either take it too or leave the in-sync set first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_copies: Option<u32>,
    /// What a search answers when no in-sync copy of some shard answers (absent: `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_shards: Option<UnavailableShards>,
}

/// A scattered read's answer when some shard has no in-sync copy that answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UnavailableShards {
    /// 503 `miroir_shard_unavailable`: an answer is complete or is not given.
    #[default]
    Error,
    /// 200 with the shards that answered, the others named in `X-Miroir-Degraded`.
    Partial,
}

impl ShardMap {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
            && self.weights.is_empty()
            && self.replication.is_empty()
            && self.min_copies.is_none()
            && self.unavailable_shards.is_none()
    }

    /// The copies of `shard` in `group` (none for an unknown group or shard).
    pub fn copies(&self, group: &str, shard: u32) -> &[ShardCopy] {
        self.groups
            .get(group)
            .and_then(|shards| shards.get(shard as usize))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether every copy of every shard is active: no job has work in flight.
    pub fn is_settled(&self) -> bool {
        self.groups
            .values()
            .flatten()
            .flatten()
            .all(|c| c.state.is_active())
    }

    /// The in-sync copies a write of any shard must reach.
    pub fn min_copies(&self) -> u32 {
        self.min_copies.unwrap_or(1).max(1)
    }

    /// Nodes holding a copy out of the in-sync set, in any group.
    pub fn out_of_sync_nodes(&self) -> std::collections::BTreeSet<&str> {
        self.groups
            .values()
            .flatten()
            .flatten()
            .filter(|c| c.state == CopyState::OutOfSync)
            .map(|c| c.node.as_str())
            .collect()
    }

    /// Copies per node in `group` (every state), for balance reports.
    pub fn load(&self, group: &str) -> BTreeMap<&str, usize> {
        let mut load = BTreeMap::new();
        for copy in self.groups.get(group).into_iter().flatten().flatten() {
            let n: &mut usize = load.entry(copy.node.as_str()).or_default();
            *n = n.saturating_add(1);
        }
        load
    }
}
