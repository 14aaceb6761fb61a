//! The client's request as the filter sees it once the body is complete.

pub mod cors;
pub mod documents;
pub mod encoding;
pub mod intake;
pub mod limits;
pub mod reserved_refs;
pub mod route;
pub mod search_params;

/// Headers forwarded to nodes: Meilisearch itself enforces API keys and tenant tokens, so the
/// client's credentials travel unchanged; and the request's trace context.
const FORWARDED_HEADERS: &[&str] = &[
    "authorization",
    TRACE_HEADERS[0],
    TRACE_HEADERS[1],
    TRACE_HEADERS[2],
];

/// What ties a node's or the control plane's log of a call to the client's request: Envoy's
/// request id (made by Envoy when the client sent none) and the W3C trace context.
pub const TRACE_HEADERS: [&str; 3] = ["x-request-id", "traceparent", "tracestate"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string without the `?` (possibly empty).
    pub query: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// Splits an HTTP/2-style `:path` into path and query.
    pub fn new(
        method: &str,
        full_path: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Self {
        let (path, query) = full_path.split_once('?').unwrap_or((full_path, ""));
        Request {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            query: query.to_string(),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Decoded query parameters, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The client's headers that nodes must see.
    /// The request's [`TRACE_HEADERS`].
    pub fn trace_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| TRACE_HEADERS.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    pub fn forwarded_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| FORWARDED_HEADERS.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// Re-encodes query parameters (the client's, possibly amended) for a node call.
pub fn encode_query(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}
