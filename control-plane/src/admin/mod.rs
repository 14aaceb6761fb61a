//! The admin REST API (`/_miroir/*`, `GET /metrics`), authorized by the admin key. The OpenAPI
//! document is docs/admin-api.openapi.yaml.

pub mod fleet;
pub mod jobs;
pub mod topology;
pub mod ui;

#[cfg(test)]
mod tests;

use axum::http::HeaderMap;

use crate::app::App;
use crate::error::ApiError;

/// `Authorization: Bearer <adminKey>`, answered like Meilisearch answers a missing (401) or
/// wrong (403) key.
pub fn authorize(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = app.config.admin_key.as_deref().filter(|k| !k.is_empty()) else {
        return Ok(());
    };
    let Some(value) = headers.get("authorization") else {
        return Err(ApiError::missing_authorization());
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(key) if crate::config::secret_eq(expected, key) => Ok(()),
        _ => Err(ApiError::invalid_api_key()),
    }
}
