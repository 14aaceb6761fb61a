//! `GET|POST /webhooks`, `GET|PATCH|DELETE /webhooks/{uuid}`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{json_body, ok};
use crate::error::{MeiliError, Result};
use crate::state::SharedState;
use crate::webhooks::{apply, Webhook, MAX_WEBHOOKS};

fn parse_uuid(raw: &str) -> Result<String> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.hyphenated().to_string())
        .map_err(|e| MeiliError::invalid("invalid_webhook_uuid", format!("Invalid UUID: {e}")))
}

fn not_found(uuid: &str) -> MeiliError {
    MeiliError::new(
        StatusCode::NOT_FOUND,
        "webhook_not_found",
        format!("Webhook `{uuid}` not found."),
    )
}

pub async fn list(State(state): State<SharedState>) -> Result<Response> {
    let store = state.lock();
    let results: Vec<Value> = store.webhooks.iter().map(Webhook::view).collect();
    Ok(ok(json!({ "results": results })))
}

pub async fn create(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    let mut hook = Webhook {
        uuid: uuid::Uuid::new_v4().to_string(),
        url: String::new(),
        headers: Vec::new(),
    };
    apply(&mut hook, &body)?;
    let mut store = state.lock();
    if store.webhooks.len() >= MAX_WEBHOOKS {
        return Err(MeiliError::invalid(
            "invalid_webhooks",
            format!("Defining too many webhooks would crush the server. Please limit the number of webhooks to {MAX_WEBHOOKS}. You may use a third-party proxy server to dispatch events to more than {MAX_WEBHOOKS} endpoints."),
        ));
    }
    let view = hook.view();
    store.webhooks.push(hook);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub async fn get_one(
    State(state): State<SharedState>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let uuid = parse_uuid(&raw)?;
    let store = state.lock();
    let hook = store
        .webhooks
        .iter()
        .find(|w| w.uuid == uuid)
        .ok_or_else(|| not_found(&uuid))?;
    Ok(ok(hook.view()))
}

pub async fn update(
    State(state): State<SharedState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let uuid = parse_uuid(&raw)?;
    let body = json_body(&headers, &body)?;
    let mut store = state.lock();
    let hook = store
        .webhooks
        .iter_mut()
        .find(|w| w.uuid == uuid)
        .ok_or_else(|| not_found(&uuid))?;
    let mut updated = hook.clone();
    apply(&mut updated, &body)?;
    *hook = updated;
    Ok(ok(hook.view()))
}

pub async fn delete(State(state): State<SharedState>, Path(raw): Path<String>) -> Result<Response> {
    let uuid = parse_uuid(&raw)?;
    let mut store = state.lock();
    let before = store.webhooks.len();
    store.webhooks.retain(|w| w.uuid != uuid);
    if store.webhooks.len() == before {
        return Err(not_found(&uuid));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
