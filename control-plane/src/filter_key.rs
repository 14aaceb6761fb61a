//! The filter's own key. The filter reads index metadata, settings, a `/similar` target's
//! embedding and (during a control-plane outage) node tasks with a key of its own, never with
//! the master key: the control plane creates it on every node with the master key, with a fixed
//! uid and only the actions those reads need, and pushes its value (`HMAC-SHA256(master key,
//! uid)`, which every node derives alike) as the plugin configuration's `nodeApiKey`.
//!
//! Every replica keeps it on every active node: created when missing (a node that joined, was
//! restarted empty, or a client deleted it), checked again every [`RECHECK`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use miroir_topology::NodeState;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::app::{pause, App};
use crate::nodes::{self, NodeError};

/// Fixed, the same for every cluster (a uid is no secret: the value, derived from the master
/// key, is). Hex of "miroir" and "filter" around the version bits.
pub const UID: &str = "6d69726f-6972-4000-8000-66696c746572";
pub const NAME: &str = "Miroir filter";
/// What the filter's own reads need: `GET /indexes/{uid}`, `GET /indexes/{uid}/settings`,
/// `GET /indexes/{uid}/documents/{id}?retrieveVectors=true`, `GET /tasks/{uid}`.
pub const ACTIONS: [&str; 4] = ["indexes.get", "settings.get", "documents.get", "tasks.get"];
/// How often a node that has the key is checked again.
pub const RECHECK: Duration = Duration::from_secs(30);
const RETRY: Duration = Duration::from_secs(1);

/// The key's value on nodes whose master key is `master_key` (Meilisearch's
/// `generate_key_as_hexa`).
pub fn value(master_key: &str) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(master_key.as_bytes()) else {
        return String::new();
    };
    mac.update(UID.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn body() -> Value {
    json!({
        "uid": UID,
        "name": NAME,
        "description": "Used by Miroir's Envoy filter for its own metadata reads. Created by the control plane; do not delete.",
        "actions": ACTIONS,
        "indexes": ["*"],
        "expiresAt": null,
    })
}

/// Whether `key` (a node's key object) is the filter key as wanted.
fn matches(key: &Value) -> bool {
    let mut actions: Vec<&str> = key["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    actions.sort_unstable();
    let mut wanted = ACTIONS.to_vec();
    wanted.sort_unstable();
    actions == wanted && key["indexes"] == json!(["*"]) && key["expiresAt"].is_null()
}

/// Makes sure node `address` has the key. `Ok(true)`: it has it (created now, or found);
/// `Ok(false)`: a key with the uid differs (logged, left alone); `Err`: try again later.
pub async fn ensure(app: &App, node: &str, address: &str) -> Result<bool, NodeError> {
    let Some(master) = app.config.master_key.as_deref() else {
        return Ok(false);
    };
    let authorization = format!("Bearer {master}");
    let timeout = app.read_timeout().max(Duration::from_secs(2));
    match nodes::get_key(&app.http, address, Some(&authorization), UID, timeout).await {
        Ok(existing) if matches(&existing) => return Ok(true),
        Ok(existing) => {
            tracing::warn!(
                node,
                uid = UID,
                found = %json!({"actions": existing["actions"], "indexes": existing["indexes"], "expiresAt": existing["expiresAt"]}),
                "the filter key's uid holds another key: the filter's lookups may fail on this node"
            );
            return Ok(false);
        }
        Err(NodeError::Status(r)) if r.status == StatusCode::NOT_FOUND => {}
        Err(e) => return Err(e),
    }
    match nodes::create_key(&app.http, address, Some(&authorization), &body(), timeout).await {
        Ok(_) => {
            tracing::info!(node, uid = UID, "filter key created");
            Ok(true)
        }
        // Created by another replica in between.
        Err(NodeError::Status(r)) if r.status == StatusCode::CONFLICT => Ok(true),
        Err(e) => Err(e),
    }
}

/// When each node (by id and address) was last found with the key.
#[derive(Debug, Default)]
pub struct State {
    checked: HashMap<(String, String), Instant>,
    /// Each node's state in the last round: a node active again is checked at once (it may
    /// have restarted empty).
    states: HashMap<String, NodeState>,
    failures_logged: HashMap<String, bool>,
}

/// One pass: every active node not checked within [`RECHECK`] is checked (and given the key).
pub async fn round(app: &Arc<App>, state: &mut State) {
    if app.config.master_key.is_none() {
        return;
    }
    let topology = match app.store.load_topology().await {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "filter key: store unreachable");
            return;
        }
    };
    let mut attempts = tokio::task::JoinSet::new();
    for node in &topology.nodes {
        let previous = state.states.insert(node.id.clone(), node.state);
        if node.state != NodeState::Active {
            continue;
        }
        let at = (node.id.clone(), node.address.clone());
        if previous.is_some_and(|p| p != NodeState::Active) {
            state.checked.remove(&at);
        }
        if state
            .checked
            .get(&at)
            .is_some_and(|t| t.elapsed() < RECHECK)
        {
            continue;
        }
        let app = app.clone();
        attempts.spawn(async move {
            let got = ensure(&app, &at.0, &at.1).await;
            (at, got)
        });
    }
    state
        .checked
        .retain(|(id, address), _| topology.node(id).is_some_and(|n| &n.address == address));
    state.states.retain(|id, _| topology.node(id).is_some());
    while let Some(joined) = attempts.join_next().await {
        let Ok((at, got)) = joined else { continue };
        match got {
            Ok(_) => {
                state.failures_logged.remove(&at.0);
                state.checked.insert(at, Instant::now());
            }
            Err(e) => {
                if !state
                    .failures_logged
                    .insert(at.0.clone(), true)
                    .unwrap_or(false)
                {
                    tracing::warn!(node = at.0, error = %e, "filter key not created yet: retrying");
                }
            }
        }
    }
}

/// Every replica's loop (idempotent: replicas racing create it once, the others find it).
pub async fn run(app: Arc<App>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut state = State::default();
    loop {
        round(&app, &mut state).await;
        if !pause(&mut shutdown, RETRY).await {
            return;
        }
    }
}
