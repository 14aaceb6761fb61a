//! The task queue: every write is a task that one background worker runs strictly in enqueue
//! order (enqueued → processing → succeeded/failed), like Meilisearch without autobatching.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::documents::{apply_additions, primary_key_already_exists, resolve_primary_key};
use crate::error::MeiliError;
use crate::filter::Filter;
use crate::state::{Document, Index, SharedState, Store};
use crate::time::{iso_duration, rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Enqueued,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enqueued => "enqueued",
            Status::Processing => "processing",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Canceled)
    }
}

/// What a task does; kept off the JSON view.
#[derive(Debug, Clone)]
pub enum Payload {
    IndexCreation {
        primary_key: Option<String>,
    },
    IndexUpdate {
        primary_key: Option<String>,
    },
    IndexDeletion,
    DocumentAddition {
        docs: Vec<Document>,
        primary_key: Option<String>,
        merge: bool,
    },
    DeleteIds(Vec<String>),
    DeleteByFilter(Filter),
    ClearDocuments,
    Settings(Map<String, Value>),
    /// The uids matched when the cancelation was registered.
    TaskCancelation(Vec<u64>),
    /// The uids matched when the deletion was registered.
    TaskDeletion(Vec<u64>),
    DumpCreation,
    SnapshotCreation,
    IndexCompaction,
    /// A dynamic search rule upsert (`Some(patch)`) or deletion (`None`).
    DsrUpdate {
        uid: String,
        patch: Option<Map<String, Value>>,
    },
    DsrClear,
}

/// The index uid Meilisearch gives dynamic search rule tasks.
pub const DSR_INDEX: &str = ".meili_dsr";

impl Payload {
    pub fn task_type(&self) -> &'static str {
        match self {
            Payload::IndexCreation { .. } => "indexCreation",
            Payload::IndexUpdate { .. } => "indexUpdate",
            Payload::IndexDeletion => "indexDeletion",
            Payload::DocumentAddition { .. } => "documentAdditionOrUpdate",
            Payload::DeleteIds(_) | Payload::DeleteByFilter(_) | Payload::ClearDocuments => {
                "documentDeletion"
            }
            Payload::Settings(_) => "settingsUpdate",
            Payload::TaskCancelation(_) => "taskCancelation",
            Payload::TaskDeletion(_) => "taskDeletion",
            Payload::DumpCreation => "dumpCreation",
            Payload::SnapshotCreation => "snapshotCreation",
            Payload::IndexCompaction => "indexCompaction",
            Payload::DsrUpdate { .. } => "dsrUpdate",
            Payload::DsrClear => "dsrClear",
        }
    }

    /// Meilisearch's scheduling priority: cancelations, then deletions, then snapshots and
    /// dumps, then everything else in enqueue order.
    fn priority(&self) -> u8 {
        match self {
            Payload::TaskCancelation(_) => 0,
            Payload::TaskDeletion(_) => 1,
            Payload::SnapshotCreation => 2,
            Payload::DumpCreation => 3,
            _ => 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub uid: u64,
    pub batch_uid: Option<u64>,
    pub index_uid: Option<String>,
    pub status: Status,
    pub canceled_by: Option<u64>,
    pub details: Option<Map<String, Value>>,
    pub error: Option<MeiliError>,
    pub enqueued_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub custom_metadata: Option<String>,
    pub payload: Payload,
}

impl Task {
    pub fn task_type(&self) -> &'static str {
        self.payload.task_type()
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("uid".into(), json!(self.uid));
        m.insert("batchUid".into(), json!(self.batch_uid));
        m.insert("indexUid".into(), json!(self.index_uid));
        m.insert("status".into(), json!(self.status.as_str()));
        m.insert("type".into(), json!(self.task_type()));
        m.insert("canceledBy".into(), json!(self.canceled_by));
        if let Some(details) = &self.details {
            m.insert("details".into(), Value::Object(details.clone()));
        }
        m.insert(
            "error".into(),
            self.error.as_ref().map_or(Value::Null, MeiliError::to_json),
        );
        let duration = match (self.started_at, self.finished_at) {
            (Some(s), Some(f)) => json!(iso_duration(f.duration_since(s).unwrap_or_default())),
            _ => Value::Null,
        };
        m.insert("duration".into(), duration);
        m.insert("enqueuedAt".into(), json!(rfc3339(self.enqueued_at)));
        m.insert("startedAt".into(), json!(self.started_at.map(rfc3339)));
        m.insert("finishedAt".into(), json!(self.finished_at.map(rfc3339)));
        if let Some(meta) = &self.custom_metadata {
            m.insert("customMetadata".into(), json!(meta));
        }
        Value::Object(m)
    }

    /// The 202 answer to a write.
    pub fn summary(&self) -> Value {
        let mut m = Map::new();
        m.insert("taskUid".into(), json!(self.uid));
        m.insert("indexUid".into(), json!(self.index_uid));
        m.insert("status".into(), json!(self.status.as_str()));
        m.insert("type".into(), json!(self.task_type()));
        m.insert("enqueuedAt".into(), json!(rfc3339(self.enqueued_at)));
        if let Some(meta) = &self.custom_metadata {
            m.insert("customMetadata".into(), json!(meta));
        }
        Value::Object(m)
    }
}

/// Details as they look while the task waits: counts not yet known are `null`.
fn initial_details(payload: &Payload) -> Map<String, Value> {
    let v = match payload {
        Payload::IndexCreation { primary_key } | Payload::IndexUpdate { primary_key } => {
            json!({"primaryKey": primary_key})
        }
        Payload::IndexDeletion | Payload::ClearDocuments => json!({"deletedDocuments": null}),
        Payload::DocumentAddition { docs, .. } => {
            json!({"receivedDocuments": docs.len(), "indexedDocuments": null})
        }
        Payload::DeleteIds(ids) => {
            json!({"providedIds": ids.len(), "deletedDocuments": null, "originalFilter": null})
        }
        Payload::DeleteByFilter(_) => {
            json!({"providedIds": 0, "deletedDocuments": null, "originalFilter": null})
        }
        Payload::Settings(patch) => Value::Object(patch.clone()),
        Payload::TaskCancelation(matched) => {
            json!({"matchedTasks": matched.len(), "canceledTasks": null, "originalFilter": null})
        }
        Payload::TaskDeletion(matched) => {
            json!({"matchedTasks": matched.len(), "deletedTasks": null, "originalFilter": null})
        }
        Payload::DumpCreation => json!({"dumpUid": null}),
        Payload::SnapshotCreation | Payload::IndexCompaction => json!({}),
        Payload::DsrUpdate { patch, .. } => match patch {
            Some(rule) => json!({"rule": rule, "updatedRules": 1}),
            None => json!({"updatedRules": 1}),
        },
        Payload::DsrClear => json!({"deletedDocuments": null}),
    };
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub fn enqueue(
    state: &SharedState,
    index_uid: Option<&str>,
    payload: Payload,
    custom_metadata: Option<String>,
) -> Value {
    enqueue_with_details(state, index_uid, payload, custom_metadata, None)
}

/// `extra_details` overrides initial detail keys (e.g. the original filter text).
pub fn enqueue_with_details(
    state: &SharedState,
    index_uid: Option<&str>,
    payload: Payload,
    custom_metadata: Option<String>,
    extra_details: Option<Map<String, Value>>,
) -> Value {
    let summary = {
        let mut store = state.lock();
        let mut details = initial_details(&payload);
        if let Some(extra) = extra_details {
            details.extend(extra);
        }
        let details = match payload {
            // A snapshot task has no details at all.
            Payload::SnapshotCreation => None,
            _ => Some(details),
        };
        let uid = store.next_task_uid;
        store.next_task_uid += 1;
        let task = Task {
            uid,
            batch_uid: None,
            index_uid: index_uid.map(String::from),
            status: Status::Enqueued,
            canceled_by: None,
            details,
            error: None,
            enqueued_at: SystemTime::now(),
            started_at: None,
            finished_at: None,
            custom_metadata,
            payload,
        };
        let summary = task.summary();
        store.tasks.insert(uid, task);
        summary
    };
    state.wake.notify_one();
    summary
}

/// The next task to run: the enqueued task of best priority, oldest first.
fn next_enqueued(store: &Store) -> Option<u64> {
    store
        .tasks
        .values()
        .filter(|t| t.status == Status::Enqueued)
        .min_by_key(|t| (t.payload.priority(), t.uid))
        .map(|t| t.uid)
}

/// Runs forever, processing tasks one by one (one batch per task).
pub async fn worker(state: SharedState) {
    loop {
        let started = {
            let mut store = state.lock();
            match next_enqueued(&store) {
                Some(uid) => {
                    let batch = store.next_batch_uid;
                    store.next_batch_uid += 1;
                    if let Some(task) = store.tasks.get_mut(&uid) {
                        task.status = Status::Processing;
                        task.batch_uid = Some(batch);
                        task.started_at = Some(SystemTime::now());
                    }
                    Some(uid)
                }
                None => None,
            }
        };
        let Some(uid) = started else {
            state.wake.notified().await;
            continue;
        };
        // Let observers see the `processing` state, as on a real node.
        tokio::task::yield_now().await;
        let mut store = state.lock();
        process(&mut store, uid);
    }
}

fn process(store: &mut Store, uid: u64) {
    let Some(task) = store.tasks.get(&uid) else {
        return;
    };
    let index_uid = task.index_uid.clone().unwrap_or_default();
    let payload = task.payload.clone();
    let batch_uid = task.batch_uid;
    let mut details = task.details.clone().unwrap_or_default();
    let now = SystemTime::now();
    let result = match payload {
        Payload::TaskCancelation(matched) => {
            cancel_tasks(store, uid, batch_uid, &matched, now, &mut details);
            Ok(())
        }
        Payload::TaskDeletion(matched) => {
            let deleted = matched
                .iter()
                .filter(|m| {
                    let finished = store.tasks.get(m).is_some_and(|t| t.status.is_finished());
                    finished && store.tasks.remove(m).is_some()
                })
                .count();
            details.insert("deletedTasks".into(), json!(deleted));
            Ok(())
        }
        payload => run(store, &index_uid, payload, &mut details, now),
    };
    let finished = SystemTime::now();
    if result.is_ok() {
        store.last_update = Some(finished);
    }
    if let Some(task) = store.tasks.get_mut(&uid) {
        match result {
            Ok(()) => task.status = Status::Succeeded,
            Err(e) => {
                task.status = Status::Failed;
                task.error = Some(e);
                if matches!(task.payload, Payload::IndexCompaction) {
                    details.clear();
                }
            }
        }
        if task.details.is_some() {
            task.details = Some(details);
        }
        task.finished_at = Some(finished);
        // Large payloads are not needed once processed.
        if let Payload::DocumentAddition { docs, .. } = &mut task.payload {
            docs.clear();
        }
    }
}

/// Cancels the matched tasks still enqueued, as Meilisearch's `taskCancelation` batch: they
/// join its batch, and counts not yet known become 0 (`Details::to_failed`).
fn cancel_tasks(
    store: &mut Store,
    canceler: u64,
    batch_uid: Option<u64>,
    matched: &[u64],
    now: SystemTime,
    details: &mut Map<String, Value>,
) {
    let mut canceled = 0;
    for uid in matched {
        let Some(task) = store.tasks.get_mut(uid) else {
            continue;
        };
        if task.status != Status::Enqueued {
            continue;
        }
        task.status = Status::Canceled;
        task.canceled_by = Some(canceler);
        task.batch_uid = batch_uid;
        task.finished_at = Some(now);
        if let Some(d) = &mut task.details {
            for key in [
                "indexedDocuments",
                "deletedDocuments",
                "canceledTasks",
                "deletedTasks",
                "editedDocuments",
            ] {
                if d.get(key) == Some(&Value::Null) {
                    d.insert(key.into(), json!(0));
                }
            }
        }
        if let Payload::DocumentAddition { docs, .. } = &mut task.payload {
            docs.clear();
        }
        canceled += 1;
    }
    details.insert("canceledTasks".into(), json!(canceled));
}

fn run(
    store: &mut Store,
    uid: &str,
    payload: Payload,
    details: &mut Map<String, Value>,
    now: SystemTime,
) -> Result<(), MeiliError> {
    let missing = || MeiliError::index_not_found(uid);
    match payload {
        Payload::IndexCreation { primary_key } => {
            if store.indexes.contains_key(uid) {
                return Err(MeiliError::new(
                    axum::http::StatusCode::CONFLICT,
                    "index_already_exists",
                    format!("Index `{uid}` already exists."),
                ));
            }
            store
                .indexes
                .insert(uid.to_string(), Index::new(uid, primary_key, now));
        }
        Payload::IndexUpdate { primary_key } => {
            let index = store.indexes.get_mut(uid).ok_or_else(missing)?;
            if let Some(pk) = primary_key {
                if index.primary_key.as_deref() != Some(pk.as_str()) {
                    if !index.docs.is_empty() {
                        if let Some(existing) = &index.primary_key {
                            return Err(primary_key_already_exists(existing));
                        }
                    }
                    index.primary_key = Some(pk);
                }
            }
            index.updated_at = now;
        }
        Payload::IndexDeletion => {
            let index = store.indexes.remove(uid).ok_or_else(missing)?;
            details.insert("deletedDocuments".into(), json!(index.docs.len()));
        }
        Payload::DocumentAddition {
            docs,
            primary_key,
            merge,
        } => {
            details.insert("indexedDocuments".into(), json!(0));
            let existing = store.indexes.get(uid);
            let pk = resolve_primary_key(
                existing.and_then(|i| i.primary_key.as_deref()),
                primary_key.as_deref(),
                &docs,
            )?;
            // Work on a copy so a failing payload leaves the index untouched.
            let mut index = existing
                .cloned()
                .unwrap_or_else(|| Index::new(uid, None, now));
            let indexed = match &pk {
                Some(pk) => apply_additions(&mut index, pk, docs, merge)?,
                None => 0,
            };
            if index.primary_key.is_none() {
                index.primary_key = pk;
            }
            index.updated_at = now;
            store.indexes.insert(uid.to_string(), index);
            details.insert("indexedDocuments".into(), json!(indexed));
        }
        Payload::DeleteIds(ids) => {
            let index = store.indexes.get_mut(uid).ok_or_else(missing)?;
            let deleted = ids.iter().filter(|id| index.remove(id)).count();
            index.updated_at = now;
            details.insert("deletedDocuments".into(), json!(deleted));
        }
        Payload::DeleteByFilter(filter) => {
            let index = store.indexes.get_mut(uid).ok_or_else(missing)?;
            filter
                .check_filterable(uid, &index.settings)
                .map_err(|m| MeiliError::invalid("invalid_document_filter", m))?;
            let ids: Vec<String> = index
                .docs
                .values()
                .filter(|d| filter.matches(d))
                .filter_map(|d| index.external_id_of(d))
                .collect();
            let deleted = ids.iter().filter(|id| index.remove(id)).count();
            index.updated_at = now;
            details.insert("deletedDocuments".into(), json!(deleted));
        }
        Payload::ClearDocuments => {
            let index = store.indexes.get_mut(uid).ok_or_else(missing)?;
            let deleted = index.clear();
            index.updated_at = now;
            details.insert("deletedDocuments".into(), json!(deleted));
        }
        Payload::Settings(patch) => {
            let index = store
                .indexes
                .entry(uid.to_string())
                .or_insert_with(|| Index::new(uid, None, now));
            let mut updated = index.settings.clone();
            updated.apply(&patch);
            crate::settings::check_embedders(&updated).map_err(|e| {
                MeiliError::invalid(e.code, format!("Index `{uid}`: {}", e.message))
            })?;
            index.settings = updated;
            index.updated_at = now;
        }
        Payload::DumpCreation => {
            details.insert("dumpUid".into(), json!(dump_uid(now)));
        }
        Payload::SnapshotCreation => {}
        Payload::IndexCompaction => {
            let index = store.indexes.get(uid).ok_or_else(missing)?;
            let size = crate::routes::human_size(index.raw_size() as u64);
            details.insert("preCompactionSize".into(), json!(size));
            details.insert("postCompactionSize".into(), json!(size));
        }
        Payload::DsrUpdate { uid, patch } => crate::dsr::apply(store, &uid, patch),
        Payload::DsrClear => {
            let n = store.dsr.len();
            store.dsr.clear();
            details.insert("deletedDocuments".into(), json!(n));
        }
        Payload::TaskCancelation(_) | Payload::TaskDeletion(_) => {}
    }
    Ok(())
}

/// Meilisearch's dump uid: the UTC time as `YYYYMMDD-HHMMSSmmm`.
pub fn dump_uid(t: SystemTime) -> String {
    let text = rfc3339(t);
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let padded = format!("{digits:0<17}");
    format!("{}-{}", &padded[..8], &padded[8..17])
}
