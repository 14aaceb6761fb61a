//! The query parameters of `GET /tasks`, `POST /tasks/cancel` and `DELETE /tasks`, parsed and
//! matched as Meilisearch does, with its error codes and messages.

use std::collections::BTreeSet;

use serde_json::Value;

use miroir_topology::deserr::quoted;

use crate::error::ApiError;
use crate::time;

pub const STATUSES: &[&str] = &["enqueued", "processing", "succeeded", "failed", "canceled"];

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

const FILTERS: &[&str] = &[
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

const PAGING: &[&str] = &["limit", "from", "reverse"];

/// What `GET /tasks` and `GET /batches` accept, in the order Meilisearch lists them.
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

/// `None` everywhere: no restriction (absent or `*`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskFilter {
    pub uids: Option<BTreeSet<u32>>,
    /// Each task is its own batch (batch uid = task uid) once it started.
    pub batch_uids: Option<BTreeSet<u32>>,
    /// Miroir does not record which cancelation canceled a task: any list matches nothing.
    pub canceled_by: Option<BTreeSet<u32>>,
    pub types: Option<BTreeSet<String>>,
    pub statuses: Option<BTreeSet<String>>,
    pub index_uids: Option<BTreeSet<String>>,
    /// (field, exclusive lower bound) / (field, exclusive upper bound), in nanoseconds.
    pub after: Vec<(&'static str, i128)>,
    pub before: Vec<(&'static str, i128)>,
    /// Whether any filter parameter was given (cancel and delete require one).
    pub given: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    pub filter: TaskFilter,
    pub limit: usize,
    pub from: Option<u32>,
    pub reverse: bool,
}

fn code_for(param: &str) -> &'static str {
    match param {
        "uids" => "invalid_task_uids",
        "batchUids" => "invalid_batch_uids",
        "canceledBy" => "invalid_task_canceled_by",
        "types" => "invalid_task_types",
        "statuses" => "invalid_task_statuses",
        "indexUids" => "invalid_index_uid",
        "afterEnqueuedAt" => "invalid_task_after_enqueued_at",
        "beforeEnqueuedAt" => "invalid_task_before_enqueued_at",
        "afterStartedAt" => "invalid_task_after_started_at",
        "beforeStartedAt" => "invalid_task_before_started_at",
        "afterFinishedAt" => "invalid_task_after_finished_at",
        "beforeFinishedAt" => "invalid_task_before_finished_at",
        "limit" => "invalid_task_limit",
        "from" => "invalid_task_from",
        "reverse" => "invalid_task_reverse",
        _ => "bad_request",
    }
}

fn bad(param: &str, detail: String) -> ApiError {
    ApiError::invalid(
        code_for(param),
        format!("Invalid value in parameter `{param}`: {detail}"),
    )
}

fn list(value: &str) -> Option<Vec<&str>> {
    if value.trim() == "*" {
        None
    } else {
        Some(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }
}

fn positive(param: &str, text: &str) -> Result<u32, ApiError> {
    text.parse::<u32>().map_err(|_| {
        bad(
            param,
            format!("could not parse `{text}` as a positive integer"),
        )
    })
}

fn uid_set(param: &str, value: &str) -> Result<Option<BTreeSet<u32>>, ApiError> {
    list(value)
        .map(|items| items.iter().map(|i| positive(param, i)).collect())
        .transpose()
}

fn valid_index_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 400
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl TaskFilter {
    fn apply(&mut self, param: &str, value: &str) -> Result<(), ApiError> {
        self.given = true;
        match param {
            "uids" => self.uids = uid_set(param, value)?,
            "batchUids" => self.batch_uids = uid_set(param, value)?,
            "canceledBy" => self.canceled_by = uid_set(param, value)?,
            "types" => {
                self.types = list(value)
                    .map(|items| {
                        items
                            .into_iter()
                            .map(|t| {
                                if TYPES.contains(&t) {
                                    Ok(t.to_string())
                                } else {
                                    Err(bad(
                                        param,
                                        format!(
                                            "`{t}` is not a valid task type. Available types are {}.",
                                            quoted(TYPES)
                                        ),
                                    ))
                                }
                            })
                            .collect()
                    })
                    .transpose()?
            }
            "statuses" => {
                self.statuses = list(value)
                    .map(|items| {
                        items
                            .into_iter()
                            .map(|s| {
                                if STATUSES.contains(&s) {
                                    Ok(s.to_string())
                                } else {
                                    Err(bad(
                                        param,
                                        format!(
                                            "`{s}` is not a valid task status. Available statuses are {}.",
                                            quoted(STATUSES)
                                        ),
                                    ))
                                }
                            })
                            .collect()
                    })
                    .transpose()?
            }
            "indexUids" => {
                self.index_uids = list(value)
                    .map(|items| {
                        items
                            .into_iter()
                            .map(|u| {
                                if valid_index_uid(u) {
                                    Ok(u.to_string())
                                } else {
                                    Err(bad(param, format!("`{u}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.")))
                                }
                            })
                            .collect()
                    })
                    .transpose()?
            }
            _ => {
                let field = match param {
                    "afterEnqueuedAt" | "beforeEnqueuedAt" => "enqueuedAt",
                    "afterStartedAt" | "beforeStartedAt" => "startedAt",
                    _ => "finishedAt",
                };
                if value.trim() == "*" {
                    return Ok(());
                }
                let (at, date_only) = time::parse(value.trim()).ok_or_else(|| {
                    bad(param, format!("`{value}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."))
                })?;
                if param.starts_with("after") {
                    // A bare date means "after that day": from the next midnight on.
                    let bound = if date_only { at + time::DAY - 1 } else { at };
                    self.after.push((field, bound));
                } else {
                    self.before.push((field, at));
                }
            }
        }
        Ok(())
    }

    /// Whether the Meilisearch task object `task` passes every filter.
    pub fn matches(&self, task: &Value) -> bool {
        let str_field = |f: &str| task.get(f).and_then(Value::as_str);
        if let Some(uids) = &self.uids {
            let uid = task.get("uid").and_then(Value::as_u64);
            if !uid.is_some_and(|u| u32::try_from(u).is_ok_and(|u| uids.contains(&u))) {
                return false;
            }
        }
        if let Some(batches) = &self.batch_uids {
            let batch = task.get("batchUid").and_then(Value::as_u64);
            if !batch.is_some_and(|b| u32::try_from(b).is_ok_and(|b| batches.contains(&b))) {
                return false;
            }
        }
        if self.canceled_by.is_some() {
            return false;
        }
        let in_set = |set: &Option<BTreeSet<String>>, f: &str| match set {
            None => true,
            Some(set) => str_field(f).is_some_and(|v| set.contains(v)),
        };
        if !in_set(&self.types, "type")
            || !in_set(&self.statuses, "status")
            || !in_set(&self.index_uids, "indexUid")
        {
            return false;
        }
        let instant = |f: &str| str_field(f).and_then(time::parse).map(|(n, _)| n);
        // A task without the instant (not started, not finished) fails any bound on it.
        self.after
            .iter()
            .all(|(field, bound)| instant(field).is_some_and(|t| t > *bound))
            && self
                .before
                .iter()
                .all(|(field, bound)| instant(field).is_some_and(|t| t < *bound))
    }
}

fn unknown(param: &str, allowed: &[&str]) -> ApiError {
    ApiError::invalid(
        "bad_request",
        miroir_topology::deserr::unknown("parameter", param, allowed),
    )
}

/// `GET /tasks`.
pub fn parse_list(params: &[(String, String)]) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery {
        filter: TaskFilter::default(),
        limit: 20,
        from: None,
        reverse: false,
    };
    let allowed = LIST_PARAMS;
    debug_assert!(PAGING
        .iter()
        .chain(FILTERS)
        .all(|p| LIST_PARAMS.contains(p)));
    for (param, value) in params {
        match param.as_str() {
            "limit" => query.limit = positive(param, value)? as usize,
            "from" => query.from = Some(positive(param, value)?),
            "reverse" => {
                query.reverse = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(bad(
                            param,
                            format!(
                        "could not parse `{value}` as a boolean, expected either `true` or `false`"
                    ),
                        ))
                    }
                }
            }
            p if FILTERS.contains(&p) => query.filter.apply(p, value)?,
            p => return Err(unknown(p, allowed)),
        }
    }
    Ok(query)
}

/// `POST /tasks/cancel` and `DELETE /tasks`: at least one filter, or Meilisearch's
/// `missing_task_filters`.
pub fn parse_filter(params: &[(String, String)], cancel: bool) -> Result<TaskFilter, ApiError> {
    let mut filter = TaskFilter::default();
    for (param, value) in params {
        if FILTERS.contains(&param.as_str()) {
            filter.apply(param, value)?;
        } else {
            return Err(unknown(param, FILTERS));
        }
    }
    if !filter.given {
        let what = if cancel { "cancel" } else { "delete" };
        return Err(ApiError::invalid(
            "missing_task_filters",
            format!("Query parameters to filter the tasks to {what} are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`."),
        ));
    }
    Ok(filter)
}

/// One page of `tasks` (any order) as `GET /tasks` answers it.
pub fn page(query: &ListQuery, tasks: Vec<Value>) -> Value {
    let uid = |t: &Value| t.get("uid").and_then(Value::as_u64).unwrap_or(0);
    let mut matched: Vec<Value> = tasks
        .into_iter()
        .filter(|t| query.filter.matches(t))
        .collect();
    matched.sort_by_key(|t| std::cmp::Reverse(uid(t)));
    if query.reverse {
        matched.reverse();
    }
    let total = matched.len();
    let from = query.from.map(u64::from);
    let start: Vec<Value> = matched
        .into_iter()
        .filter(|t| match from {
            None => true,
            Some(f) if query.reverse => uid(t) >= f,
            Some(f) => uid(t) <= f,
        })
        .collect();
    let next = start.get(query.limit).map(uid);
    let results: Vec<Value> = start.into_iter().take(query.limit).collect();
    serde_json::json!({
        "results": results,
        "total": total,
        "limit": query.limit,
        "from": results.first().map(uid),
        "next": next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(q: &str) -> Vec<(String, String)> {
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn task(uid: u32, status: &str, kind: &str, index: &str, enqueued: &str) -> Value {
        json!({"uid": uid, "status": status, "type": kind, "indexUid": index,
               "enqueuedAt": enqueued, "startedAt": null, "finishedAt": null})
    }

    fn tasks() -> Vec<Value> {
        (0..10)
            .map(|i| {
                task(
                    i,
                    if i % 2 == 0 { "succeeded" } else { "failed" },
                    if i < 5 {
                        "documentAdditionOrUpdate"
                    } else {
                        "settingsUpdate"
                    },
                    if i % 3 == 0 { "movies" } else { "books" },
                    &format!("2026-11-2{}T10:00:00Z", i % 10),
                )
            })
            .collect()
    }

    fn uids(page: &Value) -> Vec<u64> {
        page["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|t| t["uid"].as_u64().expect("uid"))
            .collect()
    }

    #[test]
    fn pages_newest_first() {
        let q = parse_list(&params("limit=3")).expect("query");
        let p = page(&q, tasks());
        assert_eq!(uids(&p), vec![9, 8, 7]);
        assert_eq!(
            (p["total"].clone(), p["from"].clone(), p["next"].clone()),
            (json!(10), json!(9), json!(6))
        );
        let q = parse_list(&params("limit=3&from=6")).expect("query");
        assert_eq!(uids(&page(&q, tasks())), vec![6, 5, 4]);
        let q = parse_list(&params("limit=4&from=8&reverse=true")).expect("query");
        let p = page(&q, tasks());
        assert_eq!(uids(&p), vec![8, 9]);
        assert_eq!(p["next"], Value::Null);
        let q = parse_list(&params("")).expect("query");
        assert_eq!(page(&q, vec![])["from"], Value::Null);
    }

    #[test]
    fn filters() {
        let got = |q: &str| uids(&page(&parse_list(&params(q)).expect(q), tasks()));
        assert_eq!(got("statuses=failed&types=settingsUpdate"), vec![9, 7, 5]);
        assert_eq!(got("uids=1,2,3&indexUids=movies"), vec![3]);
        assert_eq!(got("uids=*&indexUids=*"), got(""));
        assert_eq!(
            got("batchUids=1"),
            Vec::<u64>::new(),
            "no batchUid: not started"
        );
        assert_eq!(got("batchUids=*").len(), 10);
        assert_eq!(got("afterEnqueuedAt=2026-11-27"), vec![9, 8]);
        assert_eq!(got("beforeEnqueuedAt=2026-11-21T10:00:00.5Z"), vec![1, 0]);
        assert_eq!(got("afterStartedAt=2020-01-01"), Vec::<u64>::new());
    }

    #[test]
    fn errors_are_meilisearchs() {
        let err = |q: &str| parse_list(&params(q)).expect_err(q).code;
        assert_eq!(err("uids=a"), "invalid_task_uids");
        assert_eq!(err("statuses=done"), "invalid_task_statuses");
        assert_eq!(err("types=x"), "invalid_task_types");
        assert_eq!(err("indexUids=a%20b"), "invalid_index_uid");
        assert_eq!(err("batchUids=x"), "invalid_batch_uids");
        assert_eq!(
            parse_list(&params("nope=1")).expect_err("nope").message,
            "Unknown parameter `nope`: expected one of `limit`, `from`, `reverse`, `batchUids`, `uids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`"
        );
        assert_eq!(
            parse_filter(&params("statuse=failed"), false).expect_err("typo").message,
            "Unknown parameter `statuse`: did you mean `statuses`? expected one of `uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`"
        );
        assert_eq!(
            parse_filter(&params("customMetadata=x"), true)
                .expect_err("not a filter")
                .code,
            "bad_request"
        );
        assert_eq!(
            err("afterEnqueuedAt=yesterday"),
            "invalid_task_after_enqueued_at"
        );
        assert_eq!(err("limit=-1"), "invalid_task_limit");
        assert_eq!(err("reverse=yes"), "invalid_task_reverse");
        assert_eq!(err("nope=1"), "bad_request");
        let missing = parse_filter(&[], true).expect_err("missing");
        assert_eq!(missing.code, "missing_task_filters");
        assert_eq!(missing.message, "Query parameters to filter the tasks to cancel are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`.");
        assert_eq!(
            parse_filter(&params("limit=1"), false)
                .expect_err("limit")
                .code,
            "bad_request"
        );
        assert!(parse_filter(&params("statuses=enqueued"), true).is_ok());
    }
}
