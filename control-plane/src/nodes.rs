//! Calls from the control plane to Meilisearch nodes: health, task reads, task cancelation and
//! deletion, and a client key's check.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use crate::error::Relayed;

/// Most uids per `GET /tasks?uids=` call: keeps the query string far below URL limits.
const UIDS_PER_CALL: usize = 100;

#[derive(Debug)]
pub enum NodeError {
    /// The node answered with this status and body (relayed unchanged for 4xx).
    Status(Relayed),
    /// No usable answer: connection refused, reset, timeout, 5xx, unparsable body.
    Unavailable(String),
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Status(r) => write!(f, "answered {}", r.status),
            NodeError::Unavailable(m) => f.write_str(m),
        }
    }
}

pub(crate) fn url(address: &str, path_and_query: &str) -> String {
    format!("http://{address}{path_and_query}")
}

fn join(uids: &[u64]) -> String {
    uids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    authorization: Option<&str>,
    timeout: Duration,
) -> Result<Value, NodeError> {
    let request = match authorization {
        Some(a) => request.header("authorization", a),
        None => request,
    };
    let response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| NodeError::Unavailable(e.to_string()))?;
    let status = StatusCode::from_u16(response.status().as_u16())
        .map_err(|e| NodeError::Unavailable(e.to_string()))?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = response
        .bytes()
        .await
        .map_err(|e| NodeError::Unavailable(e.to_string()))?;
    if status.is_client_error() {
        return Err(NodeError::Status(Relayed {
            status,
            bytes: bytes.to_vec(),
            content_type,
        }));
    }
    if !status.is_success() {
        return Err(NodeError::Unavailable(format!("answered {status}")));
    }
    if bytes.is_empty() {
        // 204 No Content (a key's deletion).
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| NodeError::Unavailable(format!("bad JSON: {e}")))
}

/// `GET /health` answers 200 `{"status":"available"}`.
pub async fn healthy(http: &reqwest::Client, address: &str, timeout: Duration) -> bool {
    match send(http.get(url(address, "/health")), None, timeout).await {
        Ok(body) => body.get("status").and_then(Value::as_str) == Some("available"),
        Err(_) => false,
    }
}

/// The node's task objects for `uids` (those it still has).
pub async fn tasks(
    http: &reqwest::Client,
    address: &str,
    authorization: Option<&str>,
    uids: &[u64],
    timeout: Duration,
) -> Result<Vec<Value>, NodeError> {
    let mut out = Vec::new();
    for chunk in uids.chunks(UIDS_PER_CALL) {
        let path = format!("/tasks?uids={}&limit={}", join(chunk), chunk.len());
        let body = send(http.get(url(address, &path)), authorization, timeout).await?;
        if let Some(Value::Array(results)) = body.get("results") {
            out.extend(results.iter().cloned());
        }
    }
    Ok(out)
}

/// `POST /tasks/cancel?uids=..` or `DELETE /tasks?uids=..` on one node, with the client's key
/// (the node decides whether that key may). Returns the node's summarized task.
pub async fn cancel_or_delete(
    http: &reqwest::Client,
    address: &str,
    authorization: Option<&str>,
    delete: bool,
    uids: &[u64],
    timeout: Duration,
) -> Result<Value, NodeError> {
    let request = if delete {
        http.delete(url(address, &format!("/tasks?uids={}", join(uids))))
    } else {
        http.post(url(address, &format!("/tasks/cancel?uids={}", join(uids))))
    };
    send(request, authorization, timeout).await
}

/// Whether the node accepts `authorization` for reading tasks (`GET /tasks?limit=1`).
pub async fn check_key(
    http: &reqwest::Client,
    address: &str,
    authorization: Option<&str>,
    timeout: Duration,
) -> Result<(), NodeError> {
    send(
        http.get(url(address, "/tasks?limit=1")),
        authorization,
        timeout,
    )
    .await
    .map(|_| ())
}

/// What a client key must be allowed to do on a control-plane route, and the node call that
/// shows whether it is (the node answers 401/403 before anything else when it is not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Right {
    /// `tasks.get` (`/tasks`, `/batches`): `GET /tasks?limit=1`.
    TasksGet,
    /// `webhooks.get`: `GET /webhooks`.
    WebhooksGet,
    /// `webhooks.create`: `POST /webhooks` with an invalid body (400 once the key passed).
    WebhooksCreate,
    /// `webhooks.update`: `PATCH` of the nil uuid (400 `immutable_webhook` once the key passed).
    WebhooksUpdate,
    /// `webhooks.delete`: `DELETE` of the nil uuid (400 `immutable_webhook` once the key passed).
    WebhooksDelete,
}

const NIL_WEBHOOK: &str = "/webhooks/00000000-0000-0000-0000-000000000000";

impl Right {
    pub fn as_str(self) -> &'static str {
        match self {
            Right::TasksGet => "tasks.get",
            Right::WebhooksGet => "webhooks.get",
            Right::WebhooksCreate => "webhooks.create",
            Right::WebhooksUpdate => "webhooks.update",
            Right::WebhooksDelete => "webhooks.delete",
        }
    }
}

/// Whether the node accepts `authorization` for `right`. The webhook probes change nothing: each
/// is refused by the route itself (400) right after the key check. A node without the webhook
/// routes (404/405: not Meilisearch, or older than 1.17) is asked for `tasks.get` instead.
pub async fn check_right(
    http: &reqwest::Client,
    address: &str,
    authorization: Option<&str>,
    right: Right,
    timeout: Duration,
) -> Result<(), NodeError> {
    let probe = match right {
        Right::TasksGet => return check_key(http, address, authorization, timeout).await,
        Right::WebhooksGet => http.get(url(address, "/webhooks")),
        Right::WebhooksCreate => http
            .post(url(address, "/webhooks"))
            .header("content-type", "application/json")
            .body(r#"{"url":0}"#),
        Right::WebhooksUpdate => http
            .patch(url(address, NIL_WEBHOOK))
            .header("content-type", "application/json")
            .body("{}"),
        Right::WebhooksDelete => http.delete(url(address, NIL_WEBHOOK)),
    };
    match send(probe, authorization, timeout).await {
        Ok(_) => Ok(()),
        Err(NodeError::Status(r))
            if r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::FORBIDDEN =>
        {
            Err(NodeError::Status(r))
        }
        Err(NodeError::Status(r))
            if r.status == StatusCode::NOT_FOUND || r.status == StatusCode::METHOD_NOT_ALLOWED =>
        {
            check_key(http, address, authorization, timeout).await
        }
        // The probe's own refusal (bad body, immutable webhook): the key was accepted.
        Err(NodeError::Status(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn index_not_found(relayed: &Relayed) -> bool {
    relayed.status == StatusCode::NOT_FOUND
        && serde_json::from_slice::<Value>(&relayed.bytes)
            .ok()
            .and_then(|b| b.get("code").and_then(Value::as_str).map(str::to_string))
            .is_some_and(|code| code == "index_not_found")
}

/// `{"primaryKey", "settings"}` of index `uid` on the node (`GET /indexes/{uid}` and its
/// `/settings`, read together), `None` when the node does not have the index.
pub async fn index_schema(
    http: &reqwest::Client,
    address: &str,
    authorization: Option<&str>,
    uid: &str,
    timeout: Duration,
) -> Result<Option<Value>, NodeError> {
    let (index, settings) = tokio::join!(
        send(
            http.get(url(address, &format!("/indexes/{uid}"))),
            authorization,
            timeout
        ),
        send(
            http.get(url(address, &format!("/indexes/{uid}/settings"))),
            authorization,
            timeout
        ),
    );
    match (index, settings) {
        (Ok(index), Ok(settings)) => Ok(Some(serde_json::json!({
            "primaryKey": index.get("primaryKey").cloned().unwrap_or(Value::Null),
            "settings": settings,
        }))),
        // Deleted between the two reads counts as deleted.
        (Err(NodeError::Status(r)), _) | (_, Err(NodeError::Status(r))) if index_not_found(&r) => {
            Ok(None)
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// Task types that change an index's primary key or settings.
pub const SCHEMA_TASK_TYPES: &str =
    "settingsUpdate,indexCreation,indexUpdate,indexSwap,indexDeletion";

/// Whether the node still has a change of index `uid`'s schema enqueued or processing.
pub async fn schema_change_pending(
    http: &reqwest::Client,
    address: &str,
    authorization: Option<&str>,
    uid: &str,
    timeout: Duration,
) -> Result<bool, NodeError> {
    let path = format!(
        "/tasks?indexUids={uid}&statuses=enqueued,processing&types={SCHEMA_TASK_TYPES}&limit=1"
    );
    let body = send(http.get(url(address, &path)), authorization, timeout).await?;
    Ok(body
        .get("results")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty()))
}

/// `POST /keys` with `body` (which names its `uid`): the node's key object (201).
pub async fn create_key(
    http: &reqwest::Client,
    address: &str,
    authorization: Option<&str>,
    body: &Value,
    timeout: Duration,
) -> Result<Value, NodeError> {
    send(
        http.post(url(address, "/keys")).json(body),
        authorization,
        timeout,
    )
    .await
}

/// `GET /keys/{uid}`: the node's key object.
pub async fn get_key(
    http: &reqwest::Client,
    address: &str,
    authorization: Option<&str>,
    uid: &str,
    timeout: Duration,
) -> Result<Value, NodeError> {
    send(
        http.get(url(address, &format!("/keys/{uid}"))),
        authorization,
        timeout,
    )
    .await
}
