//! Test helpers: scratch directories and a private `redis-server` per test, both removed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "miroir-cp-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `redis-server` on a free loopback port, with its files in a scratch directory; killed on
/// drop. Needs `redis-server` on PATH (Debian: `apt-get install -y redis-server`).
pub struct RedisServer {
    child: Child,
    pub url: String,
    _dir: TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = TempDir::new("redis");
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server on PATH (apt-get install -y redis-server)");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken in between: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return RedisServer {
                        child,
                        url: format!("redis://127.0.0.1:{port}"),
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds, failing after a generous deadline (no timed assertions).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// A Meilisearch node as the control plane sees it: `/health`, `GET /tasks` (filtered by
/// `uids`, `statuses`, `types`, `indexUids`), `POST /tasks/cancel?uids=`, `DELETE /tasks?uids=`,
/// `GET /indexes/{uid}` and its `/settings`, with a master key.
#[derive(Clone)]
pub struct FakeNode {
    pub address: String,
    pub healthy: Arc<AtomicBool>,
    pub tasks: Arc<Mutex<BTreeMap<u64, Value>>>,
    /// Query strings of the cancel/delete calls received, prefixed by the verb.
    pub calls: Arc<Mutex<Vec<String>>>,
    pub key: String,
    /// Index uid → (primary key, settings).
    pub indexes: Arc<Mutex<BTreeMap<String, (Value, Value)>>>,
    /// Index reads answer 503 while set.
    pub indexes_broken: Arc<AtomicBool>,
    /// API keys in creation order (`POST /keys` needs an explicit `uid` here).
    pub keys: Arc<Mutex<Vec<Value>>>,
    /// `POST /keys` bodies received.
    pub key_posts: Arc<Mutex<Vec<Value>>>,
    /// The key routes answer 503 while set (a node that is down).
    pub keys_down: Arc<AtomicBool>,
    /// While set, cancelations and deletions stay enqueued until [`FakeNode::process`] (a busy
    /// queue); otherwise they are processed when received.
    pub paused: Arc<AtomicBool>,
    /// Enqueued cancelations and deletions.
    held: Arc<Mutex<Vec<Held>>>,
}

/// A cancelation or deletion a paused node has not processed: (its task uid, deletion, uids).
type Held = (u64, bool, Vec<u64>);

fn auth_error(headers: &HeaderMap, key: &str) -> Option<(StatusCode, Json<Value>)> {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => Some((
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"message": "The Authorization header is missing. It must use the bearer authorization method.",
                        "code": "missing_authorization_header", "type": "auth",
                        "link": "https://docs.meilisearch.com/errors#missing_authorization_header"}),
            ),
        )),
        Some(v) if v == format!("Bearer {key}") => None,
        Some(_) => Some((
            StatusCode::FORBIDDEN,
            Json(
                json!({"message": "The provided API key is invalid.", "code": "invalid_api_key",
                        "type": "auth", "link": "https://docs.meilisearch.com/errors#invalid_api_key"}),
            ),
        )),
    }
}

fn uids_of(params: &[(String, String)]) -> Vec<u64> {
    params
        .iter()
        .filter(|(k, _)| k == "uids")
        .flat_map(|(_, v)| {
            v.split(',')
                .filter_map(|u| u.parse().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether `task` passes the list filter `param` (a comma-separated list of `field` values),
/// if given.
fn passes(params: &[(String, String)], param: &str, field: &str, task: &Value) -> bool {
    params
        .iter()
        .filter(|(k, _)| k == param)
        .all(|(_, v)| v.split(',').any(|x| task[field].as_str() == Some(x)))
}

pub fn node_task(uid: u64, status: &str, received: u64) -> Value {
    let done = matches!(status, "succeeded" | "failed" | "canceled");
    json!({
        "uid": uid, "batchUid": uid, "indexUid": "movies", "status": status,
        "type": "documentAdditionOrUpdate", "canceledBy": null,
        "details": {"receivedDocuments": received, "indexedDocuments": if done { json!(received) } else { Value::Null }},
        "error": null,
        "duration": if done { json!("PT0.5S") } else { Value::Null },
        "enqueuedAt": format!("2026-11-21T10:00:0{}Z", uid % 10),
        "startedAt": if status == "enqueued" { Value::Null } else { json!("2026-11-21T10:00:10Z") },
        "finishedAt": if done { json!("2026-11-21T10:00:11Z") } else { Value::Null },
    })
}

impl FakeNode {
    /// Whether the request's bearer is one of the node's API keys (by value; its rights are
    /// not checked here).
    fn holds_key(&self, headers: &HeaderMap) -> bool {
        let Some(bearer) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        self.keys
            .lock()
            .expect("lock")
            .iter()
            .any(|k| k["key"] == bearer)
    }

    pub async fn start(key: &str) -> FakeNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let node = FakeNode {
            address: listener.local_addr().expect("addr").to_string(),
            healthy: Arc::new(AtomicBool::new(true)),
            tasks: Arc::new(Mutex::new(BTreeMap::new())),
            calls: Arc::new(Mutex::new(Vec::new())),
            key: key.to_string(),
            indexes: Arc::new(Mutex::new(BTreeMap::new())),
            indexes_broken: Arc::new(AtomicBool::new(false)),
            keys: Arc::new(Mutex::new(Vec::new())),
            key_posts: Arc::new(Mutex::new(Vec::new())),
            keys_down: Arc::new(AtomicBool::new(false)),
            paused: Arc::new(AtomicBool::new(false)),
            held: Arc::new(Mutex::new(Vec::new())),
        };
        let router = Router::new()
            .route("/health", get(health))
            .route("/indexes/{uid}", get(get_index))
            .route(
                "/indexes/{uid}/settings",
                get(get_settings).patch(patch_settings),
            )
            .route("/tasks", get(list).delete(delete))
            .route("/tasks/{uid}", get(get_task))
            .route("/tasks/cancel", post(cancel))
            .route("/keys", post(create_key))
            .route("/keys/{uid}", get(get_key))
            .route("/webhooks", get(webhooks_probe).post(webhooks_probe))
            .route(
                "/webhooks/{uuid}",
                axum::routing::patch(webhooks_probe).delete(webhooks_probe),
            )
            .with_state(node.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        node
    }

    pub fn put(&self, task: Value) {
        let uid = task["uid"].as_u64().expect("uid");
        self.tasks.lock().expect("lock").insert(uid, task);
    }

    /// Changes a task's status (and its dates, details), keeping its type and index.
    pub fn set_status(&self, uid: u64, status: &str) {
        let old = self.tasks.lock().expect("lock")[&uid].clone();
        let received = old["details"]["receivedDocuments"].as_u64().unwrap_or(0);
        let mut task = node_task(uid, status, received);
        for field in ["type", "indexUid"] {
            task[field] = old[field].clone();
        }
        self.put(task);
    }

    pub fn set_index(&self, uid: &str, primary_key: &str, settings: Value) {
        self.indexes
            .lock()
            .expect("lock")
            .insert(uid.to_string(), (json!(primary_key), settings));
    }

    fn enqueue(&self, kind: &str, status: &str, details: Value) -> Value {
        let mut tasks = self.tasks.lock().expect("lock");
        let uid = tasks.keys().next_back().map(|u| u + 1).unwrap_or(0);
        let mut task = node_task(uid, status, 0);
        task["type"] = json!(kind);
        task["indexUid"] = Value::Null;
        task["details"] = details;
        tasks.insert(uid, task);
        json!({"taskUid": uid, "indexUid": null, "status": "enqueued", "type": kind,
               "enqueuedAt": "2026-11-21T10:00:00Z"})
    }

    /// Cancels the tasks of `uids` still enqueued or processing, or deletes those finished, as
    /// Meilisearch does when it processes the request; how many.
    fn apply(&self, delete: bool, uids: &[u64]) -> u64 {
        let mut count = 0;
        for uid in uids {
            let status = self
                .tasks
                .lock()
                .expect("lock")
                .get(uid)
                .and_then(|t| t["status"].as_str().map(str::to_string));
            let Some(status) = status else { continue };
            let unfinished = status == "enqueued" || status == "processing";
            if delete && !unfinished {
                self.tasks.lock().expect("lock").remove(uid);
                count += 1;
            } else if !delete && unfinished {
                self.set_status(*uid, "canceled");
                count += 1;
            }
        }
        count
    }

    /// Receives a cancelation or deletion of `uids`: processed now unless paused.
    fn cancel_or_delete(&self, delete: bool, uids: Vec<u64>) -> Value {
        let (kind, counted) = if delete {
            ("taskDeletion", "deletedTasks")
        } else {
            ("taskCancelation", "canceledTasks")
        };
        let mut details = json!({"matchedTasks": uids.len(), "originalFilter": "?uids=..."});
        if self.paused.load(Ordering::Relaxed) {
            details[counted] = Value::Null;
            let summary = self.enqueue(kind, "enqueued", details);
            let uid = summary["taskUid"].as_u64().expect("uid");
            self.held.lock().expect("lock").push((uid, delete, uids));
            summary
        } else {
            details[counted] = json!(self.apply(delete, &uids));
            self.enqueue(kind, "succeeded", details)
        }
    }

    /// Processes the cancelations and deletions received while paused, in order.
    pub fn process(&self) {
        let held = std::mem::take(&mut *self.held.lock().expect("lock"));
        for (uid, delete, uids) in held {
            let count = self.apply(delete, &uids);
            let mut tasks = self.tasks.lock().expect("lock");
            let Some(old) = tasks.get(&uid).cloned() else {
                continue;
            };
            let mut task = node_task(uid, "succeeded", 0);
            for field in ["type", "indexUid", "details"] {
                task[field] = old[field].clone();
            }
            let counted = if delete {
                "deletedTasks"
            } else {
                "canceledTasks"
            };
            task["details"][counted] = json!(count);
            tasks.insert(uid, task);
        }
    }
}

async fn health(State(node): State<FakeNode>) -> (StatusCode, Json<Value>) {
    if node.healthy.load(Ordering::Relaxed) {
        (StatusCode::OK, Json(json!({"status": "available"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable"})),
        )
    }
}

/// A key the fake nodes accept for `GET /tasks` only (a key with `tasks.get` and no
/// `webhooks.*`).
pub const TASKS_ONLY_KEY: &str = "tasks-only-key";

/// The webhook routes as far as a key check goes: the master key passes (then `GET` lists
/// nothing and the others refuse the probe with 400), any other key is refused.
async fn webhooks_probe(
    method: axum::http::Method,
    State(node): State<FakeNode>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if let Some(e) = auth_error(&headers, &node.key) {
        return e;
    }
    if method == axum::http::Method::GET {
        (StatusCode::OK, Json(json!({"results": []})))
    } else {
        (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"message": "probe refused", "code": "immutable_webhook",
                        "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#immutable_webhook"}),
            ),
        )
    }
}

fn keys_refusal(node: &FakeNode, headers: &HeaderMap) -> Option<(StatusCode, Json<Value>)> {
    if node.keys_down.load(Ordering::Relaxed) {
        return Some((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"message": "unavailable"})),
        ));
    }
    auth_error(headers, &node.key)
}

/// `POST /keys` with a `uid`: 201 with the key (its value derived from the master key and the
/// uid), 409 `api_key_already_exists` if the uid is taken.
async fn create_key(
    State(node): State<FakeNode>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if let Some(e) = keys_refusal(&node, &headers) {
        return e;
    }
    node.key_posts.lock().expect("lock").push(body.clone());
    let uid = body["uid"].as_str().expect("uid").to_string();
    let mut keys = node.keys.lock().expect("lock");
    if keys.iter().any(|k| k["uid"] == uid.as_str()) {
        return (
            StatusCode::CONFLICT,
            Json(json!({
                "message": format!("`uid` field value `{uid}` is already an existing API key."),
                "code": "api_key_already_exists", "type": "invalid_request",
                "link": "https://docs.meilisearch.com/errors#api_key_already_exists"})),
        );
    }
    let mut key = body.clone();
    key["key"] = json!(format!("hmac({},{uid})", node.key));
    key["createdAt"] = json!("2026-11-21T10:00:00Z");
    key["updatedAt"] = json!("2026-11-21T10:00:00Z");
    keys.push(key.clone());
    (StatusCode::CREATED, Json(key))
}

async fn get_key(
    State(node): State<FakeNode>,
    UrlPath(uid): UrlPath<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if let Some(e) = keys_refusal(&node, &headers) {
        return e;
    }
    if uid == TASKS_ONLY_KEY {
        return (
            StatusCode::OK,
            Json(json!({"key": TASKS_ONLY_KEY, "actions": ["tasks.get"], "indexes": ["*"]})),
        );
    }
    match node
        .keys
        .lock()
        .expect("lock")
        .iter()
        .find(|k| k["uid"] == uid.as_str() || k["key"] == uid.as_str())
    {
        Some(key) => (StatusCode::OK, Json(key.clone())),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": format!("API key `{uid}` not found."),
                        "code": "api_key_not_found", "type": "invalid_request",
                        "link": "https://docs.meilisearch.com/errors#api_key_not_found"})),
        ),
    }
}

async fn list(
    State(node): State<FakeNode>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let tasks_only = headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == format!("Bearer {TASKS_ONLY_KEY}").as_bytes());
    if !tasks_only && !node.holds_key(&headers) {
        if let Some(e) = auth_error(&headers, &node.key) {
            return e;
        }
    }
    let uids = uids_of(&params);
    let tasks = node.tasks.lock().expect("lock");
    let results: Vec<Value> = tasks
        .values()
        .rev()
        .filter(|t| uids.is_empty() || uids.contains(&t["uid"].as_u64().unwrap_or(u64::MAX)))
        .filter(|t| {
            passes(&params, "statuses", "status", t)
                && passes(&params, "types", "type", t)
                && passes(&params, "indexUids", "indexUid", t)
        })
        .cloned()
        .collect();
    (
        StatusCode::OK,
        Json(json!({"results": results, "total": results.len()})),
    )
}

fn index_read(
    node: &FakeNode,
    uid: &str,
    headers: &HeaderMap,
    answer: impl FnOnce(&Value, &Value) -> Value,
) -> (StatusCode, Json<Value>) {
    if let Some(e) = auth_error(headers, &node.key) {
        return e;
    }
    if node.indexes_broken.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"message": "unavailable"})),
        );
    }
    match node.indexes.lock().expect("lock").get(uid) {
        Some((primary_key, settings)) => (StatusCode::OK, Json(answer(primary_key, settings))),
        None => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"message": format!("Index `{uid}` not found."), "code": "index_not_found",
                        "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#index_not_found"}),
            ),
        ),
    }
}

async fn get_index(
    State(node): State<FakeNode>,
    UrlPath(uid): UrlPath<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    index_read(&node, &uid, &headers, |primary_key, _| {
        json!({"uid": uid, "primaryKey": primary_key,
               "createdAt": "2026-11-21T10:00:00Z", "updatedAt": "2026-11-21T10:00:00Z"})
    })
}

async fn get_settings(
    State(node): State<FakeNode>,
    UrlPath(uid): UrlPath<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    index_read(&node, &uid, &headers, |_, settings| settings.clone())
}

/// Replaces the settings' top-level fields the body names; a task finished at once.
async fn patch_settings(
    State(node): State<FakeNode>,
    UrlPath(uid): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if let Some(e) = auth_error(&headers, &node.key) {
        return e;
    }
    if let Some((_, settings)) = node.indexes.lock().expect("lock").get_mut(&uid) {
        for (field, value) in body.as_object().into_iter().flatten() {
            settings[field] = value.clone();
        }
    }
    let summary = node.enqueue("settingsUpdate", "succeeded", json!({}));
    (StatusCode::ACCEPTED, Json(summary))
}

async fn get_task(
    State(node): State<FakeNode>,
    UrlPath(uid): UrlPath<u64>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if let Some(e) = auth_error(&headers, &node.key) {
        return e;
    }
    match node.tasks.lock().expect("lock").get(&uid) {
        Some(task) => (StatusCode::OK, Json(task.clone())),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"code": "task_not_found"})),
        ),
    }
}

async fn cancel(
    State(node): State<FakeNode>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    cancel_or_delete(node, params, headers, false)
}

async fn delete(
    State(node): State<FakeNode>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    cancel_or_delete(node, params, headers, true)
}

fn cancel_or_delete(
    node: FakeNode,
    params: Vec<(String, String)>,
    headers: HeaderMap,
    delete: bool,
) -> (StatusCode, Json<Value>) {
    if !node.holds_key(&headers) {
        if let Some(e) = auth_error(&headers, &node.key) {
            return e;
        }
    }
    let uids = uids_of(&params);
    let verb = if delete { "delete" } else { "cancel" };
    node.calls
        .lock()
        .expect("lock")
        .push(format!("{verb} {uids:?}"));
    (StatusCode::OK, Json(node.cancel_or_delete(delete, uids)))
}

/// A control plane (embedded store, in-memory fleet) in front of `n` fake nodes, one per group
/// `g0` with replication factor 1, served on an ephemeral port.
pub struct Cluster {
    pub app: Arc<crate::app::App>,
    pub publisher: crate::publisher::MemoryPublisher,
    pub nodes: Vec<FakeNode>,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: TempDir,
    pub server: tokio::task::JoinHandle<()>,
}

pub const ADMIN_KEY: &str = "admin-key";
pub const FILTER_TOKEN: &str = "filter-token";
pub const MASTER_KEY: &str = "master-key";

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Self::start_replicated(n, 1).await
    }

    /// `n` fake nodes in one group, every shard on `replication_factor` of them.
    pub async fn start_replicated(n: usize, replication_factor: u32) -> Cluster {
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(FakeNode::start(MASTER_KEY).await);
        }
        let topology = crate::config::InitialTopology {
            epoch: 1,
            shards: 8,
            replication_factor,
            min_copies: None,
            unavailable_shards: None,
            nodes: nodes
                .iter()
                .enumerate()
                .map(|(i, node)| miroir_topology::Node {
                    id: format!("n{i}"),
                    address: node.address.clone(),
                    group: "g0".into(),
                    state: miroir_topology::NodeState::Active,
                })
                .collect(),
        };
        let config = crate::config::Config {
            admin_key: Some(ADMIN_KEY.into()),
            filter_token: Some(FILTER_TOKEN.into()),
            master_key: Some(MASTER_KEY.into()),
            topology: Some(topology),
            node_timeout_ms: 5_000,
            store: format!("embedded:{}", dir.path().display()),
            ..Default::default()
        };
        Self::with(config, nodes, dir).await
    }

    pub async fn with(
        config: crate::config::Config,
        nodes: Vec<FakeNode>,
        dir: TempDir,
    ) -> Cluster {
        let store = crate::store::open(&config.store).await.expect("store");
        if let Some(t) = &config.topology {
            let _ = store
                .cas_topology(None, &t.topology())
                .await
                .expect("initial");
        }
        let publisher = crate::publisher::MemoryPublisher::new();
        let app = crate::app::App::new(config, store, Arc::new(publisher.clone()));
        app.leader.store(true, Ordering::Relaxed);
        app.sync_from_store().await.expect("sync");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let router = crate::routes::router(app.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Cluster {
            server,
            app,
            publisher,
            nodes,
            base,
            http: reqwest::Client::new(),
            dir,
        }
    }

    /// Sends a request; returns the status and the JSON body (`null` when empty or not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, _, body) = self.exchange(method, path, headers, body).await;
        (status, body)
    }

    /// [`Cluster::call`] with the response headers.
    pub async fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let auth = format!("Bearer {ADMIN_KEY}");
        self.call(method, path, &[("authorization", &auth)], body)
            .await
    }

    pub async fn client(&self, method: &str, path: &str) -> (u16, Value) {
        let auth = format!("Bearer {MASTER_KEY}");
        self.call(method, path, &[("authorization", &auth)], None)
            .await
    }

    pub async fn filter(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(
            "POST",
            path,
            &[("x-miroir-token", FILTER_TOKEN)],
            Some(body),
        )
        .await
    }
}
