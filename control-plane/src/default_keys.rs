//! The cluster's default API keys. A Meilisearch node with a master key makes four default keys
//! at its first start, each with a random uid, so every node's are different and `GET /keys`
//! through Miroir (the keys every node holds identically) lists none of them. The leader creates
//! one set for the whole cluster instead: the four keys Meilisearch 1.50 makes (same names,
//! descriptions, actions, indexes, no expiry), each with one fixed uid, on every node. A key's
//! value is `HMAC-SHA256(master key, uid)`, so the same uid gives the same key on every node.
//!
//! Each node gets them once (the nodes done are recorded in the store): when the leader starts,
//! when a node joins, and when a node that could not be reached (down, or failed by the health
//! checks) is active again. A default key a client deleted through Miroir stays deleted, as on
//! Meilisearch, which makes its default keys only once too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use miroir_topology::NodeState;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::{pause, App};
use crate::error::ApiError;
use crate::metrics::labels;
use crate::nodes::{self, NodeError};

pub use miroir_topology::keys::{DefaultKey, DEFAULT_KEYS};

/// Store setting: the nodes that have the default keys.
pub const SETTING: &str = "defaultKeys";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Node id → the address it had when it got them (a new address is a new node).
    #[serde(default)]
    pub nodes: BTreeMap<String, String>,
}

async fn load_record(app: &App) -> Result<Record, ApiError> {
    let text = app
        .store
        .get_setting(SETTING)
        .await
        .map_err(ApiError::store)?;
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

/// How a node's attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeOutcome {
    /// Every key is there (created now, already there, or refused for a reason retrying does
    /// not change; each logged).
    Done,
    /// The node refused the node key (401/403): it cannot create keys.
    Refused(Value),
    /// The node could not be reached, or failed: tried again later.
    Unavailable(Value),
}

/// A node's error body when it is Meilisearch-shaped, else one in that shape.
fn error_body(error: &NodeError) -> Value {
    match error {
        NodeError::Status(r) => serde_json::from_slice::<Value>(&r.bytes)
            .ok()
            .filter(|b| b.get("code").is_some())
            .unwrap_or_else(|| {
                ApiError::new(
                    r.status,
                    "internal",
                    "internal",
                    format!("The node answered {}.", r.status),
                )
                .body()
            }),
        NodeError::Unavailable(m) => {
            ApiError::node_unavailable(format!("The node could not be reached: {m}.")).body()
        }
    }
}

fn field<'a>(body: &'a Value, name: &str) -> &'a str {
    body.get(name).and_then(Value::as_str).unwrap_or("")
}

fn count(app: &App, node: &str, result: &str) {
    app.metrics
        .default_keys
        .get_or_create(&labels(&[("node", node), ("result", result)]))
        .inc();
}

/// Creates the default keys on one node (`POST /keys`, in Meilisearch's order); a key already
/// there (409 `api_key_already_exists`) is read back and compared.
pub async fn ensure_node(app: &App, node: &str, address: &str) -> NodeOutcome {
    let authorization = app.node_authorization(None);
    let authorization = authorization.as_deref();
    let timeout = app.node_timeout();
    for key in &DEFAULT_KEYS {
        let error = match nodes::create_key(&app.http, address, authorization, &key.body(), timeout)
            .await
        {
            Ok(_) => {
                count(app, node, "created");
                tracing::info!(node, uid = key.uid, name = key.name, "default key created");
                continue;
            }
            Err(e) => e,
        };
        let body = error_body(&error);
        match &error {
            NodeError::Status(r)
                if r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::FORBIDDEN =>
            {
                count(app, node, "refused");
                return NodeOutcome::Refused(body);
            }
            NodeError::Status(r)
                if r.status == StatusCode::CONFLICT
                    && field(&body, "code") == "api_key_already_exists" =>
            {
                match nodes::get_key(&app.http, address, authorization, key.uid, timeout).await {
                    Ok(existing) if key.matches(&existing) => count(app, node, "exists"),
                    Ok(existing) => {
                        // Not replaced: it may be the client's own change (`PATCH` renames).
                        count(app, node, "mismatch");
                        tracing::warn!(
                            node,
                            uid = key.uid,
                            name = key.name,
                            wanted = %key.body(),
                            found = %existing,
                            "a key with a default key's uid differs from it"
                        );
                    }
                    Err(e) => {
                        count(app, node, "unavailable");
                        return NodeOutcome::Unavailable(error_body(&e));
                    }
                }
            }
            NodeError::Status(_) => {
                // E.g. 400 `invalid_api_key_actions` from a Meilisearch without chats: asking
                // again gives the same answer.
                count(app, node, "rejected");
                tracing::warn!(
                    node,
                    uid = key.uid,
                    name = key.name,
                    code = field(&body, "code"),
                    r#type = field(&body, "type"),
                    link = field(&body, "link"),
                    "default key not created: {}",
                    field(&body, "message")
                );
            }
            NodeError::Unavailable(_) => {
                count(app, node, "unavailable");
                return NodeOutcome::Unavailable(body);
            }
        }
    }
    NodeOutcome::Done
}

const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
struct Retry {
    address: String,
    at: Instant,
    delay: Duration,
}

/// The leader's memory between rounds: when to try the nodes that are not done again, and
/// each node's last seen state.
#[derive(Debug, Default)]
pub struct Provisioner {
    retries: HashMap<String, Retry>,
    states: HashMap<String, NodeState>,
    refusal_logged: bool,
    no_key_logged: bool,
}

impl Provisioner {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Gives every active node that does not have them yet the default keys, and records those
/// done. Returns how many nodes were done in this round.
pub async fn round(app: &Arc<App>, state: &mut Provisioner) -> Result<usize, ApiError> {
    if app.config.node_key().is_none() {
        if !state.no_key_logged {
            state.no_key_logged = true;
            tracing::info!(
                "no `masterKey` (nor `nodeApiKey`): the cluster's default keys are not created"
            );
        }
        return Ok(0);
    }
    let Some(topology) = app.store.load_topology().await.map_err(ApiError::store)? else {
        return Ok(0);
    };
    let mut record = load_record(app).await?;
    let before = record.clone();
    // Nodes gone from the topology: a node added again (maybe empty) is asked again.
    record
        .nodes
        .retain(|id, address| topology.node(id).is_some_and(|n| n.address == *address));

    let now = Instant::now();
    let mut attempts = tokio::task::JoinSet::new();
    for node in &topology.nodes {
        let previous = state.states.insert(node.id.clone(), node.state);
        if node.state != NodeState::Active || record.nodes.contains_key(&node.id) {
            continue;
        }
        // Joined, moved, or active again: try now.
        let fresh = previous != Some(NodeState::Active)
            || state
                .retries
                .get(&node.id)
                .is_some_and(|r| r.address != node.address);
        if fresh {
            state.retries.remove(&node.id);
        }
        if state.retries.get(&node.id).is_some_and(|r| r.at > now) {
            continue;
        }
        let (app, id, address) = (app.clone(), node.id.clone(), node.address.clone());
        attempts.spawn(async move {
            let outcome = ensure_node(&app, &id, &address).await;
            (id, address, outcome)
        });
    }
    state.states.retain(|id, _| topology.node(id).is_some());
    state.retries.retain(|id, _| topology.node(id).is_some());

    let mut done = 0;
    while let Some(joined) = attempts.join_next().await {
        let Ok((id, address, outcome)) = joined else {
            continue;
        };
        let failure = match outcome {
            NodeOutcome::Done => {
                tracing::info!(node = id, "the node has the cluster's default keys");
                state.retries.remove(&id);
                record.nodes.insert(id, address);
                done += 1;
                continue;
            }
            NodeOutcome::Refused(body) => {
                if !state.refusal_logged {
                    state.refusal_logged = true;
                    tracing::warn!(
                        node = id,
                        code = field(&body, "code"),
                        r#type = field(&body, "type"),
                        link = field(&body, "link"),
                        "`nodeApiKey` cannot create keys (it needs `keys.create`, e.g. the master key): the cluster's default keys are not created: {}",
                        field(&body, "message")
                    );
                }
                None
            }
            NodeOutcome::Unavailable(body) => Some(body),
        };
        let delay = state
            .retries
            .get(&id)
            .map(|r| (r.delay * 2).min(LAST_RETRY))
            .unwrap_or(FIRST_RETRY);
        if let Some(body) = failure {
            tracing::warn!(
                node = id,
                code = field(&body, "code"),
                r#type = field(&body, "type"),
                link = field(&body, "link"),
                retry_in_s = delay.as_secs(),
                "the cluster's default keys not created on the node: {}",
                field(&body, "message")
            );
        }
        state.retries.insert(
            id,
            Retry {
                address,
                at: Instant::now() + delay,
                delay,
            },
        );
    }

    if record != before {
        let text = serde_json::to_string(&record).map_err(|e| ApiError::internal(e.to_string()))?;
        app.store
            .put_setting(SETTING, &text)
            .await
            .map_err(ApiError::store)?;
    }
    Ok(done)
}

/// The leader's loop: a round every second (only nodes not done, each at its retry time).
pub async fn run(app: Arc<App>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut state = Provisioner::new();
    loop {
        if app.is_leader() {
            if let Err(e) = round(&app, &mut state).await {
                tracing::warn!(error = %e, "the cluster's default keys");
            }
        }
        if !pause(&mut shutdown, Duration::from_secs(1)).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
