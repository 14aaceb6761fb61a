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

    /// `/network`: Meilisearch's own sharding and replication, which Miroir replaces.
    pub fn network_not_supported(method: &str, path: &str) -> Self {
        Self::new(
            501,
            "miroir_not_supported",
            ErrorType::InvalidRequest,
            format!(
                "`{method} {path}` configures Meilisearch's own sharding and replication between nodes; through Miroir the nodes are independent and Miroir shards and replicates them (see `/_miroir/topology` on the control plane)."
            ),
        )
    }

    /// Nodes could not be reached or did not answer in time: the cluster, not the request, failed.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(503, code, ErrorType::System, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "miroir_internal", ErrorType::Internal, message)
    }

    /// Meilisearch's (deserr's) refusal of a query parameter the route does not take: a close
    /// match is suggested, then every accepted name in the order the route declares them.
    pub fn unknown_parameter(name: &str, accepted: &[&str]) -> Self {
        Self::bad_request(
            "bad_request",
            miroir_topology::deserr::unknown("parameter", name, accepted),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_parameter_names_a_close_match_first() {
        let accepted = ["q", "filter", "sort", "attributesToHighlight"];
        assert_eq!(
            MeiliError::unknown_parameter("filler", &accepted).message,
            "Unknown parameter `filler`: did you mean `filter`? expected one of `q`, `filter`, `sort`, `attributesToHighlight`"
        );
        assert_eq!(
            MeiliError::unknown_parameter("attributes_to_highlight", &accepted).message,
            "Unknown parameter `attributes_to_highlight`: did you mean `attributesToHighlight`? expected one of `q`, `filter`, `sort`, `attributesToHighlight`"
        );
        // Three bytes or fewer get no suggestion, and a far name none either.
        for far in ["srt", "filterable", "query"] {
            assert!(!MeiliError::unknown_parameter(far, &accepted)
                .message
                .contains("did you mean"));
        }
        assert_eq!(
            MeiliError::unknown_parameter("x", &accepted).code,
            "bad_request"
        );
    }
}
