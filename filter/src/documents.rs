//! Document batches: parsed and validated whole, then split per node with `_miroir_shard` stamped
//! on every document. Nothing is sent unless the entire batch is valid.

use std::collections::BTreeMap;

use miroir_topology::reserved::{encode_seq, encode_shard};
use miroir_topology::{canonical_key, is_reserved, Topology, SEQ_FIELD, SHARD_FIELD};
use serde_json::{Map, Value};

use crate::error::MeiliError;

pub type Document = Map<String, Value>;

const CONTENT_TYPES: &str = "`application/json`, `application/x-ndjson`, `text/csv`";

/// A document batch as the client sent it.
#[derive(Clone, Debug, PartialEq)]
pub enum Batch {
    /// `application/json` or `application/x-ndjson`: both describe the same documents, which are
    /// forwarded as JSON.
    Json(Vec<Document>),
    /// `text/csv` rows are forwarded as CSV, so every node types the values (`name:number`, ...)
    /// exactly as one Meilisearch would.
    Csv {
        delimiter: u8,
        header: csv::StringRecord,
        rows: Vec<csv::StringRecord>,
    },
}

/// A node's share of a batch: its body and content type.
pub struct Part {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

fn mime_of(content_type: Option<&str>) -> String {
    content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Parses a payload with Meilisearch's errors. `csv_delimiter` is the `csvDelimiter` parameter.
pub fn parse_batch(
    content_type: Option<&str>,
    csv_delimiter: Option<&str>,
    body: &[u8],
) -> Result<Batch, MeiliError> {
    let mime = mime_of(content_type);
    let format = match mime.as_str() {
        "application/json" => "json",
        "application/x-ndjson" => "ndjson",
        "text/csv" => "csv",
        "" => {
            return Err(MeiliError::new(
                415,
                "missing_content_type",
                crate::error::ErrorType::InvalidRequest,
                format!("A Content-Type header is missing. Accepted values for the Content-Type header are: {CONTENT_TYPES}"),
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
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(MeiliError::bad_request(
            "missing_payload",
            format!("A {format} payload is missing."),
        ));
    }
    let malformed = |detail: String| {
        MeiliError::bad_request(
            "malformed_payload",
            format!("The `{format}` payload provided is malformed. `Couldn't serialize document value: {detail}`."),
        )
    };
    match format {
        "json" => parse_json(body, malformed),
        "ndjson" => serde_json::Deserializer::from_slice(body)
            .into_iter::<Value>()
            .map(|item| match item.map_err(|e| malformed(e.to_string()))? {
                Value::Object(doc) => Ok(doc),
                other => Err(malformed(format!(
                    "invalid type: {}, expected a map",
                    json_kind(&other)
                ))),
            })
            .collect::<Result<_, _>>()
            .map(Batch::Json),
        _ => parse_csv(body, csv_delimiter, malformed),
    }
}

fn parse_json(body: &[u8], malformed: impl Fn(String) -> MeiliError) -> Result<Batch, MeiliError> {
    match serde_json::from_slice::<Value>(body).map_err(|e| malformed(e.to_string()))? {
        Value::Object(doc) => Ok(Batch::Json(vec![doc])),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(doc) => Ok(doc),
                other => Err(malformed(format!(
                    "invalid type: {}, expected a map",
                    json_kind(&other)
                ))),
            })
            .collect::<Result<_, _>>()
            .map(Batch::Json),
        other => Err(malformed(format!(
            "invalid type: {}, expected a sequence",
            json_kind(&other)
        ))),
    }
}

fn parse_csv(
    body: &[u8],
    delimiter: Option<&str>,
    malformed: impl Fn(String) -> MeiliError,
) -> Result<Batch, MeiliError> {
    let delimiter = match delimiter {
        None => b',',
        Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes().first().copied().unwrap_or(b','),
        Some(d) => {
            return Err(MeiliError::bad_request(
                "invalid_document_csv_delimiter",
                format!("Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of {} characters: `{d}`", d.chars().count()),
            ))
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(body);
    let header = reader
        .headers()
        .map_err(|e| malformed(e.to_string()))?
        .clone();
    let rows = reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(e.to_string()))?;
    Ok(Batch::Csv {
        delimiter,
        header,
        rows,
    })
}

/// A CSV header's attribute name: `name:type` names `name` (only the last `:` counts).
fn csv_name(field: &str) -> &str {
    match field.rsplit_once(':') {
        Some((name, "string" | "number" | "boolean")) => name,
        _ => field,
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
pub fn infer_primary_key(batch: &Batch) -> Result<String, MeiliError> {
    let keys: Vec<String> = match batch {
        Batch::Json(docs) => docs
            .first()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default(),
        Batch::Csv { header, .. } => header.iter().map(|f| csv_name(f).to_string()).collect(),
    };
    let candidates: Vec<&String> = keys
        .iter()
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

fn reserved(position: usize, field: &str) -> MeiliError {
    MeiliError::bad_request(
        "miroir_reserved_field",
        format!("Document at position {position} contains the reserved attribute `{field}`, which Miroir manages."),
    )
}

fn missing_key(position: usize, primary_key: &str, document: &str) -> MeiliError {
    MeiliError::bad_request(
        "miroir_primary_key_required",
        format!("Document at position {position} doesn't have a `{primary_key}` attribute: `{document}`. No document of the batch was written."),
    )
}

fn invalid_id(shown: &str) -> MeiliError {
    MeiliError::bad_request(
        "invalid_document_id",
        format!("Document identifier `{shown}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."),
    )
}

/// Checks every document and returns each one's canonical id, in batch order.
pub fn validate(batch: &Batch, primary_key: &str) -> Result<Vec<String>, MeiliError> {
    match batch {
        Batch::Json(docs) => docs
            .iter()
            .enumerate()
            .map(|(position, doc)| {
                if let Some(field) = doc.keys().find(|k| is_reserved(k)) {
                    return Err(reserved(position, field));
                }
                let value = primary_key_value(doc, primary_key).ok_or_else(|| {
                    missing_key(
                        position,
                        primary_key,
                        &Value::Object(doc.clone()).to_string(),
                    )
                })?;
                match canonical_key(value) {
                    Some(id) if value.is_number() || valid_string_id(&id) => Ok(id),
                    _ => Err(invalid_id(&value.to_string())),
                }
            })
            .collect(),
        Batch::Csv { header, rows, .. } => {
            if let Some(field) = header.iter().map(csv_name).find(|f| is_reserved(f)) {
                return Err(reserved(0, field));
            }
            let column = header.iter().position(|f| csv_name(f) == primary_key);
            let numeric = column
                .and_then(|c| header.get(c))
                .is_some_and(|f| f.ends_with(":number"));
            rows.iter()
                .enumerate()
                .map(|(position, row)| {
                    let raw = column.and_then(|c| row.get(c)).unwrap_or("");
                    if raw.is_empty() {
                        return Err(missing_key(
                            position,
                            primary_key,
                            &row.iter().collect::<Vec<_>>().join(","),
                        ));
                    }
                    if numeric {
                        // A typed number is the same document as its decimal integer form.
                        return match (raw.parse::<u64>(), raw.parse::<i64>()) {
                            (Ok(n), _) => Ok(n.to_string()),
                            (_, Ok(n)) => Ok(n.to_string()),
                            _ => Err(invalid_id(raw)),
                        };
                    }
                    if valid_string_id(raw) {
                        Ok(raw.to_string())
                    } else {
                        Err(invalid_id(&Value::String(raw.to_string()).to_string()))
                    }
                })
                .collect()
        }
    }
}

/// Node id → its share of the batch, in batch order (so later operations on the same id still
/// win on every node, as on one Meilisearch). Each document is stamped with its shard and, when
/// `first_seq` is given, with consecutive sequence numbers from it in batch order.
pub fn partition(
    topology: &Topology,
    batch: Batch,
    ids: &[String],
    first_seq: Option<u64>,
) -> BTreeMap<String, Part> {
    let seq_of = |position: usize| first_seq.map(|s| encode_seq(s.saturating_add(position as u64)));
    let shards: Vec<u32> = ids.iter().map(|id| topology.shard_for_key(id)).collect();
    let mut targets: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for shard in &shards {
        targets.entry(*shard).or_insert_with(|| {
            topology
                .write_targets(*shard)
                .iter()
                .map(|n| n.id.clone())
                .collect()
        });
    }
    let nodes_of = |shard: &u32| targets.get(shard).cloned().unwrap_or_default();
    match batch {
        Batch::Json(docs) => {
            let mut per_node: BTreeMap<String, Vec<Document>> = BTreeMap::new();
            for (position, (mut doc, shard)) in docs.into_iter().zip(&shards).enumerate() {
                doc.insert(SHARD_FIELD.to_string(), Value::from(encode_shard(*shard)));
                if let Some(seq) = seq_of(position) {
                    doc.insert(SEQ_FIELD.to_string(), Value::from(seq));
                }
                for node in nodes_of(shard) {
                    per_node.entry(node).or_default().push(doc.clone());
                }
            }
            per_node
                .into_iter()
                .map(|(node, docs)| {
                    let body = serde_json::to_vec(&docs).unwrap_or_default();
                    (
                        node,
                        Part {
                            content_type: "application/json",
                            body,
                        },
                    )
                })
                .collect()
        }
        Batch::Csv {
            delimiter,
            mut header,
            rows,
        } => {
            header.push_field(SHARD_FIELD);
            if first_seq.is_some() {
                header.push_field(SEQ_FIELD);
            }
            let mut per_node: BTreeMap<String, csv::Writer<Vec<u8>>> = BTreeMap::new();
            for (position, (mut row, shard)) in rows.into_iter().zip(&shards).enumerate() {
                row.push_field(&encode_shard(*shard));
                if let Some(seq) = seq_of(position) {
                    row.push_field(&seq);
                }
                for node in nodes_of(shard) {
                    let writer = per_node.entry(node).or_insert_with(|| {
                        let mut w = csv::WriterBuilder::new()
                            .delimiter(delimiter)
                            .from_writer(Vec::new());
                        let _ = w.write_record(&header);
                        w
                    });
                    let _ = writer.write_record(&row);
                }
            }
            per_node
                .into_iter()
                .map(|(node, writer)| {
                    let body = writer.into_inner().unwrap_or_default();
                    (
                        node,
                        Part {
                            content_type: "text/csv",
                            body,
                        },
                    )
                })
                .collect()
        }
    }
}

impl Batch {
    /// A body that makes a task without documents, for a batch that routed to no node.
    pub fn empty_part(&self) -> Part {
        match self {
            Batch::Json(_) => Part {
                content_type: "application/json",
                body: b"[]".to_vec(),
            },
            Batch::Csv {
                header, delimiter, ..
            } => {
                let mut w = csv::WriterBuilder::new()
                    .delimiter(*delimiter)
                    .from_writer(Vec::new());
                let _ = w.write_record(header);
                Part {
                    content_type: "text/csv",
                    body: w.into_inner().unwrap_or_default(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
