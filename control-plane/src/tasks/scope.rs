//! What a client key may see of the cluster's task queue, as Meilisearch decides it: a key sees
//! the tasks of the indexes its `indexes` patterns match (an `indexSwap` only when it may see
//! every index swapped), and the tasks of no index; a task outside its scope is `task_not_found`
//! for it, and is neither matched nor touched by its cancelations and deletions.
//!
//! The control plane reads a key's definition with the master key (`GET /keys/{key}` on an active
//! node), after the node accepted the key for the route ([`super::routes::authorize`]). The master
//! key, nodes without a master key, and a control plane without `masterKey` see everything.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use miroir_topology::NodeState;
use serde_json::Value;

use crate::app::App;
use crate::config::secret_eq;
use crate::error::{ApiError, Failure};
use crate::nodes::{self, NodeError};
use crate::store::StoredTask;

/// How long a key's definition is used without reading it again.
pub const TTL: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every task, every action.
    All,
    /// An API key's `actions` and `indexes` patterns.
    Key {
        actions: Vec<String>,
        indexes: Vec<String>,
    },
}

/// Meilisearch's action matching: the action itself, `*`, or `<group>.*`.
fn grants(held: &str, wanted: &str) -> bool {
    held == "*"
        || held == wanted
        || held
            .strip_suffix(".*")
            .is_some_and(|group| wanted.split_once('.').is_some_and(|(g, _)| g == group))
}

/// Meilisearch's `IndexUidPattern`: `*`, a prefix ending in `*`, or an exact uid.
fn pattern_matches(pattern: &str, index: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => index.starts_with(prefix),
        None => pattern == index,
    }
}

/// The indexes a task belongs to: its `indexUid`, and for a swap every swapped index.
pub fn task_indexes(task: &StoredTask) -> Vec<String> {
    let mut indexes: Vec<String> = Vec::new();
    if let Some(uid) = task.task.get("indexUid").and_then(Value::as_str) {
        indexes.push(uid.to_string());
    }
    if let Some(uid) = &task.record.index_uid {
        indexes.push(uid.clone());
    }
    let swaps = task.task["details"]["swaps"]
        .as_array()
        .or_else(|| task.record.details.get("swaps").and_then(Value::as_array));
    for swap in swaps.into_iter().flatten() {
        for index in swap["indexes"].as_array().into_iter().flatten() {
            if let Some(uid) = index.as_str() {
                indexes.push(uid.to_string());
            }
        }
    }
    indexes.sort();
    indexes.dedup();
    indexes
}

impl Scope {
    pub fn allows(&self, action: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Key { actions, .. } => actions.iter().any(|a| grants(a, action)),
        }
    }

    pub fn index_allowed(&self, index: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Key { indexes, .. } => indexes.iter().any(|p| pattern_matches(p, index)),
        }
    }

    /// Whether the key may see `task`.
    pub fn shows(&self, task: &StoredTask) -> bool {
        match self {
            Scope::All => true,
            Scope::Key { .. } => task_indexes(task).iter().all(|i| self.index_allowed(i)),
        }
    }

    pub(crate) fn from_key(key: &Value) -> Scope {
        let strings = |field: &str| -> Vec<String> {
            key[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        Scope::Key {
            actions: strings("actions"),
            indexes: strings("indexes"),
        }
    }
}

fn bearer(auth: Option<&str>) -> Option<&str> {
    auth.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim)
}

/// The scope of `auth` (a value [`super::routes::authorize`] accepted).
pub async fn of(app: &App, auth: Option<&str>) -> Result<Scope, Failure> {
    let Some(master) = app.config.master_key.as_deref().filter(|k| !k.is_empty()) else {
        return Ok(Scope::All);
    };
    let Some(key) = bearer(auth).filter(|k| !k.is_empty()) else {
        // Accepted without a key: the nodes have no master key.
        return Ok(Scope::All);
    };
    if secret_eq(master, key) {
        return Ok(Scope::All);
    }
    let cache_key = auth.unwrap_or_default().to_string();
    if let Ok(cache) = app.scope_cache.lock() {
        if let Some((at, scope)) = cache.get(&cache_key) {
            if at.elapsed() < TTL {
                return Ok(scope.clone());
            }
        }
    }
    let topology = app
        .store
        .load_topology()
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::node_unavailable("No node is known yet (no topology)."))?;
    let authorization = format!("Bearer {master}");
    let mut last = String::from("no active node");
    for node in topology
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Active)
    {
        // The key's value is a path segment: only hex keys are looked up (anything else, e.g. a
        // tenant token, is no API key).
        if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ApiError::invalid_api_key().into());
        }
        match nodes::get_key(
            &app.http,
            &node.address,
            Some(&authorization),
            key,
            app.read_timeout(),
        )
        .await
        {
            Ok(definition) => {
                let scope = Scope::from_key(&definition);
                if let Ok(mut cache) = app.scope_cache.lock() {
                    cache.retain(|_, (at, _)| at.elapsed() < TTL);
                    cache.insert(cache_key, (Instant::now(), scope.clone()));
                }
                return Ok(scope);
            }
            // Not an API key the node knows (e.g. a tenant token): no task rights.
            Err(NodeError::Status(r)) if r.status == StatusCode::NOT_FOUND => {
                return Err(ApiError::invalid_api_key().into())
            }
            Err(NodeError::Status(r)) => {
                last = format!("node `{}` answered {} to the master key", node.id, r.status)
            }
            Err(NodeError::Unavailable(e)) => last = format!("node `{}`: {e}", node.id),
        }
    }
    Err(ApiError::node_unavailable(format!(
        "No node could tell the API key's indexes ({last})."
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_patterns_match_as_in_meilisearch() {
        assert!(grants("*", "tasks.get"));
        assert!(grants("tasks.*", "tasks.cancel"));
        assert!(grants("tasks.get", "tasks.get"));
        assert!(!grants("tasks.get", "tasks.delete"));
        assert!(!grants("documents.*", "tasks.get"));
        assert!(pattern_matches("*", "movies"));
        assert!(pattern_matches("mov*", "movies"));
        assert!(pattern_matches("movies", "movies"));
        assert!(!pattern_matches("movies", "movies2"));
        assert!(!pattern_matches("books*", "movies"));
    }
}
