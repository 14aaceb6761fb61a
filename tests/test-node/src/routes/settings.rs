use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::{accepted, custom_metadata, json_body, ok, validate_index_uid};
use crate::error::Result;
use crate::settings::{self, sub_route, Settings, KEYS};
use crate::state::SharedState;
use crate::tasks::{enqueue, Payload};

/// Reading the settings of a missing index is a 404, while writing them creates the index.
fn current(state: &SharedState, uid: &str) -> Result<Settings> {
    Ok(state.lock().index(uid)?.settings.clone())
}

pub async fn get_all(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    Ok(ok(current(&state, &uid)?.to_json()))
}

pub async fn update_all(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    let patch = settings::validate(&json_body(&headers, &body)?)?;
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        Payload::Settings(patch),
        custom_metadata(&q),
    )))
}

pub async fn reset_all(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    let patch: Map<String, Value> = KEYS.iter().map(|k| (k.to_string(), Value::Null)).collect();
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        Payload::Settings(patch),
        custom_metadata(&q),
    )))
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

pub async fn get_one(
    State(state): State<SharedState>,
    Path((uid, name)): Path<(String, String)>,
) -> Result<Response> {
    let Some((key, _)) = sub_route(&name) else {
        return Ok(not_found());
    };
    validate_index_uid(&uid)?;
    Ok(ok(current(&state, &uid)?.get(key)))
}

async fn write_one(
    state: SharedState,
    uid: String,
    name: String,
    q: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    patch_method: bool,
) -> Result<Response> {
    // Each sub-route answers one method for updates; the other is not routed, as in Meilisearch.
    let Some((key, is_patch)) = sub_route(&name) else {
        return Ok(not_found());
    };
    if is_patch != patch_method {
        return Ok(StatusCode::METHOD_NOT_ALLOWED.into_response());
    }
    validate_index_uid(&uid)?;
    let patch = settings::validate_single(key, &json_body(&headers, &body)?)?;
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        Payload::Settings(patch),
        custom_metadata(&q),
    )))
}

pub async fn put_one(
    State(state): State<SharedState>,
    Path((uid, name)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    write_one(state, uid, name, q, headers, body, false).await
}

pub async fn patch_one(
    State(state): State<SharedState>,
    Path((uid, name)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    write_one(state, uid, name, q, headers, body, true).await
}

pub async fn reset_one(
    State(state): State<SharedState>,
    Path((uid, name)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let Some((key, _)) = sub_route(&name) else {
        return Ok(not_found());
    };
    validate_index_uid(&uid)?;
    let mut patch = Map::new();
    patch.insert(key.to_string(), Value::Null);
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        Payload::Settings(patch),
        custom_metadata(&q),
    )))
}
