//! HTTP handlers of the task routes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use miroir_topology::tasks::{NodeTask, TaskRecord, TaskRegistration};
use miroir_topology::NodeState;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tracing::Instrument;

use super::query::{page, parse_filter, parse_list};
use super::registry::{self, SYNC_REFRESH_LIMIT};
use super::scope::{self, Scope};
use crate::app::App;
use crate::error::{ApiError, Failure};
use crate::nodes::{self, NodeError, Right};
use crate::store::StoredTask;
use crate::time;

/// How long a client key a node accepted is trusted without asking again.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(5);

type Params = Query<Vec<(String, String)>>;

fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// [`authorize_for`] `tasks.get`, the right every task and batch route needs (cancelation and
/// deletion are then decided by the nodes themselves, with the client's key).
pub async fn authorize(app: &App, headers: &HeaderMap) -> Result<Option<String>, Failure> {
    authorize_for(app, headers, Right::TasksGet).await
}

/// Meilisearch decides what a client key may do, so the key is shown to a node on a route that
/// needs `right` ([`nodes::check_right`]) and its 401/403 is relayed unchanged. Accepted keys are
/// cached briefly, per right.
pub async fn authorize_for(
    app: &App,
    headers: &HeaderMap,
    right: Right,
) -> Result<Option<String>, Failure> {
    let auth = authorization(headers);
    let cache_key = format!(
        "{}\n{}",
        right.as_str(),
        auth.as_deref().unwrap_or_default()
    );
    if let Ok(cache) = app.auth_cache.lock() {
        if cache
            .get(&cache_key)
            .is_some_and(|at| at.elapsed() < AUTH_CACHE_TTL)
        {
            return Ok(auth);
        }
    }
    let topology = app
        .store
        .load_topology()
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::node_unavailable("No node is known yet (no topology)."))?;
    let mut last = String::from("no active node");
    for node in topology
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Active)
    {
        match nodes::check_right(
            &app.http,
            &node.address,
            auth.as_deref(),
            right,
            app.read_timeout(),
        )
        .await
        {
            Ok(()) => {
                if let Ok(mut cache) = app.auth_cache.lock() {
                    cache.retain(|_, at| at.elapsed() < AUTH_CACHE_TTL);
                    cache.insert(cache_key, Instant::now());
                }
                return Ok(auth);
            }
            Err(NodeError::Status(relayed)) => return Err(relayed.into()),
            Err(NodeError::Unavailable(e)) => last = format!("node `{}`: {e}", node.id),
        }
    }
    Err(ApiError::node_unavailable(format!("No node could check the API key ({last}).")).into())
}

/// Nodes the settings check after a task found disagreeing, for the client.
pub const DISAGREEMENT_HEADER: &str = "x-miroir-disagreeing-nodes";

/// Nodes a task's change did not reach yet: their copies are out of sync until repaired.
pub const BEHIND_HEADER: &str = "x-miroir-out-of-sync-nodes";

/// Those of `behind` with a copy still out of the in-sync set.
async fn still_behind(app: &App, behind: &[String]) -> Result<Vec<String>, ApiError> {
    if behind.is_empty() {
        return Ok(Vec::new());
    }
    let Some(topology) = app.store.load_topology().await.map_err(ApiError::store)? else {
        return Ok(Vec::new());
    };
    let map = topology.map();
    let out_of_sync = map.out_of_sync_nodes();
    Ok(behind
        .iter()
        .filter(|node| out_of_sync.contains(node.as_str()))
        .cloned()
        .collect())
}

/// `GET /tasks/{uid}`.
pub async fn get_task(
    State(app): State<Arc<App>>,
    Path(uid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    async move {
        let auth = authorize(&app, &headers).await?;
        let scope = scope::of(&app, auth.as_deref()).await?;
        let uid: u32 = uid.parse().map_err(|_| {
            ApiError::invalid(
                "invalid_task_uids",
                format!("Task uid `{uid}` is invalid. It should only contain numeric characters."),
            )
        })?;
        let task = app
            .store
            .get_task(uid)
            .await
            .map_err(ApiError::store)?
            // Another index's task does not exist for this key, as on Meilisearch.
            .filter(|t| scope.shows(t))
            .ok_or_else(|| ApiError::task_not_found(uid))?;
        let task = if task.terminal {
            task
        } else {
            registry::refresh(
                &app,
                vec![task.clone()],
                auth.as_deref(),
                app.read_timeout(),
            )
            .await?
            .pop()
            .unwrap_or(task)
        };
        let behind = still_behind(&app, &task.behind).await?;
        let mut response = Json(task.task).into_response();
        if !task.disagreeing_nodes.is_empty() {
            if let Ok(value) = HeaderValue::from_str(&task.disagreeing_nodes.join(",")) {
                response.headers_mut().insert(DISAGREEMENT_HEADER, value);
            }
        }
        if !behind.is_empty() {
            if let Ok(value) = HeaderValue::from_str(&behind.join(",")) {
                response.headers_mut().insert(BEHIND_HEADER, value);
            }
        }
        Ok(response)
    }
    .instrument(tracing::info_span!("get_task"))
    .await
}

/// Every task `scope` shows, the unfinished ones read again from the nodes first (unless there
/// are many).
pub async fn fresh_tasks(
    app: &App,
    auth: Option<&str>,
    scope: &Scope,
) -> Result<Vec<StoredTask>, ApiError> {
    let mut all = app.store.all_tasks().await.map_err(ApiError::store)?;
    all.retain(|t| scope.shows(t));
    let pending = all.iter().filter(|t| !t.terminal).count();
    if pending == 0 || pending > SYNC_REFRESH_LIMIT {
        return Ok(all);
    }
    registry::refresh(app, all, auth, app.read_timeout()).await
}

/// `GET /tasks`.
pub async fn list_tasks(
    State(app): State<Arc<App>>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    async move {
        let auth = authorize(&app, &headers).await?;
        let scope = scope::of(&app, auth.as_deref()).await?;
        let query = parse_list(&params)?;
        let tasks = fresh_tasks(&app, auth.as_deref(), &scope).await?;
        Ok(Json(page(
            &query,
            tasks.into_iter().map(|t| t.task).collect(),
        )))
    }
    .instrument(tracing::info_span!("list_tasks"))
    .await
}

/// `POST /tasks/cancel`.
pub async fn cancel_tasks(
    State(app): State<Arc<App>>,
    Query(params): Params,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    cancel_or_delete(&app, &params, raw, &headers, false)
        .instrument(tracing::info_span!("cancel_tasks"))
        .await
}

/// `DELETE /tasks`.
pub async fn delete_tasks(
    State(app): State<Arc<App>>,
    Query(params): Params,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    cancel_or_delete(&app, &params, raw, &headers, true)
        .instrument(tracing::info_span!("delete_tasks"))
        .await
}

/// Finds the matching tasks, sends their node tasks' uids to each node's own cancel/delete route
/// (with the client's key), and registers what the nodes enqueued as one new task.
async fn cancel_or_delete(
    app: &App,
    params: &[(String, String)],
    raw: Option<String>,
    headers: &HeaderMap,
    delete: bool,
) -> Result<Response, Failure> {
    let auth = authorize(app, headers).await?;
    let scope = scope::of(app, auth.as_deref()).await?;
    if !scope.allows(if delete {
        "tasks.delete"
    } else {
        "tasks.cancel"
    }) {
        return Err(ApiError::invalid_api_key().into());
    }
    let filter = parse_filter(params, !delete)?;
    // Only the tasks the key may see: another index's tasks are neither counted nor touched.
    let tasks = fresh_tasks(app, auth.as_deref(), &scope).await?;
    let matched: Vec<&StoredTask> = tasks.iter().filter(|t| filter.matches(&t.task)).collect();
    // Like Meilisearch's queue, the request applies to the tasks it matches as they are when it
    // is processed: each node's queue orders it after (or before) the node tasks, and cancels
    // those still unfinished or deletes those finished by then. A deletion's matched global
    // tasks are deleted from the registry when it finishes (`registry::apply_deletion`). A task
    // finished already cannot be canceled: its node tasks are not sent.
    let targets: Vec<&StoredTask> = matched
        .iter()
        .copied()
        .filter(|t| delete || !t.terminal)
        .collect();

    let mut per_node: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for task in &targets {
        for nt in &task.record.node_tasks {
            per_node
                .entry(nt.node.clone())
                .or_default()
                .push(nt.task_uid);
        }
    }
    let topology = app
        .store
        .load_topology()
        .await
        .map_err(ApiError::store)?
        .ok_or_else(crate::app::no_topology)?;
    let mut calls = tokio::task::JoinSet::new();
    for (node_id, mut uids) in per_node {
        let Some(node) = topology.node(&node_id) else {
            continue; // no longer in the topology: nothing to reach
        };
        uids.sort_unstable();
        uids.dedup();
        let (http, address, group) = (app.http.clone(), node.address.clone(), node.group.clone());
        let (auth, timeout) = (auth.clone(), app.node_timeout());
        calls.spawn(async move {
            let got =
                nodes::cancel_or_delete(&http, &address, auth.as_deref(), delete, &uids, timeout)
                    .await;
            (node_id, group, got)
        });
    }
    let mut node_tasks = Vec::new();
    let mut refused = None;
    let mut unavailable = Vec::new();
    while let Some(joined) = calls.join_next().await {
        let Ok((node, group, got)) = joined else {
            continue;
        };
        match got {
            Ok(summary) => match summary.get("taskUid").and_then(Value::as_u64) {
                Some(task_uid) => node_tasks.push(NodeTask {
                    node,
                    group,
                    task_uid,
                }),
                None => unavailable.push(node),
            },
            Err(NodeError::Status(relayed)) => refused = Some(relayed),
            Err(NodeError::Unavailable(e)) => {
                tracing::warn!(node, error = %e, "node did not take the task cancelation/deletion");
                unavailable.push(node);
            }
        }
    }
    if node_tasks.is_empty() {
        if let Some(relayed) = refused {
            return Err(relayed.into());
        }
        if !unavailable.is_empty() {
            return Err(ApiError::node_unavailable(format!(
                "No node took the request: {}",
                unavailable.join(", ")
            ))
            .into());
        }
    }
    node_tasks.sort_by(|a, b| (&a.node, a.task_uid).cmp(&(&b.node, b.task_uid)));

    let mut details = Map::new();
    // Meilisearch counts every task the filter matched, finished or not.
    details.insert("matchedTasks".into(), json!(matched.len()));
    if !delete && node_tasks.is_empty() {
        // Nothing reached a node: the count no node will report is known now.
        details.insert("canceledTasks".into(), json!(0));
    }
    let deletes = if delete {
        // Counted in global tasks when the deletion is applied, not summed over node tasks.
        details.insert("deletedTasks".into(), Value::Null);
        Some(matched.iter().map(|t| t.uid).collect::<Vec<u32>>())
    } else {
        None
    };
    details.insert(
        "originalFilter".into(),
        json!(format!("?{}", raw.unwrap_or_default())),
    );
    let kind = if delete {
        "taskDeletion"
    } else {
        "taskCancelation"
    };
    let registered = registry::register_with(
        app,
        TaskRegistration {
            task_uid: None,
            record: TaskRecord {
                index_uid: None,
                kind: kind.into(),
                details,
                copies: 1,
                node_tasks,
                custom_metadata: None,
                shares: Vec::new(),
                primary_key: None,
                intent: None,
            },
            missed: None,
        },
        deletes,
    )
    .await?;
    let enqueued_at = app
        .store
        .get_task(registered.task_uid)
        .await
        .map_err(ApiError::store)?
        .map(|t| t.registered_at)
        .unwrap_or_else(time::now);
    // Meilisearch answers both with 200 (not 202) and a summarized task.
    Ok((
        StatusCode::OK,
        Json(json!({
            "taskUid": registered.task_uid,
            "indexUid": null,
            "status": "enqueued",
            "type": kind,
            "enqueuedAt": enqueued_at,
        })),
    )
        .into_response())
}

/// The filter proves itself with the shared token on the internal routes.
fn check_token(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = app.config.filter_token.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    match headers.get("x-miroir-token").and_then(|v| v.to_str().ok()) {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "miroir_missing_token",
            "auth",
            "The `x-miroir-token` header is missing.",
        )),
        Some(t) if crate::config::secret_eq(expected, t) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "miroir_invalid_token",
            "auth",
            "The provided `x-miroir-token` is invalid.",
        )),
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("bad_request", format!("Invalid JSON body: {e}")))
}

/// `POST /_miroir/internal/tasks` → 201 `{"taskUid": n}`.
pub async fn register_task(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    async move {
        check_token(&app, &headers)?;
        let registration: TaskRegistration = parse_body(&body)?;
        let marks = registration.missed.is_some();
        let registered = registry::register(&app, registration).await?;
        if marks {
            roll_out_marks(&app);
        }
        Ok((StatusCode::CREATED, Json(registered)).into_response())
    }
    .instrument(tracing::info_span!("register_task"))
    .await
    .inspect_err(|e| tracing::warn!(error = %e, "task registration refused"))
}

/// Copies may have left the in-sync set: the fleet learns it now rather than at the next poll of
/// the store, without the write waiting for the fleet's acknowledgement.
fn roll_out_marks(app: &Arc<App>) {
    let app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = app.sync_from_store().await {
            tracing::warn!(error = %e, "rolling out in-sync marks");
        }
    });
}

/// `POST /_miroir/internal/missed` → 204: a change with no task (a key's creation, update or
/// deletion) that some nodes missed; their copies leave the in-sync set before the filter
/// answers, as a registration's do ([`crate::in_sync::record`]).
pub async fn record_missed(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    async move {
        check_token(&app, &headers)?;
        let missed: miroir_topology::tasks::Missed = parse_body(&body)?;
        if crate::in_sync::record(&app, &missed).await? {
            roll_out_marks(&app);
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .instrument(tracing::info_span!("record_missed"))
    .await
    .inspect_err(|e| tracing::warn!(error = %e, "missed change not recorded"))
}

/// `POST /_miroir/internal/intents`: a schema change recorded before the filter sends it
/// (`crate::intents`), with the client's `authorization`; 201 `{"intent": id | null}`.
pub async fn record_intent(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    async move {
        check_token(&app, &headers)?;
        let change: miroir_topology::tasks::Intent = parse_body(&body)?;
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        let recorded = crate::intents::record(&app, auth, change).await?;
        Ok((StatusCode::CREATED, Json(recorded)).into_response())
    }
    .instrument(tracing::info_span!("record_intent"))
    .await
    .inspect_err(|e| tracing::warn!(error = %e, "intent not recorded"))
}

/// `DELETE /_miroir/internal/intents/{id}`: the change reached the nodes (a change with no task
/// to register: an API key's); 204.
pub async fn close_intent(
    State(app): State<Arc<App>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_token(&app, &headers)?;
    crate::intents::close(&app, id).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseRequest {
    envoy: String,
    count: u32,
}

/// `POST /_miroir/internal/uid-leases` → 201 `{"first": a, "last": b}`.
pub async fn lease_uids(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    async move {
        check_token(&app, &headers)?;
        let request: LeaseRequest = parse_body(&body)?;
        let lease = registry::lease(&app, &request.envoy, request.count).await?;
        Ok((StatusCode::CREATED, Json(lease)).into_response())
    }
    .instrument(tracing::info_span!("lease_uids"))
    .await
    .inspect_err(|e| tracing::warn!(error = %e, "uid lease refused"))
}
