//! In-memory node state: indexes with their documents and settings, and the task queue.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use crate::settings::Settings;
use crate::tasks::Task;
use crate::time::rfc3339;

pub type Document = Map<String, Value>;

#[derive(Debug, Clone)]
pub struct Index {
    pub uid: String,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub primary_key: Option<String>,
    /// Keyed by internal document id, which is the tie-break order of search and the order of
    /// unsorted document listings, as in Meilisearch.
    pub docs: BTreeMap<u32, Document>,
    pub external_ids: HashMap<String, u32>,
    /// Meilisearch reuses freed internal ids, lowest first.
    free_ids: BTreeSet<u32>,
    next_id: u32,
    /// Top-level field names in order of first appearance: Meilisearch stores documents by
    /// field id, so they come back in this order rather than in each payload's order.
    fields: Vec<String>,
    pub settings: Settings,
}

impl Index {
    pub fn new(uid: &str, primary_key: Option<String>, now: SystemTime) -> Self {
        Self {
            uid: uid.to_string(),
            created_at: now,
            updated_at: now,
            primary_key,
            docs: BTreeMap::new(),
            external_ids: HashMap::new(),
            free_ids: BTreeSet::new(),
            next_id: 0,
            fields: Vec::new(),
            settings: Settings::default(),
        }
    }

    pub fn view(&self) -> Value {
        json!({
            "uid": self.uid,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
            "primaryKey": self.primary_key,
        })
    }

    pub fn get(&self, external_id: &str) -> Option<&Document> {
        self.external_ids
            .get(external_id)
            .and_then(|id| self.docs.get(id))
    }

    /// Inserts or replaces; a replaced document keeps its internal id.
    pub fn put(&mut self, external_id: String, mut doc: Document) {
        for key in doc.keys() {
            if !self.fields.contains(key) {
                self.fields.push(key.clone());
            }
        }
        let position = |k: &String| {
            self.fields
                .iter()
                .position(|f| f == k)
                .unwrap_or(usize::MAX)
        };
        let mut entries: Vec<(String, Value)> = std::mem::take(&mut doc).into_iter().collect();
        entries.sort_by_key(|(k, _)| position(k));
        doc = entries.into_iter().collect();
        let id = match self.external_ids.get(&external_id) {
            Some(id) => *id,
            None => {
                let id = match self.free_ids.pop_first() {
                    Some(id) => id,
                    None => {
                        self.next_id += 1;
                        self.next_id - 1
                    }
                };
                self.external_ids.insert(external_id, id);
                id
            }
        };
        self.docs.insert(id, doc);
    }

    pub fn remove(&mut self, external_id: &str) -> bool {
        match self.external_ids.remove(external_id) {
            Some(id) => {
                self.docs.remove(&id);
                self.free_ids.insert(id);
                true
            }
            None => false,
        }
    }

    pub fn clear(&mut self) -> usize {
        let n = self.docs.len();
        self.docs.clear();
        self.external_ids.clear();
        self.free_ids.clear();
        self.next_id = 0;
        n
    }

    /// External id of a stored document, for deletions by filter.
    pub fn external_id_of(&self, doc: &Document) -> Option<String> {
        let pk = self.primary_key.as_deref()?;
        crate::documents::lookup(doc, pk).and_then(crate::documents::normalize_id)
    }

    /// The documents' size as JSON, this node's stand-in for the database size.
    pub fn raw_size(&self) -> usize {
        self.docs
            .values()
            .map(|d| serde_json::to_string(d).map(|s| s.len()).unwrap_or(0))
            .sum()
    }

    pub fn stats(&self, is_indexing: bool) -> Value {
        let mut fields: BTreeMap<&str, u64> = BTreeMap::new();
        let mut raw = 0usize;
        for doc in self.docs.values() {
            raw += serde_json::to_string(doc).map(|s| s.len()).unwrap_or(0);
            // Embeddings live in the vector store, not among the document's fields.
            for key in doc.keys().filter(|k| *k != "_vectors") {
                *fields.entry(key.as_str()).or_default() += 1;
            }
        }
        let n = self.docs.len();
        let (embeddings, embedded) = crate::vectors::counts(&self.settings, self.docs.values());
        json!({
            "numberOfDocuments": n,
            "rawDocumentDbSize": raw,
            "avgDocumentSize": raw.checked_div(n).unwrap_or(0),
            "isIndexing": is_indexing,
            "numberOfEmbeddings": embeddings,
            "numberOfEmbeddedDocuments": embedded,
            "fieldDistribution": fields,
        })
    }
}

#[derive(Debug, Default)]
pub struct Store {
    pub indexes: BTreeMap<String, Index>,
    /// By uid; deleted tasks are gone, uids are never reused.
    pub tasks: BTreeMap<u64, Task>,
    pub next_task_uid: u64,
    /// `/webhooks`, oldest first.
    pub webhooks: Vec<crate::webhooks::Webhook>,
    /// `/dynamic-search-rules`: uid and stored rule, in creation order.
    pub dsr: Vec<(String, Map<String, Value>)>,
    pub next_batch_uid: u64,
    pub last_update: Option<SystemTime>,
}

impl Store {
    pub fn index(&self, uid: &str) -> Result<&Index, crate::error::MeiliError> {
        self.indexes
            .get(uid)
            .ok_or_else(|| crate::error::MeiliError::index_not_found(uid))
    }

    pub fn is_indexing(&self, uid: &str) -> bool {
        self.tasks
            .values()
            .rev()
            .any(|t| t.index_uid.as_deref() == Some(uid) && !t.status.is_finished())
    }
}

pub struct AppState {
    store: Mutex<Store>,
    /// Wakes the task worker when a task is enqueued.
    pub wake: Notify,
    pub master_key: Option<String>,
    /// API keys, oldest first; only used with a master key.
    keys: Mutex<Vec<crate::keys::ApiKey>>,
    /// `/experimental-features`.
    features: Mutex<Map<String, Value>>,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(master_key: Option<String>) -> SharedState {
        Arc::new(Self {
            store: Mutex::new(Store::default()),
            wake: Notify::new(),
            keys: Mutex::new(if master_key.is_some() {
                crate::keys::default_keys(SystemTime::now())
            } else {
                Vec::new()
            }),
            master_key,
            features: Mutex::new(crate::features::defaults()),
        })
    }

    pub fn features(&self) -> MutexGuard<'_, Map<String, Value>> {
        self.features.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the `network` experimental feature is on.
    pub fn network_enabled(&self) -> bool {
        self.features().get("network") == Some(&Value::Bool(true))
    }

    /// A panic while holding the lock must not take the whole node down with poisoned-lock
    /// errors; the state is still consistent enough for a test double.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn keys(&self) -> MutexGuard<'_, Vec<crate::keys::ApiKey>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}
