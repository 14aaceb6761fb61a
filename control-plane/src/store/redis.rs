//! The shared store for several control-plane replicas: Redis. Every multi-key update that must
//! be atomic (topology compare-and-set, task update that must not resurrect a deleted task,
//! leader renewal) is a Lua script, which Redis runs without interleaving.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use miroir_topology::Topology;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Script};
use tokio::sync::Mutex;

use super::{
    block, err, sort_jobs, BoxFuture, IndexEntry, IntentRecord, LeaseRecord, Store, StoreError,
    StoreResult, StoredTask, Webhook, MAX_LEASE, MAX_WEBHOOKS,
};

const CAS_TOPOLOGY: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur == false then cur = '' end
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
return 1
"#;

/// 0: deleted, or finished already and the copy is not; 1: written; 2: written, and this
/// update finished the task.
const UPDATE_TASK: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local pending = redis.call('SISMEMBER', KEYS[2], ARGV[1])
if pending == 0 and ARGV[3] ~= '1' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '1' then
  redis.call('SREM', KEYS[2], ARGV[1])
  if pending == 1 then return 2 end
end
return 1
"#;

const INSERT_WEBHOOK: &str = r#"
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

const REPLACE_WEBHOOK: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

const INSERT_TASK: &str = r#"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ARGV[3] ~= '1' then redis.call('SADD', KEYS[2], ARGV[1]) end
return 1
"#;

/// Extends the lease only if this replica still holds it: a replica that paused past its TTL
/// must not extend a lease another replica has taken since.
const RENEW_LEADER: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

const RELEASE_LEADER: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

#[derive(Clone)]
pub struct RedisStore {
    client: Client,
    prefix: String,
    /// One multiplexed connection, reopened after a connection error (Redis restarted).
    conn: Arc<Mutex<Option<MultiplexedConnection>>>,
}

impl RedisStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with_prefix(url, "miroir:").await
    }

    /// `prefix` namespaces every key, so several clusters (or tests) can share one Redis.
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> StoreResult<Self> {
        let client = Client::open(url).map_err(err)?;
        let store = RedisStore {
            client,
            prefix: prefix.to_string(),
            conn: Arc::new(Mutex::new(None)),
        };
        // Fail at startup on a wrong address rather than on the first request.
        store.conn().await?;
        Ok(store)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn conn(&self) -> StoreResult<MultiplexedConnection> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(err)?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Maps an error, forgetting the connection when it is broken so the next call reconnects.
    async fn fail(&self, e: RedisError) -> StoreError {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            *self.conn.lock().await = None;
        }
        err(e)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> StoreResult<T> {
        let mut conn = self.conn().await?;
        match cmd.query_async(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.fail(e).await),
        }
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        source: &str,
        keys: &[String],
        args: &[String],
    ) -> StoreResult<T> {
        let script = Script::new(source);
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(a);
        }
        let mut conn = self.conn().await?;
        match invocation.invoke_async(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.fail(e).await),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| err(format!("corrupt record: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(err)
}

fn terminal_flag(task: &StoredTask) -> String {
    if task.terminal { "1" } else { "0" }.to_string()
}

impl Store for RedisStore {
    fn ping(&self) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let _: String = self.run(&mut redis::cmd("PING")).await?;
            Ok(())
        })
    }

    fn load_topology(&self) -> BoxFuture<'_, StoreResult<Option<Topology>>> {
        Box::pin(async move {
            let text: Option<String> = self
                .run(redis::cmd("GET").arg(self.key("topology")))
                .await?;
            text.map(|t| decode(&t)).transpose()
        })
    }

    fn cas_topology<'a>(
        &'a self,
        expected: Option<u64>,
        next: &'a Topology,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let expected = expected.map(|e| e.to_string()).unwrap_or_default();
            let done: i64 = self
                .script(
                    CAS_TOPOLOGY,
                    &[self.key("topology-epoch"), self.key("topology")],
                    &[expected, next.epoch.to_string(), encode(next)?],
                )
                .await?;
            Ok(done == 1)
        })
    }

    fn get_setting<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        Box::pin(async move {
            self.run(redis::cmd("HGET").arg(self.key("settings")).arg(name))
                .await
        })
    }

    fn put_setting<'a>(&'a self, name: &'a str, value: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let _: i64 = self
                .run(
                    redis::cmd("HSET")
                        .arg(self.key("settings"))
                        .arg(name)
                        .arg(value),
                )
                .await?;
            Ok(())
        })
    }

    fn put_index<'a>(&'a self, index: &'a IndexEntry) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let _: i64 = self
                .run(
                    redis::cmd("HSET")
                        .arg(self.key("indexes"))
                        .arg(&index.uid)
                        .arg(encode(index)?),
                )
                .await?;
            Ok(())
        })
    }

    fn get_index<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, StoreResult<Option<IndexEntry>>> {
        Box::pin(async move {
            let text: Option<String> = self
                .run(redis::cmd("HGET").arg(self.key("indexes")).arg(uid))
                .await?;
            text.map(|t| decode(&t)).transpose()
        })
    }

    fn list_indexes(&self) -> BoxFuture<'_, StoreResult<Vec<IndexEntry>>> {
        Box::pin(async move {
            let all: HashMap<String, String> = self
                .run(redis::cmd("HGETALL").arg(self.key("indexes")))
                .await?;
            let mut out: Vec<IndexEntry> = all
                .values()
                .map(|t| decode(t))
                .collect::<StoreResult<_>>()?;
            out.sort_by(|a, b| a.uid.cmp(&b.uid));
            Ok(out)
        })
    }

    fn delete_index<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let n: i64 = self
                .run(redis::cmd("HDEL").arg(self.key("indexes")).arg(uid))
                .await?;
            Ok(n > 0)
        })
    }

    fn next_uid(&self) -> BoxFuture<'_, StoreResult<u32>> {
        Box::pin(async move {
            // The counter holds the first free uid after INCRBY, so the block is [v-1, v-1].
            let after: u64 = self
                .run(redis::cmd("INCRBY").arg(self.key("task-uid-next")).arg(1))
                .await?;
            block(after.saturating_sub(1), 1).map(|(first, _)| first)
        })
    }

    fn lease_uids<'a>(
        &'a self,
        envoy: &'a str,
        count: u32,
    ) -> BoxFuture<'a, StoreResult<LeaseRecord>> {
        Box::pin(async move {
            if count == 0 || count > MAX_LEASE {
                return Err(StoreError(format!("a lease holds 1 to {MAX_LEASE} uids")));
            }
            let after: u64 = self
                .run(
                    redis::cmd("INCRBY")
                        .arg(self.key("task-uid-next"))
                        .arg(count),
                )
                .await?;
            let (first, last) = block(after.saturating_sub(u64::from(count)), count)?;
            let lease = LeaseRecord {
                envoy: envoy.to_string(),
                first,
                last,
            };
            let _: i64 = self
                .run(
                    redis::cmd("HSET")
                        .arg(self.key("leases"))
                        .arg(first)
                        .arg(encode(&lease)?),
                )
                .await?;
            Ok(lease)
        })
    }

    fn leases(&self) -> BoxFuture<'_, StoreResult<Vec<LeaseRecord>>> {
        Box::pin(async move {
            let all: HashMap<String, String> = self
                .run(redis::cmd("HGETALL").arg(self.key("leases")))
                .await?;
            let mut out: Vec<LeaseRecord> = all
                .values()
                .map(|t| decode(t))
                .collect::<StoreResult<_>>()?;
            out.sort_by_key(|l| l.first);
            Ok(out)
        })
    }

    fn insert_task<'a>(&'a self, task: &'a StoredTask) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let done: i64 = self
                .script(
                    INSERT_TASK,
                    &[self.key("tasks"), self.key("tasks-pending")],
                    &[task.uid.to_string(), encode(task)?, terminal_flag(task)],
                )
                .await?;
            Ok(done == 1)
        })
    }

    fn update_task<'a>(&'a self, task: &'a StoredTask) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let done: i64 = self
                .script(
                    UPDATE_TASK,
                    &[self.key("tasks"), self.key("tasks-pending")],
                    &[task.uid.to_string(), encode(task)?, terminal_flag(task)],
                )
                .await?;
            Ok(done == 2)
        })
    }

    fn get_task(&self, uid: u32) -> BoxFuture<'_, StoreResult<Option<StoredTask>>> {
        Box::pin(async move {
            let text: Option<String> = self
                .run(redis::cmd("HGET").arg(self.key("tasks")).arg(uid))
                .await?;
            text.map(|t| decode(&t)).transpose()
        })
    }

    fn all_tasks(&self) -> BoxFuture<'_, StoreResult<Vec<StoredTask>>> {
        Box::pin(async move {
            let all: HashMap<String, String> = self
                .run(redis::cmd("HGETALL").arg(self.key("tasks")))
                .await?;
            let mut out: Vec<StoredTask> = all
                .values()
                .map(|t| decode(t))
                .collect::<StoreResult<_>>()?;
            out.sort_by_key(|t| t.uid);
            Ok(out)
        })
    }

    fn pending_tasks(&self) -> BoxFuture<'_, StoreResult<Vec<u32>>> {
        Box::pin(async move {
            let mut uids: Vec<u32> = self
                .run(redis::cmd("SMEMBERS").arg(self.key("tasks-pending")))
                .await?;
            uids.sort_unstable();
            Ok(uids)
        })
    }

    fn delete_tasks<'a>(&'a self, uids: &'a [u32]) -> BoxFuture<'a, StoreResult<usize>> {
        Box::pin(async move {
            if uids.is_empty() {
                return Ok(0);
            }
            let removed: usize = self
                .run(redis::cmd("HDEL").arg(self.key("tasks")).arg(uids))
                .await?;
            let _: i64 = self
                .run(redis::cmd("SREM").arg(self.key("tasks-pending")).arg(uids))
                .await?;
            Ok(removed)
        })
    }

    fn webhooks(&self) -> BoxFuture<'_, StoreResult<BTreeMap<String, Webhook>>> {
        Box::pin(async move {
            let all: HashMap<String, String> = self
                .run(redis::cmd("HGETALL").arg(self.key("webhooks")))
                .await?;
            all.into_iter()
                .map(|(uuid, text)| Ok((uuid, decode(&text)?)))
                .collect()
        })
    }

    fn insert_webhook<'a>(
        &'a self,
        uuid: &'a str,
        webhook: &'a Webhook,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let done: i64 = self
                .script(
                    INSERT_WEBHOOK,
                    &[self.key("webhooks")],
                    &[uuid.to_string(), encode(webhook)?, MAX_WEBHOOKS.to_string()],
                )
                .await?;
            Ok(done == 1)
        })
    }

    fn replace_webhook<'a>(
        &'a self,
        uuid: &'a str,
        webhook: &'a Webhook,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let done: i64 = self
                .script(
                    REPLACE_WEBHOOK,
                    &[self.key("webhooks")],
                    &[uuid.to_string(), encode(webhook)?],
                )
                .await?;
            Ok(done == 1)
        })
    }

    fn delete_webhook<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let n: i64 = self
                .run(redis::cmd("HDEL").arg(self.key("webhooks")).arg(uuid))
                .await?;
            Ok(n > 0)
        })
    }

    fn put_job<'a>(&'a self, id: &'a str, job: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let _: i64 = self
                .run(redis::cmd("HSET").arg(self.key("jobs")).arg(id).arg(job))
                .await?;
            Ok(())
        })
    }

    fn get_job<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        Box::pin(async move {
            self.run(redis::cmd("HGET").arg(self.key("jobs")).arg(id))
                .await
        })
    }

    fn list_jobs(&self) -> BoxFuture<'_, StoreResult<Vec<(String, String)>>> {
        Box::pin(async move {
            let all: HashMap<String, String> = self
                .run(redis::cmd("HGETALL").arg(self.key("jobs")))
                .await?;
            let mut out: Vec<(String, String)> = all.into_iter().collect();
            sort_jobs(&mut out);
            Ok(out)
        })
    }

    fn record_intent<'a>(
        &'a self,
        index: &'a str,
        intent: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            // The id, the record and the index's latest in one step: two replicas recording
            // changes of one index leave the higher id as its latest.
            let source = r"
                local id = redis.call('INCR', KEYS[1])
                local record = cjson.encode({id = id, index = ARGV[1], intent = ARGV[2], latest = id})
                redis.call('HSET', KEYS[2], tostring(id), record)
                redis.call('HSET', KEYS[3], ARGV[1], id)
                return id
            ";
            let keys = [
                self.key("intent-number"),
                self.key("intents"),
                self.key("intent-latest"),
            ];
            self.script(source, &keys, &[index.to_string(), intent.to_string()])
                .await
        })
    }

    fn close_intent(&self, id: u64) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let _: i64 = self
                .run(
                    redis::cmd("HDEL")
                        .arg(self.key("intents"))
                        .arg(id.to_string()),
                )
                .await?;
            Ok(())
        })
    }

    fn open_intents(&self) -> BoxFuture<'_, StoreResult<Vec<IntentRecord>>> {
        Box::pin(async move {
            let all: HashMap<String, String> = self
                .run(redis::cmd("HGETALL").arg(self.key("intents")))
                .await?;
            let latest: HashMap<String, u64> = self
                .run(redis::cmd("HGETALL").arg(self.key("intent-latest")))
                .await?;
            let mut out = Vec::new();
            for text in all.values() {
                let mut record: IntentRecord = decode(text)?;
                if let Some(l) = latest.get(&record.index) {
                    record.latest = *l;
                }
                out.push(record);
            }
            out.sort_by_key(|r| r.id);
            Ok(out)
        })
    }

    fn put_fleet_report<'a>(
        &'a self,
        replica: &'a str,
        report: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let _: i64 = self
                .run(
                    redis::cmd("HSET")
                        .arg(self.key("fleet"))
                        .arg(replica)
                        .arg(report),
                )
                .await?;
            Ok(())
        })
    }

    fn fleet_reports(&self) -> BoxFuture<'_, StoreResult<Vec<(String, String)>>> {
        Box::pin(async move {
            let all: HashMap<String, String> = self
                .run(redis::cmd("HGETALL").arg(self.key("fleet")))
                .await?;
            let mut out: Vec<(String, String)> = all.into_iter().collect();
            out.sort();
            Ok(out)
        })
    }

    fn next_job_number(&self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            // The counter holds the last number handed out, so the first job is 1.
            self.run(redis::cmd("INCR").arg(self.key("job-number")))
                .await
        })
    }

    fn count_miss<'a>(&'a self, node: &'a str) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            self.run(redis::cmd("INCR").arg(self.key(&format!("misses:{node}"))))
                .await
        })
    }

    fn misses<'a>(&'a self, node: &'a str) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            let value: Option<u64> = self
                .run(redis::cmd("GET").arg(self.key(&format!("misses:{node}"))))
                .await?;
            Ok(value.unwrap_or(0))
        })
    }

    fn leader_acquire<'a>(
        &'a self,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let ttl_ms = ttl.as_millis().max(1) as u64;
            let taken: Option<String> = self
                .run(
                    redis::cmd("SET")
                        .arg(self.key("leader"))
                        .arg(owner)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms),
                )
                .await?;
            if taken.is_some() {
                return Ok(true);
            }
            let renewed: i64 = self
                .script(
                    RENEW_LEADER,
                    &[self.key("leader")],
                    &[owner.to_string(), ttl_ms.to_string()],
                )
                .await?;
            Ok(renewed == 1)
        })
    }

    fn leader_release<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let _: i64 = self
                .script(RELEASE_LEADER, &[self.key("leader")], &[owner.to_string()])
                .await?;
            Ok(())
        })
    }

    fn leader_owner(&self) -> BoxFuture<'_, StoreResult<Option<String>>> {
        Box::pin(async move { self.run(redis::cmd("GET").arg(self.key("leader"))).await })
    }
}
