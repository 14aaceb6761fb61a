//! Deletions by id: routed to the owners of each id's shard, like the documents themselves.

use std::collections::BTreeMap;

use miroir_topology::canonical_key;
use serde_json::Value;

use crate::error::MeiliError;
use crate::host::Host;
use crate::ops::Step;
use crate::plan::calls::Ctx;
use crate::tasks::TaskRecord;

use super::routed::RoutedWrite;

fn record(index: &str, provided_ids: usize) -> TaskRecord {
    let mut record = TaskRecord::new(Some(index.to_string()), "documentDeletion");
    record
        .details
        .insert("providedIds".into(), serde_json::json!(provided_ids));
    record
}

/// `DELETE /indexes/{uid}/documents/{id}`.
pub(crate) fn delete_one(
    ctx: &Ctx,
    index: &str,
    id: &str,
    host: &mut dyn Host,
) -> (RoutedWrite, Step) {
    let topology = &ctx.config.topology;
    let shard = topology.shard_for_key(id);
    let mut task = record(index, 1);
    let calls = ctx
        .config
        .write_targets(shard)
        .map(|n| {
            task.share(n, 1);
            (
                n.id.clone(),
                ctx.call(n, "DELETE", ctx.path_and_query(), None),
            )
        })
        .collect();
    RoutedWrite::send(ctx, host, calls, [shard], task)
}

/// `POST /indexes/{uid}/documents/delete-batch`: each node gets the ids it holds.
pub(crate) fn delete_batch(
    ctx: &Ctx,
    index: &str,
    host: &mut dyn Host,
) -> Result<(RoutedWrite, Step), MeiliError> {
    let ids = match ctx.body_json()? {
        Value::Array(ids) => ids,
        other => {
            return Err(MeiliError::bad_request(
                "bad_request",
                format!(
                    "Invalid value type: expected an array, but found {}",
                    crate::plan::calls::kind_of(&other)
                ),
            ))
        }
    };
    let topology = &ctx.config.topology;
    let mut per_node: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut shards = Vec::new();
    let provided = ids.len();
    for id in ids {
        let Some(key) = canonical_key(&id) else {
            return Err(MeiliError::bad_request(
                "invalid_document_id",
                format!("Document identifier `{id}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."),
            ));
        };
        let shard = topology.shard_for_key(&key);
        shards.push(shard);
        for node in ctx.config.write_targets(shard) {
            per_node
                .entry(node.id.clone())
                .or_default()
                .push(id.clone());
        }
    }
    if per_node.is_empty() {
        // An empty list still makes a task, as on Meilisearch.
        if let Some(first) = ctx.nodes().next() {
            per_node.insert(first.id.clone(), Vec::new());
        }
    }
    let mut task = record(index, provided);
    let calls = per_node
        .into_iter()
        .filter_map(|(node_id, ids)| {
            let node = topology.node(&node_id)?;
            task.share(node, ids.len() as u64);
            let call = ctx.json_call(node, "POST", ctx.path_and_query(), &Value::Array(ids));
            Some((node_id, call))
        })
        .collect();
    Ok(RoutedWrite::send(ctx, host, calls, shards, task))
}
