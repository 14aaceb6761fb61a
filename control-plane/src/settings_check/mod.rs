//! Every node got the same schema change (index creation, update, swap, settings), so once it
//! finished on every node they must all hold the same primary key and settings. They are read
//! back and compared; a difference is recorded in the index registry (`GET /_miroir/indexes`),
//! counted in the metrics, logged, and put on the task (`x-miroir-disagreeing-nodes`). A node
//! that cannot be read makes the check unverified, never inconsistent.

use std::collections::BTreeMap;
use std::time::Duration;

use miroir_topology::Topology;
use serde_json::Value;

use crate::app::App;
use crate::metrics::labels;
use crate::nodes;
use crate::store::{CheckStatus, IndexEntry, SettingsCheck, StoredTask};
use crate::time;

pub mod converge;

/// What one node holds of an index.
#[derive(Clone, Debug, PartialEq)]
pub enum Read {
    /// `{"primaryKey", "settings"}`.
    Held(Value),
    /// The node does not have the index.
    Missing,
    /// The node could not be read.
    Unreachable,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub status: CheckStatus,
    /// Nodes holding the majority's value (the first node's side on a tie), in topology order.
    pub agreeing: Vec<String>,
    pub disagreeing: Vec<String>,
    pub unreachable: Vec<String>,
    /// The majority's value; `None` when the majority does not have the index.
    pub reference: Option<Value>,
}

/// Groups the nodes by what they hold. `None` when every node that answered lacks the index
/// (deleted, renamed away): there is nothing to compare.
pub fn compare(reads: &[(String, Read)]) -> Option<Comparison> {
    let mut groups: Vec<(Option<&Value>, Vec<String>)> = Vec::new();
    let mut unreachable = Vec::new();
    for (node, read) in reads {
        let held = match read {
            Read::Held(value) => Some(value),
            Read::Missing => None,
            Read::Unreachable => {
                unreachable.push(node.clone());
                continue;
            }
        };
        match groups.iter_mut().find(|(value, _)| *value == held) {
            Some((_, nodes)) => nodes.push(node.clone()),
            None => groups.push((held, vec![node.clone()])),
        }
    }
    let mut reference = 0;
    for (i, (_, nodes)) in groups.iter().enumerate() {
        if nodes.len() > groups[reference].1.len() {
            reference = i;
        }
    }
    if groups.len() == 1 && groups[0].0.is_none() {
        return None;
    }
    let order = |node: &String| reads.iter().position(|(n, _)| n == node);
    let mut disagreeing: Vec<String> = groups
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != reference)
        .flat_map(|(_, (_, nodes))| nodes.iter().cloned())
        .collect();
    disagreeing.sort_by_key(order);
    let status = if !disagreeing.is_empty() {
        CheckStatus::Inconsistent
    } else if !unreachable.is_empty() {
        CheckStatus::Unverified
    } else {
        CheckStatus::Consistent
    };
    let (value, agreeing) = groups
        .get(reference)
        .map(|(value, nodes)| (value.cloned(), nodes.clone()))
        .unwrap_or_default();
    Some(Comparison {
        status,
        agreeing,
        disagreeing,
        unreachable,
        reference: value,
    })
}

/// The indexes whose schema `task` may have changed, and whether only an index never checked
/// is worth checking (a document addition changes no settings, but may have created the index).
pub(crate) fn changed_indexes(task: &StoredTask) -> (Vec<String>, bool) {
    let own = task.record.index_uid.iter().cloned();
    let details = task.task.get("details");
    match task.record.kind.as_str() {
        "settingsUpdate" | "indexCreation" => (own.collect(), false),
        // A rename leaves the old uid empty on every node, which `compare` skips.
        "indexUpdate" => {
            let renamed = details
                .and_then(|d| d.get("newIndexUid"))
                .and_then(Value::as_str)
                .map(str::to_string);
            (own.chain(renamed).collect(), false)
        }
        "indexSwap" => {
            let swapped = details
                .and_then(|d| d.get("swaps"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|swap| swap.get("indexes").and_then(Value::as_array))
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string);
            (own.chain(swapped).collect(), false)
        }
        "documentAdditionOrUpdate" => (own.collect(), true),
        _ => (Vec::new(), false),
    }
}

/// Checks the indexes changed by the tasks at `finished` in `tasks` (which just finished on
/// every node), each index once for the latest of them, and records the outcomes. The task a
/// check was made for gets the disagreeing nodes.
pub async fn after_finished(
    app: &App,
    tasks: &mut [StoredTask],
    finished: &[usize],
    authorization: Option<&str>,
    timeout: Duration,
) {
    // Index → position of the latest task that changed it; document additions apart, since
    // they only count for an index never checked.
    let mut latest: BTreeMap<String, usize> = BTreeMap::new();
    let mut additions: BTreeMap<String, usize> = BTreeMap::new();
    for &i in finished {
        let (indexes, only_if_unchecked) = changed_indexes(&tasks[i]);
        let map = if only_if_unchecked {
            &mut additions
        } else {
            &mut latest
        };
        for index in indexes {
            let position = map.entry(index).or_insert(i);
            if tasks[i].uid > tasks[*position].uid {
                *position = i;
            }
        }
    }
    for (index, i) in additions {
        if latest.contains_key(&index) {
            continue;
        }
        // An unreadable registry only costs a check.
        let checked = matches!(
            app.store.get_index(&index).await,
            Ok(Some(IndexEntry {
                settings: Some(_),
                ..
            }))
        );
        if !checked {
            latest.insert(index, i);
        }
    }
    if latest.is_empty() {
        return;
    }
    // The tasks are stored finished only after their checks: a node that hangs must not hold
    // them back longer than a health check would wait for it.
    let timeout = timeout.min(Duration::from_millis(app.config.health.timeout_ms));
    let topology = match app.store.load_topology().await {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "settings not checked: store unreachable");
            return;
        }
    };
    for (index, i) in latest {
        let Some(comparison) = check(app, &topology, &index, authorization, timeout).await else {
            continue;
        };
        record(app, &topology, &index, tasks[i].uid, &comparison).await;
        if comparison.status == CheckStatus::Inconsistent {
            app.suspect_settings(&index);
        }
        let task = &mut tasks[i];
        for node in comparison.disagreeing {
            if !task.disagreeing_nodes.contains(&node) {
                task.disagreeing_nodes.push(node);
            }
        }
    }
}

/// Reads `index` from every node of the topology and compares. `None`: nothing to compare, or
/// a later change of the index is still pending on a node (its own check will tell).
async fn check(
    app: &App,
    topology: &Topology,
    index: &str,
    authorization: Option<&str>,
    timeout: Duration,
) -> Option<Comparison> {
    let mut calls = tokio::task::JoinSet::new();
    for node in &topology.nodes {
        let (http, id, address) = (app.http.clone(), node.id.clone(), node.address.clone());
        let (index, authorization) = (index.to_string(), authorization.map(str::to_string));
        calls.spawn(async move {
            let read =
                nodes::index_schema(&http, &address, authorization.as_deref(), &index, timeout)
                    .await;
            (id, read)
        });
    }
    let mut answers: BTreeMap<String, Read> = BTreeMap::new();
    while let Some(joined) = calls.join_next().await {
        let Ok((node, read)) = joined else { continue };
        let read = match read {
            Ok(Some(value)) => Read::Held(value),
            Ok(None) => Read::Missing,
            Err(e) => {
                tracing::debug!(node, index, error = %e, "index settings not read");
                Read::Unreachable
            }
        };
        answers.insert(node, read);
    }
    let reads: Vec<(String, Read)> = topology
        .nodes
        .iter()
        .map(|n| {
            let read = answers.remove(&n.id).unwrap_or(Read::Unreachable);
            (n.id.clone(), read)
        })
        .collect();
    let comparison = compare(&reads)?;
    if comparison.status == CheckStatus::Inconsistent
        && change_pending(app, topology, index, authorization, timeout).await
    {
        tracing::debug!(
            index,
            "index settings differ while a later change is pending: left to its check"
        );
        return None;
    }
    Some(comparison)
}

/// Whether any node still has a schema change of `index` to process (nodes process their
/// queues at their own pace, so a later change may be applied on some nodes only).
async fn change_pending(
    app: &App,
    topology: &Topology,
    index: &str,
    authorization: Option<&str>,
    timeout: Duration,
) -> bool {
    let mut calls = tokio::task::JoinSet::new();
    for node in &topology.nodes {
        let (http, address) = (app.http.clone(), node.address.clone());
        let (index, authorization) = (index.to_string(), authorization.map(str::to_string));
        calls.spawn(async move {
            nodes::schema_change_pending(&http, &address, authorization.as_deref(), &index, timeout)
                .await
        });
    }
    let mut pending = false;
    while let Some(joined) = calls.join_next().await {
        pending |= matches!(joined, Ok(Ok(true)));
    }
    pending
}

/// Counts, logs, and stores the outcome on the index's registry entry. An unverified check does
/// not replace a recorded inconsistency: only a check that reads every node can clear it.
async fn record(
    app: &App,
    topology: &Topology,
    index: &str,
    task_uid: u32,
    comparison: &Comparison,
) {
    let status = comparison.status;
    app.metrics
        .index_settings_checks
        .get_or_create(&labels(&[("result", status.as_str())]))
        .inc();
    match status {
        CheckStatus::Consistent => {
            tracing::info!(index, task_uid, "index settings identical on every node")
        }
        CheckStatus::Inconsistent => tracing::warn!(
            index,
            task_uid,
            agreeing = ?comparison.agreeing,
            disagreeing = ?comparison.disagreeing,
            unreachable = ?comparison.unreachable,
            "index settings differ between nodes"
        ),
        CheckStatus::Unverified => tracing::warn!(
            index,
            task_uid,
            unreachable = ?comparison.unreachable,
            "index settings not verified: nodes could not be read"
        ),
    }
    let entry = match app.store.get_index(index).await {
        Ok(entry) => entry,
        Err(e) => {
            tracing::warn!(index, error = %e, "settings check not recorded");
            return;
        }
    };
    let mut entry = entry.unwrap_or_else(|| IndexEntry {
        uid: index.to_string(),
        primary_key: None,
        shards: topology.shards,
        settings: None,
    });
    let recorded = entry.settings.as_ref().map(|s| s.status);
    if status == CheckStatus::Unverified && recorded == Some(CheckStatus::Inconsistent) {
        return;
    }
    if status == CheckStatus::Consistent {
        entry.primary_key = comparison
            .reference
            .as_ref()
            .and_then(|r| r.get("primaryKey"))
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    entry.settings = Some(SettingsCheck {
        status,
        disagreeing_nodes: comparison.disagreeing.clone(),
        unreachable_nodes: comparison.unreachable.clone(),
        checked_at: time::now(),
        task_uid,
    });
    if let Err(e) = app.store.put_index(&entry).await {
        tracing::warn!(index, error = %e, "settings check not recorded");
    }
}

#[cfg(test)]
mod tests;
