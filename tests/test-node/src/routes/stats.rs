use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{ok, validate_index_uid};
use crate::error::Result;
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

pub async fn index_stats(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    let store = state.lock();
    let index = store.index(&uid)?;
    Ok(ok(index.stats(store.is_indexing(&uid))))
}

pub async fn global_stats(State(state): State<SharedState>) -> Response {
    let store = state.lock();
    let mut indexes = Map::new();
    let mut size = 0u64;
    for (uid, index) in &store.indexes {
        let stats = index.stats(store.is_indexing(uid));
        size += stats["rawDocumentDbSize"].as_u64().unwrap_or(0);
        indexes.insert(uid.clone(), stats);
    }
    ok(json!({
        "databaseSize": size,
        "usedDatabaseSize": size,
        "lastUpdate": store.last_update.map(rfc3339),
        "indexes": Value::Object(indexes),
    }))
}
