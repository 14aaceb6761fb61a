//! Task uids handed to clients, until the control plane's cluster-wide registry exists.
//!
//! A write produces one task on each node it reached, and node uids differ. The filter gives the
//! client one uid and remembers which node tasks it stands for, in Envoy's process-wide shared
//! data (so every worker of this Envoy knows it). Scope: one Envoy process; an Envoy restart
//! forgets them, and another Envoy of a fleet does not know them. The newest
//! [`RETAINED_TASKS`] are kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::host::Host;

const NEXT_KEY: &str = "miroir/tasks/next";
pub const RETAINED_TASKS: u32 = 100_000;
const CAS_ATTEMPTS: usize = 64;

fn task_key(uid: u32) -> String {
    format!("miroir/tasks/{uid}")
}

/// What one client-visible task stands for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    pub index_uid: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    /// Node id → the node's task uids, in enqueue order.
    pub nodes: BTreeMap<String, Vec<u64>>,
}

/// Allocates the next uid (strictly increasing in this Envoy) and stores the record under it.
pub fn register(host: &mut dyn Host, record: &TaskRecord) -> Option<u32> {
    let uid = allocate(host)?;
    let bytes = serde_json::to_vec(record).ok()?;
    if !host.shared_set(&task_key(uid), &bytes, 0) {
        return None;
    }
    if let Some(old) = uid.checked_sub(RETAINED_TASKS) {
        // Shared data has no delete that every SDK version offers; an empty value frees the memory.
        host.shared_set(&task_key(old), b"", 0);
    }
    Some(uid)
}

fn allocate(host: &mut dyn Host) -> Option<u32> {
    for _ in 0..CAS_ATTEMPTS {
        let (value, cas) = host.shared_get(NEXT_KEY);
        let next = value
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(0);
        let following = next.checked_add(1)?;
        if host.shared_set(NEXT_KEY, following.to_string().as_bytes(), cas) {
            return Some(next);
        }
    }
    None
}

pub fn lookup(host: &dyn Host, uid: u32) -> Option<TaskRecord> {
    let (value, _) = host.shared_get(&task_key(uid));
    serde_json::from_slice(&value?).ok()
}

/// The client's view of a task from its node tasks: failed if any failed (with that node's
/// error), canceled if any was canceled, enqueued/processing while any is, succeeded when all are.
pub fn aggregate(uid: u32, record: &TaskRecord, node_tasks: &[Value]) -> Value {
    let status_of = |t: &Value| {
        t.get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let statuses: Vec<String> = node_tasks.iter().map(status_of).collect();
    let any = |s: &str| statuses.iter().any(|x| x == s);
    let status = if any("failed") {
        "failed"
    } else if any("canceled") {
        "canceled"
    } else if any("processing") || (any("enqueued") && any("succeeded")) {
        "processing"
    } else if any("enqueued") {
        "enqueued"
    } else {
        "succeeded"
    };
    let error = node_tasks
        .iter()
        .find(|t| status_of(t) == "failed")
        .and_then(|t| t.get("error").cloned())
        .unwrap_or(Value::Null);

    let mut details = Map::new();
    for task in node_tasks {
        if let Some(Value::Object(d)) = task.get("details") {
            for (key, value) in d {
                match (details.get(key), value) {
                    (Some(Value::Number(a)), Value::Number(b)) => {
                        let sum = a.as_u64().unwrap_or(0) + b.as_u64().unwrap_or(0);
                        details.insert(key.clone(), json!(sum));
                    }
                    (None, v) => {
                        details.insert(key.clone(), v.clone());
                    }
                    _ => {}
                }
            }
        }
    }

    let times = |field: &str| -> Vec<String> {
        node_tasks
            .iter()
            .filter_map(|t| t.get(field).and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    let terminal = matches!(status, "succeeded" | "failed" | "canceled");
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
            .filter_map(|t| {
                t.get("duration")
                    .and_then(Value::as_str)
                    .and_then(parse_duration)
            })
            .reduce(f64::max)
            .map(|secs| format!("PT{secs}S"))
    } else {
        None
    };

    json!({
        "uid": uid,
        "batchUid": Value::Null,
        "indexUid": record.index_uid,
        "status": status,
        "type": record.kind,
        "canceledBy": Value::Null,
        "details": details,
        "error": error,
        "duration": duration,
        "enqueuedAt": enqueued_at,
        "startedAt": started_at,
        "finishedAt": finished_at,
    })
}

/// Seconds of an ISO-8601 duration as Meilisearch writes it (`PT0.012S`, `PT1M2.5S`).
fn parse_duration(text: &str) -> Option<f64> {
    let rest = text.strip_prefix("PT")?.strip_suffix('S')?;
    let (minutes, seconds) = match rest.split_once('M') {
        Some((m, s)) => (m.parse::<f64>().ok()?, s),
        None => (0.0, rest),
    };
    Some(minutes * 60.0 + seconds.parse::<f64>().ok()?)
}

#[cfg(test)]
mod tests;
