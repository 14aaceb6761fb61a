//! Index statistics of a sharded index. Inside one replica group every document is stored on
//! exactly RF nodes (its owners), so a group's node statistics summed and divided by RF count
//! each document once. Stale copies left by an unfinished migration would be counted too. With a
//! node of every group silent, the counts are estimated from the others ([`Counting`]).

use std::collections::BTreeMap;

use miroir_topology::{reserved, Topology};
use serde_json::{json, Map, Value};

/// How one node's counts enter a sum: times `num`, divided by `den`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Share {
    num: u64,
    den: u64,
}

/// `Σ value × num / den`, divided once at the end over a common denominator (dividing each
/// term would lose up to one per node: RF 2 over three nodes' odd counts).
fn weighted_sum(values: impl Iterator<Item = (u64, Share)>) -> u64 {
    let values: Vec<(u64, Share)> = values.collect();
    let common = values
        .iter()
        .map(|(_, s)| u128::from(s.den.max(1)))
        .try_fold(1u128, |l, d| {
            let g = gcd(l, d);
            l.checked_div(g)?.checked_mul(d)
        });
    let total = match common {
        Some(common) => values
            .iter()
            .try_fold(0u128, |acc, (v, s)| {
                let scale = common.checked_div(u128::from(s.den.max(1)))?;
                let term = u128::from(*v)
                    .checked_mul(u128::from(s.num))?
                    .checked_mul(scale)?;
                acc.checked_add(term)
            })
            .and_then(|sum| sum.checked_div(common)),
        None => None,
    };
    // Past u128 (never with real counts): each term divided on its own.
    let total = total.unwrap_or_else(|| {
        values.iter().fold(0u128, |acc, (v, s)| {
            let term = u128::from(*v)
                .saturating_mul(u128::from(s.num))
                .checked_div(u128::from(s.den.max(1)))
                .unwrap_or(0);
            acc.saturating_add(term)
        })
    });
    u64::try_from(total).unwrap_or(u64::MAX)
}

fn gcd(a: u128, b: u128) -> u128 {
    match a.checked_rem(b) {
        Some(r) if b != 0 => gcd(b, r),
        _ => a,
    }
}

/// The nodes whose statistics are counted, and how.
#[derive(Debug, PartialEq, Eq)]
pub struct Counting {
    shares: BTreeMap<String, Share>,
    /// Not every node of the group answered: each answering node counts for the shards it was
    /// given in a covering of the group, as a share of those it holds (documents spread evenly
    /// over a node's shards, by the hash).
    pub estimated: bool,
}

/// How to count: over the first replica group (by name) whose every node answered, each
/// divided by the group's replication factor (exact); else over the first group whose shards
/// the answering nodes' in-sync copies cover (estimated); `None` when no group is covered.
pub fn counting(topology: &Topology, answered: &[&str]) -> Option<Counting> {
    let groups = topology.group_names();
    let complete = groups.iter().find(|g| {
        topology
            .nodes
            .iter()
            .filter(|n| n.group == **g)
            .all(|n| answered.contains(&n.id.as_str()))
    });
    if let Some(group) = complete {
        let share = Share {
            num: 1,
            den: u64::from(topology.replication_of(group).max(1)),
        };
        let shares = topology
            .nodes
            .iter()
            .filter(|n| n.group == *group)
            .map(|n| (n.id.clone(), share))
            .collect();
        return Some(Counting {
            shares,
            estimated: false,
        });
    }
    groups.iter().find_map(|group| {
        let mut held: BTreeMap<String, u64> = BTreeMap::new();
        let mut given: BTreeMap<String, u64> = BTreeMap::new();
        for shard in 0..topology.shards {
            let owners = topology.owners(shard, group);
            for owner in &owners {
                let n = held.entry(owner.id.clone()).or_default();
                *n = n.saturating_add(1);
            }
            let counted = owners.iter().find(|o| answered.contains(&o.id.as_str()))?;
            let n = given.entry(counted.id.clone()).or_default();
            *n = n.saturating_add(1);
        }
        let shares = given
            .into_iter()
            .map(|(node, num)| {
                let den = held.get(&node).copied().unwrap_or(num).max(1);
                (node, Share { num, den })
            })
            .collect();
        Some(Counting {
            shares,
            estimated: true,
        })
    })
}

/// Combines the nodes' answers (`GET /indexes/{uid}/stats`, or `GET /stats` when `whole`),
/// which give sizes in bytes; `human` writes them as Meilisearch's `sizeFormat=human` does.
pub fn combine(
    counting: &Counting,
    whole: bool,
    human: bool,
    bodies: Vec<(String, Value)>,
) -> Value {
    let mut combined = combine_raw(counting, whole, bodies);
    if human {
        humanize(&mut combined, whole);
    }
    combined
}

/// Meilisearch's `sizeFormat=human`: binary units, at most two decimals, trailing zeros dropped
/// (`307 B`, `24 KiB`, `3.42 KiB`).
pub fn human_size(bytes: u64) -> String {
    let mut unit = "B";
    let mut scale = 1u64;
    for larger in ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] {
        // `scale` is at most 1024⁵ here: never 0.
        if bytes.checked_div(scale).unwrap_or(0) < 1024 {
            break;
        }
        scale = scale.saturating_mul(1024);
        unit = larger;
    }
    if scale == 1 {
        return format!("{bytes} B");
    }
    let value = format!("{:.2}", bytes as f64 / scale as f64);
    let value = value.trim_end_matches('0').trim_end_matches('.');
    format!("{value} {unit}")
}

/// The sizes of a combined answer in `human` form.
fn humanize(stats: &mut Value, whole: bool) {
    let size = |v: &mut Value| {
        if let Some(bytes) = v.as_u64() {
            *v = json!(human_size(bytes));
        }
    };
    let index = |stats: &mut Value| {
        for field in ["rawDocumentDbSize", "avgDocumentSize"] {
            if let Some(v) = stats.get_mut(field) {
                size(v);
            }
        }
        if let Some(Value::Object(internal)) = stats.get_mut("internalDatabaseSizes") {
            internal.values_mut().for_each(size);
        }
    };
    if !whole {
        return index(stats);
    }
    for field in ["databaseSize", "usedDatabaseSize"] {
        if let Some(v) = stats.get_mut(field) {
            size(v);
        }
    }
    if let Some(Value::Object(indexes)) = stats.get_mut("indexes") {
        indexes.values_mut().for_each(index);
    }
}

fn combine_raw(counting: &Counting, whole: bool, bodies: Vec<(String, Value)>) -> Value {
    let counted = |node: &str| counting.shares.get(node).copied();
    if !whole {
        let stats: Vec<(&Value, Share)> = bodies
            .iter()
            .filter_map(|(n, b)| Some((b, counted(n)?)))
            .collect();
        let indexing = bodies
            .iter()
            .any(|(_, b)| b["isIndexing"].as_bool() == Some(true));
        return index_stats(&stats, indexing);
    }
    let sum = |field: &str| {
        bodies
            .iter()
            .filter_map(|(_, b)| b[field].as_u64())
            .fold(0, u64::saturating_add)
    };
    let last_update = bodies
        .iter()
        .filter_map(|(_, b)| b["lastUpdate"].as_str())
        .max();
    let mut uids: Vec<String> = Vec::new();
    for (_, body) in &bodies {
        if let Some(Value::Object(indexes)) = body.get("indexes") {
            for uid in indexes.keys() {
                if !uids.contains(uid) {
                    uids.push(uid.clone());
                }
            }
        }
    }
    let mut indexes = Map::new();
    for uid in uids {
        let of_index = |b: &'_ Value| b.get("indexes").and_then(|i| i.get(&uid)).cloned();
        let indexing = bodies
            .iter()
            .filter_map(|(_, b)| of_index(b))
            .any(|s| s.get("isIndexing").and_then(Value::as_bool) == Some(true));
        let counted_stats: Vec<(Value, Share)> = bodies
            .iter()
            .filter_map(|(n, b)| Some((of_index(b)?, counted(n)?)))
            .collect();
        let stats: Vec<(&Value, Share)> = counted_stats.iter().map(|(v, s)| (v, *s)).collect();
        indexes.insert(uid.clone(), index_stats(&stats, indexing));
    }
    // Database sizes are physical: every copy takes room.
    json!({
        "databaseSize": sum("databaseSize"),
        "usedDatabaseSize": sum("usedDatabaseSize"),
        "lastUpdate": last_update,
        "indexes": indexes,
    })
}

fn index_stats(stats: &[(&Value, Share)], indexing: bool) -> Value {
    let weighted = |values: &mut dyn Iterator<Item = (u64, Share)>| -> u64 { weighted_sum(values) };
    let sum = |field: &str| {
        weighted(
            &mut stats
                .iter()
                .filter_map(|(s, share)| Some((s[field].as_u64()?, *share))),
        )
    };
    let documents = sum("numberOfDocuments");
    let raw = sum("rawDocumentDbSize");
    let mut names: Vec<String> = Vec::new();
    for (s, _) in stats {
        if let Some(Value::Object(distribution)) = s.get("fieldDistribution") {
            for field in distribution.keys() {
                if !names.contains(field) {
                    names.push(field.clone());
                }
            }
        }
    }
    let mut fields: Map<String, Value> = names
        .into_iter()
        .map(|field| {
            let count = weighted(&mut stats.iter().filter_map(|(s, share)| {
                let count = s.get("fieldDistribution")?.get(field.as_str())?.as_u64()?;
                Some((count, *share))
            }));
            (field, json!(count))
        })
        .collect();
    reserved::strip(&mut fields);
    fields.sort_keys();
    let mut merged = stats
        .first()
        .and_then(|(s, _)| s.as_object().cloned())
        .unwrap_or_default();
    merged.insert("numberOfDocuments".into(), json!(documents));
    merged.insert("rawDocumentDbSize".into(), json!(raw));
    merged.insert(
        "avgDocumentSize".into(),
        json!(raw.checked_div(documents).unwrap_or(0)),
    );
    merged.insert("isIndexing".into(), json!(indexing));
    for field in ["numberOfEmbeddings", "numberOfEmbeddedDocuments"] {
        if merged.contains_key(field) {
            merged.insert(field.into(), json!(sum(field)));
        }
    }
    // Internal database sizes are physical: every copy in the group takes room.
    if merged.contains_key("internalDatabaseSizes") {
        let mut internal: Map<String, Value> = Map::new();
        for (s, _) in stats {
            if let Some(Value::Object(sizes)) = s.get("internalDatabaseSizes") {
                for (db, bytes) in sizes {
                    let previous = internal.get(db).and_then(Value::as_u64).unwrap_or(0);
                    internal.insert(
                        db.clone(),
                        json!(previous.saturating_add(bytes.as_u64().unwrap_or(0))),
                    );
                }
            }
        }
        merged.insert("internalDatabaseSizes".into(), Value::Object(internal));
    }
    merged.insert("fieldDistribution".into(), Value::Object(fields));
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

    use miroir_topology::{Node, NodeState};

    use super::*;

    fn topology(rf: u32) -> Topology {
        Topology {
            epoch: 1,
            shards: 8,
            shard_map: Default::default(),
            replication_factor: rf,
            nodes: [("a0", "a"), ("a1", "a"), ("b0", "b"), ("b1", "b")]
                .iter()
                .map(|(id, g)| Node {
                    id: id.to_string(),
                    address: "h:1".into(),
                    group: g.to_string(),
                    state: NodeState::Active,
                })
                .collect(),
        }
    }

    /// What `combine` makes of `bodies`, counted as the read that got them counts them.
    fn merge(topology: &Topology, whole: bool, human: bool, bodies: Vec<(String, Value)>) -> Value {
        let answered: Vec<&str> = bodies.iter().map(|(n, _)| n.as_str()).collect();
        let counting = counting(topology, &answered).expect("a group is covered");
        combine(&counting, whole, human, bodies)
    }

    #[test]
    fn without_a_node_counts_are_estimated_from_the_shares_of_the_others() {
        // RF 2 in one group of 3, 10 documents in every shard: a node holds 10 per shard.
        let mut t = topology(2);
        t.nodes.retain(|n| n.group == "a");
        t.nodes.push(Node {
            id: "a2".into(),
            address: "h:1".into(),
            group: "a".into(),
            state: NodeState::Active,
        });
        let t = t.with_explicit_map().unwrap();
        let held = |node: &str| {
            (0..8)
                .filter(|s| t.owners(*s, "a").iter().any(|o| o.id == node))
                .count() as u64
        };
        let bodies: Vec<(String, Value)> = ["a0", "a1"]
            .iter()
            .map(|n| (n.to_string(), node_stats(10 * held(n), false)))
            .collect();
        let answered = ["a0", "a1"];
        let counting = counting(&t, &answered).unwrap();
        assert!(counting.estimated);
        let merged = combine(&counting, false, false, bodies);
        assert_eq!(merged["numberOfDocuments"], 80, "{merged}");
        assert_eq!(merged["fieldDistribution"]["title"], 80);
        // Every node answering: exact, divided by RF.
        assert!(!super::counting(&t, &["a0", "a1", "a2"]).unwrap().estimated);
        // A shard whose every copy is silent: nothing to count from.
        assert_eq!(super::counting(&t, &["a0"]), None);
    }

    fn node_stats(docs: u64, indexing: bool) -> Value {
        json!({"numberOfDocuments": docs, "rawDocumentDbSize": docs * 100, "avgDocumentSize": 100, "isIndexing": indexing,
               "numberOfEmbeddings": 0, "numberOfEmbeddedDocuments": 0,
               "fieldDistribution": {"title": docs, "id": docs, "_miroir_shard": docs}})
    }

    #[test]
    fn a_group_of_three_with_two_copies_counts_odd_halves_exactly() {
        let half = Share { num: 1, den: 2 };
        assert_eq!(
            weighted_sum([(101, half), (99, half), (100, half)].into_iter()),
            150
        );
        let mixed = [
            (30, Share { num: 1, den: 3 }),
            (20, Share { num: 1, den: 2 }),
        ];
        assert_eq!(weighted_sum(mixed.into_iter()), 20);
    }

    #[test]
    fn counts_every_document_once() {
        // RF 2 in groups of 2: each node of a group holds every document.
        let bodies = vec![
            ("a0".to_string(), node_stats(10, false)),
            ("a1".to_string(), node_stats(10, false)),
            ("b0".to_string(), node_stats(10, true)),
            ("b1".to_string(), node_stats(10, false)),
        ];
        let merged = merge(&topology(2), false, false, bodies);
        assert_eq!(merged["numberOfDocuments"], 10);
        assert_eq!(merged["rawDocumentDbSize"], 1000);
        assert_eq!(merged["avgDocumentSize"], 100);
        assert_eq!(merged["isIndexing"], true, "any node still indexing");
        assert_eq!(merged["fieldDistribution"], json!({"id": 10, "title": 10}));
    }

    #[test]
    fn database_stats_add_up_physically() {
        let whole = |docs: u64| json!({"databaseSize": 1000, "usedDatabaseSize": 500, "lastUpdate": format!("2026-11-22T00:00:0{docs}Z"), "indexes": {"movies": node_stats(docs, false)}});
        let bodies = vec![
            ("a0".to_string(), whole(3)),
            ("a1".to_string(), whole(4)),
            ("b0".to_string(), whole(5)),
            ("b1".to_string(), whole(2)),
        ];
        let merged = merge(&topology(1), true, false, bodies);
        assert_eq!(merged["databaseSize"], 4000);
        assert_eq!(merged["lastUpdate"], "2026-11-22T00:00:05Z");
        assert_eq!(
            merged["indexes"]["movies"]["numberOfDocuments"], 7,
            "group a: 3 + 4"
        );
    }

    #[test]
    fn human_sizes_are_written_as_meilisearch_writes_them() {
        // Recorded from Meilisearch 1.50 (`sizeFormat=human` next to the raw answer).
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(307), "307 B");
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(3502), "3.42 KiB");
        assert_eq!(human_size(24576), "24 KiB");
        assert_eq!(human_size(483_328), "472 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[test]
    fn summed_sizes_are_shown_in_the_clients_format() {
        let whole = |internal: u64| {
            json!({"databaseSize": 483328, "usedDatabaseSize": 1000, "lastUpdate": null,
            "indexes": {"movies": {"numberOfDocuments": 1, "rawDocumentDbSize": 4096, "avgDocumentSize": 4096,
                "isIndexing": false, "internalDatabaseSizes": {"main": internal}, "fieldDistribution": {}}}})
        };
        let bodies = vec![
            ("a0".to_string(), whole(4096)),
            ("a1".to_string(), whole(8192)),
        ];
        let merged = merge(&topology(1), true, true, bodies);
        assert_eq!(merged["databaseSize"], "944 KiB");
        assert_eq!(merged["indexes"]["movies"]["rawDocumentDbSize"], "8 KiB");
        assert_eq!(merged["indexes"]["movies"]["avgDocumentSize"], "4 KiB");
        assert_eq!(
            merged["indexes"]["movies"]["internalDatabaseSizes"]["main"],
            "12 KiB"
        );
    }
}
