//! Errors as Meilisearch shapes them (`{message, code, type, link}`), so SDKs pointed at Miroir
//! parse them like a node's. Miroir's own codes start with `miroir_`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub code: &'static str,
    pub kind: &'static str,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        kind: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            message: message.into(),
            code,
            kind,
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "invalid_request", message)
    }

    pub fn missing_authorization() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing_authorization_header",
            "auth",
            "The Authorization header is missing. It must use the bearer authorization method.",
        )
    }

    pub fn invalid_api_key() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_api_key",
            "auth",
            "The provided API key is invalid.",
        )
    }

    pub fn task_not_found(uid: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "task_not_found",
            "invalid_request",
            format!("Task `{uid}` not found."),
        )
    }

    /// The store (embedded file or Redis) failed: nothing Miroir can fix inside the request.
    pub fn store(err: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "miroir_store_unavailable",
            "system",
            format!("The control plane's store is unavailable: {err}"),
        )
    }

    pub fn node_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "miroir_node_unavailable",
            "system",
            message,
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal",
            message,
        )
    }

    /// The message of a refusal of the request itself (400) told in the caller's terms.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        if self.status == StatusCode::BAD_REQUEST {
            self.message = format!("{prefix}{}", self.message);
        }
        self
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "message": self.message,
            "code": self.code,
            "type": self.kind,
            "link": format!("https://docs.meilisearch.com/errors#{}", self.code),
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        // Meilisearch adds Retry-After to every 503; clients back off the same way here.
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("10"));
        }
        response
    }
}

/// A node's answer relayed unchanged (its status and body), e.g. a 401/403 for a client's key.
#[derive(Clone, Debug)]
pub struct Relayed {
    pub status: StatusCode,
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
}

impl IntoResponse for Relayed {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.bytes).into_response();
        if let Some(ct) = self
            .content_type
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            response.headers_mut().insert("content-type", ct);
        }
        response
    }
}

/// Either of the above: handlers that may relay a node's refusal return this.
#[derive(Debug)]
pub enum Failure {
    Api(ApiError),
    Relayed(Relayed),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<Relayed> for Failure {
    fn from(r: Relayed) -> Self {
        Failure::Relayed(r)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => e.into_response(),
            Failure::Relayed(r) => r.into_response(),
        }
    }
}
