use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{ok, reject_unknown_params, validate_index_uid};
use crate::error::{MeiliError, Result};
use crate::state::SharedState;
use crate::time::rfc3339;

pub async fn health() -> Response {
    ok(json!({"status": "available"}))
}

pub async fn version() -> Response {
    ok(
        json!({"commitSha": "unknown", "commitDate": "unknown", "pkgVersion": "1.50.0-miroir-test-node"}),
    )
}

/// `sizeFormat=raw|human` (default raw), the stats routes' only parameter.
fn human_sizes(pairs: &[(String, String)]) -> Result<bool> {
    reject_unknown_params(pairs, &["sizeFormat"])?;
    match pairs.iter().rev().find(|(k, _)| k == "sizeFormat") {
        None => Ok(false),
        Some((_, v)) if v == "raw" => Ok(false),
        Some((_, v)) if v == "human" => Ok(true),
        Some((_, v)) => Err(MeiliError::invalid(
            "invalid_stats_size_format",
            format!(
                "Unknown value `{v}` for parameter `sizeFormat`: expected one of `human`, `raw`"
            ),
        )),
    }
}

/// Meilisearch's `sizeFormat=human`: binary units, at most two decimals, trailing zeros dropped
/// (`447 B`, `4 KiB`, `3.42 KiB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = 0;
    let mut scale = 1u64;
    while unit + 1 < UNITS.len() && bytes / scale >= 1024 {
        scale = scale.saturating_mul(1024);
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    let value = format!("{:.2}", bytes as f64 / scale as f64);
    let value = value.trim_end_matches('0').trim_end_matches('.');
    format!("{value} {}", UNITS[unit])
}

fn humanize(stats: &mut Value, fields: &[&str]) {
    for field in fields {
        if let Some(v) = stats.get_mut(*field) {
            if let Some(bytes) = v.as_u64() {
                *v = json!(human_size(bytes));
            }
        }
    }
}

const INDEX_SIZES: &[&str] = &["rawDocumentDbSize", "avgDocumentSize"];

pub async fn index_stats(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let human = human_sizes(&pairs)?;
    validate_index_uid(&uid)?;
    let store = state.lock();
    let index = store.index(&uid)?;
    let mut stats = index.stats(store.is_indexing(&uid));
    if human {
        humanize(&mut stats, INDEX_SIZES);
    }
    Ok(ok(stats))
}

pub async fn global_stats(
    State(state): State<SharedState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let human = human_sizes(&pairs)?;
    let store = state.lock();
    let mut indexes = Map::new();
    let mut size = 0u64;
    for (uid, index) in &store.indexes {
        let mut stats = index.stats(store.is_indexing(uid));
        size += stats["rawDocumentDbSize"].as_u64().unwrap_or(0);
        if human {
            humanize(&mut stats, INDEX_SIZES);
        }
        indexes.insert(uid.clone(), stats);
    }
    let mut out = json!({
        "databaseSize": size,
        "usedDatabaseSize": size,
        "lastUpdate": store.last_update.map(rfc3339),
        "indexes": Value::Object(indexes),
    });
    if human {
        humanize(&mut out, &["databaseSize", "usedDatabaseSize"]);
    }
    Ok(ok(out))
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_as_meilisearch_writes_them() {
        // Recorded from Meilisearch 1.50: 4096 → "4 KiB", 447 → "447 B", 569344 → "556 KiB".
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(447), "447 B");
        assert_eq!(human_size(569_344), "556 KiB");
        assert_eq!(human_size(3502), "3.42 KiB");
        assert_eq!(human_size(1024 * 1024 * 3 / 2), "1.5 MiB");
    }
}
