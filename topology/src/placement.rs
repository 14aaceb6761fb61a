//! Where documents live: a primary key hashes to one of S shards, and the shard map says which
//! nodes of every replica group hold a copy of each shard (`shard_map.rs`, `allocator.rs`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use crate::allocator::balance;
use crate::model::{Node, NodeState, Topology, TopologyError};
use crate::shard_map::{CopyState, ShardCopy, ShardMap};

/// The string a primary-key value is hashed as. Meilisearch treats the integer `1` and the string
/// `"1"` as the same document, so integers hash as their decimal form. Anything else (floats,
/// objects, null…) is not a valid document id.
pub fn canonical_key(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// The shard of a document: XXH3-64 (seed 0) of its canonical key, modulo the shard count (a
/// count of 0 is taken as 1).
pub fn shard_for_key(key: &str, shards: u32) -> u32 {
    let shard = xxh3_64(key.as_bytes())
        .checked_rem(u64::from(shards))
        .unwrap_or(0);
    // The remainder is below `shards`, a u32, so the conversion never falls back.
    u32::try_from(shard).unwrap_or(0)
}

/// How far the request numbered `seq` rotates a list of `len` items: `seq` modulo `len`, 0 for an
/// empty list. The same on every target: the remainder is below `len`, so it is a `usize`.
pub fn rotation(seq: u64, len: usize) -> usize {
    seq.checked_rem(len as u64)
        .and_then(|r| usize::try_from(r).ok())
        .unwrap_or(0)
}

/// Rendezvous weight of `node_id` for `shard`: XXH3-64 of `shard ‖ 0xFF ‖ node_id ‖ 0xFF`, the
/// shard written in decimal. The 0xFF separators (a byte no UTF-8 string contains) keep
/// `("1", "2x")` and `("12", "x")` apart.
pub(crate) fn weight(shard: u32, node_id: &str) -> u64 {
    let shard = shard.to_string();
    let mut bytes = Vec::with_capacity(shard.len().saturating_add(node_id.len()).saturating_add(2));
    bytes.extend_from_slice(shard.as_bytes());
    bytes.push(0xFF);
    bytes.extend_from_slice(node_id.as_bytes());
    bytes.push(0xFF);
    xxh3_64(&bytes)
}

/// One node per shard of an index inside one replica group: the nodes a search asks, and the
/// shards each of them must restrict itself to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoveringSet {
    /// Node id → the shards it was picked for (ascending).
    pub assignments: BTreeMap<String, Vec<u32>>,
    /// Shards with no active owner in the group.
    pub unavailable: Vec<u32>,
}

impl Topology {
    pub fn shard_for_key(&self, key: &str) -> u32 {
        shard_for_key(key, self.shards)
    }

    /// A node's placement weight (1 unless the map says otherwise; 0 while it drains).
    pub fn weight_of(&self, node: &str) -> u32 {
        self.shard_map.weights.get(node).copied().unwrap_or(1)
    }

    /// Copies of every shard inside `group`.
    pub fn replication_of(&self, group: &str) -> u32 {
        self.shard_map
            .replication
            .get(group)
            .copied()
            .unwrap_or(self.replication_factor)
    }

    /// The placement the allocator wants, every copy active: balanced by weight inside every
    /// group, keeping the copies held now (those not leaving) wherever balance allows.
    pub fn balanced(&self) -> Result<ShardMap, TopologyError> {
        let mut groups = BTreeMap::new();
        for (group, members) in self.groups() {
            let nodes: Vec<(&str, u32)> = members
                .iter()
                .map(|n| (n.id.as_str(), self.weight_of(&n.id)))
                .collect();
            let current: Vec<Vec<&str>> = (0..self.shards)
                .map(|shard| {
                    self.shard_map
                        .copies(group, shard)
                        .iter()
                        .filter(|c| c.state != CopyState::Leaving)
                        .map(|c| c.node.as_str())
                        .collect()
                })
                .collect();
            let placed = balance(self.shards, self.replication_of(group), &nodes, &current)
                .map_err(|e| TopologyError(format!("group `{group}`: {e}")))?;
            let copies = placed
                .into_iter()
                .map(|nodes| nodes.into_iter().map(ShardCopy::active).collect())
                .collect();
            groups.insert(group.to_string(), copies);
        }
        Ok(ShardMap {
            groups,
            weights: self.shard_map.weights.clone(),
            replication: self.shard_map.replication.clone(),
            min_copies: self.shard_map.min_copies,
            unavailable_shards: self.shard_map.unavailable_shards,
        })
    }

    /// The map placement follows: the recorded one, or (none recorded: a configuration written
    /// by hand) the balanced placement of the node list.
    pub fn map(&self) -> Cow<'_, ShardMap> {
        if self.shard_map.groups.is_empty() {
            Cow::Owned(self.balanced().unwrap_or_default())
        } else {
            Cow::Borrowed(&self.shard_map)
        }
    }

    /// A copy of this topology with its shard map recorded, as it is when no placement can be
    /// computed (a map is then edited where one exists, and nothing changes where none does).
    pub fn explicit(&self) -> Topology {
        self.clone()
            .with_explicit_map()
            .unwrap_or_else(|_| self.clone())
    }

    /// This topology with its shard map recorded (computed when there is none).
    pub fn with_explicit_map(mut self) -> Result<Topology, TopologyError> {
        if self.shard_map.groups.is_empty() {
            self.shard_map = self.balanced()?;
        }
        Ok(self)
    }

    /// Every copy of `shard` inside `group` with its state, in map order.
    pub fn copies(&self, shard: u32, group: &str) -> Vec<(&Node, CopyState)> {
        let map = self.map();
        map.copies(group, shard)
            .iter()
            .filter_map(|c| self.node(&c.node).map(|n| (n, c.state)))
            .collect()
    }

    /// The nodes that serve reads of `shard` inside `group`: its active copies, in map order.
    pub fn owners(&self, shard: u32, group: &str) -> Vec<&Node> {
        self.copies(shard, group)
            .into_iter()
            .filter(|(_, state)| state.is_active())
            .map(|(n, _)| n)
            .collect()
    }

    /// Every node that must store `shard`: all its copies in every replica group, whatever their
    /// state (a copy being filled or being replaced must not miss a write).
    pub fn write_targets(&self, shard: u32) -> Vec<&Node> {
        let mut targets: Vec<&Node> = Vec::new();
        for group in self.group_names() {
            for (node, _) in self.copies(shard, group) {
                if !targets.iter().any(|t| t.id == node.id) {
                    targets.push(node);
                }
            }
        }
        targets
    }

    /// Whether every shard has an active copy in `group`: a group being filled serves no reads.
    pub fn is_complete(&self, group: &str) -> bool {
        let map = self.map();
        (0..self.shards).all(|shard| map.copies(group, shard).iter().any(|c| c.state.is_active()))
    }

    /// One owner of every shard inside `group`, rotating over the replicas with `seq` so that
    /// successive searches spread over them, and skipping failed owners while another can serve.
    pub fn covering_set(&self, group: &str, seq: u64) -> CoveringSet {
        let mut set = CoveringSet::default();
        for shard in 0..self.shards {
            let owners: Vec<&Node> = self
                .owners(shard, group)
                .into_iter()
                .filter(|n| n.state == NodeState::Active)
                .collect();
            if owners.is_empty() {
                set.unavailable.push(shard);
                continue;
            }
            // `seq` is a counter: past `u64::MAX` the rotation wraps, it never fails.
            let pick = rotation(seq.wrapping_add(u64::from(shard)), owners.len());
            if let Some(node) = owners.get(pick) {
                set.assignments
                    .entry(node.id.clone())
                    .or_default()
                    .push(shard);
            }
        }
        set
    }
}

#[cfg(test)]
mod tests;
