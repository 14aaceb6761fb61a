use std::cmp::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{
    accepted, content_type, custom_metadata, json_body, ok, reject_unknown_params,
    validate_index_uid,
};
use crate::documents::{normalize_id, parse_payload, project, values_at};
use crate::error::{MeiliError, Result};
use crate::params::{self, comma_list, query_usize};
use crate::search::parse_filter;
use crate::state::{Document, Index, SharedState};
use crate::tasks::{enqueue, enqueue_with_details, Payload};

const WRITE_PARAMS: &[&str] = &[
    "primaryKey",
    "csvDelimiter",
    "customMetadata",
    "skipCreation",
];

async fn add(
    state: SharedState,
    uid: String,
    q: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    merge: bool,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    reject_unknown_params(&q, WRITE_PARAMS)?;
    let delimiter = csv_delimiter(&q)?;
    let docs = parse_payload(content_type(&headers).as_deref(), delimiter, &body)?;
    let primary_key = q
        .iter()
        .find(|(k, _)| k == "primaryKey")
        .map(|(_, v)| v.clone());
    let payload = Payload::DocumentAddition {
        docs,
        primary_key,
        merge,
    };
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        payload,
        custom_metadata(&q),
    )))
}

pub async fn replace(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    add(state, uid, q, headers, body, false).await
}

pub async fn update(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    add(state, uid, q, headers, body, true).await
}

/// `csvDelimiter`: one ASCII character, `,` by default.
fn csv_delimiter(q: &[(String, String)]) -> Result<u8> {
    match q.iter().find(|(k, _)| k == "csvDelimiter").map(|(_, v)| v.as_str()) {
        None => Ok(b','),
        Some(d) if d.len() == 1 && d.is_ascii() => Ok(d.as_bytes()[0]),
        Some(d) => Err(MeiliError::invalid(
            "invalid_document_csv_delimiter",
            format!(
                "Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of {} characters: `{d}`",
                d.chars().count()
            ),
        )),
    }
}

fn document_not_found(id: &str) -> MeiliError {
    MeiliError::new(
        StatusCode::NOT_FOUND,
        "document_not_found",
        format!("Document `{id}` not found."),
    )
}

fn fields_param(raw: &str) -> Option<Vec<String>> {
    let list = comma_list(raw);
    (!list.iter().any(|f| f == "*")).then_some(list)
}

pub async fn get_one(
    State(state): State<SharedState>,
    Path((uid, id)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    reject_unknown_params(&q, &["fields", "retrieveVectors"])?;
    let fields = q
        .iter()
        .find(|(k, _)| k == "fields")
        .and_then(|(_, v)| fields_param(v));
    let retrieve = retrieve_vectors_param(&q)?;
    let store = state.lock();
    let index = store.index(&uid)?;
    let doc = index.get(&id).ok_or_else(|| document_not_found(&id))?;
    let displayed = index.settings.displayed();
    let mut shown = project(doc, fields.as_deref(), displayed.as_deref());
    crate::vectors::attach(&mut shown, doc, &index.settings, retrieve);
    Ok(ok(Value::Object(shown)))
}

/// `retrieveVectors` of the GET document routes.
fn retrieve_vectors_param(q: &[(String, String)]) -> Result<bool> {
    match q.iter().find(|(k, _)| k == "retrieveVectors") {
        None => Ok(false),
        Some((k, v)) => params::query_bool(k, v, "invalid_document_retrieve_vectors"),
    }
}

struct Listing {
    retrieve_vectors: bool,
    offset: usize,
    limit: usize,
    fields: Option<Vec<String>>,
    filter: Option<Value>,
    ids: Option<Vec<String>>,
    sort: Option<Vec<String>>,
}

fn sort_key(doc: &Document, attr: &str) -> (u8, f64, String) {
    let mut values = Vec::new();
    values_at(doc, attr, &mut values);
    match values.first() {
        Some(Value::Number(n)) => (0, n.as_f64().unwrap_or(0.0), String::new()),
        Some(Value::String(s)) => (1, 0.0, s.to_lowercase()),
        Some(Value::Bool(b)) => (1, 0.0, b.to_string()),
        _ => (2, 0.0, String::new()),
    }
}

fn run_listing(index: &Index, l: &Listing) -> Result<Value> {
    let filter = parse_filter(index, l.filter.as_ref(), "invalid_document_filter")?;
    let mut sort = Vec::new();
    for s in l.sort.iter().flatten() {
        let (attr, desc) = match s.rsplit_once(':') {
            Some((a, "asc")) => (a.to_string(), false),
            Some((a, "desc")) => (a.to_string(), true),
            _ => {
                return Err(MeiliError::invalid(
                    "invalid_document_sort",
                    format!("Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `{s}`."),
                ))
            }
        };
        if !index.settings.is_sortable(&attr) {
            let sortable = index.settings.sortable();
            let detail = if sortable.is_empty() {
                "This index does not have configured sortable attributes.".to_string()
            } else {
                format!(
                    "Available sortable attributes are: `{}`.",
                    sortable.join(", ")
                )
            };
            return Err(MeiliError::invalid(
                "invalid_document_sort",
                format!(
                    "Index `{}`: Attribute `{attr}` is not sortable. {detail}",
                    index.uid
                ),
            ));
        }
        sort.push((attr, desc));
    }
    let ids: Option<Vec<String>> = l.ids.clone();
    let mut docs: Vec<&Document> = index
        .docs
        .values()
        .filter(|d| filter.as_ref().is_none_or(|f| f.matches(d)))
        .filter(|d| {
            ids.as_ref()
                .is_none_or(|ids| index.external_id_of(d).is_some_and(|id| ids.contains(&id)))
        })
        .collect();
    if !sort.is_empty() {
        // Stable sort keeps internal-id order among ties.
        docs.sort_by(|a, b| {
            for (attr, desc) in &sort {
                let (ka, kb) = (sort_key(a, attr), sort_key(b, attr));
                let mut o = ka.0.cmp(&kb.0);
                if o == Ordering::Equal {
                    o =
                        ka.1.partial_cmp(&kb.1)
                            .unwrap_or(Ordering::Equal)
                            .then_with(|| ka.2.cmp(&kb.2));
                    if *desc {
                        o = o.reverse();
                    }
                }
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    let displayed = index.settings.displayed();
    let results: Vec<Value> = docs
        .iter()
        .skip(l.offset)
        .take(l.limit)
        .map(|d| {
            let mut shown = project(d, l.fields.as_deref(), displayed.as_deref());
            crate::vectors::attach(&mut shown, d, &index.settings, l.retrieve_vectors);
            Value::Object(shown)
        })
        .collect();
    Ok(json!({"results": results, "offset": l.offset, "limit": l.limit, "total": docs.len()}))
}

pub async fn list(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    let mut l = Listing {
        retrieve_vectors: retrieve_vectors_param(&q)?,
        offset: 0,
        limit: 20,
        fields: None,
        filter: None,
        ids: None,
        sort: None,
    };
    for (k, v) in &q {
        match k.as_str() {
            "offset" => l.offset = query_usize(k, v, "invalid_document_offset")?,
            "limit" => l.limit = query_usize(k, v, "invalid_document_limit")?,
            "fields" => l.fields = fields_param(v),
            "filter" => l.filter = Some(json!(v)),
            "ids" => l.ids = Some(comma_list(v)),
            "sort" => l.sort = Some(comma_list(v)),
            "retrieveVectors" => {}
            other => {
                return Err(params::unknown_parameter(
                    other,
                    &[
                        "offset",
                        "limit",
                        "fields",
                        "retrieveVectors",
                        "ids",
                        "filter",
                        "sort",
                    ],
                ))
            }
        }
    }
    let store = state.lock();
    Ok(ok(run_listing(store.index(&uid)?, &l)?))
}

pub async fn fetch(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    let body = json_body(&headers, &body)?;
    let map = params::object(
        &body,
        &[
            "offset",
            "limit",
            "fields",
            "retrieveVectors",
            "ids",
            "filter",
            "sort",
        ],
    )?;
    let ids = match map.get("ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|i| normalize_id(i).ok_or_else(|| crate::documents::invalid_document_id(i)))
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(other) => {
            return Err(params::type_error(
                "invalid_document_ids",
                ".ids",
                "an array",
                other,
            ))
        }
    };
    let l = Listing {
        retrieve_vectors: params::opt_bool(
            map,
            "retrieveVectors",
            "invalid_document_retrieve_vectors",
        )?
        .unwrap_or(false),
        offset: params::opt_usize(map, "offset", "invalid_document_offset")?.unwrap_or(0),
        limit: params::opt_usize(map, "limit", "invalid_document_limit")?.unwrap_or(20),
        fields: params::opt_string_list(map, "fields", "invalid_document_fields")?
            .filter(|f| !f.iter().any(|x| x == "*")),
        filter: map.get("filter").filter(|f| !f.is_null()).cloned(),
        ids,
        sort: params::opt_string_list(map, "sort", "invalid_document_sort")?,
    };
    let store = state.lock();
    Ok(ok(run_listing(store.index(&uid)?, &l)?))
}

pub async fn delete_one(
    State(state): State<SharedState>,
    Path((uid, id)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        Payload::DeleteIds(vec![id]),
        custom_metadata(&q),
    )))
}

pub async fn delete_batch(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    let body = json_body(&headers, &body)?;
    let Value::Array(items) = &body else {
        return Err(params::type_error("bad_request", ".", "an array", &body));
    };
    let ids = items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            other => Err(params::type_error(
                "bad_request",
                &format!("[{i}]"),
                "a string or an integer",
                other,
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        Payload::DeleteIds(ids),
        custom_metadata(&q),
    )))
}

pub async fn delete_by_filter(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    let body = json_body(&headers, &body)?;
    let map = params::object(&body, &["filter"])?;
    let Some(raw) = map.get("filter").filter(|f| !f.is_null()) else {
        return Err(MeiliError::invalid(
            "missing_document_filter",
            "Missing field `filter`",
        ));
    };
    let filter = crate::filter::from_json(raw)
        .map_err(|m| MeiliError::invalid("invalid_document_filter", m))?
        .ok_or_else(|| {
            MeiliError::invalid(
                "invalid_document_filter",
                "Sending an empty filter is forbidden.",
            )
        })?;
    let mut details = Map::new();
    details.insert(
        "originalFilter".into(),
        json!(serde_json::to_string(raw).unwrap_or_default()),
    );
    Ok(accepted(enqueue_with_details(
        &state,
        Some(&uid),
        Payload::DeleteByFilter(filter),
        custom_metadata(&q),
        Some(details),
    )))
}

pub async fn clear(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        Payload::ClearDocuments,
        custom_metadata(&q),
    )))
}
