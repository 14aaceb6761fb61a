//! Documents: payload formats, primary-key inference, document-id rules and field access.

use serde_json::{Map, Value};

use crate::error::MeiliError;
use crate::state::{Document, Index};
use axum::http::StatusCode;

pub const ACCEPTED_TYPES: &[&str] = &["application/json", "application/x-ndjson", "text/csv"];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    }
}

fn accepted_list() -> String {
    crate::params::backticked(ACCEPTED_TYPES)
}

pub fn format_from_content_type(content_type: Option<&str>) -> Result<Format, MeiliError> {
    let Some(raw) = content_type else {
        return Err(MeiliError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "missing_content_type",
            format!(
                "A Content-Type header is missing. Accepted values for the Content-Type header are: {}",
                accepted_list()
            ),
        ));
    };
    let mime = raw
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(Format::Json),
        "application/x-ndjson" => Ok(Format::Ndjson),
        "text/csv" => Ok(Format::Csv),
        _ => Err(MeiliError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_content_type",
            format!(
                "The Content-Type `{raw}` is invalid. Accepted values for the Content-Type header are: {}",
                accepted_list()
            ),
        )),
    }
}

fn malformed(format: Format, detail: impl std::fmt::Display) -> MeiliError {
    MeiliError::invalid(
        "malformed_payload",
        format!("The `{}` payload provided is malformed. `Couldn't serialize document value: {detail}`.", format.name()),
    )
}

/// Parses a document payload at request time, as Meilisearch does before enqueuing.
pub fn parse_payload(
    content_type: Option<&str>,
    csv_delimiter: u8,
    body: &[u8],
) -> Result<Vec<Document>, MeiliError> {
    let format = format_from_content_type(content_type)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(MeiliError::invalid(
            "missing_payload",
            format!("A {} payload is missing.", format.name()),
        ));
    }
    match format {
        Format::Json => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
            // Meilisearch skims the payload before deserializing documents, so syntax errors
            // read like serde_json's value-skipping ("EOF while parsing an object").
            let skim = if first == Some(b'[') {
                serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(body).map(drop)
            } else {
                serde_json::from_slice::<serde::de::IgnoredAny>(body).map(drop)
            };
            skim.map_err(|e| malformed(format, e))?;
            if first == Some(b'[') {
                serde_json::from_slice::<Vec<Document>>(body).map_err(|e| malformed(format, e))
            } else {
                serde_json::from_slice::<Document>(body)
                    .map(|d| vec![d])
                    .map_err(|e| malformed(format, e))
            }
        }
        Format::Ndjson => {
            let mut docs = Vec::new();
            for doc in serde_json::Deserializer::from_slice(body).into_iter::<Document>() {
                docs.push(doc.map_err(|e| malformed(format, e))?);
            }
            Ok(docs)
        }
        Format::Csv => parse_csv(body, csv_delimiter).map_err(|e| malformed(format, e)),
    }
}

/// CSV with Meilisearch's typed headers (`name:number`, `name:boolean`, default string).
fn parse_csv(body: &[u8], delimiter: u8) -> Result<Vec<Document>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(body);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.map(|rec| rec.iter().map(str::to_string).collect()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let rows = rows.into_iter();
    let columns: Vec<(String, &str)> = header
        .iter()
        .map(|h| match h.rsplit_once(':') {
            Some((name, ty @ ("string" | "number" | "boolean"))) => (name.to_string(), ty),
            _ => (h.clone(), "string"),
        })
        .collect();
    let mut docs = Vec::new();
    for (line, row) in rows.enumerate() {
        if row.len() != columns.len() {
            return Err(format!(
                "CSV error: record {} has {} fields, but the header has {}",
                line + 1,
                row.len(),
                columns.len()
            ));
        }
        let mut doc = Map::new();
        for ((name, ty), cell) in columns.iter().zip(row) {
            let value = match *ty {
                _ if cell.is_empty() && *ty != "string" => Value::Null,
                "number" => {
                    if let Ok(i) = cell.trim().parse::<i64>() {
                        Value::from(i)
                    } else {
                        let f: f64 = cell
                            .trim()
                            .parse()
                            .map_err(|_| format!("invalid number `{cell}` in column `{name}`"))?;
                        Value::from(f)
                    }
                }
                "boolean" => Value::Bool(
                    cell.trim()
                        .parse()
                        .map_err(|_| format!("invalid boolean `{cell}` in column `{name}`"))?,
                ),
                _ => Value::String(cell),
            };
            doc.insert(name.clone(), value);
        }
        docs.push(doc);
    }
    Ok(docs)
}

/// A field by dotted path: an exact top-level key first, then nested objects.
pub fn lookup<'a>(doc: &'a Document, path: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match doc.get(head)? {
        Value::Object(inner) => lookup(inner, rest),
        _ => None,
    }
}

/// Every leaf value reachable at `path`, looking through arrays (for filters and facets).
pub fn values_at<'a>(doc: &'a Document, path: &str, out: &mut Vec<&'a Value>) {
    fn flatten<'a>(v: &'a Value, rest: Option<&str>, out: &mut Vec<&'a Value>) {
        match (v, rest) {
            (Value::Array(items), _) => items.iter().for_each(|i| flatten(i, rest, out)),
            (Value::Object(obj), Some(rest)) => values_at(obj, rest, out),
            (_, None) => out.push(v),
            _ => {}
        }
    }
    if let Some(v) = doc.get(path) {
        flatten(v, None, out);
    }
    let mut split = path.match_indices('.');
    for (i, _) in split.by_ref() {
        let (head, rest) = (&path[..i], &path[i + 1..]);
        if let Some(v) = doc.get(head) {
            flatten(v, Some(rest), out);
        }
    }
}

/// Meilisearch's document-id rules: integers are written in decimal (so `1` and `"1"` are one
/// document); strings must be non-empty `[A-Za-z0-9_-]` under 512 bytes.
pub fn normalize_id(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Value::String(s)
            if !s.is_empty()
                && s.len() < 512
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Some(s.clone())
        }
        _ => None,
    }
}

pub fn invalid_document_id(value: &Value) -> MeiliError {
    MeiliError::invalid(
        "invalid_document_id",
        format!(
            "Document identifier `{value}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."
        ),
    )
}

/// The single top-level field of the first document whose name ends with `id`.
pub fn infer_primary_key(first: &Document) -> Result<String, MeiliError> {
    let candidates: Vec<&String> = first
        .keys()
        .filter(|k| k.to_lowercase().ends_with("id"))
        .collect();
    match candidates.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(MeiliError::invalid(
            "index_primary_key_no_candidate_found",
            "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.",
        )),
        [a, b, ..] => Err(MeiliError::invalid(
            "index_primary_key_multiple_candidates_found",
            format!(
                "The primary key inference failed as the engine found {} fields ending with `id` in their names: '{a}' and '{b}'. Please specify the primary key manually using the `primaryKey` query parameter.",
                candidates.len()
            ),
        )),
    }
}

pub fn primary_key_already_exists(pk: &str) -> MeiliError {
    MeiliError::invalid(
        "index_primary_key_already_exists",
        format!("Index already has a primary key: `{pk}`."),
    )
}

/// Resolves the primary key for a write: the index's, else the one given, else inferred.
pub fn resolve_primary_key(
    index_pk: Option<&str>,
    given: Option<&str>,
    docs: &[Document],
) -> Result<Option<String>, MeiliError> {
    match (index_pk, given) {
        (Some(pk), Some(g)) if pk != g => Err(primary_key_already_exists(pk)),
        (Some(pk), _) => Ok(Some(pk.to_string())),
        (None, Some(g)) => Ok(Some(g.to_string())),
        (None, None) => match docs.first() {
            Some(first) => infer_primary_key(first).map(Some),
            None => Ok(None),
        },
    }
}

/// Validates every id first so a failing payload changes nothing, then applies the payload in
/// order (later operations on the same id win). Returns the number of documents indexed.
pub fn apply_additions(
    index: &mut Index,
    pk: &str,
    docs: Vec<Document>,
    merge: bool,
) -> Result<usize, MeiliError> {
    let mut keyed = Vec::with_capacity(docs.len());
    for doc in docs {
        let id = match lookup(&doc, pk) {
            None => {
                return Err(MeiliError::invalid(
                    "missing_document_id",
                    format!(
                        "Document doesn't have a `{pk}` attribute: `{}`.",
                        serde_json::to_string(&doc).unwrap_or_default()
                    ),
                ))
            }
            Some(v) => normalize_id(v).ok_or_else(|| invalid_document_id(v))?,
        };
        keyed.push((id, doc));
    }
    let n = keyed.len();
    // Later operations on an id see the earlier ones of the same payload.
    let mut latest: std::collections::HashMap<String, Document> = Default::default();
    let mut merged: Vec<(String, Document)> = Vec::with_capacity(n);
    for (id, doc) in keyed {
        let doc = match (merge, latest.get(&id).or_else(|| index.get(&id))) {
            (true, Some(existing)) => {
                let mut merged = existing.clone();
                for (k, v) in doc {
                    merged.insert(k, v);
                }
                merged
            }
            _ => doc,
        };
        latest.insert(id.clone(), doc.clone());
        merged.push((id, doc));
    }
    crate::vectors::check_documents(&index.uid, &index.settings, &merged)?;
    for (id, doc) in merged {
        index.put(id, doc);
    }
    Ok(n)
}

/// Keeps only the requested top-level fields (`*` = all), in document order. `_vectors` is never
/// part of it: see [`crate::vectors::attach`].
pub fn project(
    doc: &Document,
    fields: Option<&[String]>,
    displayed: Option<&[String]>,
) -> Document {
    doc.iter()
        .filter(|(k, _)| k.as_str() != crate::vectors::VECTORS_FIELD)
        .filter(|(k, _)| {
            let wanted = |list: &[String]| {
                list.iter()
                    .any(|f| f == "*" || f == *k || f.starts_with(&format!("{k}.")))
            };
            fields.is_none_or(wanted) && displayed.is_none_or(wanted)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids() {
        assert_eq!(normalize_id(&json!(1)), Some("1".into()));
        assert_eq!(normalize_id(&json!("1")), Some("1".into()));
        assert!(normalize_id(&json!("a b")).is_none());
        assert!(normalize_id(&json!(1.5)).is_none());
        assert!(normalize_id(&json!("x".repeat(512))).is_none());
        assert!(normalize_id(&json!("x".repeat(511))).is_some());
    }

    #[test]
    fn payloads() {
        let e = parse_payload(Some("application/json"), b',', b"[{\"id\": 1,").unwrap_err();
        assert_eq!(
            e.message,
            "The `json` payload provided is malformed. `Couldn't serialize document value: EOF while parsing an object at line 1 column 10`."
        );
        assert_eq!(
            parse_payload(Some("application/json"), b',', b"")
                .unwrap_err()
                .code,
            "missing_payload"
        );
        assert_eq!(
            parse_payload(None, b',', b"[]").unwrap_err().code,
            "missing_content_type"
        );
        assert_eq!(
            parse_payload(Some("text/plain"), b',', b"x")
                .unwrap_err()
                .status,
            415
        );
        assert_eq!(
            parse_payload(Some("application/json"), b',', b"[]")
                .unwrap()
                .len(),
            0
        );
        let docs = parse_payload(
            Some("application/x-ndjson"),
            b',',
            b"{\"id\":1}\n{\"id\":2}\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let docs = parse_payload(
            Some("text/csv"),
            b',',
            b"id:number,title,year:number,rating:number\n10,\"Amelie, la\",2001,8.3\n",
        )
        .unwrap();
        assert_eq!(
            Value::Object(docs[0].clone()),
            json!({"id": 10, "title": "Amelie, la", "year": 2001, "rating": 8.3})
        );
    }

    #[test]
    fn primary_key_inference() {
        let doc = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            infer_primary_key(&doc(json!({"title": "x", "movie_id": 1}))).unwrap(),
            "movie_id"
        );
        assert_eq!(
            infer_primary_key(&doc(json!({"title": "x"})))
                .unwrap_err()
                .code,
            "index_primary_key_no_candidate_found"
        );
        assert_eq!(
            infer_primary_key(&doc(json!({"id": 1, "uid": 2})))
                .unwrap_err()
                .code,
            "index_primary_key_multiple_candidates_found"
        );
    }

    #[test]
    fn nested_values() {
        let doc = json!({"a": {"b": [1, 2]}, "c": [{"d": "x"}, {"d": "y"}]})
            .as_object()
            .unwrap()
            .clone();
        let mut out = Vec::new();
        values_at(&doc, "a.b", &mut out);
        assert_eq!(out, vec![&json!(1), &json!(2)]);
        out.clear();
        values_at(&doc, "c.d", &mut out);
        assert_eq!(out, vec![&json!("x"), &json!("y")]);
    }
}
