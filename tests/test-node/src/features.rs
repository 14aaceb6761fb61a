//! `GET|PATCH /experimental-features`: Meilisearch's runtime feature flags. Only `network`
//! changes anything here: federated queries may then carry `federationOptions.queryPosition`.

use serde_json::{Map, Value};

use crate::error::MeiliError;
use crate::params::{type_error, unknown_field};

pub const FEATURES: &[&str] = &[
    "metrics",
    "logsRoute",
    "editDocumentsByFunction",
    "containsFilter",
    "network",
    "getTaskDocumentsRoute",
    "compositeEmbedders",
    "chatCompletions",
    "multimodal",
    "vectorStoreSetting",
    "dynamicSearchRules",
    "taskQueueCompactionRoute",
    "foreignKeys",
    "disableDocumentsFetchQueue",
    "legacySearch",
    "renderRoute",
];

pub fn defaults() -> Map<String, Value> {
    FEATURES
        .iter()
        .map(|f| (f.to_string(), Value::Bool(false)))
        .collect()
}

/// Applies a PATCH body: each known flag set to a boolean (or `null`, which keeps it).
pub fn patch(current: &mut Map<String, Value>, body: &Value) -> Result<(), MeiliError> {
    let Value::Object(map) = body else {
        return Err(type_error("bad_request", ".", "an object", body));
    };
    if let Some(k) = map.keys().find(|k| !FEATURES.contains(&k.as_str())) {
        return Err(unknown_field(k, FEATURES));
    }
    for (k, v) in map {
        match v {
            Value::Bool(_) => {
                current.insert(k.clone(), v.clone());
            }
            Value::Null => {}
            other => {
                return Err(type_error(
                    "bad_request",
                    &format!(".{k}"),
                    "a boolean",
                    other,
                ))
            }
        }
    }
    Ok(())
}
