//! Document batches: validated whole, then split per node with `_miroir_shard` stamped on every
//! document. Nothing is sent unless the entire batch is valid.
//!
//! JSON and NDJSON documents are never built: a batch is the client's bytes plus where each
//! document lies in them, and each node gets copies of its documents' bytes, so a node stores
//! what one Meilisearch would store from the same request (numbers written as the client wrote
//! them), and a batch costs about its own size once more, not a tree of values per document.

use miroir_topology::{canonical_key, is_reserved};
use serde_json::Value;

use crate::error::MeiliError;

pub(crate) mod json;

pub use json::Span;

const CONTENT_TYPES: &str = "`application/json`, `application/x-ndjson`, `text/csv`";

/// How a JSON batch lays its documents out; nodes get theirs the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `application/json`: an array of objects (or one object, forwarded as an array of one).
    Array,
    /// `application/x-ndjson`: one object per line.
    Lines,
}

impl Layout {
    pub fn content_type(self) -> &'static str {
        match self {
            Layout::Array => "application/json",
            Layout::Lines => "application/x-ndjson",
        }
    }
}

/// A document batch as the client sent it. The client's body is passed along with it.
#[derive(Clone, Debug, PartialEq)]
pub enum Batch {
    Json {
        layout: Layout,
        /// Each document's place in the body, in batch order.
        documents: Vec<Span>,
    },
    /// `text/csv` rows are forwarded as CSV, so every node types the values (`name:number`, ...)
    /// exactly as one Meilisearch would.
    Csv {
        delimiter: u8,
        header: csv::StringRecord,
        rows: Vec<csv::StringRecord>,
    },
}

impl Default for Batch {
    fn default() -> Self {
        Batch::Json {
            layout: Layout::Array,
            documents: Vec::new(),
        }
    }
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
    let documents = match format {
        "json" => json::array_documents(body).map(|documents| (Layout::Array, documents)),
        "ndjson" => json::line_documents(body).map(|documents| (Layout::Lines, documents)),
        _ => return parse_csv(body, csv_delimiter, malformed),
    };
    let (layout, documents) = documents.map_err(malformed)?;
    Ok(Batch::Json { layout, documents })
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
    // Counted while parsing: past the cap nothing more is parsed.
    let mut rows = Vec::new();
    for record in reader.records() {
        if rows.len() >= miroir_topology::limits::MAX_CSV_ROWS {
            return Err(crate::request::limits::too_many_csv_rows());
        }
        rows.push(record.map_err(|e| malformed(e.to_string()))?);
    }
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

/// Meilisearch's inference: the single top-level attribute of the first document whose name ends
/// with `id` (case-insensitively).
pub fn infer_primary_key(batch: &Batch, body: &[u8]) -> Result<String, MeiliError> {
    let keys: Vec<String> = match batch {
        Batch::Json { documents, .. } => documents
            .first()
            .and_then(|first| body.get(first.start..first.end))
            .map(json::attribute_names)
            .transpose()
            .map_err(unreadable)?
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

/// A document [`parse_batch`] accepted could not be read again: the body is not the batch's.
fn unreadable(e: serde_json::Error) -> MeiliError {
    MeiliError::internal(format!("a document could not be read again: {e}"))
}

/// Checks every document; returns `key` of each one's canonical id, in batch order.
pub fn validate<T>(
    batch: &Batch,
    body: &[u8],
    primary_key: &str,
    mut key: impl FnMut(String) -> T,
) -> Result<Vec<T>, MeiliError> {
    match batch {
        Batch::Json { documents, .. } => documents
            .iter()
            .enumerate()
            .map(|(position, span)| {
                let document = body.get(span.start..span.end).unwrap_or_default();
                // Only the identifier is read whole, so only it can fail to read (`1e400`, a
                // lone surrogate): no identifier either way.
                let fields = json::fields(document, primary_key).map_err(|e| {
                    MeiliError::bad_request(
                        "invalid_document_id",
                        format!("The identifier of the document at position {position} cannot be read: {e}."),
                    )
                })?;
                if let Some(field) = fields.reserved {
                    return Err(reserved(position, field));
                }
                let Some(value) = fields.primary_key else {
                    let shown = serde_json::from_slice::<Value>(document)
                        .map(|d| d.to_string())
                        .unwrap_or_else(|_| String::from_utf8_lossy(document).into_owned());
                    return Err(missing_key(position, primary_key, &shown));
                };
                match canonical_key(&value) {
                    Some(id) if value.is_number() || valid_string_id(&id) => Ok(key(id)),
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
                            (Ok(n), _) => Ok(key(n.to_string())),
                            (_, Ok(n)) => Ok(key(n.to_string())),
                            _ => Err(invalid_id(raw)),
                        };
                    }
                    if valid_string_id(raw) {
                        Ok(key(raw.to_string()))
                    } else {
                        Err(invalid_id(&Value::String(raw.to_string()).to_string()))
                    }
                })
                .collect()
        }
    }
}

impl Batch {
    /// How many documents it holds.
    pub fn len(&self) -> usize {
        match self {
            Batch::Json { documents, .. } => documents.len(),
            Batch::Csv { rows, .. } => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A body that makes a task without documents, for a batch that routed to no node.
    pub fn empty_part(&self) -> Part {
        match self {
            Batch::Json { .. } => Part {
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
