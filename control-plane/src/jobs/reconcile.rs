//! Brings a node to the cluster's indexes, settings and keys before it holds any shard: a node
//! that gets writes and reads must know the index's primary key and settings (`_miroir_shard`
//! filterable among them) and accept the clients' keys. The reference is a node that serves
//! reads now.

use miroir_topology::keys::is_node_default;
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

/// How old an index on a repaired node must be (its `createdAt`) before its absence from a
/// reference that shows no deletion of it deletes it: one created through Miroir a moment ago may
/// have reached the repaired node before the reference.
const PRUNE_AGE_S: i128 = 60;

/// Whether a repaired node's index `index` (its listing entry) is one the reference lacks for
/// good: absent from the reference's listing (read after the node's), and either deleted on the
/// reference after the node created it (`deleted_at`: the reference's last succeeded deletion of
/// it, Unix ns) or created at least [`PRUNE_AGE_S`] before `now` (Unix ns).
pub fn stale_index(
    index: &Value,
    reference: &[(String, String)],
    deleted_at: Option<i128>,
    now: i128,
) -> bool {
    let Some(uid) = index["uid"].as_str() else {
        return false;
    };
    let Some(created) = index["createdAt"]
        .as_str()
        .and_then(crate::time::parse)
        .map(|(at, _)| at)
    else {
        return false;
    };
    let gone =
        deleted_at.is_some_and(|d| d > created) || now - created >= PRUNE_AGE_S * 1_000_000_000;
    gone && !reference.iter().any(|(u, _)| u == uid)
}

/// What `node`'s task queue says of index `uid`: whether a creation of it is enqueued or
/// processing (one that reached the repaired node first), and when its last succeeded deletion
/// was enqueued (Unix ns).
async fn index_history(
    calls: &Calls<'_>,
    node: &Node,
    uid: &str,
) -> Result<(bool, Option<i128>), CopyError> {
    let pending =
        format!("/tasks?indexUids={uid}&statuses=enqueued,processing&types=indexCreation&limit=1");
    let creating = calls.get(node, &pending).await?["results"]
        .as_array()
        .is_some_and(|r| !r.is_empty());
    let deletions =
        format!("/tasks?indexUids={uid}&statuses=succeeded&types=indexDeletion&limit=1");
    let deleted_at = calls.get(node, &deletions).await?["results"]
        .get(0)
        .and_then(|t| t["enqueuedAt"].as_str())
        .and_then(crate::time::parse)
        .map(|(at, _)| at);
    Ok((creating, deleted_at))
}

/// For a repaired node (its copies missed writes, maybe an index's or a key's deletion): deletes
/// from `target` the indexes `reference` does not have ([`stale_index`]) and the keys it does
/// not have ([`stale_key`]), and gives its keys the reference's names and descriptions. Only on
/// `target`.
pub async fn prune(calls: &Calls<'_>, reference: &Node, target: &Node) -> Result<(), CopyError> {
    let theirs = listed(calls, target, "/indexes").await?;
    let ours = index_keys(calls, reference).await?;
    let now = crate::time::now_nanos();
    for index in &theirs {
        let Some(uid) = index["uid"].as_str() else {
            continue;
        };
        if let Some((_, primary_key)) = ours.iter().find(|(u, _)| u == uid) {
            if index["primaryKey"].as_str() != Some(primary_key) {
                tracing::warn!(
                    node = target.id,
                    index = uid,
                    found = %index["primaryKey"],
                    wanted = primary_key,
                    "the repaired node's index has another primary key (left as it is)"
                );
            }
            continue;
        }
        let (creating, deleted_at) = index_history(calls, reference, uid).await?;
        if !creating && stale_index(index, &ours, deleted_at, now) {
            tracing::warn!(
                node = target.id,
                index = uid,
                reference = reference.id,
                "index the cluster no longer has deleted from the repaired node"
            );
            calls.delete(target, &format!("/indexes/{uid}")).await?;
        }
    }
    let keys = listed(calls, reference, "/keys").await?;
    let mut young = Vec::new();
    for key in listed(calls, target, "/keys").await? {
        let Some(uid) = key["uid"].as_str() else {
            continue;
        };
        match keys.iter().find(|k| k["uid"].as_str() == Some(uid)) {
            Some(theirs) => {
                // A key's name and description are all a key's update can change.
                let wanted = json!({"name": theirs["name"], "description": theirs["description"]});
                if key["name"] != wanted["name"] || key["description"] != wanted["description"] {
                    tracing::warn!(
                        node = target.id,
                        key = uid,
                        "key update the repaired node missed applied"
                    );
                    calls
                        .send(
                            target,
                            reqwest::Method::PATCH,
                            &format!("/keys/{uid}"),
                            &wanted,
                        )
                        .await?;
                }
            }
            None if stale_key(&key, crate::time::now_nanos()) => {
                delete_key(calls, target, &key).await?;
            }
            None if !is_node_default(&key) && created_at(&key).is_some() => young.push(key),
            None => {}
        }
    }
    if !young.is_empty() {
        // Too young to tell from one still reaching the reference: asked again once old enough.
        tokio::time::sleep(std::time::Duration::from_secs(KEY_PRUNE_AGE_S as u64)).await;
        let keys = listed(calls, reference, "/keys").await?;
        for key in young {
            if !keys.iter().any(|k| k["uid"] == key["uid"]) {
                delete_key(calls, target, &key).await?;
            }
        }
    }
    // Experimental features are set on every node through Miroir, like keys. Best effort: a
    // feature this node cannot take must not stop its repair.
    if let (Ok(wanted), Ok(held)) = (
        calls.get(reference, "/experimental-features").await,
        calls.get(target, "/experimental-features").await,
    ) {
        if wanted != held {
            if let Err(e) = calls
                .send(
                    target,
                    reqwest::Method::PATCH,
                    "/experimental-features",
                    &wanted,
                )
                .await
            {
                tracing::warn!(node = target.id, error = %e, "experimental features not copied");
            }
        }
    }
    Ok(())
}

async fn delete_key(calls: &Calls<'_>, target: &Node, key: &Value) -> Result<(), CopyError> {
    let uid = key["uid"].as_str().unwrap_or_default();
    tracing::warn!(
        node = target.id,
        key = uid,
        name = %key["name"],
        "key the cluster no longer has deleted from the repaired node"
    );
    calls.delete(target, &format!("/keys/{uid}")).await
}

/// How old a key on a repaired node must be before its absence from the reference deletes it:
/// a key is created on every node in one go, so a key younger than this may still be reaching
/// the reference.
const KEY_PRUNE_AGE_S: i128 = 2;

/// Whether a repaired node's key the reference lacks is one the cluster deleted: not one of the
/// node's own default keys (each node makes its own, [`is_node_default`]) and not created a
/// moment ago. Miroir owns the nodes' keys: a key made on a node directly, past Miroir, works on
/// that node only, and is deleted when the node is repaired.
pub fn stale_key(key: &Value, now: i128) -> bool {
    !is_node_default(key)
        && created_at(key).is_some_and(|at| now - at >= KEY_PRUNE_AGE_S * 1_000_000_000)
}

/// A key's `createdAt` in Unix nanoseconds (a key without one is never pruned).
fn created_at(key: &Value) -> Option<i128> {
    key["createdAt"]
        .as_str()
        .and_then(crate::time::parse)
        .map(|(at, _)| at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_the_reference_lacks_is_stale_unless_the_nodes_own_or_just_made() {
        let now = crate::time::parse("2026-01-01T00:10:00Z").unwrap().0;
        let key = |name: &str, at: &str| json!({"uid": "0b3b5e4e-0000-4000-8000-000000000001", "name": name, "createdAt": at});
        assert!(stale_key(&key("search", "2026-01-01T00:09:00Z"), now));
        assert!(!stale_key(&key("search", "2026-01-01T00:09:59Z"), now));
        assert!(!stale_key(
            &key("Default Search API Key", "2026-01-01T00:00:00Z"),
            now
        ));
        assert!(!stale_key(&json!({"uid": "x", "name": "search"}), now));
    }

    #[test]
    fn an_index_the_reference_lacks_is_stale_once_deleted_there_or_old() {
        let at = |t: &str| crate::time::parse(t).unwrap().0;
        let now = at("2026-01-01T00:10:00Z");
        let reference = [("kept".to_string(), "id".to_string())];
        let index = |uid: &str, t: &str| json!({"uid": uid, "primaryKey": "id", "createdAt": t});
        let old = index("gone", "2026-01-01T00:00:00Z");
        assert!(stale_index(&old, &reference, None, now));
        assert!(!stale_index(
            &index("kept", "2026-01-01T00:00:00Z"),
            &reference,
            None,
            now
        ));
        let recent = index("new", "2026-01-01T00:09:57Z");
        assert!(
            !stale_index(&recent, &reference, None, now),
            "created a moment ago: maybe not on the reference yet"
        );
        assert!(
            stale_index(&recent, &reference, Some(at("2026-01-01T00:09:58Z")), now),
            "deleted on the reference after the node created it"
        );
        assert!(
            !stale_index(&recent, &reference, Some(at("2026-01-01T00:09:00Z")), now),
            "a deletion of an earlier index of that name says nothing of this one"
        );
        assert!(!stale_index(&json!({"uid": "gone"}), &reference, None, now));
    }
}
