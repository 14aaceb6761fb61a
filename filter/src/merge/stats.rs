//! Index statistics of a sharded index. Inside one replica group every document is stored on
//! exactly RF nodes (its owners), so a group's node statistics summed and divided by RF count
//! each document once. Stale copies left by an unfinished migration would be counted too.

use miroir_topology::{reserved, Topology};
use serde_json::{json, Map, Value};

/// Combines the nodes' answers (`GET /indexes/{uid}/stats`, or `GET /stats` when `whole`),
/// which give sizes in bytes; `human` writes them as Meilisearch's `sizeFormat=human` does.
pub fn combine(
    topology: &Topology,
    whole: bool,
    human: bool,
    bodies: Vec<(String, Value)>,
) -> Value {
    let mut combined = combine_raw(topology, whole, bodies);
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

/// The replica group statistics are counted over: the first (by name) whose every node
/// answered, so one node down in another group changes nothing.
pub fn counted_group(topology: &Topology, answered: &[&str]) -> Option<String> {
    topology
        .group_names()
        .into_iter()
        .find(|g| {
            topology
                .nodes
                .iter()
                .filter(|n| n.group == *g)
                .all(|n| answered.contains(&n.id.as_str()))
        })
        .map(str::to_string)
}

fn combine_raw(topology: &Topology, whole: bool, bodies: Vec<(String, Value)>) -> Value {
    let answered: Vec<&str> = bodies.iter().map(|(n, _)| n.as_str()).collect();
    let group = counted_group(topology, &answered)
        .or_else(|| topology.group_names().first().map(|g| g.to_string()))
        .unwrap_or_default();
    let rf = u64::from(topology.replication_of(&group).max(1));
    let in_group = |node: &str| topology.node(node).is_some_and(|n| n.group == group);
    if !whole {
        let stats: Vec<&Value> = bodies
            .iter()
            .filter(|(n, _)| in_group(n))
            .map(|(_, b)| b)
            .collect();
        let indexing = bodies
            .iter()
            .any(|(_, b)| b["isIndexing"].as_bool() == Some(true));
        return index_stats(&stats, rf, indexing);
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
        let per_node = |node_filter: &dyn Fn(&str) -> bool| -> Vec<&Value> {
            bodies
                .iter()
                .filter(|(n, _)| node_filter(n))
                .filter_map(|(_, b)| b.get("indexes").and_then(|i| i.get(&uid)))
                .collect()
        };
        let indexing = per_node(&|_| true)
            .iter()
            .any(|s| s["isIndexing"].as_bool() == Some(true));
        indexes.insert(uid.clone(), index_stats(&per_node(&in_group), rf, indexing));
    }
    // Database sizes are physical: every copy takes room.
    json!({
        "databaseSize": sum("databaseSize"),
        "usedDatabaseSize": sum("usedDatabaseSize"),
        "lastUpdate": last_update,
        "indexes": indexes,
    })
}

fn index_stats(stats: &[&Value], rf: u64, indexing: bool) -> Value {
    // `rf` is at least 1: the division never falls back.
    let per_copy = |total: u64| total.checked_div(rf).unwrap_or(total);
    let sum = |field: &str| {
        per_copy(
            stats
                .iter()
                .filter_map(|s| s[field].as_u64())
                .fold(0, u64::saturating_add),
        )
    };
    let documents = sum("numberOfDocuments");
    let raw = sum("rawDocumentDbSize");
    let mut fields: Map<String, Value> = Map::new();
    for s in stats {
        if let Some(Value::Object(distribution)) = s.get("fieldDistribution") {
            for (field, count) in distribution {
                let previous = fields.get(field).and_then(Value::as_u64).unwrap_or(0);
                fields.insert(
                    field.clone(),
                    json!(previous.saturating_add(count.as_u64().unwrap_or(0))),
                );
            }
        }
    }
    reserved::strip(&mut fields);
    for count in fields.values_mut() {
        *count = json!(per_copy(count.as_u64().unwrap_or(0)));
    }
    fields.sort_keys();
    let mut merged = stats
        .first()
        .and_then(|s| s.as_object().cloned())
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
        for s in stats {
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

    fn node_stats(docs: u64, indexing: bool) -> Value {
        json!({"numberOfDocuments": docs, "rawDocumentDbSize": docs * 100, "avgDocumentSize": 100, "isIndexing": indexing,
               "numberOfEmbeddings": 0, "numberOfEmbeddedDocuments": 0,
               "fieldDistribution": {"title": docs, "id": docs, "_miroir_shard": docs}})
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
        let merged = combine(&topology(2), false, false, bodies);
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
        let merged = combine(&topology(1), true, false, bodies);
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
        let merged = combine(&topology(1), true, true, bodies);
        assert_eq!(merged["databaseSize"], "944 KiB");
        assert_eq!(merged["indexes"]["movies"]["rawDocumentDbSize"], "8 KiB");
        assert_eq!(merged["indexes"]["movies"]["avgDocumentSize"], "4 KiB");
        assert_eq!(
            merged["indexes"]["movies"]["internalDatabaseSizes"]["main"],
            "12 KiB"
        );
    }
}
