//! `/tasks` (list, get, cancel, delete) and `/batches`, with Meilisearch 1.50's filters,
//! validation messages and answers.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{ok, validate_index_uid};
use crate::error::{MeiliError, Result};
use crate::params::{comma_list, query_bool, query_usize, unknown_parameter};
use crate::state::SharedState;
use crate::tasks::{enqueue_with_details, Payload, Task};
use crate::time::{iso_duration, parse_expiration, rfc3339};

/// The filters of `GET /tasks`, in Meilisearch's order (also used by `GET /batches`).
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

/// The filters of `POST /tasks/cancel` and `DELETE /tasks`: no paging.
const FILTER_PARAMS: &[&str] = &[
    "uids",
    "batchUids",
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

const STATUSES: &[&str] = &["enqueued", "processing", "succeeded", "failed", "canceled"];

pub const TYPES: &[&str] = &[
    "documentAdditionOrUpdate",
    "documentEdition",
    "documentDeletion",
    "settingsUpdate",
    "indexCreation",
    "indexDeletion",
    "indexUpdate",
    "indexSwap",
    "taskCancelation",
    "taskDeletion",
    "dumpCreation",
    "snapshotCreation",
    "export",
    "upgradeDatabase",
    "indexCompaction",
    "networkTopologyChange",
    "dsrUpdate",
    "dsrClear",
];

/// A task query's filters; `None` (or `*`) restricts nothing.
#[derive(Debug, Default, Clone)]
pub struct TaskFilter {
    uids: Option<Vec<u64>>,
    batch_uids: Option<Vec<u64>>,
    canceled_by: Option<Vec<u64>>,
    types: Option<Vec<String>>,
    statuses: Option<Vec<String>>,
    index_uids: Option<Vec<String>>,
    /// (after, before) bounds on enqueuedAt, startedAt and finishedAt.
    enqueued: (Option<SystemTime>, Option<SystemTime>),
    started: (Option<SystemTime>, Option<SystemTime>),
    finished: (Option<SystemTime>, Option<SystemTime>),
    any: bool,
}

fn in_bounds(
    t: Option<SystemTime>,
    (after, before): (Option<SystemTime>, Option<SystemTime>),
) -> bool {
    if after.is_none() && before.is_none() {
        return true;
    }
    let Some(t) = t else {
        return false;
    };
    after.is_none_or(|a| t > a) && before.is_none_or(|b| t < b)
}

impl TaskFilter {
    pub fn matches(&self, t: &Task) -> bool {
        self.uids.as_ref().is_none_or(|u| u.contains(&t.uid))
            && self
                .batch_uids
                .as_ref()
                .is_none_or(|u| t.batch_uid.is_some_and(|b| u.contains(&b)))
            && self
                .canceled_by
                .as_ref()
                .is_none_or(|u| t.canceled_by.is_some_and(|b| u.contains(&b)))
            && self
                .types
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == t.task_type()))
            && self
                .statuses
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == t.status.as_str()))
            && self
                .index_uids
                .as_ref()
                .is_none_or(|s| t.index_uid.as_ref().is_some_and(|i| s.contains(i)))
            && in_bounds(Some(t.enqueued_at), self.enqueued)
            && in_bounds(t.started_at, self.started)
            && in_bounds(t.finished_at, self.finished)
    }

    /// Parses one filter parameter; `false` when `key` is not a filter.
    pub fn parse(&mut self, key: &str, raw: &str) -> Result<bool> {
        self.any = true;
        match key {
            "uids" => self.uids = ids(key, raw, "invalid_task_uids")?,
            "batchUids" => self.batch_uids = ids(key, raw, "invalid_batch_uids")?,
            "canceledBy" => self.canceled_by = ids(key, raw, "invalid_task_canceled_by")?,
            "statuses" => {
                self.statuses = names(key, raw, |v| {
                    (!STATUSES.contains(&v)).then(|| {
                        MeiliError::invalid(
                            "invalid_task_statuses",
                            format!(
                                "`{v}` is not a valid task status. Available statuses are {}.",
                                crate::params::backticked(STATUSES)
                            ),
                        )
                    })
                })?
            }
            "types" => {
                self.types = names(key, raw, |v| {
                    (!TYPES.contains(&v)).then(|| {
                        MeiliError::invalid(
                            "invalid_task_types",
                            format!(
                                "`{v}` is not a valid task type. Available types are {}.",
                                crate::params::backticked(TYPES)
                            ),
                        )
                    })
                })?
            }
            "indexUids" => {
                self.index_uids = names(key, raw, |v| validate_index_uid(v).err())?;
            }
            "afterEnqueuedAt" => self.enqueued.0 = Some(date(key, raw, true)?),
            "beforeEnqueuedAt" => self.enqueued.1 = Some(date(key, raw, false)?),
            "afterStartedAt" => self.started.0 = Some(date(key, raw, true)?),
            "beforeStartedAt" => self.started.1 = Some(date(key, raw, false)?),
            "afterFinishedAt" => self.finished.0 = Some(date(key, raw, true)?),
            "beforeFinishedAt" => self.finished.1 = Some(date(key, raw, false)?),
            _ => {
                self.any = false;
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// `param` or `param[i]` (Meilisearch names the item when the list has several).
fn item_name(param: &str, i: usize, n: usize) -> String {
    if n > 1 {
        format!("{param}[{i}]")
    } else {
        param.to_string()
    }
}

fn ids(param: &str, raw: &str, code: &'static str) -> Result<Option<Vec<u64>>> {
    let items = comma_list(raw);
    let n = items.len();
    let parsed = items
        .iter()
        .enumerate()
        .filter(|(_, v)| *v != "*")
        .map(|(i, v)| query_usize(&item_name(param, i, n), v, code).map(|x| x as u64))
        .collect::<Result<Vec<u64>>>()?;
    Ok((!items.iter().any(|i| i == "*")).then_some(parsed))
}

fn names(
    param: &str,
    raw: &str,
    check: impl Fn(&str) -> Option<MeiliError>,
) -> Result<Option<Vec<String>>> {
    let items = comma_list(raw);
    let n = items.len();
    for (i, v) in items.iter().enumerate().filter(|(_, v)| *v != "*") {
        if let Some(e) = check(v) {
            return Err(MeiliError::invalid(
                e.code,
                format!(
                    "Invalid value in parameter `{}`: {}",
                    item_name(param, i, n),
                    e.message
                ),
            ));
        }
    }
    Ok((!items.iter().any(|i| i == "*")).then_some(items))
}

/// A date bound: RFC 3339 or `YYYY-MM-DD`. A bare date in an `after*` filter means after that
/// whole day, as in Meilisearch.
fn date(param: &str, raw: &str, after: bool) -> Result<SystemTime> {
    let code = match param {
        "afterEnqueuedAt" => "invalid_task_after_enqueued_at",
        "beforeEnqueuedAt" => "invalid_task_before_enqueued_at",
        "afterStartedAt" => "invalid_task_after_started_at",
        "beforeStartedAt" => "invalid_task_before_started_at",
        "afterFinishedAt" => "invalid_task_after_finished_at",
        _ => "invalid_task_before_finished_at",
    };
    let date_only = raw.len() == 10;
    let rfc = raw.len() > 10
        && (raw.ends_with('Z') || raw.ends_with('z') || raw[19..].contains(['+', '-']));
    match parse_expiration(raw).filter(|_| date_only || rfc) {
        Some(t) if date_only && after => Ok(t + Duration::from_secs(86_400)),
        Some(t) => Ok(t),
        None => Err(MeiliError::invalid(
            code,
            format!("Invalid value in parameter `{param}`: `{raw}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."),
        )),
    }
}

pub async fn get_one(
    State(state): State<SharedState>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let uid: u64 = raw.parse().map_err(|_| {
        MeiliError::invalid("invalid_task_uids", format!("Invalid value in parameter `taskUid`: could not parse `{raw}` as a positive integer"))
    })?;
    let store = state.lock();
    match store.tasks.get(&uid) {
        Some(task) => Ok(ok(task.to_json())),
        None => Err(MeiliError::new(
            StatusCode::NOT_FOUND,
            "task_not_found",
            format!("Task `{uid}` not found."),
        )),
    }
}

/// `limit`, `from`, `reverse` and the filters of a listing.
struct Listing {
    limit: usize,
    from: Option<u64>,
    reverse: bool,
    filter: TaskFilter,
}

fn listing(
    q: &[(String, String)],
    limit_code: &'static str,
    from_code: &'static str,
    reverse_code: &'static str,
) -> Result<Listing> {
    let mut l = Listing {
        limit: 20,
        from: None,
        reverse: false,
        filter: TaskFilter::default(),
    };
    for (k, v) in q {
        match k.as_str() {
            "limit" => l.limit = query_usize(k, v, limit_code)?,
            "from" => l.from = Some(query_usize(k, v, from_code)? as u64),
            "reverse" => l.reverse = query_bool(k, v, reverse_code)?,
            other => {
                if !l.filter.parse(other, v)? {
                    return Err(unknown_parameter(other, LIST_PARAMS));
                }
            }
        }
    }
    Ok(l)
}

/// Cuts a newest-first (or, reversed, oldest-first) page starting at `from`.
fn page<T>(mut items: Vec<(u64, T)>, l: &Listing) -> (usize, Vec<T>, Option<u64>, Option<u64>) {
    let total = items.len();
    if !l.reverse {
        items.reverse();
    }
    let start = l.from.map_or(0, |f| {
        items
            .iter()
            .position(|(uid, _)| if l.reverse { *uid >= f } else { *uid <= f })
            .unwrap_or(items.len())
    });
    let next = items.get(start + l.limit).map(|(uid, _)| *uid);
    let first = items
        .get(start)
        .map(|(uid, _)| *uid)
        .filter(|_| l.limit > 0);
    let page = items
        .into_iter()
        .skip(start)
        .take(l.limit)
        .map(|(_, t)| t)
        .collect();
    (total, page, first, next)
}

pub async fn list(
    State(state): State<SharedState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let l = listing(
        &q,
        "invalid_task_limit",
        "invalid_task_from",
        "invalid_task_reverse",
    )?;
    let store = state.lock();
    let matching: Vec<(u64, Value)> = store
        .tasks
        .values()
        .filter(|t| l.filter.matches(t))
        .map(|t| (t.uid, t.to_json()))
        .collect();
    let (total, results, from, next) = page(matching, &l);
    Ok(ok(json!({
        "results": results,
        "total": total,
        "limit": l.limit,
        "from": from,
        "next": next,
    })))
}

/// Parses the filters of a cancelation or deletion; `None` when there are none.
fn filters_of(q: &[(String, String)]) -> Result<TaskFilter> {
    let mut filter = TaskFilter::default();
    let mut any = false;
    for (k, v) in q {
        if !filter.parse(k, v)? {
            return Err(unknown_parameter(k, FILTER_PARAMS));
        }
        any = true;
    }
    filter.any = any;
    Ok(filter)
}

fn enqueue_filtered(
    state: &SharedState,
    q: &[(String, String)],
    raw: Option<String>,
    what: &str,
    make: fn(Vec<u64>) -> Payload,
) -> Result<Response> {
    let filter = filters_of(q)?;
    if !filter.any {
        return Err(MeiliError::invalid(
            "missing_task_filters",
            format!("Query parameters to filter the tasks to {what} are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`."),
        ));
    }
    let matched: Vec<u64> = state
        .lock()
        .tasks
        .values()
        .filter(|t| filter.matches(t))
        .map(|t| t.uid)
        .collect();
    let original = format!("?{}", raw.unwrap_or_default());
    let mut extra = Map::new();
    extra.insert("originalFilter".into(), json!(original));
    // The answer is 200, not 202, as in Meilisearch.
    Ok(ok(enqueue_with_details(
        state,
        None,
        make(matched),
        None,
        Some(extra),
    )))
}

pub async fn cancel(
    State(state): State<SharedState>,
    Query(q): Query<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    enqueue_filtered(&state, &q, raw, "cancel", Payload::TaskCancelation)
}

pub async fn delete(
    State(state): State<SharedState>,
    Query(q): Query<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    enqueue_filtered(&state, &q, raw, "delete", Payload::TaskDeletion)
}

/// Batches are built from the tasks: each task is its own batch, except the tasks a
/// cancelation canceled, which join the cancelation's batch.
fn batches(tasks: &BTreeMap<u64, Task>) -> BTreeMap<u64, Vec<&Task>> {
    let mut out: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for t in tasks.values() {
        if let Some(b) = t.batch_uid {
            out.entry(b).or_default().push(t);
        }
    }
    out
}

fn batch_view(uid: u64, tasks: &[&Task]) -> Value {
    let mut status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut types: BTreeMap<&str, usize> = BTreeMap::new();
    let mut index_uids: BTreeMap<&str, usize> = BTreeMap::new();
    for t in tasks {
        *status.entry(t.status.as_str()).or_default() += 1;
        *types.entry(t.task_type()).or_default() += 1;
        if let Some(i) = &t.index_uid {
            *index_uids.entry(i.as_str()).or_default() += 1;
        }
    }
    // The batch's own task is the one that started it (the lowest uid with a start date).
    let main = tasks
        .iter()
        .find(|t| t.started_at.is_some())
        .or(tasks.first())
        .copied();
    let started = main.and_then(|t| t.started_at);
    let finished = main.and_then(|t| t.finished_at);
    let processing = main.is_some_and(|t| !t.status.is_finished());
    let duration = match (started, finished) {
        (Some(s), Some(f)) => json!(iso_duration(f.duration_since(s).unwrap_or_default())),
        _ => Value::Null,
    };
    let details = main
        .and_then(|t| t.details.clone())
        .filter(|_| !processing)
        .unwrap_or_default();
    let strategy = match main {
        Some(t) => format!(
            "created batch containing only task with id {} of type `{}` that cannot be batched with any other task.",
            t.uid,
            t.task_type()
        ),
        None => String::new(),
    };
    json!({
        "uid": uid,
        "progress": if processing { json!({"steps": [], "percentage": 0.0}) } else { Value::Null },
        "details": details,
        "stats": {
            "totalNbTasks": tasks.len(),
            "status": status,
            "types": types,
            "indexUids": index_uids,
            "progressTrace": {},
        },
        "duration": duration,
        "startedAt": started.map(rfc3339),
        "finishedAt": finished.map(rfc3339),
        "batchStrategy": strategy,
    })
}

pub async fn list_batches(
    State(state): State<SharedState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let l = listing(
        &q,
        "invalid_batch_limit",
        "invalid_batch_from",
        "invalid_batch_reverse",
    )?;
    // `uids` names batches here.
    let mut filter = l.filter.clone();
    let batch_uids = filter.uids.take();
    let store = state.lock();
    let matching: Vec<(u64, Value)> = batches(&store.tasks)
        .into_iter()
        .filter(|(uid, _)| batch_uids.as_ref().is_none_or(|u| u.contains(uid)))
        .filter(|(_, tasks)| tasks.iter().any(|t| filter.matches(t)))
        .map(|(uid, tasks)| (uid, batch_view(uid, &tasks)))
        .collect();
    let (total, results, from, next) = page(matching, &l);
    Ok(ok(json!({
        "results": results,
        "total": total,
        "limit": l.limit,
        "from": from,
        "next": next,
    })))
}

pub async fn get_batch(
    State(state): State<SharedState>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let uid: u64 = raw.parse().map_err(|_| {
        MeiliError::invalid(
            "invalid_batch_uids",
            format!("Batch uid `{raw}` is invalid. It should only contain numeric characters."),
        )
    })?;
    let store = state.lock();
    match batches(&store.tasks).get(&uid) {
        Some(tasks) => Ok(ok(batch_view(uid, tasks))),
        None => Err(MeiliError::new(
            StatusCode::NOT_FOUND,
            "batch_not_found",
            format!("Batch `{uid}` not found."),
        )),
    }
}
