use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::ok;
use crate::error::{MeiliError, Result};
use crate::params::{comma_list, query_usize, unknown_parameter};
use crate::state::SharedState;

const LIST_PARAMS: &[&str] = &[
    "limit",
    "from",
    "reverse",
    "batchUids",
    "uids",
    "canceledBy",
    "types",
    "statuses",
    "indexUids",
    "afterEnqueuedAt",
    "beforeEnqueuedAt",
    "afterStartedAt",
    "beforeStartedAt",
    "afterFinishedAt",
    "beforeFinishedAt",
];

pub async fn get_one(
    State(state): State<SharedState>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let uid: u64 = raw.parse().map_err(|_| {
        MeiliError::invalid("invalid_task_uids", format!("Invalid value in parameter `taskUid`: could not parse `{raw}` as a positive integer"))
    })?;
    let store = state.lock();
    match store.tasks.get(uid as usize) {
        Some(task) => Ok(ok(task.to_json())),
        None => Err(MeiliError::new(
            StatusCode::NOT_FOUND,
            "task_not_found",
            format!("Task `{uid}` not found."),
        )),
    }
}

/// `None` for `*` (no restriction).
fn list_filter(raw: &str) -> Option<Vec<String>> {
    let items = comma_list(raw);
    (!items.iter().any(|i| i == "*")).then_some(items)
}

pub async fn list(
    State(state): State<SharedState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let mut limit = 20usize;
    let mut from: Option<u64> = None;
    let mut reverse = false;
    let (mut uids, mut statuses, mut types, mut index_uids, mut batch_uids) =
        (None, None, None, None, None);
    for (k, v) in &q {
        match k.as_str() {
            "limit" => limit = query_usize(k, v, "invalid_task_limit")?,
            "from" => from = Some(query_usize(k, v, "invalid_task_from")? as u64),
            "reverse" => reverse = v == "true",
            "uids" => uids = list_filter(v),
            "batchUids" => batch_uids = list_filter(v),
            "statuses" => statuses = list_filter(v),
            "types" => types = list_filter(v),
            "indexUids" => index_uids = list_filter(v),
            // Date filters and canceledBy are accepted; nothing is ever canceled here.
            k if LIST_PARAMS.contains(&k) => {}
            other => return Err(unknown_parameter(other, LIST_PARAMS)),
        }
    }
    let store = state.lock();
    let matching: Vec<&crate::tasks::Task> = store
        .tasks
        .iter()
        .filter(|t| {
            uids.as_ref()
                .is_none_or(|u: &Vec<String>| u.contains(&t.uid.to_string()))
        })
        .filter(|t| {
            batch_uids.as_ref().is_none_or(|u: &Vec<String>| {
                t.batch_uid.is_some_and(|b| u.contains(&b.to_string()))
            })
        })
        .filter(|t| {
            statuses
                .as_ref()
                .is_none_or(|s: &Vec<String>| s.iter().any(|x| x == t.status.as_str()))
        })
        .filter(|t| {
            types
                .as_ref()
                .is_none_or(|s: &Vec<String>| s.iter().any(|x| x == t.task_type()))
        })
        .filter(|t| {
            index_uids
                .as_ref()
                .is_none_or(|s: &Vec<String>| t.index_uid.as_ref().is_some_and(|i| s.contains(i)))
        })
        .collect();
    let total = matching.len();
    let mut ordered: Vec<&crate::tasks::Task> = matching;
    if !reverse {
        ordered.reverse();
    }
    let start = from.map_or(0, |f| {
        ordered
            .iter()
            .position(|t| if reverse { t.uid >= f } else { t.uid <= f })
            .unwrap_or(ordered.len())
    });
    let page: Vec<&crate::tasks::Task> = ordered.iter().skip(start).take(limit).copied().collect();
    let next = ordered.get(start + limit).map(|t| t.uid);
    let results: Vec<Value> = page.iter().map(|t| t.to_json()).collect();
    Ok(ok(json!({
        "results": results,
        "total": total,
        "limit": limit,
        "from": page.first().map(|t| t.uid),
        "next": next,
    })))
}

pub async fn cancel(Query(q): Query<Vec<(String, String)>>) -> Result<Response> {
    if q.iter().all(|(k, _)| k == "customMetadata") {
        return Err(MeiliError::invalid(
            "missing_task_filters",
            "Query parameters to filter the tasks to cancel are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`.",
        ));
    }
    Err(MeiliError::new(
        StatusCode::NOT_IMPLEMENTED,
        "bad_request",
        "Task cancelation is not supported by the miroir test node.",
    ))
}
