//! Meilisearch's error object (`{message, code, type, link}`) and the status each code maps to.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct MeiliError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, MeiliError>;

impl MeiliError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400 with the given code; most request-validation errors are this.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::invalid("bad_request", message)
    }

    pub fn index_not_found(uid: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "index_not_found",
            format!("Index `{uid}` not found."),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn error_type(&self) -> &'static str {
        match self.code {
            "missing_authorization_header" | "invalid_api_key" | "missing_master_key" => "auth",
            "internal" => "internal",
            "io_error" | "no_space_left_on_device" | "too_many_open_files" => "system",
            _ => "invalid_request",
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "message": self.message,
            "code": self.code,
            "type": self.error_type(),
            "link": format!("https://docs.meilisearch.com/errors#{}", self.code),
        })
    }
}

impl IntoResponse for MeiliError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.to_json())).into_response()
    }
}
