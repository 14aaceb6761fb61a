//! Master-key authentication: without a master key everything is open; with one, every route
//! but `/health` needs `Authorization: Bearer <master key>`. API keys and tenant tokens are not
//! implemented, so only the master key itself is accepted.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::MeiliError;
use crate::state::SharedState;

pub async fn require_master_key(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(master_key) = state.master_key.as_deref() else {
        return next.run(request).await;
    };
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default().to_string());
    match header {
        None => MeiliError::new(
            StatusCode::UNAUTHORIZED,
            "missing_authorization_header",
            "The Authorization header is missing. It must use the bearer authorization method.",
        )
        .into_response(),
        Some(value) => {
            let token = value.strip_prefix("Bearer ").map(str::trim);
            if token == Some(master_key) {
                next.run(request).await
            } else {
                MeiliError::new(
                    StatusCode::FORBIDDEN,
                    "invalid_api_key",
                    "The provided API key is invalid.",
                )
                .into_response()
            }
        }
    }
}
