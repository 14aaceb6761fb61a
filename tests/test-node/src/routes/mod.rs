//! HTTP routes, grouped by resource, and the request helpers they share.

mod admin;
mod documents;
mod dsr;
mod fields;
mod indexes;
mod keys;
mod search;
mod settings;
mod similar;
mod stats;
mod tasks;
mod webhooks;

pub(crate) use stats::human_size;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use crate::error::MeiliError;
use crate::state::SharedState;

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/health", get(stats::health))
        .route("/version", get(stats::version))
        .route("/stats", get(stats::global_stats))
        .route("/tasks", get(tasks::list).delete(tasks::delete))
        .route("/batches", get(tasks::list_batches))
        .route("/batches/{batch_uid}", get(tasks::get_batch))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{uuid}",
            get(webhooks::get_one)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/dumps", post(admin::dump))
        .route("/snapshots", post(admin::snapshot))
        .route("/render-template", post(admin::render_template))
        .route("/dynamic-search-rules", post(dsr::list).delete(dsr::clear))
        .route(
            "/dynamic-search-rules/{uid}",
            get(dsr::get_one).patch(dsr::update).delete(dsr::delete),
        )
        .route("/indexes/{uid}/compact", post(admin::compact))
        .route("/tasks/cancel", post(tasks::cancel))
        .route("/tasks/{task_uid}", get(tasks::get_one))
        .route("/multi-search", post(search::multi_search))
        .route(
            "/experimental-features",
            get(search::features_get).patch(search::features_patch),
        )
        .route("/keys", get(keys::list).post(keys::create))
        .route(
            "/keys/{key}",
            get(keys::get_one).patch(keys::update).delete(keys::delete),
        )
        .route("/indexes", get(indexes::list).post(indexes::create))
        .route(
            "/indexes/{uid}",
            get(indexes::get_one)
                .patch(indexes::update)
                .delete(indexes::delete),
        )
        .route("/indexes/{uid}/stats", get(stats::index_stats))
        .route(
            "/indexes/{uid}/documents",
            get(documents::list)
                .post(documents::replace)
                .put(documents::update)
                .delete(documents::clear),
        )
        .route("/indexes/{uid}/documents/fetch", post(documents::fetch))
        .route(
            "/indexes/{uid}/documents/delete-batch",
            post(documents::delete_batch),
        )
        .route(
            "/indexes/{uid}/documents/delete",
            post(documents::delete_by_filter),
        )
        .route(
            "/indexes/{uid}/documents/{id}",
            get(documents::get_one).delete(documents::delete_one),
        )
        .route(
            "/indexes/{uid}/search",
            get(search::search_get).post(search::search_post),
        )
        .route("/indexes/{uid}/facet-search", post(search::facet_search))
        .route("/indexes/{uid}/fields", post(fields::list))
        .route(
            "/indexes/{uid}/similar",
            get(similar::similar_get).post(similar::similar_post),
        )
        .route(
            "/indexes/{uid}/settings",
            get(settings::get_all)
                .patch(settings::update_all)
                .delete(settings::reset_all),
        )
        .route(
            "/indexes/{uid}/settings/{name}",
            get(settings::get_one)
                .put(settings::put_one)
                .patch(settings::patch_one)
                .delete(settings::reset_one),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(PAYLOAD_LIMIT_BYTES))
        .layer(middleware::map_response(payload_too_large))
        .layer(middleware::from_fn(announced_too_large))
        .with_state(state)
}

/// Meilisearch's default `--http-payload-size-limit` (100 MB).
pub const PAYLOAD_LIMIT_BYTES: usize = 100_000_000;

/// A body announced above the limit is refused before it is read, as Meilisearch does.
async fn announced_too_large(request: axum::extract::Request, next: middleware::Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > PAYLOAD_LIMIT_BYTES) {
        return payload_too_large(StatusCode::PAYLOAD_TOO_LARGE.into_response()).await;
    }
    next.run(request).await
}

/// Over the body limit axum answers a plain-text 413; Meilisearch answers its error object.
async fn payload_too_large(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    MeiliError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "The provided payload reached the size limit. The maximum accepted payload size is 95.367431640625 MiB.",
    )
    .into_response()
}

pub fn ok(value: Value) -> Response {
    (StatusCode::OK, Json(value)).into_response()
}

pub fn accepted(value: Value) -> Response {
    (StatusCode::ACCEPTED, Json(value)).into_response()
}

pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// A JSON request body, with Meilisearch's content-type and payload errors.
pub fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, MeiliError> {
    match content_type(headers) {
        None => {
            return Err(MeiliError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "missing_content_type",
                "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`",
            ))
        }
        Some(ct) if !ct.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json") => {
            return Err(MeiliError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_content_type",
                format!("The Content-Type `{ct}` is invalid. Accepted values for the Content-Type header are: `application/json`"),
            ))
        }
        Some(_) => {}
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(MeiliError::invalid(
            "missing_payload",
            "A json payload is missing.",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        MeiliError::invalid(
            "malformed_payload",
            format!("The json payload provided is malformed. `{e}`."),
        )
    })
}

pub fn validate_index_uid(uid: &str) -> Result<(), MeiliError> {
    if !uid.is_empty()
        && uid.len() <= 400
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(MeiliError::invalid(
            "invalid_index_uid",
            format!("`{uid}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."),
        ))
    }
}

/// Splits out `customMetadata`, accepted on every write route.
pub fn custom_metadata(pairs: &[(String, String)]) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == "customMetadata")
        .map(|(_, v)| v.clone())
}

pub fn reject_unknown_params(
    pairs: &[(String, String)],
    allowed: &[&str],
) -> Result<(), MeiliError> {
    match pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        Some((k, _)) => Err(crate::params::unknown_parameter(k, allowed)),
        None => Ok(()),
    }
}
