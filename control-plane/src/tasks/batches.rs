//! Meilisearch's `/batches` routes over the cluster-wide tasks. Each task is processed as its own
//! batch (as a node started with `--experimental-max-number-of-batched-tasks 1` would): the batch
//! uid is the task uid, a batch exists once its task started, and its details, dates and
//! duration are the task's. Node batches are not shown: a cluster-wide task spans many.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use tracing::Instrument;

use super::query::{page, parse_list};
use super::routes::{authorize, fresh_tasks};
use crate::app::App;
use crate::error::{ApiError, Failure};
use crate::store::StoredTask;

/// Task types a Meilisearch node never batches with another task.
const ALONE: &[&str] = &[
    "taskCancelation",
    "taskDeletion",
    "dumpCreation",
    "snapshotCreation",
    "indexSwap",
    "upgradeDatabase",
    "export",
    "indexCompaction",
    "networkTopologyChange",
];

fn str_field<'a>(task: &'a Value, field: &str) -> Option<&'a str> {
    task.get(field).and_then(Value::as_str)
}

/// The batch of `task`, `None` while the task has not started (enqueued).
pub fn batch_view(task: &StoredTask) -> Option<Value> {
    let object = &task.task;
    let status = str_field(object, "status")?;
    if status == "enqueued" {
        return None;
    }
    let kind = str_field(object, "type").unwrap_or_default();
    let progress = if status == "processing" {
        let total = task.record.node_tasks.len().max(1);
        let finished = task
            .node_objects
            .values()
            .filter(|o| str_field(o, "status").is_some_and(miroir_topology::tasks::is_terminal))
            .count()
            .min(total);
        json!({
            "steps": [{"currentStep": "processing tasks", "finished": finished, "total": total}],
            "percentage": (finished as f64 * 100.0 / total as f64) as f32,
        })
    } else {
        Value::Null
    };
    let mut index_uids = BTreeMap::new();
    if let Some(index) = str_field(object, "indexUid") {
        index_uids.insert(index.to_string(), 1);
    }
    let strategy = if ALONE.contains(&kind) {
        format!(
            "created batch containing only task with id {} of type `{kind}` that cannot be batched with any other task.",
            task.uid
        )
    } else {
        "batched up to configured batch limit of 1 tasks".to_string()
    };
    let started_at = object
        .get("startedAt")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| json!(task.registered_at));
    Some(json!({
        "uid": task.uid,
        "progress": progress,
        "details": object.get("details").cloned().unwrap_or_else(|| json!({})),
        "stats": {
            "totalNbTasks": 1,
            "status": {status: 1},
            "types": {kind: 1},
            "indexUids": index_uids,
        },
        "duration": object.get("duration").cloned().unwrap_or(Value::Null),
        "startedAt": started_at,
        "finishedAt": object.get("finishedAt").cloned().unwrap_or(Value::Null),
        "batchStrategy": strategy,
    }))
}

/// `GET /batches`: the filters and paging of `GET /tasks`, over the tasks that started.
pub async fn list_batches(
    State(app): State<Arc<App>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    async move {
        let auth = authorize(&app, &headers).await?;
        let scope = super::scope::of(&app, auth.as_deref()).await?;
        let query = parse_list(&params)?;
        let tasks = fresh_tasks(&app, auth.as_deref(), &scope).await?;
        let mut batches: BTreeMap<u64, Value> = BTreeMap::new();
        let mut started = Vec::new();
        for task in &tasks {
            if let Some(batch) = batch_view(task) {
                batches.insert(u64::from(task.uid), batch);
                started.push(task.task.clone());
            }
        }
        let mut answer = page(&query, started);
        if let Some(Value::Array(results)) = answer.get_mut("results") {
            for result in results.iter_mut() {
                let uid = result.get("uid").and_then(Value::as_u64).unwrap_or(0);
                *result = batches.remove(&uid).unwrap_or(Value::Null);
            }
        }
        Ok(Json(answer))
    }
    .instrument(tracing::info_span!("list_batches"))
    .await
}

fn batch_not_found(uid: u32) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "batch_not_found",
        "invalid_request",
        format!("Batch `{uid}` not found."),
    )
}

/// `GET /batches/{uid}`.
pub async fn get_batch(
    State(app): State<Arc<App>>,
    Path(uid): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    async move {
        let auth = authorize(&app, &headers).await?;
        let scope = super::scope::of(&app, auth.as_deref()).await?;
        let uid: u32 = uid.parse().map_err(|_| {
            ApiError::invalid(
                "invalid_batch_uids",
                format!("Batch uid `{uid}` is invalid. It should only contain numeric characters."),
            )
        })?;
        let task = app
            .store
            .get_task(uid)
            .await
            .map_err(ApiError::store)?
            .filter(|t| scope.shows(t))
            .ok_or_else(|| batch_not_found(uid))?;
        let task = if task.terminal {
            task
        } else {
            super::registry::refresh(
                &app,
                vec![task.clone()],
                auth.as_deref(),
                app.read_timeout(),
            )
            .await?
            .pop()
            .unwrap_or(task)
        };
        Ok(Json(batch_view(&task).ok_or_else(|| batch_not_found(uid))?))
    }
    .instrument(tracing::info_span!("get_batch"))
    .await
}
