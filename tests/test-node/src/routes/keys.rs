//! `/keys`: list, get, create, update and delete API keys (Meilisearch's `routes/api_key.rs`).

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{json_body, ok, reject_unknown_params};
use crate::error::{MeiliError, Result};
use crate::keys::{generate_key, parse_create, parse_patch, ApiKey};
use crate::params::query_usize;
use crate::state::SharedState;

fn master_key(state: &SharedState) -> Result<&str> {
    // The auth layer already refused `/keys` without a master key.
    state
        .master_key
        .as_deref()
        .ok_or_else(|| MeiliError::internal("no master key"))
}

fn not_found(what: &str) -> MeiliError {
    MeiliError::new(
        StatusCode::NOT_FOUND,
        "api_key_not_found",
        format!("API key `{what}` not found."),
    )
}

/// A path `{uidOrKey}`: a uuid in any of its spellings, or a key value.
fn resolve(master: &str, keys: &[ApiKey], raw: &str) -> Result<usize> {
    let uid = match Uuid::parse_str(raw) {
        Ok(uid) => uid.hyphenated().to_string(),
        Err(_) => match keys
            .iter()
            .find(|k| raw.eq_ignore_ascii_case(&generate_key(master, &k.uid)))
        {
            Some(k) => k.uid.clone(),
            None => return Err(not_found(raw)),
        },
    };
    keys.iter()
        .position(|k| k.uid == uid)
        .ok_or_else(|| not_found(&uid))
}

pub async fn list(
    State(state): State<SharedState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    reject_unknown_params(&q, &["offset", "limit"])?;
    let mut offset = 0;
    let mut limit = 20;
    for (k, v) in &q {
        match k.as_str() {
            "offset" => offset = query_usize(k, v, "invalid_api_key_offset")?,
            _ => limit = query_usize(k, v, "invalid_api_key_limit")?,
        }
    }
    let master = master_key(&state)?;
    let keys = state.keys();
    // Newest first, as Meilisearch sorts by creation date.
    let results: Vec<Value> = keys
        .iter()
        .rev()
        .skip(offset)
        .take(limit)
        .map(|k| k.view(master))
        .collect();
    Ok(ok(
        json!({"results": results, "offset": offset, "limit": limit, "total": keys.len()}),
    ))
}

pub async fn get_one(
    State(state): State<SharedState>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let master = master_key(&state)?;
    let keys = state.keys();
    let i = resolve(master, &keys, &raw)?;
    Ok(ok(keys[i].view(master)))
}

pub async fn create(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    let master = master_key(&state)?;
    let mut keys = state.keys();
    let mut now = SystemTime::now();
    // Creation dates order the listing; keep them strictly increasing.
    if let Some(last) = keys.last() {
        if now <= last.created_at {
            now = last.created_at + std::time::Duration::from_nanos(1000);
        }
    }
    let key = parse_create(&body, now)?;
    if keys.iter().any(|k| k.uid == key.uid) {
        return Err(MeiliError::new(
            StatusCode::CONFLICT,
            "api_key_already_exists",
            format!(
                "`uid` field value `{}` is already an existing API key.",
                key.uid
            ),
        ));
    }
    let view = key.view(master);
    keys.push(key);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub async fn update(
    State(state): State<SharedState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    let (name, description) = parse_patch(&body)?;
    let master = master_key(&state)?;
    let mut keys = state.keys();
    let i = resolve(master, &keys, &raw)?;
    let key = &mut keys[i];
    if let Some(description) = description {
        key.description = description;
    }
    if let Some(name) = name {
        key.name = name;
    }
    key.updated_at = SystemTime::now();
    Ok(ok(key.view(master)))
}

pub async fn delete(State(state): State<SharedState>, Path(raw): Path<String>) -> Result<Response> {
    let master = master_key(&state)?;
    let mut keys = state.keys();
    let i = resolve(master, &keys, &raw)?;
    keys.remove(i);
    Ok(StatusCode::NO_CONTENT.into_response())
}
