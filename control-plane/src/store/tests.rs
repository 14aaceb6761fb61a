//! The same checks against both backends.

use std::time::Duration;

use miroir_topology::tasks::{NodeTask, TaskRecord};
use miroir_topology::{Node, NodeState, Topology};
use serde_json::json;

use super::embedded::EmbeddedStore;
use super::redis::RedisStore;
use super::*;
use crate::testutil::{RedisServer, TempDir};

pub(crate) fn topology(epoch: u64) -> Topology {
    Topology {
        epoch,
        shards: 4,
        shard_map: Default::default(),
        replication_factor: 1,
        nodes: vec![Node {
            id: "n0".into(),
            address: "127.0.0.1:7700".into(),
            group: "g0".into(),
            state: NodeState::Active,
        }],
    }
}

pub(crate) fn task(uid: u32, terminal: bool) -> StoredTask {
    StoredTask {
        uid,
        record: TaskRecord {
            index_uid: Some("movies".into()),
            kind: "documentAdditionOrUpdate".into(),
            details: Default::default(),
            copies: 1,
            node_tasks: vec![NodeTask {
                node: "n0".into(),
                group: "g0".into(),
                task_uid: u64::from(uid),
            }],
            custom_metadata: None,
            shares: Vec::new(),
            primary_key: None,
            intent: None,
        },
        registered_at: "2026-01-01T00:00:00Z".into(),
        node_objects: Default::default(),
        task: json!({"uid": uid}),
        terminal,
        disagreeing_nodes: Vec::new(),
        deletes: None,
        behind: Vec::new(),
    }
}

/// Runs one check against a fresh embedded store and a fresh Redis store. The closure gets a
/// way to reopen the store, so restarts can be checked too.
macro_rules! both {
    ($name:ident, $check:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn embedded() {
                let dir = TempDir::new("store");
                let path = dir.path().to_path_buf();
                let open = move || {
                    let path = path.clone();
                    async move {
                        Arc::new(EmbeddedStore::open(&path).expect("open")) as SharedStore
                    }
                };
                $check(open).await;
            }

            #[tokio::test]
            async fn redis() {
                let server = RedisServer::start();
                let url = server.url.clone();
                let open = move || {
                    let url = url.clone();
                    async move {
                        Arc::new(RedisStore::connect(&url).await.expect("connect")) as SharedStore
                    }
                };
                $check(open).await;
            }
        }
    };
}

both!(topology_cas, check_topology_cas);
async fn check_topology_cas<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = SharedStore>,
{
    let store = open().await;
    store.ping().await.expect("ping");
    assert_eq!(store.load_topology().await.expect("load"), None);
    assert!(!store
        .cas_topology(Some(1), &topology(2))
        .await
        .expect("cas"));
    assert!(store.cas_topology(None, &topology(1)).await.expect("cas"));
    assert!(!store.cas_topology(None, &topology(1)).await.expect("cas"));
    // Two replicas bumping epoch 1: one wins.
    assert!(store
        .cas_topology(Some(1), &topology(2))
        .await
        .expect("cas"));
    assert!(!store
        .cas_topology(Some(1), &topology(2))
        .await
        .expect("cas"));
    store.put_setting("wasm", "x").await.expect("setting");
    drop(store);

    let store = open().await;
    assert_eq!(
        store.load_topology().await.expect("load"),
        Some(topology(2)),
        "the topology survives a restart"
    );
    assert_eq!(
        store.get_setting("wasm").await.expect("setting").as_deref(),
        Some("x")
    );
}

both!(uids_and_leases, check_uids_and_leases);
async fn check_uids_and_leases<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = SharedStore>,
{
    let store = open().await;
    assert_eq!(store.next_uid().await.expect("uid"), 0);
    assert_eq!(store.next_uid().await.expect("uid"), 1);
    let lease = store.lease_uids("envoy-a", 10).await.expect("lease");
    assert_eq!((lease.first, lease.last), (2, 11));
    assert_eq!(store.next_uid().await.expect("uid"), 12);
    assert!(store.lease_uids("envoy-a", 0).await.is_err());
    assert!(store.lease_uids("envoy-a", MAX_LEASE + 1).await.is_err());
    drop(store);

    let store = open().await;
    assert_eq!(
        store.next_uid().await.expect("uid"),
        13,
        "the counter survives a restart"
    );
    assert_eq!(store.leases().await.expect("leases"), vec![lease]);

    // Strictly increasing under concurrency.
    let all = taken_concurrently(&store, |s| async move {
        u64::from(s.next_uid().await.expect("uid"))
    })
    .await;
    assert_eq!(all.len(), 80, "no uid handed out twice");
    assert!(all.iter().all(|u| *u >= 14));
}

both!(tasks, check_tasks);
async fn check_tasks<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = SharedStore>,
{
    let store = open().await;
    assert!(store.insert_task(&task(3, false)).await.expect("insert"));
    assert!(store.insert_task(&task(1, true)).await.expect("insert"));
    assert!(!store.insert_task(&task(3, true)).await.expect("insert"));
    assert_eq!(store.pending_tasks().await.expect("pending"), vec![3]);
    assert_eq!(
        store.get_task(3).await.expect("get"),
        Some(task(3, false)),
        "a taken uid keeps its first record"
    );
    assert!(
        store.update_task(&task(3, true)).await.expect("update"),
        "this update finished it"
    );
    assert!(store.pending_tasks().await.expect("pending").is_empty());
    assert!(
        !store.update_task(&task(3, true)).await.expect("update"),
        "finished once only"
    );
    assert!(!store.update_task(&task(3, false)).await.expect("update"));
    assert_eq!(
        store.get_task(3).await.expect("get"),
        Some(task(3, true)),
        "a stale unfinished copy does not bring a finished task back"
    );
    assert!(store.pending_tasks().await.expect("pending").is_empty());
    let uids: Vec<u32> = store
        .all_tasks()
        .await
        .expect("all")
        .iter()
        .map(|t| t.uid)
        .collect();
    assert_eq!(uids, vec![1, 3]);
    assert_eq!(store.delete_tasks(&[1, 7]).await.expect("delete"), 1);
    // A refresh racing a deletion must not bring the task back.
    store.update_task(&task(1, false)).await.expect("update");
    assert_eq!(store.get_task(1).await.expect("get"), None);
    assert!(store.pending_tasks().await.expect("pending").is_empty());
    let mut deletion = task(5, false);
    deletion.deletes = Some(vec![3, 4]);
    assert!(store.insert_task(&deletion).await.expect("insert"));
    drop(store);

    let store = open().await;
    assert_eq!(store.get_task(3).await.expect("get"), Some(task(3, true)));
    assert_eq!(
        store.get_task(5).await.expect("get"),
        Some(deletion),
        "a pending deletion keeps its targets"
    );
    assert_eq!(store.pending_tasks().await.expect("pending"), vec![5]);
    let old: StoredTask = serde_json::from_value(json!({
        "uid": 6, "record": {"type": "taskDeletion", "copies": 1, "nodeTasks": []},
        "registeredAt": "2026-01-01T00:00:00Z", "task": {}, "terminal": true}))
    .expect("a task stored before `deletes`");
    assert_eq!(old.deletes, None);

    let index = IndexEntry {
        uid: "movies".into(),
        primary_key: Some("id".into()),
        shards: 4,
        settings: Some(SettingsCheck {
            status: CheckStatus::Inconsistent,
            disagreeing_nodes: vec!["n1".into()],
            unreachable_nodes: vec![],
            checked_at: "2026-01-01T00:00:00Z".into(),
            task_uid: 3,
        }),
    };
    store.put_index(&index).await.expect("put index");
    assert_eq!(
        store.get_index("movies").await.expect("get"),
        Some(index.clone())
    );
    assert_eq!(store.list_indexes().await.expect("list"), vec![index]);
    assert!(store.delete_index("movies").await.expect("delete"));
    assert!(!store.delete_index("movies").await.expect("delete"));
}

both!(webhooks, check_webhooks);
async fn check_webhooks<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = SharedStore>,
{
    let store = open().await;
    assert!(store.webhooks().await.expect("list").is_empty());
    let hook = |url: &str| Webhook {
        url: url.into(),
        headers: [("Authorization".to_string(), "Bearer x".to_string())]
            .into_iter()
            .collect(),
    };
    let uuid = |i: usize| format!("00000000-0000-4000-8000-{i:012}");
    assert!(store
        .insert_webhook(&uuid(1), &hook("https://a"))
        .await
        .expect("insert"));
    assert!(store
        .replace_webhook(&uuid(1), &hook("https://b"))
        .await
        .expect("replace"));
    assert!(!store
        .replace_webhook(&uuid(2), &hook("https://b"))
        .await
        .expect("replace"));
    drop(store);

    let store = open().await;
    let all = store.webhooks().await.expect("list");
    assert_eq!(
        all.into_iter().collect::<Vec<_>>(),
        vec![(uuid(1), hook("https://b"))],
        "webhooks survive a restart"
    );
    for i in 2..=MAX_WEBHOOKS {
        assert!(store
            .insert_webhook(&uuid(i), &hook("https://c"))
            .await
            .expect("insert"));
    }
    assert!(
        !store
            .insert_webhook(&uuid(99), &hook("https://c"))
            .await
            .expect("insert"),
        "at most {MAX_WEBHOOKS}"
    );
    assert!(store.delete_webhook(&uuid(1)).await.expect("delete"));
    assert!(!store.delete_webhook(&uuid(1)).await.expect("delete"));
    assert_eq!(
        store.webhooks().await.expect("list").len(),
        MAX_WEBHOOKS - 1
    );
}

both!(jobs, check_jobs);
async fn check_jobs<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = SharedStore>,
{
    let store = open().await;
    assert!(store.list_jobs().await.expect("list").is_empty());
    assert_eq!(store.get_job("job-1").await.expect("get"), None);
    let first = store.next_job_number().await.expect("number");
    let second = store.next_job_number().await.expect("number");
    assert!(first < second, "{first} then {second}");
    for id in ["job-10", "job-9", "draft", "job-1", "job-x"] {
        let job = json!({"id": id, "state": "pending"}).to_string();
        store.put_job(id, &job).await.expect("put");
    }
    let done = json!({"id": "job-9", "state": "done"}).to_string();
    store.put_job("job-9", &done).await.expect("overwrite");
    assert_eq!(
        store.get_job("job-9").await.expect("get").as_deref(),
        Some(done.as_str()),
        "a put overwrites"
    );
    drop(store);

    let store = open().await;
    let jobs = store.list_jobs().await.expect("list");
    let ids: Vec<&str> = jobs.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["job-1", "job-9", "job-10", "draft", "job-x"],
        "by number, then other ids by string; jobs survive a restart"
    );
    assert_eq!(jobs[1].1, done);
    let third = store.next_job_number().await.expect("number");
    assert!(third > second, "the counter survives a restart");

    // Strictly increasing under concurrency.
    let all = taken_concurrently(&store, |s| async move {
        s.next_job_number().await.expect("number")
    })
    .await;
    assert_eq!(all.len(), 80, "no job number handed out twice");
    assert!(all.iter().all(|n| *n > third));
}

both!(intents, check_intents);
async fn check_intents<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = SharedStore>,
{
    let store = open().await;
    assert!(store.open_intents().await.expect("list").is_empty());
    let a = store
        .record_intent("movies", "{\"a\":1}")
        .await
        .expect("record");
    let b = store
        .record_intent("books", "{\"b\":1}")
        .await
        .expect("record");
    let c = store
        .record_intent("movies", "{\"c\":1}")
        .await
        .expect("record");
    assert!(a < b && b < c, "{a} {b} {c}");
    store.close_intent(b).await.expect("close");
    store
        .close_intent(b)
        .await
        .expect("closing twice is a no-op");
    drop(store);

    let store = open().await;
    let open_now = store.open_intents().await.expect("list");
    let seen: Vec<(u64, &str, &str, u64)> = open_now
        .iter()
        .map(|r| (r.id, r.index.as_str(), r.intent.as_str(), r.latest))
        .collect();
    assert_eq!(
        seen,
        vec![(a, "movies", "{\"a\":1}", c), (c, "movies", "{\"c\":1}", c)],
        "kept across a restart, each with its index's latest"
    );
    let d = store.record_intent("books", "{}").await.expect("record");
    assert!(d > c, "the counter survives a restart");
}

#[test]
fn job_order() {
    let mut jobs: Vec<(String, String)> = [
        "job-",
        "zzz",
        "job-+3",
        "job-2",
        "job-18446744073709551616",
        "job-007",
        "job-7",
        "a",
    ]
    .iter()
    .map(|id| (id.to_string(), String::new()))
    .collect();
    sort_jobs(&mut jobs);
    let ids: Vec<&str> = jobs.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "job-2",
            "job-007",
            "job-7",
            "a",
            "job-",
            "job-+3",
            "job-18446744073709551616",
            "zzz"
        ]
    );
}

#[tokio::test]
async fn embedded_is_always_leader() {
    let dir = TempDir::new("leader");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    assert!(store
        .leader_acquire("a", Duration::from_secs(1))
        .await
        .expect("acquire"));
}

#[tokio::test]
async fn redis_lease_has_one_owner() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url).await.expect("connect");
    let ttl = Duration::from_secs(30);
    assert!(store.leader_acquire("a", ttl).await.expect("a"));
    assert!(!store.leader_acquire("b", ttl).await.expect("b"));
    assert!(store.leader_acquire("a", ttl).await.expect("a renews"));
    store
        .leader_release("b")
        .await
        .expect("b release is a no-op");
    assert!(!store.leader_acquire("b", ttl).await.expect("b"));
    store.leader_release("a").await.expect("release");
    assert!(store.leader_acquire("b", ttl).await.expect("b takes over"));
}

both!(fleet_reports, check_fleet_reports);
async fn check_fleet_reports<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = SharedStore>,
{
    let store = open().await;
    assert!(store.fleet_reports().await.expect("list").is_empty());
    store.put_fleet_report("b", "{\"n\":1}").await.expect("put");
    store.put_fleet_report("a", "{\"n\":2}").await.expect("put");
    store.put_fleet_report("b", "{\"n\":3}").await.expect("put");
    assert_eq!(
        store.fleet_reports().await.expect("list"),
        [
            ("a".to_string(), "{\"n\":2}".to_string()),
            ("b".to_string(), "{\"n\":3}".to_string())
        ],
        "one report per replica, the last one"
    );
}

/// 8 tasks taking 10 values each from a counter of `store`: each task's values strictly
/// increase; every value taken, sorted, duplicates removed.
async fn taken_concurrently<F, Fut>(store: &SharedStore, take: F) -> Vec<u64>
where
    F: Fn(SharedStore) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let mut handles = Vec::new();
    for _ in 0..8 {
        let (store, take) = (store.clone(), take.clone());
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..10 {
                got.push(take(store.clone()).await);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        let got = h.await.expect("join");
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        all.extend(got);
    }
    all.sort_unstable();
    all.dedup();
    all
}
