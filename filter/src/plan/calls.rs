//! What every step of a request needs to know, and how calls to nodes are built.

use std::rc::Rc;

use miroir_topology::{cluster_name, Node};
use serde_json::{Map, Value};

use crate::config::FilterConfig;
use crate::error::MeiliError;
use crate::host::Call;
use crate::request::Request;

/// What every step of a request needs to know.
pub(crate) struct Ctx {
    pub(crate) config: Rc<FilterConfig>,
    pub(crate) request: Request,
    /// This request's number in its worker: rotates replica groups and replicas.
    pub(crate) turn: u64,
}

impl Ctx {
    pub(crate) fn timeout_ms(&self) -> u64 {
        self.config.node_timeout_ms
    }

    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.config.nodes()
    }

    /// Miroir's own read of index metadata: with the configured `nodeApiKey`, else with the
    /// client's credentials.
    pub(crate) fn lookup_call(&self, node: &Node, path: String) -> Call {
        let mut call = self.call_without_body(node, "GET", path);
        if let Some(key) = &self.config.node_api_key {
            call.headers.retain(|(name, _)| name != "authorization");
            call.headers
                .push(("authorization".into(), format!("Bearer {key}")));
        }
        call
    }

    /// A call with a JSON body, or none.
    pub(crate) fn call(
        &self,
        node: &Node,
        method: &'static str,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Call {
        match body {
            Some(body) => self.call_with(node, method, path, "application/json", body),
            None => self.call_without_body(node, method, path),
        }
    }

    pub(crate) fn call_with(
        &self,
        node: &Node,
        method: &'static str,
        path: String,
        content_type: &str,
        body: Vec<u8>,
    ) -> Call {
        let mut call = self.call_without_body(node, method, path);
        call.headers
            .push(("content-type".into(), content_type.into()));
        call.body = Some(body);
        call
    }

    fn call_without_body(&self, node: &Node, method: &'static str, path: String) -> Call {
        let headers = self.request.forwarded_headers();
        let body = None;
        Call {
            cluster: cluster_name(&node.id),
            authority: self.config.node_authority().to_string(),
            method,
            path,
            headers,
            body,
            timeout_ms: self.timeout_ms(),
        }
    }

    pub(crate) fn json_call(
        &self,
        node: &Node,
        method: &'static str,
        path: String,
        body: &Value,
    ) -> Call {
        self.call(
            node,
            method,
            path,
            Some(serde_json::to_vec(body).unwrap_or_default()),
        )
    }

    /// The client's method, as the static string a call takes.
    pub(crate) fn request_method(&self) -> &'static str {
        match self.request.method.as_str() {
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            _ => "GET",
        }
    }

    /// The client's path with its query string, as nodes must see it.
    pub(crate) fn path_and_query(&self) -> String {
        if self.request.query.is_empty() {
            self.request.path.clone()
        } else {
            format!("{}?{}", self.request.path, self.request.query)
        }
    }

    /// The client's body as is, if it sent one.
    pub(crate) fn raw_body(&self) -> Option<Vec<u8>> {
        (!self.request.body.is_empty()).then(|| self.request.body.clone())
    }

    /// The body as any JSON value.
    pub(crate) fn body_json(&self) -> Result<Value, MeiliError> {
        serde_json::from_slice(&self.request.body).map_err(|e| {
            MeiliError::bad_request(
                "malformed_payload",
                format!("The json payload provided is malformed. `{e}`."),
            )
        })
    }

    pub(crate) fn body_object(&self) -> Result<Map<String, Value>, MeiliError> {
        match serde_json::from_slice::<Value>(&self.request.body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(MeiliError::bad_request(
                "bad_request",
                format!(
                    "Invalid value type: expected an object, but found {}",
                    kind_of(&other)
                ),
            )),
            Err(e) if self.request.body.is_empty() => Err(MeiliError::bad_request(
                "missing_payload",
                format!("A json payload is missing. {e}"),
            )),
            Err(e) => Err(MeiliError::bad_request(
                "malformed_payload",
                format!("The json payload provided is malformed. `{e}`."),
            )),
        }
    }
}

pub(crate) fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean: `{b}`"),
        Value::Number(n) => format!("a number: `{n}`"),
        Value::String(s) => format!("a string: `\"{s}\"`"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}
