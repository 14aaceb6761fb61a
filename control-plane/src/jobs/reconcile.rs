//! Brings a node to the cluster's indexes, settings and keys before it holds any shard: a node
//! that gets writes and reads must know the index's primary key and settings (`_miroir_shard`
//! filterable among them) and accept the clients' keys. The reference is a node that serves
//! reads now.

use miroir_topology::Node;
use serde_json::{json, Value};

use super::shard_copy::{Calls, CopyError, Index};

/// The indexes of the reference node, with whether each has embedders.
pub async fn indexes(calls: &Calls<'_>, reference: &Node) -> Result<Vec<Index>, CopyError> {
    let mut out = Vec::new();
    for (uid, primary_key) in index_keys(calls, reference).await? {
        let embedders = calls
            .get(reference, &format!("/indexes/{uid}/settings/embedders"))
            .await?;
        let vectors = embedders.as_object().is_some_and(|e| !e.is_empty());
        out.push(Index {
            uid,
            primary_key,
            vectors,
        });
    }
    Ok(out)
}

/// The indexes of the reference node: uid and primary key.
async fn index_keys(
    calls: &Calls<'_>,
    reference: &Node,
) -> Result<Vec<(String, String)>, CopyError> {
    Ok(listed(calls, reference, "/indexes")
        .await?
        .iter()
        .filter_map(|i| {
            Some((
                i["uid"].as_str()?.to_string(),
                i["primaryKey"].as_str()?.to_string(),
            ))
        })
        .collect())
}

/// Every item of a paginated Meilisearch list (`results`, `total`, `offset`, `limit`).
async fn listed(calls: &Calls<'_>, node: &Node, path: &str) -> Result<Vec<Value>, CopyError> {
    let mut out = Vec::new();
    loop {
        let page = calls
            .get(node, &format!("{path}?limit=100&offset={}", out.len()))
            .await?;
        let results = page["results"].as_array().cloned().unwrap_or_default();
        let done = results.is_empty()
            || (out.len() + results.len()) as u64 >= page["total"].as_u64().unwrap_or(0);
        out.extend(results);
        if done {
            return Ok(out);
        }
    }
}

/// Creates on `target` every index `reference` has (same primary key), applies its settings, and
/// creates the keys `target` lacks (same uid: a key's value derives from the master key and the
/// uid, so it is the same key on every node).
pub async fn node(calls: &Calls<'_>, reference: &Node, target: &Node) -> Result<(), CopyError> {
    for (uid, primary_key) in index_keys(calls, reference).await? {
        if calls
            .find(target, &format!("/indexes/{uid}"))
            .await?
            .is_none()
        {
            calls
                .write(
                    target,
                    reqwest::Method::POST,
                    "/indexes",
                    &json!({"uid": uid, "primaryKey": primary_key}),
                )
                .await?;
        }
        let settings = calls
            .get(reference, &format!("/indexes/{uid}/settings"))
            .await?;
        calls
            .write(
                target,
                reqwest::Method::PATCH,
                &format!("/indexes/{uid}/settings"),
                &settings,
            )
            .await?;
    }
    let theirs = listed(calls, target, "/keys").await?;
    for key in listed(calls, reference, "/keys").await? {
        let Some(uid) = key["uid"].as_str() else {
            continue;
        };
        if theirs.iter().any(|k| k["uid"].as_str() == Some(uid)) {
            continue;
        }
        let body = json!({
            "uid": uid,
            "name": key["name"],
            "description": key["description"],
            "actions": key["actions"],
            "indexes": key["indexes"],
            "expiresAt": key["expiresAt"],
        });
        if let Err(e) = calls
            .send(target, reqwest::Method::POST, "/keys", &body)
            .await
        {
            if e.unavailable {
                return Err(e);
            }
            // An expired key cannot be created again; it could not be used either.
            tracing::warn!(node = target.id, key = uid, error = %e, "key not copied");
        }
    }
    Ok(())
}
