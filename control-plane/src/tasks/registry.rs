//! The task registry: uid allocation and leases, registrations from the filter, and each task's
//! Meilisearch object computed from its node tasks.

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use miroir_topology::tasks::{
    aggregate, is_terminal, NodeTask, Registered, TaskRegistration, UidLease,
};
use miroir_topology::Topology;
use serde_json::{json, Value};

use crate::app::App;
use crate::error::ApiError;
use crate::nodes;
use crate::settings_check;
use crate::store::{IndexEntry, StoreResult, StoredTask, MAX_LEASE};
use crate::time;
use crate::webhooks;

/// Pending tasks a read refreshes synchronously before answering; past this, a list is answered
/// from what the poller last saw (it is about to catch up anyway).
pub const SYNC_REFRESH_LIMIT: usize = 1_000;

fn node_key(node: &str, uid: u64) -> String {
    format!("{node}/{uid}")
}

/// The Meilisearch task object of `task` from its cached node objects. A node task not read yet
/// counts as enqueued, so a task is never finished before every node task is.
pub fn view(task: &StoredTask) -> (Value, bool) {
    let record = &task.record;
    if record.node_tasks.is_empty() {
        // Nothing to wait for (e.g. a cancelation that matched no task): done when registered.
        let mut object = aggregate(task.uid, record, &[]);
        object["status"] = json!("succeeded");
        object["enqueuedAt"] = json!(task.registered_at);
        object["startedAt"] = json!(task.registered_at);
        object["finishedAt"] = json!(task.registered_at);
        object["duration"] = json!("PT0S");
        object["batchUid"] = json!(task.uid);
        return (object, true);
    }
    // A node left behind is repaired from the others: its node task (if any) does not hold the
    // status back, unless it is the only one there is.
    let counted: Vec<&NodeTask> = record
        .node_tasks
        .iter()
        .filter(|nt| !task.behind.contains(&nt.node))
        .collect();
    let counted = if counted.is_empty() {
        record.node_tasks.iter().collect()
    } else {
        counted
    };
    let pairs: Vec<(String, Value)> = counted
        .into_iter()
        .map(|nt| {
            let object = task
                .node_objects
                .get(&node_key(&nt.node, nt.task_uid))
                .cloned()
                .unwrap_or_else(|| json!({"status": "enqueued"}));
            (nt.node.clone(), object)
        })
        .collect();
    let mut object = aggregate(task.uid, record, &pairs);
    if object.get("enqueuedAt").is_none_or(Value::is_null) {
        object["enqueuedAt"] = json!(task.registered_at);
    }
    let status = object.get("status").and_then(Value::as_str);
    let terminal = status.is_some_and(is_terminal);
    // Each task is its own batch (`GET /batches`) once it started.
    if status.is_some_and(|s| s != "enqueued") {
        object["batchUid"] = json!(task.uid);
    }
    (object, terminal)
}

fn node_terminal(object: Option<&Value>) -> bool {
    object
        .and_then(|o| o.get("status"))
        .and_then(Value::as_str)
        .is_some_and(is_terminal)
}

/// `POST /_miroir/internal/uid-leases`.
pub async fn lease(app: &App, envoy: &str, count: u32) -> Result<UidLease, ApiError> {
    // The Envoy's name only labels the lease; a filter that could not read its node id still
    // gets one.
    let envoy = if envoy.is_empty() { "unknown" } else { envoy };
    if count == 0 || count > MAX_LEASE {
        return Err(ApiError::invalid(
            "bad_request",
            format!("`count` must be between 1 and {MAX_LEASE}."),
        ));
    }
    let lease = app
        .store
        .lease_uids(envoy, count)
        .await
        .map_err(ApiError::store)?;
    app.metrics.uid_leases.inc();
    app.metrics.uids_leased.inc_by(u64::from(count));
    tracing::info!(envoy, first = lease.first, last = lease.last, "uids leased");
    Ok(UidLease {
        first: lease.first,
        last: lease.last,
    })
}

/// `POST /_miroir/internal/tasks`: a fresh uid, or the leased uid the filter already answered
/// with (idempotent: the same registration twice gives the same answer).
pub async fn register(app: &App, registration: TaskRegistration) -> Result<Registered, ApiError> {
    register_with(app, registration, None).await
}

/// [`register`], for a `taskDeletion` with the global tasks it deletes once it finished
/// (`deletes`, see [`StoredTask::deletes`]).
pub async fn register_with(
    app: &App,
    registration: TaskRegistration,
    deletes: Option<Vec<u32>>,
) -> Result<Registered, ApiError> {
    if let Some(missed) = &registration.missed {
        crate::in_sync::record(app, missed).await?;
    }
    let uid = match registration.task_uid {
        Some(uid) => {
            let leases = app.store.leases().await.map_err(ApiError::store)?;
            if !leases.iter().any(|l| l.contains(uid)) {
                return Err(ApiError::invalid(
                    "miroir_invalid_task_uid",
                    format!(
                        "Task uid `{uid}` is not in any uid lease issued by the control plane."
                    ),
                ));
            }
            uid
        }
        None => app.store.next_uid().await.map_err(ApiError::store)?,
    };
    let mut task = StoredTask {
        uid,
        record: registration.record,
        registered_at: time::now(),
        node_objects: BTreeMap::new(),
        task: Value::Null,
        terminal: false,
        disagreeing_nodes: Vec::new(),
        deletes,
        behind: registration
            .missed
            .as_ref()
            .map(|m| m.nodes.clone())
            .unwrap_or_default(),
    };
    (task.task, task.terminal) = view(&task);
    if task.terminal && task.deletes.is_some() {
        // No node task to wait for: the deletion is processed now.
        let key = app.node_authorization(None);
        apply_deletion(app, &mut task, key.as_deref(), app.read_timeout()).await?;
    }
    if !app
        .store
        .insert_task(&task)
        .await
        .map_err(ApiError::store)?
    {
        let existing = app.store.get_task(uid).await.map_err(ApiError::store)?;
        return match existing {
            Some(e) if e.record == task.record => {
                if let Some(intent) = task.record.intent {
                    crate::intents::close(app, intent).await;
                }
                Ok(Registered { task_uid: uid })
            }
            _ => Err(ApiError::new(
                StatusCode::CONFLICT,
                "miroir_task_uid_conflict",
                "invalid_request",
                format!("Task `{uid}` is already registered with another record."),
            )),
        };
    }
    app.metrics.tasks_registered.inc();
    if task.terminal {
        // Finished when registered (nothing to wait for): the only moment it finishes.
        webhooks::notify(app, vec![task.task.clone()]);
    }
    record_index(app, &task).await;
    if let Some(intent) = task.record.intent {
        crate::intents::close(app, intent).await;
    }
    Ok(Registered { task_uid: uid })
}

/// Keeps the index registry in step with the index lifecycle the filter reports. The registry
/// reaches every Envoy (the primary keys it routes writes by without asking every node), but
/// only as a hint the filter checks at the copies a write goes to: forgetting a primary key here
/// costs a lookup, never a misrouted document.
async fn record_index(app: &App, task: &StoredTask) {
    let result = match task.record.kind.as_str() {
        "indexCreation" | "documentAdditionOrUpdate" => learn_primary_key(app, task).await,
        "indexDeletion" => match task.record.index_uid.as_deref() {
            Some(index) => app.store.delete_index(index).await.map(|_| ()),
            None => Ok(()),
        },
        // A rename, a swap or a new primary key: what the registry holds of these indexes is
        // forgotten until the settings check after the task reads it back from the nodes.
        "indexUpdate" | "indexSwap" => {
            let (indexes, _) = settings_check::changed_indexes(task);
            forget_primary_keys(app, &indexes).await
        }
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(task = task.uid, error = %e, "index registry not updated");
    }
}

async fn learn_primary_key(app: &App, task: &StoredTask) -> StoreResult<()> {
    let Some(index) = task.record.index_uid.as_deref() else {
        return Ok(());
    };
    let primary_key = task.record.primary_key.clone().or_else(|| {
        task.record
            .details
            .get("primaryKey")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match app.store.get_index(index).await? {
        Some(entry) if primary_key.is_none() || entry.primary_key == primary_key => Ok(()),
        Some(mut entry) => {
            entry.primary_key = primary_key;
            app.store.put_index(&entry).await
        }
        None => {
            let shards = match app.store.load_topology().await {
                Ok(Some(t)) => t.shards,
                _ => 0,
            };
            app.store
                .put_index(&IndexEntry {
                    uid: index.to_string(),
                    primary_key,
                    shards,
                    settings: None,
                })
                .await
        }
    }
}

async fn forget_primary_keys(app: &App, indexes: &[String]) -> StoreResult<()> {
    for index in indexes {
        if let Some(mut entry) = app.store.get_index(index).await? {
            if entry.primary_key.take().is_some() {
                app.store.put_index(&entry).await?;
            }
        }
    }
    Ok(())
}

/// Nodes whose unfinished node tasks no longer hold a task back: marked failed by the health
/// checks, with copies out of the in-sync set (so reads skip them and the repair will bring them
/// every change they miss, this task's included).
fn given_up(topology: &Topology) -> Vec<String> {
    let map = topology.map();
    let out_of_sync = map.out_of_sync_nodes();
    topology
        .nodes
        .iter()
        .filter(|n| n.state == miroir_topology::NodeState::Failed)
        .filter(|n| out_of_sync.contains(n.id.as_str()))
        .map(|n| n.id.clone())
        .collect()
}

/// Reads the unfinished node tasks of `tasks` from their nodes (batched per node) and stores
/// what changed. A node that cannot be reached keeps its last answer. `authorization` is used
/// when no node key is configured.
pub async fn refresh(
    app: &App,
    tasks: Vec<StoredTask>,
    authorization: Option<&str>,
    timeout: std::time::Duration,
) -> Result<Vec<StoredTask>, ApiError> {
    let wanted: Vec<&StoredTask> = tasks.iter().filter(|t| !t.terminal).collect();
    if wanted.is_empty() {
        return Ok(tasks);
    }
    let topology = app
        .store
        .load_topology()
        .await
        .map_err(ApiError::store)?
        .unwrap_or(Topology {
            epoch: 0,
            shards: 0,
            shard_map: Default::default(),
            replication_factor: 0,
            nodes: vec![],
        });
    let mut per_node: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for task in &wanted {
        for nt in &task.record.node_tasks {
            if !node_terminal(task.node_objects.get(&node_key(&nt.node, nt.task_uid))) {
                per_node
                    .entry(nt.node.clone())
                    .or_default()
                    .push(nt.task_uid);
            }
        }
    }
    let key = app.node_authorization(authorization);
    let mut calls = tokio::task::JoinSet::new();
    for (node, mut uids) in per_node {
        let Some(address) = topology.node(&node).map(|n| n.address.clone()) else {
            continue; // removed from the topology: its last answer stands
        };
        uids.sort_unstable();
        uids.dedup();
        let (http, key) = (app.http.clone(), key.clone());
        calls.spawn(async move {
            let got = nodes::tasks(&http, &address, key.as_deref(), &uids, timeout).await;
            (node, got)
        });
    }
    let mut fresh: HashMap<String, Value> = HashMap::new();
    while let Some(joined) = calls.join_next().await {
        let Ok((node, got)) = joined else { continue };
        match got {
            Ok(objects) => {
                for object in objects {
                    if let Some(uid) = object.get("uid").and_then(Value::as_u64) {
                        fresh.insert(node_key(&node, uid), object);
                    }
                }
            }
            Err(e) => tracing::debug!(node, error = %e, "node tasks not read"),
        }
    }
    let given_up = given_up(&topology);
    let mut out = Vec::with_capacity(tasks.len());
    let mut changed = Vec::new();
    let mut finished = Vec::new();
    for mut task in tasks {
        if !task.terminal {
            let mut updated = false;
            for nt in &task.record.node_tasks {
                let k = node_key(&nt.node, nt.task_uid);
                if given_up.contains(&nt.node)
                    && !fresh.contains_key(&k)
                    && !node_terminal(task.node_objects.get(&k))
                    && !task.behind.contains(&nt.node)
                {
                    task.behind.push(nt.node.clone());
                    updated = true;
                }
            }
            for nt in &task.record.node_tasks {
                let k = node_key(&nt.node, nt.task_uid);
                if let Some(object) = fresh.get(&k) {
                    if task.node_objects.get(&k) != Some(object) {
                        task.node_objects.insert(k, object.clone());
                        updated = true;
                    }
                }
            }
            if updated {
                (task.task, task.terminal) = view(&task);
                if task.terminal {
                    finished.push(out.len());
                }
                changed.push(out.len());
            }
        }
        out.push(task);
    }
    // Before the tasks are stored finished, so the read that first sees one finished already
    // carries what the check found.
    settings_check::after_finished(app, &mut out, &finished, key.as_deref(), timeout).await;
    // The store says which update finished a task (one caller only, even with several
    // refreshes racing on several replicas): those tasks go to the webhooks, once.
    // A task deletion whose node tasks all finished is applied first: it is finished (stored
    // and notified as such) only with its global tasks deleted.
    let mut finished_now = Vec::new();
    let mut deleted = Vec::new();
    for i in changed {
        let finished = if out[i].terminal && out[i].deletes.is_some() {
            let (finished, gone) =
                finish_deletion(app, &mut out[i], key.as_deref(), timeout).await?;
            deleted.extend(gone);
            finished
        } else {
            app.store
                .update_task(&out[i])
                .await
                .map_err(ApiError::store)?
        };
        if finished {
            finished_now.push(out[i].task.clone());
        }
    }
    webhooks::notify(app, finished_now);
    if !deleted.is_empty() {
        out.retain(|t| !deleted.contains(&t.uid));
    }
    Ok(out)
}

/// Stores `task`, a `taskDeletion` whose node tasks just finished, once its deletion is applied
/// ([`apply_deletion`]); unless another read applied it first (then `task` becomes the stored
/// copy). Returns whether this call finished the task, and the uids it deleted.
async fn finish_deletion(
    app: &App,
    task: &mut StoredTask,
    authorization: Option<&str>,
    timeout: std::time::Duration,
) -> Result<(bool, Vec<u32>), ApiError> {
    let _applying = app.deletion_lock.lock().await;
    match app
        .store
        .get_task(task.uid)
        .await
        .map_err(ApiError::store)?
    {
        None => return Ok((false, Vec::new())), // deleted meanwhile
        Some(stored) if stored.terminal => {
            *task = stored;
            return Ok((false, Vec::new()));
        }
        Some(_) => {}
    }
    let gone = apply_deletion(app, task, authorization, timeout).await?;
    let finished = app.store.update_task(task).await.map_err(ApiError::store)?;
    Ok((finished, gone))
}

/// Processes the deletion `task` stands for, as Meilisearch's queue does when it reaches a
/// `taskDeletion`: of the global tasks it matched when registered, those finished by now are
/// deleted (a task still enqueued or processing is kept). Sets `details.deletedTasks`, clears
/// [`StoredTask::deletes`] and recomputes the task object. Returns the uids deleted.
async fn apply_deletion(
    app: &App,
    task: &mut StoredTask,
    authorization: Option<&str>,
    timeout: std::time::Duration,
) -> Result<Vec<u32>, ApiError> {
    let targets = task.deletes.take().unwrap_or_default();
    let mut finished = Vec::new();
    let mut unfinished = Vec::new();
    for uid in targets {
        match app.store.get_task(uid).await.map_err(ApiError::store)? {
            Some(t) if t.terminal => finished.push(uid),
            Some(t) => unfinished.push(t),
            None => {} // deleted already (by an earlier deletion): not counted
        }
    }
    finished.extend(finished_on_nodes(app, &unfinished, authorization, timeout).await?);
    let deleted = app
        .store
        .delete_tasks(&finished)
        .await
        .map_err(ApiError::store)?;
    task.record
        .details
        .insert("deletedTasks".into(), json!(deleted));
    (task.task, task.terminal) = view(task);
    if !finished.is_empty() {
        tracing::info!(task = task.uid, deleted, "task deletion applied");
    }
    Ok(finished)
}

/// The uids of `tasks` (unfinished as last read) whose every node task has finished since, as
/// its node says now. A node task its node no longer has was deleted there, which a node does
/// only to a finished task; a node that cannot be read proves nothing.
async fn finished_on_nodes(
    app: &App,
    tasks: &[StoredTask],
    authorization: Option<&str>,
    timeout: std::time::Duration,
) -> Result<Vec<u32>, ApiError> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let topology = app.store.load_topology().await.map_err(ApiError::store)?;
    let mut per_node: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for task in tasks {
        for nt in &task.record.node_tasks {
            if !node_terminal(task.node_objects.get(&node_key(&nt.node, nt.task_uid))) {
                per_node
                    .entry(nt.node.clone())
                    .or_default()
                    .push(nt.task_uid);
            }
        }
    }
    let mut calls = tokio::task::JoinSet::new();
    for (node, mut uids) in per_node {
        let Some(address) = topology
            .as_ref()
            .and_then(|t| t.node(&node))
            .map(|n| n.address.clone())
        else {
            continue; // not in the topology: nothing can be read of it
        };
        uids.sort_unstable();
        uids.dedup();
        let (http, key) = (app.http.clone(), authorization.map(str::to_string));
        calls.spawn(async move {
            let got = nodes::tasks(&http, &address, key.as_deref(), &uids, timeout).await;
            (node, got)
        });
    }
    // Node → what it said of each uid asked (`None`: absent, so deleted there).
    let mut answers: HashMap<String, HashMap<u64, Value>> = HashMap::new();
    while let Some(joined) = calls.join_next().await {
        let Ok((node, got)) = joined else { continue };
        match got {
            Ok(objects) => {
                let by_uid = answers.entry(node).or_default();
                for object in objects {
                    if let Some(uid) = object.get("uid").and_then(Value::as_u64) {
                        by_uid.insert(uid, object);
                    }
                }
            }
            Err(e) => tracing::debug!(node, error = %e, "node tasks not read"),
        }
    }
    let finished = tasks
        .iter()
        .filter(|task| {
            task.record.node_tasks.iter().all(|nt| {
                node_terminal(task.node_objects.get(&node_key(&nt.node, nt.task_uid)))
                    || answers
                        .get(&nt.node)
                        .is_some_and(|by_uid| match by_uid.get(&nt.task_uid) {
                            None => true,
                            Some(object) => node_terminal(Some(object)),
                        })
            })
        })
        .map(|t| t.uid)
        .collect();
    Ok(finished)
}

/// One round of the leader's poller: every unfinished task.
pub async fn poll_pending(app: &App) -> Result<usize, ApiError> {
    let pending = app.store.pending_tasks().await.map_err(ApiError::store)?;
    let mut tasks = Vec::with_capacity(pending.len());
    for uid in &pending {
        if let Some(t) = app.store.get_task(*uid).await.map_err(ApiError::store)? {
            tasks.push(t);
        }
    }
    let refreshed = refresh(app, tasks, None, app.node_timeout()).await?;
    Ok(refreshed.iter().filter(|t| t.terminal).count())
}
