//! The single-replica store: one redb file in the data directory. redb is synchronous, so every
//! call runs on tokio's blocking pool; its write transactions are serialized, which is what makes
//! the counter and the topology compare-and-set atomic here.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use miroir_topology::Topology;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{
    block, err, sort_jobs, BoxFuture, IndexEntry, IntentRecord, LeaseRecord, Store, StoreError,
    StoreResult, StoredTask, Webhook, MAX_LEASE, MAX_WEBHOOKS,
};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
const TASKS: TableDefinition<u32, &[u8]> = TableDefinition::new("tasks");
const PENDING: TableDefinition<u32, u8> = TableDefinition::new("pending");
const LEASES: TableDefinition<u32, &[u8]> = TableDefinition::new("leases");
const INDEXES: TableDefinition<&str, &[u8]> = TableDefinition::new("indexes");
const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhooks");
const JOBS: TableDefinition<&str, &str> = TableDefinition::new("jobs");
const FLEET: TableDefinition<&str, &str> = TableDefinition::new("fleet");
const INTENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("intents");
const INTENT_LATEST: TableDefinition<&str, u64> = TableDefinition::new("intent-latest");

const TOPOLOGY_KEY: &str = "topology";
const UID_NEXT_KEY: &str = "uid-next";
/// The last job number handed out (as Redis INCR keeps it, so both backends start at 1).
const JOB_NUMBER_KEY: &str = "job-number";
const INTENT_NUMBER_KEY: &str = "intent-number";
/// Per node: how many writes its copies missed (see `Store::count_miss`).
const MISSES_PREFIX: &str = "misses:";

/// Every (key, value) of a table of strings, in key order.
fn entries(
    tx: &redb::ReadTransaction,
    table: TableDefinition<&str, &str>,
) -> StoreResult<Vec<(String, String)>> {
    let table = tx.open_table(table).map_err(err)?;
    let mut out = Vec::new();
    for entry in table.iter().map_err(err)? {
        let (k, v) = entry.map_err(err)?;
        out.push((k.value().to_string(), v.value().to_string()));
    }
    Ok(out)
}

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    /// Opens (or creates) `<dir>/miroir.redb`. redb locks the file, so a second process on the
    /// same directory fails here instead of corrupting it.
    pub fn open(dir: impl AsRef<Path>) -> StoreResult<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        let path = dir.join("miroir.redb");
        let db = Database::create(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let store = EmbeddedStore { db: Arc::new(db) };
        // Read transactions fail on tables that do not exist yet: create them all once.
        store.write_now(|tx| {
            tx.open_table(META).map_err(err)?;
            tx.open_table(SETTINGS).map_err(err)?;
            tx.open_table(TASKS).map_err(err)?;
            tx.open_table(PENDING).map_err(err)?;
            tx.open_table(LEASES).map_err(err)?;
            tx.open_table(INDEXES).map_err(err)?;
            tx.open_table(WEBHOOKS).map_err(err)?;
            tx.open_table(JOBS).map_err(err)?;
            tx.open_table(FLEET).map_err(err)?;
            Ok(())
        })?;
        Ok(store)
    }

    fn write_now<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let tx = self.db.begin_write().map_err(err)?;
        let out = f(&tx)?;
        tx.commit().map_err(err)?;
        Ok(out)
    }

    fn write<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&redb::WriteTransaction) -> StoreResult<T> + Send + 'static,
    ) -> BoxFuture<'a, StoreResult<T>> {
        let this = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.write_now(f))
                .await
                .map_err(err)?
        })
    }

    fn read<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&redb::ReadTransaction) -> StoreResult<T> + Send + 'static,
    ) -> BoxFuture<'a, StoreResult<T>> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let tx = db.begin_read().map_err(err)?;
                f(&tx)
            })
            .await
            .map_err(err)?
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| err(format!("corrupt record: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(err)
}

fn read_topology(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> StoreResult<Option<Topology>> {
    match table.get(TOPOLOGY_KEY).map_err(err)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

fn put_task(tx: &redb::WriteTransaction, task: &StoredTask) -> StoreResult<()> {
    let bytes = encode(task)?;
    tx.open_table(TASKS)
        .map_err(err)?
        .insert(task.uid, bytes.as_slice())
        .map_err(err)?;
    let mut pending = tx.open_table(PENDING).map_err(err)?;
    if task.terminal {
        pending.remove(task.uid).map_err(err)?;
    } else {
        pending.insert(task.uid, 1).map_err(err)?;
    }
    Ok(())
}

impl Store for EmbeddedStore {
    fn ping(&self) -> BoxFuture<'_, StoreResult<()>> {
        self.read(|tx| {
            tx.open_table(META).map_err(err)?;
            Ok(())
        })
    }

    fn load_topology(&self) -> BoxFuture<'_, StoreResult<Option<Topology>>> {
        self.read(|tx| read_topology(&tx.open_table(META).map_err(err)?))
    }

    fn cas_topology<'a>(
        &'a self,
        expected: Option<u64>,
        next: &'a Topology,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let next = next.clone();
        self.write(move |tx| {
            let mut meta = tx.open_table(META).map_err(err)?;
            let current = read_topology(&meta)?.map(|t| t.epoch);
            if current != expected {
                return Ok(false);
            }
            let bytes = encode(&next)?;
            meta.insert(TOPOLOGY_KEY, bytes.as_slice()).map_err(err)?;
            Ok(true)
        })
    }

    fn get_setting<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        let name = name.to_string();
        self.read(move |tx| {
            let table = tx.open_table(SETTINGS).map_err(err)?;
            let value = table.get(name.as_str()).map_err(err)?;
            Ok(value.map(|v| v.value().to_string()))
        })
    }

    fn put_setting<'a>(&'a self, name: &'a str, value: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        let (name, value) = (name.to_string(), value.to_string());
        self.write(move |tx| {
            tx.open_table(SETTINGS)
                .map_err(err)?
                .insert(name.as_str(), value.as_str())
                .map_err(err)?;
            Ok(())
        })
    }

    fn put_index<'a>(&'a self, index: &'a IndexEntry) -> BoxFuture<'a, StoreResult<()>> {
        let index = index.clone();
        self.write(move |tx| {
            let bytes = encode(&index)?;
            tx.open_table(INDEXES)
                .map_err(err)?
                .insert(index.uid.as_str(), bytes.as_slice())
                .map_err(err)?;
            Ok(())
        })
    }

    fn get_index<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, StoreResult<Option<IndexEntry>>> {
        let uid = uid.to_string();
        self.read(move |tx| {
            let table = tx.open_table(INDEXES).map_err(err)?;
            let value = table.get(uid.as_str()).map_err(err)?;
            value.map(|v| decode(v.value())).transpose()
        })
    }

    fn list_indexes(&self) -> BoxFuture<'_, StoreResult<Vec<IndexEntry>>> {
        self.read(|tx| {
            let table = tx.open_table(INDEXES).map_err(err)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(err)? {
                let (_, v) = entry.map_err(err)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
    }

    fn delete_index<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        let uid = uid.to_string();
        self.write(move |tx| {
            let mut table = tx.open_table(INDEXES).map_err(err)?;
            let existed = table.remove(uid.as_str()).map_err(err)?.is_some();
            Ok(existed)
        })
    }

    fn next_uid(&self) -> BoxFuture<'_, StoreResult<u32>> {
        self.write(|tx| take_block(tx, 1).map(|(first, _)| first))
    }

    fn lease_uids<'a>(
        &'a self,
        envoy: &'a str,
        count: u32,
    ) -> BoxFuture<'a, StoreResult<LeaseRecord>> {
        let envoy = envoy.to_string();
        self.write(move |tx| {
            if count == 0 || count > MAX_LEASE {
                return Err(StoreError(format!("a lease holds 1 to {MAX_LEASE} uids")));
            }
            let (first, last) = take_block(tx, count)?;
            let lease = LeaseRecord { envoy, first, last };
            let bytes = encode(&lease)?;
            tx.open_table(LEASES)
                .map_err(err)?
                .insert(first, bytes.as_slice())
                .map_err(err)?;
            Ok(lease)
        })
    }

    fn leases(&self) -> BoxFuture<'_, StoreResult<Vec<LeaseRecord>>> {
        self.read(|tx| {
            let table = tx.open_table(LEASES).map_err(err)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(err)? {
                let (_, v) = entry.map_err(err)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
    }

    fn insert_task<'a>(&'a self, task: &'a StoredTask) -> BoxFuture<'a, StoreResult<bool>> {
        let task = task.clone();
        self.write(move |tx| {
            let exists = tx
                .open_table(TASKS)
                .map_err(err)?
                .get(task.uid)
                .map_err(err)?
                .is_some();
            if exists {
                return Ok(false);
            }
            put_task(tx, &task)?;
            Ok(true)
        })
    }

    fn update_task<'a>(&'a self, task: &'a StoredTask) -> BoxFuture<'a, StoreResult<bool>> {
        let task = task.clone();
        self.write(move |tx| {
            let exists = tx
                .open_table(TASKS)
                .map_err(err)?
                .get(task.uid)
                .map_err(err)?
                .is_some();
            if !exists {
                return Ok(false);
            }
            let pending = tx
                .open_table(PENDING)
                .map_err(err)?
                .get(task.uid)
                .map_err(err)?
                .is_some();
            if !pending && !task.terminal {
                return Ok(false); // finished already: a stale copy
            }
            put_task(tx, &task)?;
            Ok(pending && task.terminal)
        })
    }

    fn get_task(&self, uid: u32) -> BoxFuture<'_, StoreResult<Option<StoredTask>>> {
        self.read(move |tx| {
            let table = tx.open_table(TASKS).map_err(err)?;
            let value = table.get(uid).map_err(err)?;
            value.map(|v| decode(v.value())).transpose()
        })
    }

    fn all_tasks(&self) -> BoxFuture<'_, StoreResult<Vec<StoredTask>>> {
        self.read(|tx| {
            let table = tx.open_table(TASKS).map_err(err)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(err)? {
                let (_, v) = entry.map_err(err)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
    }

    fn pending_tasks(&self) -> BoxFuture<'_, StoreResult<Vec<u32>>> {
        self.read(|tx| {
            let table = tx.open_table(PENDING).map_err(err)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(err)? {
                let (k, _) = entry.map_err(err)?;
                out.push(k.value());
            }
            Ok(out)
        })
    }

    fn delete_tasks<'a>(&'a self, uids: &'a [u32]) -> BoxFuture<'a, StoreResult<usize>> {
        let uids = uids.to_vec();
        self.write(move |tx| {
            let mut tasks = tx.open_table(TASKS).map_err(err)?;
            let mut pending = tx.open_table(PENDING).map_err(err)?;
            let mut removed = 0;
            for uid in uids {
                if tasks.remove(uid).map_err(err)?.is_some() {
                    removed += 1;
                }
                pending.remove(uid).map_err(err)?;
            }
            Ok(removed)
        })
    }

    fn webhooks(&self) -> BoxFuture<'_, StoreResult<BTreeMap<String, Webhook>>> {
        self.read(|tx| {
            let table = tx.open_table(WEBHOOKS).map_err(err)?;
            let mut out = BTreeMap::new();
            for entry in table.iter().map_err(err)? {
                let (k, v) = entry.map_err(err)?;
                out.insert(k.value().to_string(), decode(v.value())?);
            }
            Ok(out)
        })
    }

    fn insert_webhook<'a>(
        &'a self,
        uuid: &'a str,
        webhook: &'a Webhook,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let (uuid, webhook) = (uuid.to_string(), webhook.clone());
        self.write(move |tx| {
            let mut table = tx.open_table(WEBHOOKS).map_err(err)?;
            if table.len().map_err(err)? >= MAX_WEBHOOKS as u64 {
                return Ok(false);
            }
            let bytes = encode(&webhook)?;
            table.insert(uuid.as_str(), bytes.as_slice()).map_err(err)?;
            Ok(true)
        })
    }

    fn replace_webhook<'a>(
        &'a self,
        uuid: &'a str,
        webhook: &'a Webhook,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let (uuid, webhook) = (uuid.to_string(), webhook.clone());
        self.write(move |tx| {
            let mut table = tx.open_table(WEBHOOKS).map_err(err)?;
            if table.get(uuid.as_str()).map_err(err)?.is_none() {
                return Ok(false);
            }
            let bytes = encode(&webhook)?;
            table.insert(uuid.as_str(), bytes.as_slice()).map_err(err)?;
            Ok(true)
        })
    }

    fn delete_webhook<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        let uuid = uuid.to_string();
        self.write(move |tx| {
            let mut table = tx.open_table(WEBHOOKS).map_err(err)?;
            let existed = table.remove(uuid.as_str()).map_err(err)?.is_some();
            Ok(existed)
        })
    }

    fn put_job<'a>(&'a self, id: &'a str, job: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        let (id, job) = (id.to_string(), job.to_string());
        self.write(move |tx| {
            tx.open_table(JOBS)
                .map_err(err)?
                .insert(id.as_str(), job.as_str())
                .map_err(err)?;
            Ok(())
        })
    }

    fn get_job<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        let id = id.to_string();
        self.read(move |tx| {
            let table = tx.open_table(JOBS).map_err(err)?;
            let value = table.get(id.as_str()).map_err(err)?;
            Ok(value.map(|v| v.value().to_string()))
        })
    }

    fn list_jobs(&self) -> BoxFuture<'_, StoreResult<Vec<(String, String)>>> {
        self.read(|tx| {
            let mut out = entries(tx, JOBS)?;
            sort_jobs(&mut out);
            Ok(out)
        })
    }

    fn record_intent<'a>(
        &'a self,
        index: &'a str,
        intent: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        let (index, intent) = (index.to_string(), intent.to_string());
        self.write(move |tx| {
            let mut meta = tx.open_table(META).map_err(err)?;
            let id = counter_value(meta.get(INTENT_NUMBER_KEY).map_err(err)?)? + 1;
            meta.insert(INTENT_NUMBER_KEY, id.to_le_bytes().as_slice())
                .map_err(err)?;
            let record = encode(&IntentRecord {
                id,
                index: index.clone(),
                intent,
                latest: id,
            })?;
            tx.open_table(INTENTS)
                .map_err(err)?
                .insert(id, record.as_slice())
                .map_err(err)?;
            tx.open_table(INTENT_LATEST)
                .map_err(err)?
                .insert(index.as_str(), id)
                .map_err(err)?;
            Ok(id)
        })
    }

    fn close_intent(&self, id: u64) -> BoxFuture<'_, StoreResult<()>> {
        self.write(move |tx| {
            tx.open_table(INTENTS)
                .map_err(err)?
                .remove(id)
                .map_err(err)?;
            Ok(())
        })
    }

    fn open_intents(&self) -> BoxFuture<'_, StoreResult<Vec<IntentRecord>>> {
        self.read(|tx| {
            let intents = match tx.open_table(INTENTS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(err(e)),
            };
            let latest = tx.open_table(INTENT_LATEST).map_err(err)?;
            let mut out = Vec::new();
            for entry in intents.iter().map_err(err)? {
                let (_, v) = entry.map_err(err)?;
                let mut record: IntentRecord = decode(v.value())?;
                if let Some(l) = latest.get(record.index.as_str()).map_err(err)? {
                    record.latest = l.value();
                }
                out.push(record);
            }
            Ok(out)
        })
    }

    fn put_fleet_report<'a>(
        &'a self,
        replica: &'a str,
        report: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let (replica, report) = (replica.to_string(), report.to_string());
        self.write(move |tx| {
            tx.open_table(FLEET)
                .map_err(err)?
                .insert(replica.as_str(), report.as_str())
                .map_err(err)?;
            Ok(())
        })
    }

    fn fleet_reports(&self) -> BoxFuture<'_, StoreResult<Vec<(String, String)>>> {
        self.read(|tx| entries(tx, FLEET))
    }

    fn next_job_number(&self) -> BoxFuture<'_, StoreResult<u64>> {
        self.bump(JOB_NUMBER_KEY.to_string())
    }

    fn count_miss<'a>(&'a self, node: &'a str) -> BoxFuture<'a, StoreResult<u64>> {
        self.bump(format!("{MISSES_PREFIX}{node}"))
    }

    fn misses<'a>(&'a self, node: &'a str) -> BoxFuture<'a, StoreResult<u64>> {
        let key = format!("{MISSES_PREFIX}{node}");
        self.read(move |tx| {
            let meta = match tx.open_table(META) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
                Err(e) => return Err(err(e)),
            };
            counter_value(meta.get(key.as_str()).map_err(err)?)
        })
    }

    /// One process owns the file (redb's lock), so it is always the leader.
    fn leader_acquire<'a>(
        &'a self,
        _owner: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async { Ok(true) })
    }

    fn leader_release<'a>(&'a self, _owner: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Takes `count` uids from the counter inside the caller's write transaction.
fn take_block(tx: &redb::WriteTransaction, count: u32) -> StoreResult<(u32, u32)> {
    let mut meta = tx.open_table(META).map_err(err)?;
    let next = match meta.get(UID_NEXT_KEY).map_err(err)? {
        Some(v) => {
            let bytes: [u8; 8] = v
                .value()
                .try_into()
                .map_err(|_| err("corrupt uid counter"))?;
            u64::from_le_bytes(bytes)
        }
        None => 0,
    };
    let (first, last) = block(next, count)?;
    let after = (u64::from(last) + 1).to_le_bytes();
    meta.insert(UID_NEXT_KEY, after.as_slice()).map_err(err)?;
    Ok((first, last))
}

fn counter_value(v: Option<redb::AccessGuard<'_, &'static [u8]>>) -> StoreResult<u64> {
    match v {
        Some(v) => {
            let bytes: [u8; 8] = v.value().try_into().map_err(|_| err("corrupt counter"))?;
            Ok(u64::from_le_bytes(bytes))
        }
        None => Ok(0),
    }
}

impl EmbeddedStore {
    /// Adds one to the counter at `key` in the meta table; the new value.
    fn bump(&self, key: String) -> BoxFuture<'_, StoreResult<u64>> {
        self.write(move |tx| {
            let mut meta = tx.open_table(META).map_err(err)?;
            let last = counter_value(meta.get(key.as_str()).map_err(err)?)?;
            let next = last
                .checked_add(1)
                .ok_or_else(|| err("counter exhausted (u64)"))?;
            meta.insert(key.as_str(), next.to_le_bytes().as_slice())
                .map_err(err)?;
            Ok(next)
        })
    }
}
