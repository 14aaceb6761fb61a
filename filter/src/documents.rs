//! Document batches: parsed and validated whole, then split per node with `_miroir_shard` stamped
//! on every document. Nothing is sent unless the entire batch is valid.

use std::collections::BTreeMap;

use miroir_topology::{canonical_key, Topology, SHARD_FIELD};
use serde_json::{Map, Value};

use crate::error::MeiliError;

pub type Document = Map<String, Value>;

const CONTENT_TYPES: &str = "`application/json`, `application/x-ndjson`, `text/csv`";

/// Parses a JSON payload (an array of objects or one object), with Meilisearch's errors.
pub fn parse_batch(content_type: Option<&str>, body: &[u8]) -> Result<Vec<Document>, MeiliError> {
    let mime = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match mime.as_str() {
        "application/json" => {}
        "" => {
            return Err(MeiliError::new(
                415,
                "missing_content_type",
                crate::error::ErrorType::InvalidRequest,
                format!("A Content-Type header is missing. Accepted values for the Content-Type header are: {CONTENT_TYPES}"),
            ))
        }
        "application/x-ndjson" | "text/csv" => {
            return Err(MeiliError::new(
                415,
                "miroir_not_supported",
                crate::error::ErrorType::InvalidRequest,
                format!("Miroir does not accept `{mime}` document payloads yet; send `application/json`."),
            ))
        }
        other => {
            return Err(MeiliError::new(
                415,
                "invalid_content_type",
                crate::error::ErrorType::InvalidRequest,
                format!("The Content-Type `{other}` is invalid. Accepted values for the Content-Type header are: {CONTENT_TYPES}"),
            ))
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(MeiliError::bad_request(
            "missing_payload",
            "A json payload is missing.",
        ));
    }
    let malformed = |detail: String| {
        MeiliError::bad_request(
            "malformed_payload",
            format!("The `json` payload provided is malformed. `Couldn't serialize document value: {detail}`."),
        )
    };
    match serde_json::from_slice::<Value>(body).map_err(|e| malformed(e.to_string()))? {
        Value::Object(doc) => Ok(vec![doc]),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(doc) => Ok(doc),
                other => Err(malformed(format!(
                    "invalid type: {}, expected a map",
                    json_kind(&other)
                ))),
            })
            .collect(),
        other => Err(malformed(format!(
            "invalid type: {}, expected a sequence",
            json_kind(&other)
        ))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "sequence",
        Value::Object(_) => "map",
    }
}

/// Meilisearch's inference: the single top-level attribute of the first document whose name ends
/// with `id` (case-insensitively).
pub fn infer_primary_key(batch: &[Document]) -> Result<String, MeiliError> {
    let Some(first) = batch.first() else {
        return Err(MeiliError::bad_request(
            "index_primary_key_no_candidate_found",
            "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.",
        ));
    };
    let candidates: Vec<&String> = first
        .keys()
        .filter(|k| k.to_ascii_lowercase().ends_with("id"))
        .collect();
    match candidates.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(MeiliError::bad_request(
            "index_primary_key_no_candidate_found",
            "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.",
        )),
        many => Err(MeiliError::bad_request(
            "index_primary_key_multiple_candidates_found",
            format!(
                "The primary key inference failed as the engine found {} fields ending with `id` in their names: {}. Please specify the primary key manually using the `primaryKey` query parameter.",
                many.len(),
                many.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(" and ")
            ),
        )),
    }
}

/// The value at a (possibly dotted, `a.b`) primary key.
fn primary_key_value<'a>(doc: &'a Document, primary_key: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(primary_key) {
        return Some(v);
    }
    let mut parts = primary_key.split('.');
    let mut current = doc.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

fn valid_string_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() < 512
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks every document and returns each one's canonical id, in batch order.
pub fn validate(batch: &[Document], primary_key: &str) -> Result<Vec<String>, MeiliError> {
    batch
        .iter()
        .enumerate()
        .map(|(position, doc)| {
            if doc.contains_key(SHARD_FIELD) {
                return Err(MeiliError::bad_request(
                    "miroir_reserved_field",
                    format!("Document at position {position} contains the reserved attribute `{SHARD_FIELD}`, which Miroir manages."),
                ));
            }
            let value = primary_key_value(doc, primary_key).ok_or_else(|| {
                MeiliError::bad_request(
                    "miroir_primary_key_required",
                    format!(
                        "Document at position {position} doesn't have a `{primary_key}` attribute: `{}`. No document of the batch was written.",
                        Value::Object(doc.clone())
                    ),
                )
            })?;
            match canonical_key(value) {
                Some(id) if value.is_number() || valid_string_id(&id) => Ok(id),
                _ => Err(MeiliError::bad_request(
                    "invalid_document_id",
                    format!("Document identifier `{value}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."),
                )),
            }
        })
        .collect()
}

/// Node id → its documents, each stamped with its shard, in batch order (so later operations on
/// the same id still win on every node, as on one Meilisearch).
pub fn partition(
    topology: &Topology,
    batch: Vec<Document>,
    ids: &[String],
) -> BTreeMap<String, Vec<Document>> {
    let mut per_node: BTreeMap<String, Vec<Document>> = BTreeMap::new();
    for (mut doc, id) in batch.into_iter().zip(ids) {
        let shard = topology.shard_for_key(id);
        doc.insert(SHARD_FIELD.to_string(), Value::from(shard));
        for node in topology.write_targets(shard) {
            per_node
                .entry(node.id.clone())
                .or_default()
                .push(doc.clone());
        }
    }
    per_node
}

#[cfg(test)]
mod tests;
