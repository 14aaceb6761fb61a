//! Meilisearch-shaped errors. Clients and SDKs parse `code`, so Miroir speaks Meilisearch's error
//! object; codes of Miroir's own conditions start with `miroir_`.

use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    InvalidRequest,
    Internal,
    System,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::Internal => "internal",
            ErrorType::System => "system",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeiliError {
    pub status: u16,
    pub code: &'static str,
    pub kind: ErrorType,
    pub message: String,
}

impl MeiliError {
    pub fn new(
        status: u16,
        code: &'static str,
        kind: ErrorType,
        message: impl Into<String>,
    ) -> Self {
        MeiliError {
            status,
            code,
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, ErrorType::InvalidRequest, message)
    }

    /// Meilisearch's answer to a body above its payload limit.
    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            413,
            "payload_too_large",
            ErrorType::InvalidRequest,
            format!(
                "The provided payload reached the size limit. The maximum accepted payload size is {}.",
                miroir_topology::limits::binary_size(limit)
            ),
        )
    }

    pub fn not_supported(method: &str, path: &str) -> Self {
        Self::new(
            501,
            "miroir_not_supported",
            ErrorType::InvalidRequest,
            format!("Miroir does not support `{method} {path}` yet."),
        )
    }

    /// Nodes could not be reached or did not answer in time: the cluster, not the request, failed.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(503, code, ErrorType::System, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "miroir_internal", ErrorType::Internal, message)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "message": self.message,
            "code": self.code,
            "type": self.kind.as_str(),
            "link": format!("https://docs.meilisearch.com/errors#{}", self.code),
        })
    }
}
