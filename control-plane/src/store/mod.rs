//! Cluster-wide state that must survive a restart: the topology (and its epoch), the index
//! registry, the task registry (uid counter, leases, task records), the jobs and leader election.
//!
//! Two backends: an embedded redb file for a single control-plane replica, and Redis when several
//! replicas share the state. Handlers only see [`Store`], so both are exercised by the same tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use miroir_topology::tasks::TaskRecord;
use miroir_topology::Topology;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod embedded;
pub mod redis;

#[cfg(test)]
mod tests;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

pub(crate) fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Most uids one lease may reserve: a lease only bridges an outage, and every uid it holds is
/// a uid no one else can use.
pub const MAX_LEASE: u32 = 100_000;

/// One index as Miroir knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub uid: String,
    pub primary_key: Option<String>,
    pub shards: u32,
    /// The last comparison of the index's settings across the nodes (`None`: never checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsCheck>,
}

/// Outcome of reading an index's primary key and settings from every node after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckStatus {
    /// Every node answered, with the same primary key and settings.
    Consistent,
    /// Some nodes differ from the majority (the first node's side on a tie).
    Inconsistent,
    /// The nodes that answered agree, but some could not be read: nothing is known of them.
    Unverified,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Consistent => "consistent",
            CheckStatus::Inconsistent => "inconsistent",
            CheckStatus::Unverified => "unverified",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsCheck {
    pub status: CheckStatus,
    /// Nodes whose primary key or settings differ from the majority's.
    pub disagreeing_nodes: Vec<String>,
    /// Nodes that could not be read (down, timed out, refused the node key).
    pub unreachable_nodes: Vec<String>,
    /// RFC 3339.
    pub checked_at: String,
    /// The task whose completion triggered the check.
    pub task_uid: u32,
}

/// A block of uids reserved for one Envoy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    pub envoy: String,
    pub first: u32,
    pub last: u32,
}

impl LeaseRecord {
    pub fn contains(&self, uid: u32) -> bool {
        (self.first..=self.last).contains(&uid)
    }
}

/// A client-visible task: what it stands for, what the nodes last said, and the Meilisearch
/// task object computed from that.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredTask {
    pub uid: u32,
    pub record: TaskRecord,
    /// RFC 3339; the task's `enqueuedAt` until a node reports its own.
    pub registered_at: String,
    /// Node task objects as last read, keyed `<node>/<node task uid>`. Finished node tasks are
    /// never read again; a node that cannot be reached keeps its last answer.
    #[serde(default)]
    pub node_objects: BTreeMap<String, Value>,
    /// The aggregated Meilisearch task object, served as is.
    pub task: Value,
    /// Finished: no node task can change any more, so the poller leaves it alone.
    pub terminal: bool,
    /// Nodes the settings check after this task found disagreeing (`x-miroir-disagreeing-nodes`
    /// on `GET /tasks/{uid}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disagreeing_nodes: Vec<String>,
    /// A `taskDeletion` not applied yet: the global tasks its filter matched when it was
    /// registered (never shown to the client). Once its node tasks finish, those of them finished
    /// by then are deleted from the registry, `details.deletedTasks` is set and this is cleared;
    /// until then the deletion is not finished (and stays pending across restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<Vec<u32>>,
    /// Nodes the change did not reach, or whose node task was given up on (the node is down
    /// and its copies are out of sync): the repair brings the change to them, so their node
    /// tasks do not hold the task's status back. `GET /tasks/{uid}` names those still out of
    /// sync (`x-miroir-out-of-sync-nodes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub behind: Vec<String>,
}

/// A schema change recorded before it was sent ([`Store::record_intent`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRecord {
    pub id: u64,
    pub index: String,
    /// The change, JSON (`miroir_topology::tasks::Intent`).
    pub intent: String,
    /// The latest intent recorded for `index` (this one unless a later change was).
    #[serde(default)]
    pub latest: u64,
}

/// A webhook as Meilisearch stores it: called with the tasks that finished.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Most webhooks Meilisearch accepts.
pub const MAX_WEBHOOKS: usize = 20;

/// The state every control-plane operation needs. Implementations are cheap to clone (`Arc`).
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip: readiness.
    fn ping(&self) -> BoxFuture<'_, StoreResult<()>>;

    fn load_topology(&self) -> BoxFuture<'_, StoreResult<Option<Topology>>>;
    /// Writes `next` only if the stored epoch is `expected` (`None`: no topology stored yet).
    /// Two replicas bumping the same epoch: exactly one wins, the other gets `false`.
    fn cas_topology<'a>(
        &'a self,
        expected: Option<u64>,
        next: &'a Topology,
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// Small named values (e.g. the filter binary set by `PUT /_miroir/filter`).
    fn get_setting<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>>;
    fn put_setting<'a>(&'a self, name: &'a str, value: &'a str) -> BoxFuture<'a, StoreResult<()>>;

    fn put_index<'a>(&'a self, index: &'a IndexEntry) -> BoxFuture<'a, StoreResult<()>>;
    fn get_index<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, StoreResult<Option<IndexEntry>>>;
    fn list_indexes(&self) -> BoxFuture<'_, StoreResult<Vec<IndexEntry>>>;
    fn delete_index<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, StoreResult<bool>>;

    /// The next task uid: strictly greater than every uid handed out or leased before.
    fn next_uid(&self) -> BoxFuture<'_, StoreResult<u32>>;
    /// Reserves `count` (1..=[`MAX_LEASE`]) consecutive uids from the same counter.
    fn lease_uids<'a>(
        &'a self,
        envoy: &'a str,
        count: u32,
    ) -> BoxFuture<'a, StoreResult<LeaseRecord>>;
    fn leases(&self) -> BoxFuture<'_, StoreResult<Vec<LeaseRecord>>>;

    /// Inserts a new task; `false` (and nothing written) if the uid is taken.
    fn insert_task<'a>(&'a self, task: &'a StoredTask) -> BoxFuture<'a, StoreResult<bool>>;
    /// Overwrites an existing task (refreshed node objects); a deleted task stays deleted and a
    /// finished task stays finished (a stale unfinished copy is not written). `true` only for
    /// the one update that finished the task: the caller that gets it notifies the webhooks.
    fn update_task<'a>(&'a self, task: &'a StoredTask) -> BoxFuture<'a, StoreResult<bool>>;
    fn get_task(&self, uid: u32) -> BoxFuture<'_, StoreResult<Option<StoredTask>>>;
    /// Every task, ascending uid.
    fn all_tasks(&self) -> BoxFuture<'_, StoreResult<Vec<StoredTask>>>;
    /// Uids of tasks not yet terminal, ascending.
    fn pending_tasks(&self) -> BoxFuture<'_, StoreResult<Vec<u32>>>;
    /// Removes these tasks; returns how many existed.
    fn delete_tasks<'a>(&'a self, uids: &'a [u32]) -> BoxFuture<'a, StoreResult<usize>>;

    /// Every webhook, by uuid (hyphenated, lowercase).
    fn webhooks(&self) -> BoxFuture<'_, StoreResult<BTreeMap<String, Webhook>>>;
    /// Adds a webhook unless [`MAX_WEBHOOKS`] exist already (`false`, nothing written).
    fn insert_webhook<'a>(
        &'a self,
        uuid: &'a str,
        webhook: &'a Webhook,
    ) -> BoxFuture<'a, StoreResult<bool>>;
    /// Replaces an existing webhook; `false` (nothing written) if there is none.
    fn replace_webhook<'a>(
        &'a self,
        uuid: &'a str,
        webhook: &'a Webhook,
    ) -> BoxFuture<'a, StoreResult<bool>>;
    /// Removes a webhook; whether it existed.
    fn delete_webhook<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, StoreResult<bool>>;

    /// Jobs (topology changes that move shard copies), as JSON documents the job runner owns.
    fn put_job<'a>(&'a self, id: &'a str, job: &'a str) -> BoxFuture<'a, StoreResult<()>>;
    fn get_job<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>>;
    /// Every job, ascending by the number in its id (`job-<n>`), as (id, JSON).
    fn list_jobs(&self) -> BoxFuture<'_, StoreResult<Vec<(String, String)>>>;
    /// The next job number: strictly increasing, shared by every replica (Redis INCR / a redb counter).
    fn next_job_number(&self) -> BoxFuture<'_, StoreResult<u64>>;

    /// Counts one write that `node`'s copies missed; the new count. A repair verifies a copy
    /// then puts it back in the in-sync set only if the count did not move meanwhile.
    fn count_miss<'a>(&'a self, node: &'a str) -> BoxFuture<'a, StoreResult<u64>>;
    /// How many writes `node`'s copies missed so far (0 if none ever did).
    fn misses<'a>(&'a self, node: &'a str) -> BoxFuture<'a, StoreResult<u64>>;

    /// Records a schema change before any node sees it ([`crate::intents`]): a new id, greater
    /// than every id recorded before, stored with `intent` (JSON) and as the latest of `index`,
    /// in one step.
    fn record_intent<'a>(
        &'a self,
        index: &'a str,
        intent: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>>;
    /// Forgets an intent (its change reached the nodes, or was given up); no-op if absent.
    fn close_intent(&self, id: u64) -> BoxFuture<'_, StoreResult<()>>;
    /// Every open intent, ascending id.
    fn open_intents(&self) -> BoxFuture<'_, StoreResult<Vec<IntentRecord>>>;

    /// What each replica's xDS server last saw of its own Envoys (JSON, by replica), so that the
    /// leader can tell when the whole fleet (every replica's Envoys) took an epoch.
    fn put_fleet_report<'a>(
        &'a self,
        replica: &'a str,
        report: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>>;
    fn fleet_reports(&self) -> BoxFuture<'_, StoreResult<Vec<(String, String)>>>;

    /// Takes the leadership if no one holds it, or extends it if `owner` does. `false`: another
    /// replica leads.
    fn leader_acquire<'a>(
        &'a self,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>>;
    /// Gives the leadership up if `owner` holds it (clean shutdown: the next replica need not
    /// wait for the lease to expire).
    fn leader_release<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, StoreResult<()>>;
    /// The replica holding the leadership now (`None`: nobody, or a store without a lease: the
    /// embedded store's one process is its own leader).
    fn leader_owner(&self) -> BoxFuture<'_, StoreResult<Option<String>>> {
        Box::pin(async { Ok(None) })
    }
}

pub type SharedStore = Arc<dyn Store>;

/// Opens the backend a `store` setting names: `embedded:<dir>` or `redis://host:port[/db]`.
pub async fn open(spec: &str) -> StoreResult<SharedStore> {
    if spec.starts_with("redis://") || spec.starts_with("rediss://") {
        Ok(Arc::new(redis::RedisStore::connect(spec).await?))
    } else {
        let dir = spec.strip_prefix("embedded:").unwrap_or(spec);
        Ok(Arc::new(embedded::EmbeddedStore::open(dir)?))
    }
}

/// The uids `[first, last]` of a block of `count` taken when the counter stood at `next`
/// (the first free uid), or an error once uids run out (Meilisearch's uids are `u32`).
pub(crate) fn block(next: u64, count: u32) -> StoreResult<(u32, u32)> {
    let last = next + u64::from(count.max(1)) - 1;
    match (u32::try_from(next), u32::try_from(last)) {
        (Ok(first), Ok(last)) => Ok((first, last)),
        _ => Err(StoreError("task uids are exhausted (u32)".into())),
    }
}

/// Sorts jobs into [`Store::list_jobs`] order: `job-<n>` by `n` (a string sort would put job-10
/// before job-9), then every other id by string.
pub(crate) fn sort_jobs(jobs: &mut [(String, String)]) {
    fn key(id: &str) -> (bool, Option<u64>, &str) {
        let n = id
            .strip_prefix("job-")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok());
        (n.is_none(), n, id)
    }
    jobs.sort_by(|(a, _), (b, _)| key(a).cmp(&key(b)));
}
