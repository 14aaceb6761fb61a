use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use super::{accepted, custom_metadata, json_body, ok, reject_unknown_params, validate_index_uid};
use crate::auth::Access;
use crate::error::{MeiliError, Result};
use crate::params::{self, query_usize};
use crate::state::SharedState;
use crate::tasks::{enqueue, Payload};

pub async fn list(
    State(state): State<SharedState>,
    access: Option<Extension<Access>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let access = access.map_or_else(Access::all, |Extension(a)| a);
    reject_unknown_params(&q, &["offset", "limit"])?;
    let mut offset = 0;
    let mut limit = 20;
    for (k, v) in &q {
        match k.as_str() {
            "offset" => offset = query_usize(k, v, "invalid_index_offset")?,
            _ => limit = query_usize(k, v, "invalid_index_limit")?,
        }
    }
    let store = state.lock();
    // A key only sees the indexes it is authorized on.
    let visible: Vec<_> = store
        .indexes
        .values()
        .filter(|i| access.is_index_authorized(&i.uid))
        .collect();
    let total = visible.len();
    let results: Vec<Value> = visible
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|i| i.view())
        .collect();
    Ok(ok(
        json!({"results": results, "offset": offset, "limit": limit, "total": total}),
    ))
}

pub async fn create(
    State(state): State<SharedState>,
    access: Option<Extension<Access>>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    let map = params::object(&body, &["uid", "primaryKey"])?;
    let uid = match map.get("uid") {
        None => {
            return Err(MeiliError::invalid(
                "missing_index_uid",
                "Missing field `uid`",
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(params::type_error(
                "invalid_index_uid",
                ".uid",
                "a string",
                other,
            ))
        }
    };
    if let Err(e) = validate_index_uid(&uid) {
        return Err(MeiliError::invalid(
            e.code,
            format!("Invalid value at `.uid`: {}", e.message),
        ));
    }
    let primary_key = params::opt_string(map, "primaryKey", "invalid_index_primary_key")?;
    if access.is_some_and(|Extension(a)| !a.allow_index_creation(&uid)) {
        return Err(crate::auth::invalid_api_key());
    }
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        Payload::IndexCreation { primary_key },
        custom_metadata(&q),
    )))
}

pub async fn get_one(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    Ok(ok(state.lock().index(&uid)?.view()))
}

pub async fn update(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    let body = json_body(&headers, &body)?;
    let map = params::object(&body, &["primaryKey", "uid"])?;
    if map.get("uid").is_some_and(|v| !v.is_null()) {
        return Err(MeiliError::invalid(
            "invalid_index_uid",
            "Renaming indexes is not supported by the miroir test node.",
        ));
    }
    let primary_key = params::opt_string(map, "primaryKey", "invalid_index_primary_key")?;
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        Payload::IndexUpdate { primary_key },
        custom_metadata(&q),
    )))
}

pub async fn delete(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        Payload::IndexDeletion,
        custom_metadata(&q),
    )))
}
