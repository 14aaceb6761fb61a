//! Cluster-wide tasks: what one client-visible task stands for, and how its Meilisearch task
//! object is computed from the node tasks behind it.
//!
//! Shared by the filter (which registers a task after a write reached the nodes, and reads it back
//! locally while the control plane is unreachable) and the control plane (which owns the registry).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Largest task uid: Meilisearch's task uids are `u32`, and SDKs parse them as such.
pub const MAX_TASK_UID: u32 = u32::MAX;

/// One node task behind a client task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeTask {
    pub node: String,
    /// The node's replica group when the write was made: counts are taken from one group.
    pub group: String,
    pub task_uid: u64,
}

/// What one client-visible task stands for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    pub index_uid: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    /// Details the request itself determines (`receivedDocuments`, `providedIds`,
    /// `originalFilter`, ...). They win over what the nodes report, since each node only saw a part.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
    /// Copies of every document inside one replica group (the replication factor when the write
    /// was made): node counts summed over a group are divided by it.
    #[serde(default = "one")]
    pub copies: u32,
    /// In enqueue order.
    pub node_tasks: Vec<NodeTask>,
    /// The write's `customMetadata` query parameter, shown on the task as Meilisearch shows it
    /// (absent when not given, `""` when given empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<String>,
    /// A write routed by shard: the documents (or ids) each node was sent, so that the counts of
    /// a node that did not take it (the write was acknowledged without it) are made up from the
    /// others' ([`aggregate`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<NodeShare>,
    /// The primary key a document write was routed by: the control plane's index registry
    /// learns it from there (never shown on the task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    /// The schema change's intent, recorded before any node saw it ([`Intent`]): its
    /// registration closes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<u64>,
}

/// A schema change (settings, an index's creation, update or deletion, an API key's creation,
/// update or deletion) the filter records with the control plane before any node sees it: one
/// the filter could not take to every node (its Envoy stopped on the way) is then taken there by
/// the control plane's leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    #[serde(rename = "type")]
    pub kind: String,
    /// What the change is to: the index's uid, or [`KEYS_TARGET`] for an API key. A later
    /// change of the same target supersedes it.
    pub target: String,
    /// The calls, in order: each goes to every node (or to `nodes`) once the previous one did.
    pub phases: Vec<IntentCall>,
}

/// One call of an [`Intent`], the same for every node it goes to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentCall {
    pub method: String,
    /// Path and query.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Only these nodes (absent: every node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
}

/// The control plane's answer to an intent: its id, or none when it was not recorded (the
/// client's key may not make the change: the nodes will say so).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentRecorded {
    pub intent: Option<u64>,
}

/// The kinds of change recorded as intents: applying one again leaves the nodes as once, so a
/// node that took it already is not hurt by the control plane taking it to the others. (A swap
/// applied twice is undone; deletions by filter and edits touch documents written since.)
pub const INTENT_KINDS: &[&str] = &[
    "settingsUpdate",
    "indexCreation",
    "indexUpdate",
    "indexDeletion",
    KEY_CREATION,
    KEY_UPDATE,
    KEY_DELETION,
];

/// The kinds of change recorded as intents that are never sent again as such: applied twice, a
/// swap is undone, and a deletion by filter, a clear or an edit would touch documents written
/// since. One left unfinished is completed by the in-sync rule instead: the nodes whose task
/// queue does not show it leave the in-sync set and are repaired from those that took it (or,
/// where that would leave a shard without an in-sync copy that took it, get it sent to them).
pub const COMPLETED_KINDS: &[&str] = &["indexSwap", "documentDeletion", "documentEdition"];

/// The [`Intent`] kinds of API key changes (no Meilisearch task stands for them).
pub const KEY_CREATION: &str = "keyCreation";
pub const KEY_UPDATE: &str = "keyUpdate";
pub const KEY_DELETION: &str = "keyDeletion";

/// The [`Intent::target`] of every API key change: one key is named by its uid or by its value,
/// so any later key change supersedes an earlier one (a creation replayed after the key's
/// deletion would bring it back).
pub const KEYS_TARGET: &str = "keys";

/// What one node was sent of a write routed by shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeShare {
    pub node: String,
    pub group: String,
    pub documents: u64,
}

fn one() -> u32 {
    1
}

impl TaskRecord {
    pub fn new(index_uid: Option<String>, kind: &str) -> Self {
        TaskRecord {
            index_uid,
            kind: kind.to_string(),
            details: Map::new(),
            copies: 1,
            node_tasks: Vec::new(),
            custom_metadata: None,
            shares: Vec::new(),
            primary_key: None,
            intent: None,
        }
    }

    /// Records that `node` was sent `documents` of this write.
    pub fn share(&mut self, node: &crate::Node, documents: u64) {
        self.shares.push(NodeShare {
            node: node.id.clone(),
            group: node.group.clone(),
            documents,
        });
    }
}

/// The body of the filter's registration call to the control plane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRegistration {
    /// Set when the filter already answered the client with a uid from its leased block (the
    /// control plane was unreachable) and now hands the record over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_uid: Option<u32>,
    pub record: TaskRecord,
    /// Set when an in-sync copy of a shard the write touched did not take it: the control plane
    /// takes those copies out of the in-sync set (in the store) before it answers, or refuses
    /// the registration when that would leave a shard below `minCopies`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<Missed>,
}

/// Which copies a write missed, for the in-sync rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Missed {
    /// The epoch the filter routed the write by.
    pub epoch: u64,
    /// The shards the write touched; absent: every shard (settings, index and filter changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Vec<u32>>,
    /// The nodes that did not take their part: their copies of the touched shards missed it.
    pub nodes: Vec<String>,
}

/// What the in-sync rule makes of a write some copy missed, against one topology: the copies to
/// take out of the in-sync set, or the shards left with fewer than `minCopies` in-sync copies
/// that took it. The filter applies it to its epoch before registering; the control plane again
/// to the stored topology, which may have marked copies since.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InSyncVerdict {
    /// (group, shard, node) of every in-sync copy that missed the write.
    pub to_mark: Vec<(String, u32, String)>,
    /// Shards with fewer than `minCopies` in-sync copies that took the write, or with a copy a
    /// job is filling or replacing that missed it.
    pub short: Vec<u32>,
}

impl Missed {
    pub fn verdict(&self, topology: &crate::Topology) -> InSyncVerdict {
        let min = usize::try_from(topology.shard_map.min_copies()).unwrap_or(usize::MAX);
        let map = topology.map();
        let mut verdict = InSyncVerdict::default();
        let every: Vec<u32>;
        let shards = match &self.shards {
            Some(list) => list.as_slice(),
            None => {
                every = (0..topology.shards).collect();
                &every
            }
        };
        let took = |node: &str| !self.nodes.iter().any(|n| n == node);
        for &shard in shards {
            let mut in_sync_took = 0usize;
            let mut pending_missed = false;
            for group in map.groups.keys() {
                for copy in map.copies(group, shard) {
                    match (copy.state, took(&copy.node)) {
                        (crate::CopyState::Active, true) => {
                            in_sync_took = in_sync_took.saturating_add(1)
                        }
                        (crate::CopyState::Active, false) => {
                            verdict
                                .to_mark
                                .push((group.clone(), shard, copy.node.clone()))
                        }
                        (crate::CopyState::Copying | crate::CopyState::Leaving, false) => {
                            pending_missed = true
                        }
                        _ => {}
                    }
                }
            }
            if in_sync_took < min || pending_missed {
                verdict.short.push(shard);
            }
        }
        verdict
    }
}

/// The control plane's answer to a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub task_uid: u32,
}

/// A block of uids reserved for one Envoy, used only while the control plane is unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UidLease {
    pub first: u32,
    pub last: u32,
}

/// Node task fields that count documents or tasks: summed over one replica group, divided by
/// the copies a group holds.
const COUNTED: &[&str] = &[
    "receivedDocuments",
    "indexedDocuments",
    "deletedDocuments",
    "editedDocuments",
    "matchedTasks",
    "canceledTasks",
    "deletedTasks",
    "providedIds",
];

/// The status of a set of node tasks: failed if any failed, canceled if any was canceled,
/// enqueued/processing while any is, succeeded when all are.
pub fn status_of(node_statuses: &[&str]) -> &'static str {
    let any = |s: &str| node_statuses.contains(&s);
    if any("failed") {
        "failed"
    } else if any("canceled") {
        "canceled"
    } else if any("processing") || (any("enqueued") && any("succeeded")) {
        "processing"
    } else if any("enqueued") || node_statuses.is_empty() {
        "enqueued"
    } else {
        "succeeded"
    }
}

pub fn is_terminal(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled")
}

/// A node task's error as the client's filter named things (a deletion by a filter naming a
/// reserved field fails on the nodes with the stand-in in its message).
fn restore_error(mut error: Value) -> Value {
    if let Some(Value::String(message)) = error.get_mut("message") {
        if let Some(restored) = crate::reserved::restore_stand_ins(message) {
            *message = restored;
        }
    }
    error
}

/// The client's view of a task. `node_tasks` pairs each node task object (as `GET
/// /tasks/{uid}` on the node returned it) with the node it came from.
pub fn aggregate(uid: u32, record: &TaskRecord, node_tasks: &[(String, Value)]) -> Value {
    let field = |t: &Value, f: &str| t.get(f).and_then(Value::as_str).map(str::to_string);
    let statuses: Vec<String> = node_tasks
        .iter()
        .map(|(_, t)| field(t, "status").unwrap_or_default())
        .collect();
    let status = status_of(&statuses.iter().map(String::as_str).collect::<Vec<_>>());
    let error = node_tasks
        .iter()
        .find(|(_, t)| field(t, "status").as_deref() == Some("failed"))
        .and_then(|(_, t)| t.get("error").cloned())
        .map(restore_error)
        .unwrap_or(Value::Null);

    let terminal = is_terminal(status);
    let times =
        |f: &str| -> Vec<String> { node_tasks.iter().filter_map(|(_, t)| field(t, f)).collect() };
    // RFC 3339 timestamps in UTC of equal precision compare correctly as strings.
    let enqueued_at = times("enqueuedAt").into_iter().min();
    let started_at = if statuses.iter().all(|s| s == "enqueued") {
        None
    } else {
        times("startedAt").into_iter().min()
    };
    let finished_at = if terminal {
        times("finishedAt").into_iter().max()
    } else {
        None
    };
    let duration = if terminal {
        node_tasks
            .iter()
            .filter_map(|(_, t)| field(t, "duration").as_deref().and_then(parse_duration))
            .reduce(f64::max)
            .map(format_duration)
    } else {
        None
    };

    let mut object = json!({
        "uid": uid,
        "batchUid": Value::Null,
        "indexUid": record.index_uid,
        "status": status,
        "type": record.kind,
        "canceledBy": Value::Null,
        "details": details(record, node_tasks, terminal),
        "error": error,
        "duration": duration,
        "enqueuedAt": enqueued_at,
        "startedAt": started_at,
        "finishedAt": finished_at,
    });
    // The record's own (the filter saw the query string), else what a node task of the
    // record's kind carries.
    let custom_metadata = record.custom_metadata.clone().or_else(|| {
        node_tasks
            .iter()
            .filter(|(_, t)| t.get("type").and_then(Value::as_str) == Some(record.kind.as_str()))
            .find_map(|(_, t)| field(t, "customMetadata"))
    });
    if let Some(meta) = custom_metadata {
        object["customMetadata"] = json!(meta);
    }
    object
}

/// Non-counted fields from the first node task that has them, counted fields summed over the
/// first replica group (by name) and divided by the copies, then the request's own details.
/// Counts a node fills in only when its task ends stay `null` until the whole task ends.
fn details(record: &TaskRecord, node_tasks: &[(String, Value)], terminal: bool) -> Value {
    let group_of: BTreeMap<&str, &str> = record
        .node_tasks
        .iter()
        .map(|t| (t.node.as_str(), t.group.as_str()))
        .collect();
    let counted_group = record.node_tasks.iter().map(|t| t.group.as_str()).min();
    let mut out = Map::new();
    let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
    // A write may also have created the index and made `_miroir_shard` filterable on some
    // nodes: those tasks count for the status, not for the details.
    let of_kind = |t: &Value| t.get("type").and_then(Value::as_str) == Some(record.kind.as_str());
    let any_of_kind = node_tasks.iter().any(|(_, t)| of_kind(t));
    for (node, task) in node_tasks
        .iter()
        .filter(|(_, t)| !any_of_kind || of_kind(t))
    {
        let Some(Value::Object(d)) = task.get("details") else {
            continue;
        };
        let in_counted_group = group_of.get(node.as_str()).copied() == counted_group;
        for (key, value) in d {
            if let Some(counted) = COUNTED.iter().find(|c| **c == key) {
                if let Some(n) = value.as_u64() {
                    if in_counted_group {
                        let sum = sums.entry(counted).or_default();
                        *sum = sum.saturating_add(n);
                    }
                } else {
                    out.entry(key.clone()).or_insert(Value::Null);
                }
            } else {
                out.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    let copies = u64::from(record.copies.max(1));
    // Nodes of the counted group sent a share of the write that gave no task (it was
    // acknowledged without them): their counts in proportion to the shares of those that did.
    let share = |with_task: bool| -> u64 {
        record
            .shares
            .iter()
            .filter(|s| Some(s.group.as_str()) == counted_group)
            .filter(|s| group_of.contains_key(s.node.as_str()) == with_task)
            .fold(0u64, |total, s| total.saturating_add(s.documents))
    };
    let (reported, missing) = (share(true), share(false));
    for (_, sum) in sums.iter_mut() {
        if missing > 0 && reported > 0 {
            let made_up = u128::from(*sum)
                .saturating_mul(u128::from(missing))
                .checked_div(u128::from(reported))
                .unwrap_or(0);
            *sum = sum.saturating_add(u64::try_from(made_up).unwrap_or(u64::MAX));
        }
    }
    for (key, sum) in sums {
        let value = if out.get(key).is_some_and(Value::is_null) && !terminal {
            Value::Null
        } else {
            json!(sum.checked_div(copies).unwrap_or(sum))
        };
        out.insert(key.to_string(), value);
    }
    for (key, value) in &record.details {
        out.insert(key.clone(), value.clone());
    }
    Value::Object(out)
}

/// Seconds of an ISO-8601 duration as Meilisearch writes it (`PT0.012S`, `PT1M2.5S`).
pub fn parse_duration(text: &str) -> Option<f64> {
    let rest = text.strip_prefix("PT")?.strip_suffix('S')?;
    let (minutes, seconds) = match rest.split_once('M') {
        Some((m, s)) => (m.parse::<f64>().ok()?, s),
        None => (0.0, rest),
    };
    Some(minutes * 60.0 + seconds.parse::<f64>().ok()?)
}

pub fn format_duration(secs: f64) -> String {
    format!("PT{secs}S")
}

#[cfg(test)]
mod tests;
