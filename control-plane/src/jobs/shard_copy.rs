//! The shard copy: makes one node's copy of a shard of an index equal to another's, while clients
//! keep writing to both. It is the one primitive behind moving a shard, filling a new group and
//! raising the replication factor.
//!
//! Writes already reach both nodes (the job's `stage` epoch is acknowledged before this runs), so
//! the only documents that can differ are those the copy itself has not written yet, those it
//! wrote from a read that a client write overtook, and those a node has not processed yet. So the
//! copy is rounds of: wait until both nodes processed every task enqueued before the round; read
//! the shard on both sides (documents filtered by `_miroir_shard`, compared by a digest of their
//! canonical JSON, field order aside); write the source's version of every document that differs
//! or is missing and delete those the source does not have; wait for those tasks. The first round
//! copies everything; the copy is verified by the first round that finds no difference. Documents
//! keep their stamps (`_miroir_shard`, `_miroir_seq`), so merges and tie order are unchanged.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use miroir_topology::reserved::{decode_shard, shard_filter};
use miroir_topology::SHARD_FIELD;
use miroir_topology::{canonical_key, Node};
use serde_json::{json, Map, Value};
use xxhash_rust::xxh3::xxh3_64;

use crate::app::App;
use crate::nodes::{self, NodeError};

/// Documents per page read (a few MB of JSON).
const PAGE: usize = 5_000;
/// Rounds after which a copy that still differs is reported (clients rewriting the same
/// documents faster than a round takes).
const MAX_ROUNDS: u32 = 60;
/// Longest wait for a node's queue to reach a point.
const QUEUE_WAIT: Duration = Duration::from_secs(600);

/// Why a copy stopped: the node, and whether it did not answer (the job waits for it) or
/// refused (the job fails and says why).
#[derive(Debug)]
pub struct CopyError {
    pub node: String,
    pub unavailable: bool,
    pub message: String,
}

impl CopyError {
    fn from_node(node: &Node, e: NodeError) -> CopyError {
        match e {
            NodeError::Unavailable(m) => CopyError {
                node: node.id.clone(),
                unavailable: true,
                message: m,
            },
            NodeError::Status(r) => CopyError {
                node: node.id.clone(),
                unavailable: false,
                message: format!(
                    "answered {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.bytes)
                ),
            },
        }
    }

    pub(crate) fn refused(node: &Node, message: String) -> CopyError {
        CopyError {
            node: node.id.clone(),
            unavailable: false,
            message,
        }
    }
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node `{}`: {}", self.node, self.message)
    }
}

/// Node calls with the control plane's own key and deadline.
pub struct Calls<'a> {
    pub app: &'a App,
    /// Paces the documents a copy writes (shared by the copies running at once).
    pub pacer: Option<&'a Pacer>,
}

/// A ceiling on documents written per second across every copy of a job (0: none): a writer that
/// is ahead of the rate waits until the rate allows what it wrote.
pub struct Pacer {
    rate: u64,
    started: Instant,
    written: std::sync::Mutex<u64>,
}

impl Pacer {
    pub fn new(rate: u64) -> Pacer {
        Pacer {
            rate,
            started: Instant::now(),
            written: std::sync::Mutex::new(0),
        }
    }

    /// Accounts for `documents` about to be written and waits as long as the rate requires.
    pub async fn admit(&self, documents: u64) {
        if self.rate == 0 {
            return;
        }
        let total = {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            *written += documents;
            *written
        };
        let due = Duration::from_secs_f64(total as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

impl Calls<'_> {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.app.config.node_timeout_ms)
    }

    pub async fn get(&self, node: &Node, path: &str) -> Result<Value, CopyError> {
        let auth = self.app.node_authorization(None);
        nodes::send(
            self.app.http.get(nodes::url(&node.address, path)),
            auth.as_deref(),
            self.timeout(),
        )
        .await
        .map_err(|e| CopyError::from_node(node, e))
    }

    /// `GET` that answers `None` for a 404.
    pub async fn find(&self, node: &Node, path: &str) -> Result<Option<Value>, CopyError> {
        let auth = self.app.node_authorization(None);
        match nodes::send(
            self.app.http.get(nodes::url(&node.address, path)),
            auth.as_deref(),
            self.timeout(),
        )
        .await
        {
            Ok(v) => Ok(Some(v)),
            Err(NodeError::Status(r)) if r.status.as_u16() == 404 => Ok(None),
            Err(e) => Err(CopyError::from_node(node, e)),
        }
    }

    pub async fn send(
        &self,
        node: &Node,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, CopyError> {
        let auth = self.app.node_authorization(None);
        let request = self
            .app
            .http
            .request(method, nodes::url(&node.address, path))
            .json(body);
        nodes::send(request, auth.as_deref(), self.timeout())
            .await
            .map_err(|e| CopyError::from_node(node, e))
    }

    /// `DELETE` without a body, then waits for its task.
    pub async fn delete(&self, node: &Node, path: &str) -> Result<(), CopyError> {
        let auth = self.app.node_authorization(None);
        let request = self.app.http.delete(nodes::url(&node.address, path));
        let answer = nodes::send(request, auth.as_deref(), self.timeout())
            .await
            .map_err(|e| CopyError::from_node(node, e))?;
        match answer.get("taskUid").and_then(Value::as_u64) {
            Some(uid) => self.wait_task(node, uid).await,
            None => Ok(()),
        }
    }

    /// Waits for the node task `uid`; its error if it failed.
    pub async fn wait_task(&self, node: &Node, uid: u64) -> Result<(), CopyError> {
        let started = Instant::now();
        loop {
            let task = self.get(node, &format!("/tasks/{uid}")).await?;
            match task.get("status").and_then(Value::as_str) {
                Some("succeeded") => return Ok(()),
                Some("failed") | Some("canceled") => {
                    return Err(CopyError::refused(
                        node,
                        format!("task {uid} {}: {}", task["status"], task["error"]),
                    ))
                }
                _ if started.elapsed() > QUEUE_WAIT => {
                    return Err(CopyError {
                        node: node.id.clone(),
                        unavailable: true,
                        message: format!("task {uid} not finished after {QUEUE_WAIT:?}"),
                    })
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Sends a write and waits for its task.
    pub async fn write(
        &self,
        node: &Node,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<(), CopyError> {
        let answer = self.send(node, method, path, body).await?;
        match answer.get("taskUid").and_then(Value::as_u64) {
            Some(uid) => self.wait_task(node, uid).await,
            None => Ok(()),
        }
    }

    /// Waits until the node processed every task of `index` enqueued before this call.
    pub(crate) async fn barrier(&self, node: &Node, index: &str) -> Result<(), CopyError> {
        let latest = self.get(node, "/tasks?limit=1").await?;
        let Some(last) = latest["results"]
            .get(0)
            .and_then(|t| t.get("uid"))
            .and_then(Value::as_u64)
        else {
            return Ok(());
        };
        let path =
            format!("/tasks?indexUids={index}&statuses=enqueued,processing&from={last}&limit=1");
        let started = Instant::now();
        loop {
            let pending = self.get(node, &path).await?;
            if pending["results"].as_array().is_none_or(Vec::is_empty) {
                return Ok(());
            }
            if started.elapsed() > QUEUE_WAIT {
                return Err(CopyError {
                    node: node.id.clone(),
                    unavailable: true,
                    message: format!("queue of `{index}` not drained after {QUEUE_WAIT:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every document of `shards` on the node, by primary key.
    async fn shard_documents(
        &self,
        node: &Node,
        index: &Index,
        shards: &[u32],
    ) -> Result<HashMap<String, Value>, CopyError> {
        let mut out = HashMap::new();
        self.each_document(node, index, shards, false, |id, doc| {
            out.insert(id, doc);
        })
        .await?;
        Ok(out)
    }

    /// Hands every document of `shards` on the node to `each`, with its primary key, page by
    /// page; `paced`: each page read counts against the pacer's rate.
    pub(crate) async fn each_document(
        &self,
        node: &Node,
        index: &Index,
        shards: &[u32],
        paced: bool,
        mut each: impl FnMut(String, Value),
    ) -> Result<(), CopyError> {
        let (uid, primary_key) = (index.uid.as_str(), index.primary_key.as_str());
        let mut offset = 0usize;
        loop {
            let page = self
                .send(
                    node,
                    reqwest::Method::POST,
                    &format!("/indexes/{uid}/documents/fetch"),
                    &json!({
                        "filter": shard_filter(shards),
                        "limit": PAGE,
                        "offset": offset,
                        "retrieveVectors": index.vectors,
                    }),
                )
                .await?;
            let total = page["total"].as_u64().unwrap_or(0) as usize;
            let results = match page {
                Value::Object(mut fields) => match fields.remove("results") {
                    Some(Value::Array(results)) => results,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            let count = results.len();
            for doc in results {
                if let Some(id) = doc.get(primary_key).and_then(canonical_key) {
                    each(id, doc);
                }
            }
            if let (true, Some(pacer)) = (paced, self.pacer) {
                pacer.admit(count as u64).await;
            }
            offset += count;
            if count == 0 || offset >= total {
                return Ok(());
            }
        }
    }
}

/// A digest of a document that does not depend on its fields' order (two nodes may list fields
/// in different orders).
pub fn digest(doc: &Value) -> u64 {
    fn canonical(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let sorted: Map<String, Value> = keys
                    .into_iter()
                    .map(|k| (k.clone(), canonical(&map[k])))
                    .collect();
                Value::Object(sorted)
            }
            Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    xxh3_64(&serde_json::to_vec(&canonical(doc)).unwrap_or_default())
}

/// What one round must write to the target: documents missing or different there, and ids the
/// source does not have.
pub fn difference(
    source: &HashMap<String, Value>,
    target: &HashMap<String, Value>,
) -> (Vec<Value>, Vec<String>) {
    let mut upserts: Vec<(&String, &Value)> = source
        .iter()
        .filter(|(id, doc)| target.get(*id).is_none_or(|t| digest(t) != digest(doc)))
        .collect();
    upserts.sort_by(|a, b| a.0.cmp(b.0));
    let mut deletes: Vec<String> = target
        .keys()
        .filter(|id| !source.contains_key(*id))
        .cloned()
        .collect();
    deletes.sort();
    (
        upserts.into_iter().map(|(_, d)| d.clone()).collect(),
        deletes,
    )
}

/// An index as the copy reads it.
#[derive(Clone, Debug)]
pub struct Index {
    pub uid: String,
    pub primary_key: String,
    /// The index has embedders: documents are read with their `_vectors` (and written back with
    /// them, so user-provided embeddings move too and generated ones are not computed again).
    pub vectors: bool,
}

/// Documents per write task of a copy: few, large tasks (Meilisearch indexes one large batch far
/// faster than many small ones).
const WRITE_BATCH: usize = 5_000;

/// Makes `target`'s copies of `shards` of `index` equal to `source`'s. Returns the documents it
/// wrote per shard; `lag` is told, per shard, how many documents differed at each round.
pub async fn sync(
    calls: &Calls<'_>,
    index: &Index,
    shards: &[u32],
    source: &Node,
    target: &Node,
    lag: impl Fn(u32, usize),
) -> Result<BTreeMap<u32, u64>, CopyError> {
    let mut copied: BTreeMap<u32, u64> = shards.iter().map(|s| (*s, 0)).collect();
    let uid = index.uid.as_str();
    for round in 0..MAX_ROUNDS {
        let (a, b) = tokio::join!(calls.barrier(source, uid), calls.barrier(target, uid));
        a?;
        b?;
        let theirs = calls.shard_documents(target, index, shards).await?;
        let ours = calls.shard_documents(source, index, shards).await?;
        let (upserts, deletes) = difference(&ours, &theirs);
        let mut differing: BTreeMap<u32, usize> = shards.iter().map(|s| (*s, 0)).collect();
        for shard in upserts.iter().filter_map(shard_of).chain(
            deletes
                .iter()
                .filter_map(|id| theirs.get(id).and_then(shard_of)),
        ) {
            *differing.entry(shard).or_default() += 1;
        }
        for (shard, n) in &differing {
            lag(*shard, *n);
        }
        if upserts.is_empty() && deletes.is_empty() {
            tracing::debug!(
                index = uid,
                ?shards,
                source = source.id,
                target = target.id,
                round,
                "shard copy verified"
            );
            return Ok(copied);
        }
        let path = format!("/indexes/{uid}/documents?primaryKey={}", index.primary_key);
        let mut tasks = Vec::new();
        for batch in upserts.chunks(WRITE_BATCH) {
            if let Some(pacer) = calls.pacer {
                pacer.admit(batch.len() as u64).await;
            }
            let answer = calls
                .send(
                    target,
                    reqwest::Method::POST,
                    &path,
                    &Value::Array(batch.to_vec()),
                )
                .await?;
            tasks.extend(answer.get("taskUid").and_then(Value::as_u64));
            for shard in batch.iter().filter_map(shard_of) {
                *copied.entry(shard).or_default() += 1;
            }
        }
        for batch in deletes.chunks(WRITE_BATCH) {
            let answer = calls
                .send(
                    target,
                    reqwest::Method::POST,
                    &format!("/indexes/{uid}/documents/delete-batch"),
                    &json!(batch),
                )
                .await?;
            tasks.extend(answer.get("taskUid").and_then(Value::as_u64));
        }
        // Enqueued together, the node indexes them as one batch.
        for task in tasks {
            calls.wait_task(target, task).await?;
        }
        if round > 0 {
            // A difference left after the bulk copy is a client write in flight: give it time.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Err(CopyError {
        node: target.id.clone(),
        unavailable: true,
        message: format!(
            "shards {shards:?} of `{uid}` still differ from `{}` after {MAX_ROUNDS} rounds",
            source.id
        ),
    })
}

/// The shard a stored document is stamped with.
fn shard_of(doc: &Value) -> Option<u32> {
    doc.get(SHARD_FIELD)
        .and_then(Value::as_str)
        .and_then(decode_shard)
}

/// How long a write planned under an epoch before the clean-up may still reach a node after it.
const SETTLE: Duration = Duration::from_secs(1);
/// Deletions of a node's left-over shards before the rest is left for the next job to see.
const CLEANUPS: u32 = 5;

/// Deletes the documents of `shards` of `index` from a node that no longer holds them, then again
/// while a check after [`SETTLE`] still finds some (a write an Envoy planned just before taking
/// the clean-up epoch can land after the first deletion).
pub async fn delete_shards(
    calls: &Calls<'_>,
    node: &Node,
    index: &str,
    shards: &[u32],
) -> Result<(), CopyError> {
    let filter = shard_filter(shards);
    for _ in 0..CLEANUPS {
        calls
            .write(
                node,
                reqwest::Method::POST,
                &format!("/indexes/{index}/documents/delete"),
                &json!({ "filter": filter }),
            )
            .await?;
        tokio::time::sleep(SETTLE).await;
        let left = calls
            .send(
                node,
                reqwest::Method::POST,
                &format!("/indexes/{index}/documents/fetch"),
                &json!({"filter": filter, "limit": 1}),
            )
            .await?;
        if left["total"].as_u64() == Some(0) {
            return Ok(());
        }
    }
    tracing::warn!(
        node = node.id,
        index,
        "documents of moved shards still arrive; left for now"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_does_not_change_a_digest_but_values_do() {
        let a: Value = serde_json::from_str(r#"{"id":1,"t":"x","n":{"a":1,"b":2}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"n":{"b":2,"a":1},"t":"x","id":1}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"id":1,"t":"y","n":{"a":1,"b":2}}"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
    }

    #[test]
    fn the_difference_is_what_the_target_lacks_or_has_wrong_and_what_it_has_extra() {
        let doc = |id: u32, t: &str| json!({"id": id, "t": t});
        let source: HashMap<String, Value> =
            [("1", doc(1, "a")), ("2", doc(2, "b")), ("3", doc(3, "c"))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        let target: HashMap<String, Value> =
            [("1", doc(1, "a")), ("2", doc(2, "old")), ("9", doc(9, "z"))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        let (upserts, deletes) = difference(&source, &target);
        assert_eq!(upserts, [doc(2, "b"), doc(3, "c")]);
        assert_eq!(deletes, ["9"]);
        assert_eq!(difference(&source, &source), (vec![], vec![]));
    }
}
