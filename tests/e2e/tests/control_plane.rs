//! Issue 4 end to end: real Envoys on the ADS bootstrap, real `miroir-control-plane` processes
//! (embedded store, or several replicas on a real Redis), test nodes. Each scenario asserts what a
//! user sees: HTTP answers through Envoy, the admin API, Envoy's stats.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use miroir_e2e::{Client, Fleet, FleetOptions, Health, Spec, StoreKind};
use serde_json::{json, Value};
use support::{corpus, create_movies, wait_task, write};

const DOCS: usize = 60;

fn three_nodes(replication_factor: u32) -> Spec {
    Spec::new(
        &[("n0", "g0"), ("n1", "g0"), ("n2", "g0")],
        8,
        replication_factor,
    )
}

fn options(store: StoreKind, envoys: usize) -> FleetOptions {
    FleetOptions {
        store,
        envoys,
        ..FleetOptions::default()
    }
}

fn name(base: &str, store: StoreKind) -> String {
    match store {
        StoreKind::Embedded => format!("{base}_embedded"),
        StoreKind::Redis => format!("{base}_redis"),
    }
}

/// `movies` with the corpus, written through `client` (every task awaited as an SDK does).
fn load_movies(client: &Client) {
    create_movies(client);
    write(
        client,
        "POST",
        "/indexes/movies/documents",
        &json!(corpus(DOCS)),
    );
}

/// A search every document matches: its total says whether every shard answered.
fn search_all(client: &Client) -> Result<(), String> {
    let reply = client.try_send(
        "POST",
        "/indexes/movies/search",
        Some(("application/json", br#"{"q": "", "limit": 5}"#.as_slice())),
    )?;
    let total = reply
        .try_json()
        .and_then(|b| b["estimatedTotalHits"].as_u64());
    match (reply.status, total) {
        (200, Some(t)) if t == DOCS as u64 => Ok(()),
        (status, _) => Err(format!("{status} {}", reply.text())),
    }
}

/// Searches through every client in turn until stopped; collects every failure.
struct Searcher {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(u64, Vec<String>)>,
}

impl Searcher {
    fn start(clients: Vec<Client>) -> Searcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut count, mut failures) = (0u64, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                for (i, client) in clients.iter().enumerate() {
                    count += 1;
                    if let Err(e) = search_all(client) {
                        failures.push(format!("Envoy {i}: {e}"));
                    }
                }
            }
            (count, failures)
        });
        Searcher { stop, handle }
    }

    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the search thread panicked")
    }
}

/// Every document a node holds, `_miroir_shard` included, by id.
fn node_documents(fleet: &Fleet, node: &str) -> BTreeMap<String, Value> {
    let (status, body) = fleet
        .node_client(node)
        .get("/indexes/movies/documents?limit=10000")
        .pair();
    assert_eq!(status, 200, "documents of {node}: {body}");
    body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| (d["id"].to_string(), d.clone()))
        .collect()
}

/// Scenario 1: a node registered through the admin API reaches both Envoys as a new epoch,
/// while searches through both keep succeeding with complete results.
fn topology_change_reaches_every_envoy(store: StoreKind) {
    let mut fleet = Fleet::start(
        &name("cp_topology_change", store),
        three_nodes(1),
        options(store, 2),
    );
    load_movies(&fleet.client(0));

    // The new node gets a copy of every document first (what rebalancing will do), so the
    // shards it wins answer completely the moment an Envoy routes to it.
    let mut all = BTreeMap::new();
    for node in fleet.node_ids() {
        all.extend(node_documents(&fleet, &node));
    }
    assert_eq!(all.len(), DOCS);
    let address = fleet.launch_node("n3", "g0");
    let n3 = fleet.node_client("n3");
    for (method, path, body) in [
        (
            "POST",
            "/indexes",
            json!({"uid": "movies", "primaryKey": "id"}),
        ),
        (
            "PATCH",
            "/indexes/movies/settings",
            json!({"filterableAttributes": ["_miroir_shard", "genre", "year"],
                   "typoTolerance": {"enabled": false}}),
        ),
        (
            "POST",
            "/indexes/movies/documents",
            json!(all.values().collect::<Vec<_>>()),
        ),
    ] {
        let (status, task) = n3.send_json(method, path, &body).pair();
        assert_eq!(status, 202, "{method} {path} on n3: {task}");
    }
    miroir_e2e::wait_for_tasks(n3.base_url(), fleet.master_key());

    let clients = vec![fleet.client(0), fleet.client(1)];
    for client in &clients {
        search_all(client).unwrap();
    }
    let searcher = Searcher::start(clients.clone());
    // Let the client run before the change too.
    std::thread::sleep(Duration::from_millis(300));
    let (status, change) = fleet
        .admin()
        .post(
            "/_miroir/nodes",
            // Weight 0: the node joins at once, holding nothing (a node taking copies is a job,
            // tests/e2e/tests/elastic.rs); what this checks is the epoch reaching every Envoy.
            &json!({"id": "n3", "address": address, "group": "g0", "weight": 0}),
        )
        .pair();
    assert_eq!(status, 200, "POST /_miroir/nodes: {change}");
    assert_eq!(change["topology"]["epoch"], 2, "{change}");
    let acked: Vec<&str> = change["rollout"]["ackedBy"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        acked.contains(&"envoy-0") && acked.contains(&"envoy-1"),
        "{change}"
    );

    fleet.wait_envoys_at_epoch(2);
    let view = fleet.wait_fleet_acked(0, 2);
    assert_eq!(view["epoch"], 2, "{view}");
    assert_eq!(view["rollout"]["state"], "idle", "{view}");
    for client in &clients {
        let reply = client.post("/indexes/movies/search", &json!({"q": "kw0042"}));
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-miroir-topology-epoch"), Some("2"));
        assert_eq!(reply.json()["hits"][0]["id"], 42);
    }
    // Searches after the change, through both Envoys, before the client stops.
    std::thread::sleep(Duration::from_millis(300));
    let (count, failures) = searcher.finish();
    assert!(count >= 4, "only {count} searches ran");
    assert!(
        failures.is_empty(),
        "{} of {count} searches failed during the change: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let topology = fleet.admin().get("/_miroir/topology").json();
    assert!(
        topology["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["id"] == "n3" && n["state"] == "active")),
        "{topology}"
    );
}

#[test]
fn cp_topology_change_embedded() {
    topology_change_reaches_every_envoy(StoreKind::Embedded);
}

#[test]
fn cp_topology_change_redis() {
    topology_change_reaches_every_envoy(StoreKind::Redis);
}

/// Scenario 2: a filter binary Envoy cannot load is NACKed; the rollout stops with Envoy's
/// message, both Envoys keep serving the previous configuration, and later changes still go out.
#[test]
fn cp_nacked_filter_is_reported_and_the_fleet_keeps_serving() {
    let mut fleet = Fleet::start("cp_nack", three_nodes(1), options(StoreKind::Embedded, 2));
    load_movies(&fleet.client(0));
    let garbage = fleet.dir().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not a WebAssembly module\x00\x01\x02").unwrap();

    let (status, error) = fleet
        .admin()
        .put("/_miroir/filter", &json!({"wasm": garbage}))
        .pair();
    assert_eq!(status, 409, "PUT /_miroir/filter: {error}");
    assert_eq!(error["code"], "miroir_rollout_rejected", "{error}");
    let message = error["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("envoy-"), "no Envoy named: {message}");

    let view = fleet.control_plane(0).fleet();
    assert_eq!(view["rollout"]["state"], "stoppedByNack", "{view}");
    let nack_message = view["rollout"]["message"].as_str().unwrap_or_default();
    assert!(!nack_message.is_empty(), "{view}");
    assert!(
        message.contains(nack_message),
        "the admin answer carries Envoy's message `{nack_message}`: {message}"
    );
    let nacks: Vec<&Value> = view["fleet"]["envoys"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["types"].as_object().into_iter().flatten())
        .filter_map(|(_, t)| t.get("lastNack").filter(|n| !n.is_null()))
        .collect();
    assert!(!nacks.is_empty(), "no NACK in /_miroir/fleet: {view}");
    assert!(nacks.iter().any(|n| n["message"] == nack_message), "{view}");

    // Both Envoys still serve epoch 1 with the old binary.
    for i in 0..2 {
        let client = fleet.client(i);
        let reply = client.post("/indexes/movies/search", &json!({"q": "kw0007"}));
        assert_eq!(reply.status, 200, "Envoy {i}: {}", reply.text());
        assert_eq!(reply.header("x-miroir-topology-epoch"), Some("1"));
        assert_eq!(reply.json()["hits"][0]["id"], 7);
        let (status, task) = client
            .post(
                "/indexes/movies/documents",
                &json!([{"id": 1000 + i, "title": "after"}]),
            )
            .pair();
        assert_eq!(status, 202, "Envoy {i}: {task}");
        wait_task(&client, &task);
    }
    let acked = fleet.wait_fleet_acked(0, 1);
    assert!(
        acked["fleet"]["envoys"]
            .as_array()
            .is_some_and(|e| e.iter().all(|e| e["epoch"] == 1)),
        "{acked}"
    );

    // The rejected binary is not kept: the next topology change goes out with the old one.
    let address = fleet.launch_node("n3", "g0");
    let (status, change) = fleet
        .admin()
        .post(
            "/_miroir/nodes",
            &json!({"id": "n3", "address": address, "group": "g0", "weight": 0}),
        )
        .pair();
    assert_eq!(status, 200, "POST /_miroir/nodes after the NACK: {change}");
    fleet.wait_envoys_at_epoch(2);
}

/// Scenario 3: with the control plane down, both Envoys keep serving searches and writes (task
/// uids from their leases); restarted on the same store it resumes the same epoch, the Envoys
/// reconnect, and the tasks answered meanwhile are handed over.
fn control_plane_outage(store: StoreKind) {
    let mut fleet = Fleet::start(&name("cp_outage", store), three_nodes(1), options(store, 2));
    load_movies(&fleet.client(0));
    // Each Envoy took a block of uids before the outage.
    for i in 0..2 {
        fleet.eventually(&format!("Envoy {i} to lease task uids"), || {
            match fleet.envoy_stat(i, "wasmcustom.miroir_filter_uid_leases_total") {
                0 => Err("no lease yet".into()),
                n => Ok(n),
            }
        });
    }
    let leased = fleet
        .control_plane(0)
        .metric("miroir_uids_leased_total")
        .unwrap_or(0.0);
    assert!(leased >= 2.0, "uids leased: {leased}");
    let epoch_before = fleet.control_plane(0).topology()["epoch"].clone();

    fleet.control_plane_mut(0).kill();

    // Searches and writes through both Envoys, each write answered from that Envoy's lease.
    for i in 0..2 {
        search_all(&fleet.client(i)).unwrap();
    }
    let mut answered = Vec::new();
    for i in 0..2 {
        let client = fleet.client(i);
        let doc = json!([{"id": 2000 + i, "title": format!("outage kw{}", 2000 + i)}]);
        let (status, task) = client.post("/indexes/movies/documents", &doc).pair();
        assert_eq!(
            status, 202,
            "write through Envoy {i} during the outage: {task}"
        );
        let uid = task["taskUid"].as_u64().expect("taskUid");
        let done = wait_task(&client, &task);
        assert_eq!(done["uid"], uid, "{done}");
        assert_eq!(done["type"], "documentAdditionOrUpdate", "{done}");
        answered.push((i, uid));
    }
    assert_ne!(
        answered[0].1, answered[1].1,
        "uids are unique across Envoys"
    );
    for i in 0..2 {
        let reply = fleet
            .client(i)
            .post("/indexes/movies/search", &json!({"q": "outage"}));
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["estimatedTotalHits"], 2, "{}", reply.text());
    }

    fleet.control_plane_mut(0).restart();
    // Same store, same epoch: nothing new was stored, and every Envoy acknowledges it again.
    let topology = fleet.control_plane(0).topology();
    assert_eq!(topology["epoch"], epoch_before, "{topology}");
    let epoch = epoch_before.as_u64().expect("epoch");
    fleet.wait_fleet_acked(0, epoch);
    // Ready (store, leader) and, every Envoy having acknowledged the epoch, reporting the fleet
    // converged.
    fleet.eventually("the restarted control plane to be ready", || {
        let reply = fleet.control_plane(0).ready()?;
        let body = reply.try_json().unwrap_or_default();
        (reply.status == 200 && body["fleet"]["converged"] == true && body["epoch"] == epoch)
            .then_some(())
            .ok_or_else(|| reply.text())
    });
    fleet.wait_envoys_at_epoch(epoch);

    // Each task is readable from the other Envoy, through the control plane.
    for (i, uid) in answered {
        let other = fleet.client(1 - i);
        let task = fleet.eventually(
            &format!(
                "task {uid} (answered by Envoy {i}) to be readable from Envoy {}",
                1 - i
            ),
            || {
                let (status, task) = other
                    .try_send("GET", &format!("/tasks/{uid}"), None)?
                    .pair();
                match (status, task["status"].as_str()) {
                    (200, Some("succeeded")) => Ok(task),
                    _ => Err(format!("{status} {task}")),
                }
            },
        );
        assert_eq!(task["uid"], uid, "{task}");
        assert_eq!(task["indexUid"], "movies", "{task}");
    }
    // And a write after the restart gets a uid from the control plane again.
    let client = fleet.client(1);
    let (status, task) = client
        .post(
            "/indexes/movies/documents",
            &json!([{"id": 3000, "title": "back"}]),
        )
        .pair();
    assert_eq!(status, 202, "{task}");
    wait_task(&client, &task);
    let tasks = fleet.client(0).get("/tasks?limit=100").json();
    assert!(
        tasks["results"]
            .as_array()
            .is_some_and(|r| r.iter().any(|t| t["uid"] == task["taskUid"])),
        "{tasks}"
    );
}

#[test]
fn cp_outage_embedded() {
    control_plane_outage(StoreKind::Embedded);
}

#[test]
fn cp_outage_redis() {
    control_plane_outage(StoreKind::Redis);
}

/// Scenario 4: two replicas on one Redis elect exactly one leader; when it dies, the other
/// takes over once the lease expires.
#[test]
fn cp_two_replicas_one_leader_and_a_takeover() {
    let mut fleet = Fleet::start(
        "cp_leader",
        three_nodes(1),
        FleetOptions {
            store: StoreKind::Redis,
            control_planes: 2,
            envoys: 1,
            leader_ttl_ms: 2_000,
            ..FleetOptions::default()
        },
    );
    let leaders = |fleet: &Fleet| -> Result<Vec<usize>, String> {
        let mut leaders = Vec::new();
        for i in 0..fleet.control_plane_count() {
            match fleet.control_plane(i).is_leader() {
                Some(true) => leaders.push(i),
                Some(false) => {}
                None => return Err(format!("control plane {i} did not answer")),
            }
        }
        Ok(leaders)
    };
    let leader = fleet.eventually("exactly one leader", || match leaders(&fleet)?.as_slice() {
        [one] => Ok(*one),
        other => Err(format!("leaders: {other:?}")),
    });
    // It stays that way across several renewals, and /metrics and /_miroir/ready agree.
    for _ in 0..10 {
        assert_eq!(leaders(&fleet).unwrap(), [leader]);
        std::thread::sleep(Duration::from_millis(200));
    }
    let follower = 1 - leader;
    assert_eq!(
        fleet.control_plane(leader).metric("miroir_leader"),
        Some(1.0)
    );
    assert_eq!(
        fleet.control_plane(follower).metric("miroir_leader"),
        Some(0.0)
    );
    // The follower is ready too (a leader is known: the lease's holder), and says which.
    let ready = fleet.control_plane(follower).ready().unwrap();
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["leader"], false, "{}", ready.text());
    assert_eq!(
        ready.json()["leaderId"],
        fleet.control_plane(leader).replica_id(),
        "{}",
        ready.text()
    );
    let ready = fleet.control_plane(leader).ready().unwrap();
    assert_eq!(
        (ready.status, &ready.json()["leader"]),
        (200, &json!(true)),
        "{}",
        ready.text()
    );
    // Only the leader health-checks the nodes.
    let checks = |fleet: &Fleet, i: usize| {
        fleet
            .control_plane(i)
            .metric("miroir_health_checks_total")
            .unwrap_or(0.0)
    };
    fleet.eventually("the leader to health-check the nodes", || {
        (checks(&fleet, leader) > 0.0)
            .then_some(())
            .ok_or_else(|| "no health check yet".to_string())
    });
    assert_eq!(
        checks(&fleet, follower),
        0.0,
        "the follower health-checks too"
    );

    // SIGKILL: the lease is not released and must expire.
    let killed_at = Instant::now();
    fleet.control_plane_mut(leader).kill();
    fleet.eventually("the other replica to take over", || {
        match fleet.control_plane(follower).is_leader() {
            Some(true) => Ok(()),
            other => Err(format!("leader: {other:?}")),
        }
    });
    eprintln!(
        "takeover {:?} after the kill (lease {} ms)",
        killed_at.elapsed(),
        2_000
    );
    assert_eq!(
        fleet.control_plane(follower).metric("miroir_leader"),
        Some(1.0)
    );
    fleet.eventually("the new leader to health-check the nodes", || {
        (checks(&fleet, follower) > 0.0)
            .then_some(())
            .ok_or_else(|| "no health check yet".to_string())
    });
    // The survivor still serves the admin API from the shared store.
    assert_eq!(fleet.control_plane(follower).topology()["epoch"], 1);
}

/// Scenario 5: an SDK's flow through Envoy (create, add, waitForTask, search); then a batch a
/// node fails makes the global task `failed` with that node's error.
fn sdk_flow(store: StoreKind) {
    let fleet = Fleet::start(
        &name("cp_sdk_flow", store),
        three_nodes(1),
        options(store, 1),
    );
    let client = fleet.client(0);
    let (status, created) = client
        .post("/indexes", &json!({"uid": "books", "primaryKey": "id"}))
        .pair();
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["status"], "enqueued", "{created}");
    let task = wait_task(&client, &created);
    assert_eq!(task["type"], "indexCreation", "{task}");
    let books: Vec<Value> = (0..30)
        .map(|i| json!({"id": i, "title": format!("book kw{i:04}")}))
        .collect();
    let (status, added) = client
        .post("/indexes/books/documents", &json!(books))
        .pair();
    assert_eq!(status, 202, "{added}");
    assert!(
        added["taskUid"].as_u64() > created["taskUid"].as_u64(),
        "uids increase: {created} then {added}"
    );
    let task = wait_task(&client, &added);
    assert_eq!(task["details"]["receivedDocuments"], 30, "{task}");
    assert_eq!(task["details"]["indexedDocuments"], 30, "{task}");
    // A phrase matches exactly: Meilisearch's typo tolerance would also find kw0007, kw0010...
    let reply = client.post("/indexes/books/search", &json!({"q": "\"kw0017\""}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let hits = reply.json();
    assert_eq!(hits["hits"][0]["id"], 17, "{hits}");
    assert_eq!(hits["estimatedTotalHits"], 1, "{hits}");

    // The filter accepts the batch (valid ids); the node holding id 5 fails its task.
    let (status, bad) = client
        .post(
            "/indexes/books/documents",
            &json!([{"id": 5, "title": "x", "_vectors": "not an object"}, {"id": 6, "title": "y"}]),
        )
        .pair();
    assert_eq!(status, 202, "{bad}");
    let uid = bad["taskUid"].as_u64().expect("taskUid");
    let failed = fleet.eventually(&format!("task {uid} to finish"), || {
        let (status, task) = client
            .try_send("GET", &format!("/tasks/{uid}"), None)?
            .pair();
        match task["status"].as_str() {
            Some("failed") if status == 200 => Ok(task),
            Some("succeeded") => panic!("task {uid} succeeded: {task}"),
            _ => Err(format!("{status} {task}")),
        }
    });
    assert!(failed["error"]["code"].is_string(), "{failed}");
    // Exactly the failing node's own error object.
    let node_errors: Vec<Value> = fleet
        .node_ids()
        .iter()
        .flat_map(|n| {
            let body = fleet
                .node_client(n)
                .get("/tasks?statuses=failed&indexUids=books")
                .json();
            body["results"].as_array().cloned().unwrap_or_default()
        })
        .map(|t| t["error"].clone())
        .collect();
    assert_eq!(node_errors.len(), 1, "{node_errors:?}");
    assert_eq!(failed["error"], node_errors[0], "{failed}");
    // The list agrees.
    let list = client.get("/tasks?statuses=failed").json();
    assert_eq!(list["results"][0]["uid"], uid, "{list}");
}

#[test]
fn cp_sdk_flow_embedded() {
    sdk_flow(StoreKind::Embedded);
}

#[test]
fn cp_sdk_flow_redis() {
    sdk_flow(StoreKind::Redis);
}

/// Scenario 6: a killed node is marked failed by the health checks (new epoch) and searches
/// stop going to it: with RF=2 they keep succeeding, complete, without further failovers.
#[test]
fn cp_dead_node_is_marked_failed_and_avoided() {
    let mut fleet = Fleet::start(
        "cp_dead_node",
        three_nodes(2),
        FleetOptions {
            health: Health {
                interval_ms: 300,
                timeout_ms: 1_000,
                unhealthy_threshold: 2,
                healthy_threshold: 1,
            },
            ..options(StoreKind::Embedded, 1)
        },
    );
    let client = fleet.client(0);
    load_movies(&client);
    search_all(&client).unwrap();

    fleet.kill_node("n2");
    let topology = fleet.eventually("n2 to be marked failed", || {
        let topology = fleet.control_plane(0).topology();
        let n2 = topology["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["id"] == "n2").cloned())
            .unwrap_or(Value::Null);
        (n2["state"] == "failed")
            .then(|| topology.clone())
            .ok_or_else(|| format!("{topology}"))
    });
    assert_eq!(topology["epoch"], 2, "{topology}");
    fleet.wait_envoys_at_epoch(2);
    fleet.wait_fleet_acked(0, 2);

    let failovers = "wasmcustom.miroir_filter_search_failovers_total";
    // Calls the filter made to n2, whatever their outcome.
    let n2_calls = || fleet.envoy_metric(0, "miroir_filter_node_calls_total", &[("node", "n2")]);
    // Requests Envoy sent on n2's cluster (its active health checks are not counted).
    let n2_requests = "cluster.miroir-node-n2.upstream_rq_total";
    let before = (
        fleet.envoy_stat(0, failovers),
        n2_calls(),
        fleet.envoy_stat(0, n2_requests),
    );
    assert!(before.2 > 0, "{n2_requests} is not counted: {before:?}");
    let failed: Vec<String> = (0..40).filter_map(|_| search_all(&client).err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    let reply = client.post("/indexes/movies/search", &json!({"q": "kw0033"}));
    assert_eq!(reply.header("x-miroir-topology-epoch"), Some("2"));
    assert_eq!(reply.json()["hits"][0]["id"], 33);
    let after = (
        fleet.envoy_stat(0, failovers),
        n2_calls(),
        fleet.envoy_stat(0, n2_requests),
    );
    assert_eq!(
        before, after,
        "(search failovers, the filter's calls to n2, requests to n2) changed after n2 was marked failed"
    );
}

/// `GET /tasks/{uid}` through `client` until the task succeeded, as SDKs' `waitForTask` does;
/// the headers of the answer that said so.
fn wait_task_reply(client: &Client, uid: u64) -> miroir_e2e::Reply {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = client.get(&format!("/tasks/{uid}"));
        let task = reply.json();
        match task["status"].as_str() {
            Some("succeeded") => return reply,
            Some("failed") | Some("canceled") => panic!("task {uid} did not succeed: {task}"),
            _ => assert!(Instant::now() < deadline, "task {uid} still {task}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Scenario 7: a node's settings changed behind Miroir's back are found by the check that
/// follows the next settings change through Miroir: on the answer that tells the client the
/// task succeeded, in the admin API, and in the metrics.
#[test]
fn cp_settings_divergence_is_reported() {
    let fleet = Fleet::start(
        "cp_settings_divergence",
        three_nodes(1),
        options(StoreKind::Embedded, 1),
    );
    let client = fleet.client(0);
    let settings_of = |index: &str| {
        let indexes = fleet.admin().get("/_miroir/indexes").json();
        indexes["results"]
            .as_array()
            .and_then(|r| r.iter().find(|i| i["uid"] == index).cloned())
            .map(|i| i["settings"].clone())
            .unwrap_or(Value::Null)
    };
    let created = client
        .post("/indexes", &json!({"uid": "books", "primaryKey": "id"}))
        .json();
    let uid = created["taskUid"].as_u64().expect("taskUid");
    let reply = wait_task_reply(&client, uid);
    assert_eq!(reply.header("x-miroir-disagreeing-nodes"), None);
    assert_eq!(settings_of("books")["status"], "consistent");

    let (status, behind) = fleet
        .node_client("n1")
        .patch(
            "/indexes/books/settings",
            &json!({"distinctAttribute": "title"}),
        )
        .pair();
    assert_eq!(status, 202, "{behind}");
    wait_task(&fleet.node_client("n1"), &behind);

    let enqueued = client
        .patch(
            "/indexes/books/settings",
            &json!({"searchableAttributes": ["title"]}),
        )
        .json();
    let uid = enqueued["taskUid"].as_u64().expect("taskUid");
    let reply = wait_task_reply(&client, uid);
    assert_eq!(reply.header("x-miroir-disagreeing-nodes"), Some("n1"));
    let check = settings_of("books");
    assert_eq!(check["status"], "inconsistent", "{check}");
    assert_eq!(check["disagreeingNodes"], json!(["n1"]), "{check}");
    assert_eq!(check["taskUid"], uid, "{check}");
    assert_eq!(
        fleet
            .control_plane(0)
            .metric("miroir_index_settings_consistent"),
        Some(0.0)
    );
}

/// Issue 10: the xDS server hands out the filter's key and token, so it answers only Envoys
/// presenting the xDS token. An Envoy without it (or with another) gets no listener, no cluster,
/// no filter configuration, and does not join the fleet; the fleet's own Envoys (started with
/// the token, as `make start` does) are served, and even they never see the master key: the
/// filter's `nodeApiKey` is a key the control plane made for it.
#[test]
fn cp_xds_serves_only_envoys_with_the_token() {
    let fleet = Fleet::start(
        "cp_xds_serves_only_envoys_with_the_token",
        three_nodes(1),
        options(StoreKind::Embedded, 1),
    );
    let xds = fleet.control_plane(0).xds_address();
    let intruders = [
        miroir_e2e::spawn_refused_ads_envoy(
            &fleet.dir().join("intruder-none"),
            "intruder-none",
            &xds,
            None,
        ),
        miroir_e2e::spawn_refused_ads_envoy(
            &fleet.dir().join("intruder-wrong"),
            "intruder-wrong",
            &xds,
            Some("not-the-token"),
        ),
    ];
    let log = fleet.control_plane(0).log_path();
    fleet.eventually("both intruders to be refused (twice each)", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let none = text.matches("xDS client refused: no token").count();
        let wrong = text.matches("xDS client refused: invalid token").count();
        if none >= 2 && wrong >= 2 {
            Ok(())
        } else {
            Err(format!(
                "refused without a token {none}, with a wrong one {wrong}"
            ))
        }
    });
    let filter_key = fleet.client(0).get("/keys").json()["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["name"] == "Miroir filter")
        .cloned()
        .unwrap_or(Value::Null);
    for envoy in &intruders {
        let dump = Client::new(envoy.admin_url(), None)
            .get("/config_dump")
            .text();
        for secret in [
            fleet.filter_token(),
            fleet.master_key(),
            filter_key["key"].as_str().unwrap_or("-"),
        ] {
            assert!(
                !dump.contains(secret),
                "a secret reached an intruder: {dump}"
            );
        }
        assert!(
            !dump.contains("miroir-node-n0"),
            "a cluster reached an intruder"
        );
    }
    let view = fleet.control_plane(0).fleet();
    let ids: Vec<&str> = view["fleet"]["envoys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["nodeId"].as_str())
        .collect();
    assert_eq!(ids, ["envoy-0"], "{view}");

    // The fleet's Envoy has the filter's own key: listed by the nodes with only the lookups'
    // actions, never the master key.
    let dump = Client::new(fleet.envoy(0).admin_url(), None)
        .get("/config_dump")
        .text();
    assert!(
        !dump.contains(fleet.master_key()),
        "the master key reached the filter"
    );
    let key = filter_key["key"]
        .as_str()
        .expect("the filter key is listed");
    assert!(dump.contains(key), "the filter runs with its key");
    let mut actions: Vec<&str> = filter_key["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        ["documents.get", "indexes.get", "settings.get", "tasks.get"]
    );
    // And the filter's lookups work with it: a search reads the index's settings.
    load_movies(&fleet.client(0));
    fleet.eventually("a search through Envoy", || search_all(&fleet.client(0)));
}

/// Issue 10: `GET /tasks`, `GET /tasks/{uid}` and task deletion answer what the client's key may
/// see, as one Meilisearch does: a key for `books*` sees the books tasks, not the movies ones
/// (404 for one of them), and its deletion neither matches nor deletes them.
#[test]
fn cp_task_routes_scope_a_key_to_its_indexes() {
    let fleet = Fleet::start(
        "cp_task_routes_scope_a_key_to_its_indexes",
        three_nodes(1),
        options(StoreKind::Embedded, 1),
    );
    let master = fleet.client(0);
    let movies = write(
        &master,
        "POST",
        "/indexes",
        &json!({"uid": "movies", "primaryKey": "id"}),
    );
    let books = write(
        &master,
        "POST",
        "/indexes",
        &json!({"uid": "books", "primaryKey": "id"}),
    );
    let (status, key) = master
        .post(
            "/keys",
            &json!({"actions": ["tasks.get", "tasks.delete"], "indexes": ["boo*"], "expiresAt": null}),
        )
        .pair();
    assert_eq!(status, 201, "{key}");
    let scoped = master.clone().with_key(key["key"].as_str().expect("key"));
    let (movies_uid, books_uid) = (
        movies["uid"].as_u64().expect("uid"),
        books["uid"].as_u64().expect("uid"),
    );

    let (status, list) = scoped.get("/tasks").pair();
    assert_eq!(status, 200, "{list}");
    let indexes: Vec<&str> = list["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|t| t["indexUid"].as_str())
        .collect();
    assert_eq!(indexes, ["books"], "{list}");
    let (status, body) = scoped.get(&format!("/tasks/{movies_uid}")).pair();
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("task_not_found")),
        "{body}"
    );
    assert_eq!(scoped.get(&format!("/tasks/{books_uid}")).status, 200);

    let (status, deletion) = scoped.delete(&format!("/tasks?uids={movies_uid}")).pair();
    assert_eq!(status, 200, "{deletion}");
    let done = wait_task(&scoped, &deletion);
    assert_eq!(done["details"]["matchedTasks"], 0, "{done}");
    assert_eq!(done["details"]["deletedTasks"], 0, "{done}");
    assert_eq!(
        master.get(&format!("/tasks/{movies_uid}")).status,
        200,
        "the movies task is still there"
    );
}
