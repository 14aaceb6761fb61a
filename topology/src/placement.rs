//! Where documents live: a primary key hashes to one of S shards, and each shard is owned by the RF
//! nodes of highest rendezvous weight inside every replica group. Rendezvous hashing moves only the
//! shards whose owners change when a node comes or goes.

use std::collections::BTreeMap;

use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use crate::model::{Node, NodeState, Topology};

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
fn weight(shard: u32, node_id: &str) -> u64 {
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

    /// The RF owners of `shard` inside `group`, highest weight first. Equal weights (never seen in
    /// practice) go to the larger node id so the order is total.
    pub fn owners(&self, shard: u32, group: &str) -> Vec<&Node> {
        let mut members: Vec<(u64, &Node)> = self
            .nodes
            .iter()
            .filter(|n| n.group == group)
            .map(|n| (weight(shard, &n.id), n))
            .collect();
        members.sort_by(|(wa, a), (wb, b)| wb.cmp(wa).then_with(|| b.id.cmp(&a.id)));
        members
            .into_iter()
            .take(self.replication_factor as usize)
            .map(|(_, n)| n)
            .collect()
    }

    /// Every node that must store `shard`: its owners in every replica group.
    pub fn write_targets(&self, shard: u32) -> Vec<&Node> {
        self.group_names()
            .into_iter()
            .flat_map(|g| self.owners(shard, g))
            .collect()
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
