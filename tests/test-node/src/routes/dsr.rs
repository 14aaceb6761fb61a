//! `/dynamic-search-rules`: `POST` lists, `GET|PATCH|DELETE /{uid}`, `DELETE` clears. Each
//! needs the `dynamicSearchRules` experimental feature, checked after the body, as in 1.50.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{accepted, custom_metadata, json_body, ok, validate_index_uid};
use crate::dsr::{query_matches, validate_patch, view};
use crate::error::{MeiliError, Result};
use crate::params::type_error;
use crate::state::SharedState;
use crate::tasks::{enqueue, Payload, DSR_INDEX};

fn feature(state: &SharedState, route: Option<&str>) -> Result<()> {
    if state.features().get("dynamicSearchRules") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    let what = match route {
        Some(route) => format!("Calling the `{route}` route requires"),
        None => "Using the `/dynamic-search-rules` routes requires".to_string(),
    };
    Err(MeiliError::invalid(
        "feature_not_enabled",
        format!("{what} enabling the `dynamic search rules` experimental feature. See https://github.com/orgs/meilisearch/discussions/884"),
    ))
}

/// A bad rule uid is refused like a bad path segment: a plain-text 404.
fn bad_uid(uid: &str) -> Option<Response> {
    validate_index_uid(uid)
        .err()
        .map(|e| (StatusCode::NOT_FOUND, e.message).into_response())
}

fn usize_field(
    map: &serde_json::Map<String, Value>,
    key: &str,
    code: &'static str,
    default: usize,
) -> Result<usize> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64().unwrap_or(0) as usize),
        Some(other) => Err(type_error(
            code,
            &format!(".{key}"),
            "a positive integer",
            other,
        )),
    }
}

pub async fn list(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    let map = crate::params::object(&body, &["offset", "limit", "filter"])?;
    let offset = usize_field(map, "offset", "invalid_dynamic_search_rule_offset", 0)?;
    let limit = usize_field(map, "limit", "invalid_dynamic_search_rule_limit", 20)?;
    let (mut query, mut active) = (None, None);
    match map.get("filter") {
        None | Some(Value::Null) => {}
        Some(Value::Object(f)) => {
            if let Some(k) = f.keys().find(|k| *k != "query" && *k != "active") {
                return Err(MeiliError::invalid(
                    "invalid_dynamic_search_rule_filter",
                    format!(
                        "Unknown field `{k}` inside `.filter`: expected one of `query`, `active`"
                    ),
                ));
            }
            match f.get("query") {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => query = Some(s.clone()),
                Some(other) => {
                    return Err(type_error(
                        "invalid_dynamic_search_rule_filter_query",
                        ".filter.query",
                        "a string",
                        other,
                    ))
                }
            }
            match f.get("active") {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => active = Some(*b),
                Some(other) => {
                    return Err(type_error(
                        "invalid_dynamic_search_rule_filter_active",
                        ".filter.active",
                        "a boolean",
                        other,
                    ))
                }
            }
        }
        Some(other) => {
            return Err(type_error(
                "invalid_dynamic_search_rule_filter",
                ".filter",
                "an object",
                other,
            ))
        }
    }
    feature(&state, Some("POST /dynamic-search-rules"))?;
    let store = state.lock();
    let matching: Vec<Value> = store
        .dsr
        .iter()
        .filter(|(_, r)| {
            active.is_none_or(|a| r.get("active").and_then(Value::as_bool).unwrap_or(true) == a)
        })
        .filter(|(_, r)| query.as_deref().is_none_or(|q| query_matches(q, r)))
        .map(|(uid, r)| view(uid, r))
        .collect();
    let total = matching.len();
    let results: Vec<Value> = matching.into_iter().skip(offset).take(limit).collect();
    Ok(ok(
        json!({"results": results, "offset": offset, "limit": limit, "total": total}),
    ))
}

pub async fn get_one(State(state): State<SharedState>, Path(uid): Path<String>) -> Response {
    if let Some(r) = bad_uid(&uid) {
        return r;
    }
    if let Err(e) = feature(&state, Some("GET /dynamic-search-rules/{:ruleUid}")) {
        return e.into_response();
    }
    let store = state.lock();
    match store.dsr.iter().find(|(u, _)| *u == uid) {
        Some((u, r)) => ok(view(u, r)),
        None => MeiliError::new(
            StatusCode::NOT_FOUND,
            "dynamic_search_rule_not_found",
            format!("Dynamic search rule `{uid}` not found."),
        )
        .into_response(),
    }
}

pub async fn update(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = bad_uid(&uid) {
        return r;
    }
    let patch = match json_body(&headers, &body).and_then(|b| validate_patch(&b)) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = feature(&state, None) {
        return e.into_response();
    }
    accepted(enqueue(
        &state,
        Some(DSR_INDEX),
        Payload::DsrUpdate {
            uid,
            patch: Some(patch),
        },
        custom_metadata(&q),
    ))
}

pub async fn delete(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = bad_uid(&uid) {
        return r;
    }
    if let Err(e) = feature(&state, None) {
        return e.into_response();
    }
    accepted(enqueue(
        &state,
        Some(DSR_INDEX),
        Payload::DsrUpdate { uid, patch: None },
        custom_metadata(&q),
    ))
}

pub async fn clear(
    State(state): State<SharedState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    feature(&state, None)?;
    Ok(accepted(enqueue(
        &state,
        Some(DSR_INDEX),
        Payload::DsrClear,
        custom_metadata(&q),
    )))
}
