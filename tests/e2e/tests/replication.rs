//! Issue 11 end to end: replication that survives failures. Each scenario runs a real control
//! plane, an Envoy on the ADS bootstrap and the nodes (real Meilisearch with `MEILISEARCH_BIN`),
//! kills nodes (SIGKILL) while clients write and search, and asserts what a user sees: every
//! write acknowledged while `minCopies` in-sync copies of its shards are up (and a 503
//! `miroir_write_unavailable` otherwise), every search complete and without duplicates; once the
//! node is back, the leader repairs its copies and every acknowledged document is on every copy
//! of its shard again, read from the nodes themselves.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use miroir_e2e::{Fleet, FleetOptions, Spec};
use serde_json::{json, Value};
use support::load::*;
use support::write;

/// The corpus written before the failure.
const PRELOAD: u64 = 1_000;
/// How long a repair may take once the node is back (generous: the runs share 2 cores).
const REPAIR_TIMEOUT: Duration = Duration::from_secs(300);

fn three_nodes(rf: u32) -> Spec {
    Spec::new(&[("n0", "g"), ("n1", "g"), ("n2", "g")], SHARDS, rf)
}

/// `(group, shard, node)` of every copy out of the in-sync set.
fn out_of_sync(fleet: &Fleet) -> BTreeSet<(String, u32, String)> {
    let map = shard_map(fleet);
    map.copies
        .iter()
        .flat_map(|((group, shard), copies)| {
            copies
                .iter()
                .filter(|(_, state)| state == "outOfSync")
                .map(|(node, _)| (group.clone(), *shard, node.clone()))
        })
        .collect()
}

/// Nodes with a copy out of sync.
fn out_of_sync_nodes(fleet: &Fleet) -> BTreeSet<String> {
    out_of_sync(fleet).into_iter().map(|(_, _, n)| n).collect()
}

/// Waits until every node is healthy again and every copy back in the in-sync set.
fn wait_in_sync(fleet: &Fleet) {
    let started = Instant::now();
    fleet.eventually_within("every copy back in sync", REPAIR_TIMEOUT, || {
        let failed: Vec<String> = topology(fleet)["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["state"] != "active")
            .map(|n| n["id"].to_string())
            .collect();
        if !failed.is_empty() {
            return Err(format!("nodes not active yet: {failed:?}"));
        }
        let left = try_shard_map(fleet).map(|_| out_of_sync(fleet))?;
        left.is_empty()
            .then_some(())
            .ok_or_else(|| format!("{} copies out of sync, e.g. {:?}", left.len(), left.first()))
    });
    println!(
        "{} every copy in sync {:.1} s after the node came back",
        label(fleet),
        started.elapsed().as_secs_f64()
    );
}

/// Waits until the acknowledged writes made some copy leave the in-sync set, and only copies of
/// `nodes`.
fn wait_out_of_sync(fleet: &Fleet, nodes: &[&str]) {
    let wanted: BTreeSet<String> = nodes.iter().map(|n| n.to_string()).collect();
    fleet.eventually_within("copies out of sync", Duration::from_secs(60), || {
        let now = out_of_sync_nodes(fleet);
        (now == wanted)
            .then_some(())
            .ok_or_else(|| format!("out of sync on {now:?}, expected {wanted:?}"))
    });
    // The Envoy reads by those marks from now on.
    let epoch = shard_map(fleet).epoch;
    let client = fleet.client(0);
    fleet.eventually_within(
        "the Envoy at the marks' epoch",
        Duration::from_secs(60),
        || {
            let reply = client.try_send("GET", "/health", None)?;
            let at = reply
                .header("x-miroir-topology-epoch")
                .and_then(|e| e.parse::<u64>().ok())
                .unwrap_or(0);
            (at >= epoch)
                .then_some(())
                .ok_or_else(|| format!("Envoy at epoch {at}, the marks at {epoch}"))
        },
    );
}

/// Waits until the health checks marked `node` failed (an outage the control plane saw, rather
/// than a restart quicker than its checks).
fn wait_failed(fleet: &Fleet, node: &str) {
    wait_state(fleet, node, "failed");
}

/// Waits until the topology gives `node` the health state `wanted`.
fn wait_state(fleet: &Fleet, node: &str, wanted: &str) {
    fleet.eventually_within(
        &format!("{node} marked {wanted}"),
        Duration::from_secs(60),
        || {
            let topology = topology(fleet);
            let state = topology["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| n["id"] == node)
                .map(|n| n["state"].clone());
            (state == Some(json!(wanted)))
                .then_some(())
                .ok_or_else(|| format!("{node} is {state:?}"))
        },
    );
}

/// Single-document writes of new ids from `first`, one after the other (the SDKs' `addDocuments`
/// of one document).
fn single_documents(first: u64, count: u64) -> Vec<Vec<Value>> {
    (first..first + count)
        .map(|id| vec![document(id, 0)])
        .collect()
}

/// How many single-document writes a stream sends before it waits for their tasks.
const STREAM_WINDOW: usize = 100;

/// A stream of `count` single-document writes of new ids from `first`, each answered 202 before
/// the next is sent; their tasks are awaited a window at a time (every acknowledged document
/// then goes to the ledger), so the stream is not paced by the nodes' indexing.
fn stream_singles(
    client: miroir_e2e::Client,
    ledger: std::sync::Arc<Ledger>,
    first: u64,
    count: u64,
) -> std::thread::JoinHandle<WriterReport> {
    std::thread::spawn(move || {
        let mut report = WriterReport::default();
        let mut pending: Vec<(Value, Value)> = Vec::new();
        let settle = |pending: &mut Vec<(Value, Value)>, report: &mut WriterReport| {
            for (doc, enqueued) in pending.drain(..) {
                match await_task(&client, &enqueued, None) {
                    Ok(_) => {
                        ledger.ack(&[doc]);
                        report.acked_at.push(Instant::now());
                    }
                    Err(e) => report.failures.push(e),
                }
            }
        };
        for id in first..first + count {
            report.batches += 1;
            let doc = document(id, 0);
            let body = serde_json::to_vec(&json!([doc])).unwrap_or_default();
            match client.try_send(
                "POST",
                "/indexes/movies/documents",
                Some(("application/json", &body)),
            ) {
                Ok(reply) if reply.status == 202 => pending.push((doc, reply.json())),
                Ok(reply) => report.failures.push(format!(
                    "POST document {id}: {} {}",
                    reply.status,
                    reply.text()
                )),
                Err(e) => report.failures.push(format!("POST document {id}: {e}")),
            }
            if pending.len() >= STREAM_WINDOW {
                settle(&mut pending, &mut report);
            }
        }
        settle(&mut pending, &mut report);
        report
    })
}

/// Until `ledger` holds `count` documents (the writers are past their first acknowledgements).
fn wait_acked(fleet: &Fleet, ledger: &Ledger, count: usize) {
    fleet.eventually_within("writes acknowledged", Duration::from_secs(120), || {
        let n = ledger.ids().len();
        (n >= count)
            .then_some(())
            .ok_or_else(|| format!("{n} of {count} acknowledged"))
    });
}

/// One document written now: its status, body and `X-Miroir-Degraded`.
fn write_one(fleet: &Fleet, id: u64) -> (u16, Value, Option<String>) {
    let reply = fleet
        .client(0)
        .post("/indexes/movies/documents", &json!([document(id, 0)]));
    let degraded = reply.header("x-miroir-degraded").map(str::to_string);
    let (status, body) = reply.pair();
    (status, body, degraded)
}

/// The load of a kill scenario: the batch writer and searcher of [`Load`], plus a writer of
/// single documents.
struct KillLoad {
    load: Load,
    singles: std::thread::JoinHandle<WriterReport>,
}

impl KillLoad {
    /// `batches` of the batch writer, `singles` single-document writes streamed beside them.
    fn start(
        fleet: &Fleet,
        ledger: &std::sync::Arc<Ledger>,
        batches: u64,
        singles: u64,
    ) -> KillLoad {
        let load = Load::start(
            fleet,
            ledger,
            load_batches(PRELOAD, PRELOAD)
                .into_iter()
                .take(batches as usize)
                .collect(),
        );
        let singles = stream_singles(fleet.client(0), ledger.clone(), 1_000_000, singles);
        KillLoad { load, singles }
    }

    fn finish(self, fleet: &Fleet) {
        let singles = self
            .singles
            .join()
            .expect("the single-document writer panicked");
        assert!(
            singles.failures.is_empty(),
            "{} of {} single-document writes failed: {:?}",
            singles.failures.len(),
            singles.batches,
            singles.failures
        );
        self.load.finish(fleet, (Instant::now(), Instant::now()));
    }
}

/// Every acknowledged document once per search while the repair runs.
fn searches_during(
    fleet: &mut Fleet,
    ledger: &std::sync::Arc<Ledger>,
    during: impl FnOnce(&mut Fleet),
) {
    let searcher = Searcher::start(fleet.client(0), ledger.clone());
    during(fleet);
    searcher.wait_for_more(fleet, 3);
    assert_searches_ok(&searcher.finish());
}

#[test]
fn a_node_killed_under_load_loses_nothing_and_is_repaired() {
    let mut fleet = Fleet::start("repl-kill", three_nodes(2), FleetOptions::default());
    let ledger = prepare(&fleet, PRELOAD);
    let load = KillLoad::start(&fleet, &ledger, 20, 2_000);
    wait_acked(&fleet, &ledger, PRELOAD as usize + 300);
    fleet.kill_node("n2");
    println!("{} n2 killed", label(&fleet));
    load.finish(&fleet);
    wait_out_of_sync(&fleet, &["n2"]);
    // What every node holds alike is read from the others.
    for path in [
        "/indexes",
        "/indexes/movies",
        "/indexes/movies/settings",
        "/keys",
    ] {
        let (status, body) = fleet.client(0).get(path).pair();
        assert_eq!(status, 200, "GET {path} with n2 down: {body}");
    }
    // Statistics are estimated from the other nodes' shares, and say so.
    let stats = fleet.client(0).get("/indexes/movies/stats");
    assert_eq!(stats.status, 200, "{}", stats.text());
    assert!(
        stats
            .header("x-miroir-degraded")
            .is_some_and(|d| d.starts_with("statistics estimated without n2")),
        "{:?}",
        stats.headers
    );
    let counted = stats.json()["numberOfDocuments"].as_f64().unwrap_or(0.0);
    let written = ledger.ids().len() as f64;
    assert!(
        (counted - written).abs() <= written * 0.15,
        "{counted} documents estimated, {written} written"
    );
    assert_eq!(fleet.client(0).get("/stats").status, 200);
    let (status, body, degraded) = write_one(&fleet, 2_000_000);
    assert_eq!(status, 202, "{body}");
    let degraded = degraded.expect("a write below full replication says so");
    assert!(degraded.starts_with("1/2 copies: shards "), "{degraded}");
    await_task(&fleet.client(0), &body, None).expect("the write succeeds");
    ledger.ack(&[document(2_000_000, 0)]);
    // The task counts what the client sent, n2's share made up from the others'.
    let batch: Vec<Value> = (2_000_100..2_000_160).map(|id| document(id, 0)).collect();
    let (status, body) = fleet
        .client(0)
        .post("/indexes/movies/documents", &Value::Array(batch.clone()))
        .pair();
    assert_eq!(status, 202, "{body}");
    let task = await_task(&fleet.client(0), &body, None).expect("the batch succeeds");
    assert_eq!(task["details"]["indexedDocuments"], 60, "{task}");
    assert_eq!(task["details"]["receivedDocuments"], 60, "{task}");
    ledger.ack(&batch);

    searches_during(&mut fleet, &ledger, |fleet| {
        fleet.restart_node("n2");
        wait_in_sync(fleet);
    });
    check_holdings(&fleet, &ledger.snapshot());
    let (status, _, degraded) = write_one(&fleet, 2_000_001);
    assert_eq!((status, degraded), (202, None), "back to full replication");
}

#[test]
fn two_groups_of_one_copy_keep_writing_with_a_node_down() {
    let spec = Spec::new(
        &[("n0", "g0"), ("n1", "g0"), ("n2", "g1"), ("n3", "g1")],
        SHARDS,
        1,
    );
    let mut fleet = Fleet::start("repl-groups", spec, FleetOptions::default());
    let ledger = prepare(&fleet, PRELOAD);
    let load = KillLoad::start(&fleet, &ledger, 10, 300);
    wait_acked(&fleet, &ledger, PRELOAD as usize + 100);
    fleet.kill_node("n1");
    load.finish(&fleet);
    wait_out_of_sync(&fleet, &["n1"]);
    searches_during(&mut fleet, &ledger, |fleet| {
        fleet.restart_node("n1");
        wait_in_sync(fleet);
    });
    check_holdings(&fleet, &ledger.snapshot());
}

/// Calls the filter of Envoy 0 made to `node` so far (every status).
fn filter_calls_to(fleet: &Fleet, node: &str) -> f64 {
    fleet.envoy_metric(0, "miroir_filter_node_calls_total", &[("node", node)])
}

#[test]
fn a_hung_node_is_not_on_the_path_of_writes_to_shards_it_does_not_hold() {
    let mut fleet = Fleet::start("repl-hung", three_nodes(2), FleetOptions::default());
    let client = fleet.client(0);
    write(
        &client,
        "POST",
        "/indexes",
        &json!({"uid": "movies", "primaryKey": "id"}),
    );
    // The control plane's index registry reaches the Envoy with the filter's configuration.
    let admin = miroir_e2e::Client::new(fleet.envoy(0).admin_url(), None);
    fleet.eventually("the index registry at the Envoy", || {
        let dump = admin.try_send("GET", "/config_dump?resource=ecds_filters", None)?;
        let text = dump.text();
        (text.contains("indexes") && text.contains("primaryKey"))
            .then_some(())
            .ok_or_else(|| "no registry in the filter's configuration yet".to_string())
    });
    let map = shard_map(&fleet);
    let on_n2 = map.shards_of("g", "n2");
    let docs: Vec<Value> = (0..10_000u64)
        .filter(|id| !on_n2.contains(&shard_of(*id)))
        .take(50)
        .map(|id| document(id, 0))
        .collect();
    let lookups = fleet.envoy_metric(0, "miroir_filter_index_lookups_total", &[]);
    let calls_to_n2 = filter_calls_to(&fleet, "n2");

    // Stuck rather than dead: connections to it are accepted and never answered.
    fleet.pause_node("n2");
    let reply = client.post("/indexes/movies/documents", &Value::Array(docs.clone()));
    let (status, enqueued) = reply.pair();
    assert_eq!(status, 202, "{enqueued}");
    assert_eq!(
        reply.header("x-miroir-degraded"),
        None,
        "every copy took it"
    );
    await_task(&client, &enqueued, None).expect("the write's task succeeds without n2");
    for doc in docs.iter().take(5) {
        let (status, stored) = client
            .get(&format!("/indexes/movies/documents/{}", doc["id"]))
            .pair();
        assert_eq!((status, &stored["title"]), (200, &doc["title"]), "{stored}");
    }
    assert_eq!(
        filter_calls_to(&fleet, "n2"),
        calls_to_n2,
        "the write asked n2 nothing"
    );
    assert_eq!(
        fleet.envoy_metric(0, "miroir_filter_index_lookups_total", &[]),
        lookups,
        "routed by the registry's primary key"
    );
    fleet.resume_node("n2");
}

#[test]
fn writes_stop_only_below_min_copies_and_nothing_acknowledged_is_lost() {
    let options = FleetOptions {
        min_copies: Some(2),
        ..FleetOptions::default()
    };
    let mut fleet = Fleet::start("repl-min-copies", three_nodes(3), options);
    let ledger = prepare(&fleet, PRELOAD);
    let load = KillLoad::start(&fleet, &ledger, 10, 300);
    wait_acked(&fleet, &ledger, PRELOAD as usize + 100);
    fleet.kill_node("n2");
    load.finish(&fleet);
    wait_out_of_sync(&fleet, &["n2"]);
    let (status, body, degraded) = write_one(&fleet, 3_000_000);
    assert_eq!(status, 202, "{body}");
    assert!(
        degraded
            .as_deref()
            .is_some_and(|d| d.starts_with("2/3 copies")),
        "{degraded:?}"
    );
    await_task(&fleet.client(0), &body, None).expect("the write succeeds");
    ledger.ack(&[document(3_000_000, 0)]);

    // One in-sync copy left of every shard: fewer than minCopies.
    fleet.kill_node("n1");
    let (status, body, _) = write_one(&fleet, 3_000_001);
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_write_unavailable")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("minCopies (2)")),
        "{body}"
    );
    // Everything acknowledged is still found, on the one node left.
    let hits = search_every_id(&fleet.client(0)).expect("searches go on with one copy");
    check_hits(&hits, &ledger.ids()).expect("no acknowledged document lost");
    // Back after an outage the control plane saw: its copies are repaired too (n1 missed no
    // acknowledged write, but nothing tells a node that kept its disk from one that lost it).
    wait_failed(&fleet, "n1");

    fleet.restart_node("n1");
    fleet.restart_node("n2");
    wait_in_sync(&fleet);
    check_holdings(&fleet, &ledger.snapshot());
}

#[test]
fn a_node_down_during_schema_changes_converges_once_back() {
    let mut fleet = Fleet::start("repl-schema", three_nodes(2), FleetOptions::default());
    let client = fleet.client(0);
    let key = |uid: &str, name: &str| json!({"uid": uid, "name": name, "actions": ["search"], "indexes": ["movies"], "expiresAt": null});
    const DOOMED: &str = "11111111-1111-4111-8111-111111111111";
    const RENAMED: &str = "22222222-2222-4222-8222-222222222222";
    const FRESH: &str = "33333333-3333-4333-8333-333333333333";
    for (uid, name) in [(DOOMED, "doomed"), (RENAMED, "before")] {
        let (status, body) = client.post("/keys", &key(uid, name)).pair();
        assert_eq!(status, 201, "{body}");
    }
    let ledger = prepare(&fleet, PRELOAD);
    write(
        &client,
        "POST",
        "/indexes",
        &json!({"uid": "old", "primaryKey": "id"}),
    );
    fleet.kill_node("n2");
    // The changes n2 misses: settings, an index deletion, a deletion by filter.
    let settings_task = write(
        &client,
        "PATCH",
        "/indexes/movies/settings",
        &json!({"stopWords": ["the"], "filterableAttributes": ["genre", "year"]}),
    );
    let task_path = format!("/tasks/{}", settings_task["uid"]);
    let behind = client.get(&task_path);
    assert_eq!(
        behind.header("x-miroir-out-of-sync-nodes"),
        Some("n2"),
        "the task shows the node it has not reached"
    );
    write(&client, "DELETE", "/indexes/old", &Value::Null);
    write(
        &client,
        "POST",
        "/indexes/movies/documents/delete",
        &json!({"filter": "genre = drama"}),
    );
    let dramas: Vec<u64> = (0..PRELOAD).filter(|id| id % 3 == 0).collect();
    ledger.forget(&dramas);
    // Key changes n2 misses: a creation, an update, a deletion.
    let reply = client.post("/keys", &key(FRESH, "fresh"));
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert!(
        reply.header("x-miroir-degraded").is_some(),
        "n2 missed the key"
    );
    let reply = client.patch(&format!("/keys/{RENAMED}"), &json!({"name": "after"}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = client.delete(&format!("/keys/{DOOMED}"));
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_eq!(client.get(&format!("/keys/{DOOMED}")).status, 404);
    wait_out_of_sync(&fleet, &["n2"]);
    let behind = |fleet: &Fleet| {
        let registry = admin(fleet).get("/_miroir/indexes").json();
        let movies = registry["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["uid"] == "movies")
            .cloned()
            .unwrap_or_else(|| panic!("movies in the registry: {registry}"));
        movies["nodesBehind"].clone()
    };
    assert_eq!(behind(&fleet), json!(["n2"]), "the registry shows it too");
    let hits = search_every_id(&client).expect("searches go on");
    check_hits(&hits, &ledger.ids()).expect("the deletion is seen");

    searches_during(&mut fleet, &ledger, |fleet| {
        fleet.restart_node("n2");
        wait_in_sync(fleet);
    });
    assert_eq!(
        client.get(&task_path).header("x-miroir-out-of-sync-nodes"),
        None,
        "repaired, n2 has it"
    );
    assert_eq!(behind(&fleet), json!([]));
    let n2 = fleet.node_client("n2");
    let settings = n2.get("/indexes/movies/settings").json();
    assert_eq!(settings["stopWords"], json!(["the"]), "{settings}");
    assert_eq!(
        n2.get("/indexes/old").status,
        404,
        "the deleted index is gone from n2"
    );
    assert_eq!(
        n2.get(&format!("/keys/{DOOMED}")).status,
        404,
        "the deleted key is gone from n2"
    );
    assert_eq!(n2.get(&format!("/keys/{RENAMED}")).json()["name"], "after");
    assert_eq!(
        n2.get(&format!("/keys/{FRESH}")).status,
        200,
        "the new key reached n2"
    );
    check_holdings(&fleet, &ledger.snapshot());
}

#[test]
fn writes_go_on_while_the_control_plane_is_down_and_the_repair_resumes() {
    // A repair slow enough to be caught in its copy (a unit at a time, 300 documents/s).
    let options = FleetOptions {
        copy_concurrency: 1,
        copy_documents_per_second: 300,
        ..FleetOptions::default()
    };
    let mut fleet = Fleet::start("repl-cp-down", three_nodes(2), options);
    let ledger = prepare(&fleet, PRELOAD);
    fleet.kill_node("n2");
    // Writes that leave n2's copies out of sync (the control plane records it), and give its
    // repair something to copy.
    let client = fleet.client(0);
    let missed: Vec<Value> = (PRELOAD..PRELOAD + 3_000)
        .map(|id| document(id, 0))
        .collect();
    write_acked(&client, &ledger, &missed);
    wait_out_of_sync(&fleet, &["n2"]);

    // n2's copies are out of sync already: the writes need no new mark, so they go on.
    fleet.control_plane_mut(0).kill();
    let writer = start_writer(
        fleet.client(0),
        ledger.clone(),
        single_documents(4_000_001, 20),
        true,
    );
    let report = writer.join().expect("the writer panicked");
    assert!(
        report.failures.is_empty(),
        "{} of {} writes failed with the control plane down: {:?}",
        report.failures.len(),
        report.batches,
        report.failures
    );
    let hits = search_every_id(&fleet.client(0)).expect("searches go on");
    check_hits(&hits, &ledger.ids()).expect("every acknowledged document is found");

    fleet.control_plane_mut(0).restart();
    searches_during(&mut fleet, &ledger, |fleet| {
        fleet.restart_node("n2");
        // The control plane goes down again in the middle of the repair's copy.
        let job = fleet.eventually_within("the repair copying", REPAIR_TIMEOUT, || {
            let jobs = admin(fleet).get("/_miroir/jobs").json();
            jobs["results"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|j| j["kind"] == "repair" && j["state"] == "running" && j["phase"] == "copy")
                .cloned()
                .ok_or_else(|| format!("{jobs}"))
        });
        fleet.control_plane_mut(0).kill();
        fleet.control_plane_mut(0).restart();
        wait_in_sync(fleet);
        let id = job["id"].as_str().unwrap_or_default();
        fleet.eventually_within("the repair to end", REPAIR_TIMEOUT, || {
            let after = admin(fleet).get(&format!("/_miroir/jobs/{id}")).json();
            (after["state"] == "succeeded")
                .then_some(())
                .ok_or_else(|| format!("the repair resumed but did not end: {after}"))
        });
    });
    check_holdings(&fleet, &ledger.snapshot());
}

#[test]
fn a_node_restored_from_an_old_database_is_repaired() {
    let mut fleet = Fleet::start("repl-old-disk", three_nodes(2), FleetOptions::default());
    let ledger = prepare(&fleet, PRELOAD);
    // A backup of n2, taken during an outage the control plane saw.
    fleet.kill_node("n2");
    wait_failed(&fleet, "n2");
    fleet.save_node_database("n2", "backup");
    fleet.restart_node("n2");
    wait_in_sync(&fleet);

    // Changes after the backup: new documents, new versions, deletions.
    let client = fleet.client(0);
    let fresh: Vec<Value> = (PRELOAD..PRELOAD + 300).map(|id| document(id, 0)).collect();
    write(
        &client,
        "POST",
        "/indexes/movies/documents",
        &Value::Array(fresh.clone()),
    );
    ledger.ack(&fresh);
    let updated: Vec<Value> = (0..100).map(|id| document(id, 1)).collect();
    write(
        &client,
        "POST",
        "/indexes/movies/documents",
        &Value::Array(updated.clone()),
    );
    ledger.ack(&updated);
    let deleted: Vec<u64> = (500..600).collect();
    write(
        &client,
        "POST",
        "/indexes/movies/documents/delete-batch",
        &json!(deleted),
    );
    ledger.forget(&deleted);

    // n2 comes back from its backup: documents missing, old versions, deleted ones still there.
    fleet.kill_node("n2");
    wait_failed(&fleet, "n2");
    fleet.restore_node_database("n2", "backup");
    searches_during(&mut fleet, &ledger, |fleet| {
        fleet.restart_node("n2");
        wait_in_sync(fleet);
    });
    check_holdings(&fleet, &ledger.snapshot());
}

/// A counter of the control plane's `/metrics` (0 when absent).
fn control_plane_counter(fleet: &Fleet, name: &str) -> f64 {
    admin(fleet)
        .send("GET", "/metrics", None)
        .text()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until the control plane's counter `name` counted something: it counts once the node
/// took what it was sent, which a test may see on the node first.
fn wait_counted(fleet: &Fleet, name: &str) {
    fleet.eventually_within(&format!("{name} counted"), Duration::from_secs(30), || {
        let counted = control_plane_counter(fleet, name);
        (counted >= 1.0)
            .then_some(())
            .ok_or_else(|| format!("{name} {counted}"))
    });
}

#[test]
fn a_node_restarted_from_an_old_database_quicker_than_the_checks_is_repaired() {
    // Health checks that never count a node failed: only the node's task history tells.
    let mut fleet = Fleet::start("repl-quick-restore", three_nodes(2), never_failing());
    let ledger = prepare(&fleet, PRELOAD);
    fleet.kill_node("n2");
    fleet.save_node_database("n2", "backup");
    fleet.restart_node("n2");
    // The same database back: nothing is taken out of the set.
    std::thread::sleep(Duration::from_secs(3));
    assert!(out_of_sync(&fleet).is_empty(), "{:?}", out_of_sync(&fleet));

    let client = fleet.client(0);
    let fresh: Vec<Value> = (PRELOAD..PRELOAD + 200).map(|id| document(id, 0)).collect();
    write_acked(&client, &ledger, &fresh);
    let updated: Vec<Value> = (0..100).map(|id| document(id, 1)).collect();
    write_acked(&client, &ledger, &updated);
    let deleted: Vec<u64> = (500..600).collect();
    write(
        &client,
        "POST",
        "/indexes/movies/documents/delete-batch",
        &json!(deleted),
    );
    ledger.forget(&deleted);

    // A check sees n2's newest task after those writes (the rule compares with what the last
    // check saw; writes lost with a disk before any check saw them are anti-entropy's).
    std::thread::sleep(Duration::from_secs(2));
    // n2 back from its backup before any check counted it down.
    let before = shard_map(&fleet).epoch;
    fleet.kill_node("n2");
    fleet.restore_node_database("n2", "backup");
    fleet.restart_node("n2");
    fleet.eventually_within(
        "n2's other database noticed and its copies taken out of the set",
        Duration::from_secs(60),
        || {
            let seen = control_plane_counter(&fleet, "miroir_disks_replaced_total");
            let epoch = shard_map(&fleet).epoch;
            (seen >= 1.0 && epoch > before)
                .then_some(())
                .ok_or_else(|| format!("miroir_disks_replaced_total {seen}, epoch {epoch}"))
        },
    );
    wait_in_sync(&fleet);
    check_holdings(&fleet, &ledger.snapshot());
}

#[test]
fn anti_entropy_makes_differing_in_sync_copies_equal() {
    let options = FleetOptions {
        anti_entropy_interval_ms: 1_000,
        ..FleetOptions::default()
    };
    let fleet = Fleet::start("repl-anti-entropy", three_nodes(3), options);
    let ledger = prepare(&fleet, 300);
    let node = |id: &str| fleet.node_client(id);
    let stored = |id: &str, doc: u64| {
        let (status, body) = node(id)
            .send("GET", &format!("/indexes/movies/documents/{doc}"), None)
            .pair();
        (status == 200).then_some(body)
    };
    // Differences no write path saw, one per rule, each on one of the three copies:
    // an older version of document 10 on n0 (a write applied before a later one on that copy)...
    let mut older = stored("n0", 10).expect("n0 holds 10");
    older["title"] = json!("an older write");
    let version = miroir_topology::reserved::version_of(&older).expect("a version");
    older["_miroir_version"] = json!(miroir_topology::reserved::encode_seq(version - 1));
    write(
        &node("n0"),
        "POST",
        "/indexes/movies/documents",
        &json!([older]),
    );
    // ...document 20 gone from n1...
    write(
        &node("n1"),
        "DELETE",
        "/indexes/movies/documents/20",
        &Value::Null,
    );
    // ...and document 30, deleted through Miroir, still on n2.
    let kept = stored("n2", 30).expect("n2 holds 30");
    write(
        &fleet.client(0),
        "DELETE",
        "/indexes/movies/documents/30",
        &Value::Null,
    );
    ledger.forget(&[30]);
    write(
        &node("n2"),
        "POST",
        "/indexes/movies/documents",
        &json!([kept]),
    );
    // And n1's settings unlike the others' (a settings change it accepted and failed to apply).
    let settings = |id: &str| node(id).get("/indexes/movies/settings").json();
    let majority = settings("n0");
    write(
        &node("n1"),
        "PATCH",
        "/indexes/movies/settings",
        &json!({"searchableAttributes": ["title"], "stopWords": ["the"]}),
    );
    assert_ne!(settings("n1"), majority);

    fleet.eventually_within("the copies made equal", Duration::from_secs(120), || {
        let ten = stored("n0", 10).map(|d| d["title"].clone());
        let twenty = stored("n1", 20).is_some();
        let thirty = stored("n2", 30).is_some();
        (ten == Some(document(10, 0)["title"].clone()) && twenty && !thirty)
            .then_some(())
            .ok_or_else(|| format!("10 on n0: {ten:?}, 20 on n1: {twenty}, 30 on n2: {thirty}"))
    });
    fleet.eventually_within(
        "n1's settings made the others'",
        Duration::from_secs(120),
        || {
            let now = settings("n1");
            (now == majority)
                .then_some(())
                .ok_or_else(|| format!("n1: {now}, the others: {majority}"))
        },
    );
    wait_counted(&fleet, "miroir_anti_entropy_settings_repaired_total");
    check_holdings(&fleet, &ledger.snapshot());
    let repaired = control_plane_counter(&fleet, "miroir_anti_entropy_documents_repaired_total");
    assert!(
        repaired >= 3.0,
        "miroir_anti_entropy_documents_repaired_total {repaired}"
    );
    assert!(
        out_of_sync(&fleet).is_empty(),
        "repaired in place, nothing taken out"
    );
}

#[test]
fn a_node_left_with_other_settings_is_brought_to_the_others_after_the_next_change() {
    // Passes an hour apart: what converges n1 is the check after the client's change.
    let options = FleetOptions {
        anti_entropy_interval_ms: 3_600_000,
        ..FleetOptions::default()
    };
    let fleet = Fleet::start("repl-settings", three_nodes(2), options);
    prepare(&fleet, 20);
    let settings = |id: &str| fleet.node_client(id).get("/indexes/movies/settings").json();
    // n1 kept a change the others do not have (one it took while theirs failed, or made on it
    // directly).
    write(
        &fleet.node_client("n1"),
        "PATCH",
        "/indexes/movies/settings",
        &json!({"stopWords": ["the"]}),
    );
    let client = fleet.client(0);
    let task = write(
        &client,
        "PATCH",
        "/indexes/movies/settings",
        &json!({"sortableAttributes": ["year"]}),
    );
    let uid = task["uid"].as_u64().expect("uid");
    let reply = client.get(&format!("/tasks/{uid}"));
    assert_eq!(
        reply.header("x-miroir-disagreeing-nodes"),
        Some("n1"),
        "the check after the change saw n1"
    );
    fleet.eventually_within(
        "n1 brought to the others' settings",
        Duration::from_secs(120),
        || {
            let (n0, n1) = (settings("n0"), settings("n1"));
            (n0 == n1 && n0["sortableAttributes"] == json!(["year"]))
                .then_some(())
                .ok_or_else(|| format!("n0: {n0}, n1: {n1}"))
        },
    );
    assert_eq!(settings("n2"), settings("n0"));
    let (status, through_miroir) = client.get("/indexes/movies/settings").pair();
    assert_eq!(status, 200);
    assert_eq!(through_miroir["stopWords"], json!([]), "{through_miroir}");
    wait_counted(&fleet, "miroir_anti_entropy_settings_repaired_total");
}

/// Health checks that never count a node failed: only what else the scenario allows can tell
/// a node missed something.
fn never_failing() -> FleetOptions {
    FleetOptions {
        health: miroir_e2e::Health {
            unhealthy_threshold: 1_000_000,
            ..Default::default()
        },
        ..FleetOptions::default()
    }
}

/// Sends `method path body` through Envoy 0 with n2 hung, so the Envoy is still waiting for n2
/// when it is SIGKILLed, once `took` holds on n0 and n1; then n2 comes back on its own database
/// at once, without the request it had not read (it died with it).
fn envoy_dies_while_n2_hangs(
    fleet: &mut Fleet,
    method: &'static str,
    path: &'static str,
    body: &'static [u8],
    took: impl Fn(&Fleet, &str) -> bool,
) {
    fleet.pause_node("n2");
    let client = fleet.client(0);
    let change = std::thread::spawn(move || {
        let _ = client.try_send(method, path, Some(("application/json", body)));
    });
    fleet.eventually_within("n0 and n1 took the change", Duration::from_secs(60), || {
        (took(fleet, "n0") && took(fleet, "n1"))
            .then_some(())
            .ok_or_else(|| "not on n0 and n1 yet".to_string())
    });
    fleet.kill_envoy(0);
    let _ = change.join();
    fleet.kill_node("n2");
    fleet.restart_node("n2");
}

#[test]
fn a_schema_change_an_envoy_died_in_the_middle_of_reaches_every_node() {
    // Health checks that never count a node failed and no anti-entropy: only the change's
    // record can bring n2 what the dead Envoy did not.
    let mut fleet = Fleet::start("repl-intent", three_nodes(2), never_failing());
    prepare(&fleet, 20);
    let stop_words = |fleet: &Fleet, id: &str| {
        fleet
            .node_client(id)
            .get("/indexes/movies/settings/stop-words")
            .json()
    };
    envoy_dies_while_n2_hangs(
        &mut fleet,
        "PUT",
        "/indexes/movies/settings/stop-words",
        br#"["the"]"#,
        |fleet, id| stop_words(fleet, id) == json!(["the"]),
    );
    assert_eq!(
        stop_words(&fleet, "n2"),
        json!([]),
        "n2 never got the change"
    );
    fleet.eventually_within("n2 given the change", Duration::from_secs(120), || {
        let n2 = stop_words(&fleet, "n2");
        (n2 == json!(["the"]))
            .then_some(())
            .ok_or_else(|| format!("n2: {n2}"))
    });
    wait_counted(&fleet, "miroir_intents_replayed_total{result=\"applied\"}");
}

#[test]
fn a_deletion_by_filter_an_envoy_died_in_the_middle_of_is_completed_by_the_repair() {
    let mut fleet = Fleet::start("repl-intent-delete", three_nodes(2), never_failing());
    let ledger = prepare(&fleet, 300);
    let dramas = |fleet: &Fleet, id: &str| {
        let (status, body) = fleet
            .node_client(id)
            .post(
                "/indexes/movies/documents/fetch",
                &json!({"filter": "genre = drama", "limit": 1}),
            )
            .pair();
        assert_eq!(status, 200, "{body}");
        body["total"].as_u64().unwrap_or(u64::MAX)
    };
    assert!(dramas(&fleet, "n2") > 0);
    envoy_dies_while_n2_hangs(
        &mut fleet,
        "POST",
        "/indexes/movies/documents/delete",
        br#"{"filter": "genre = drama"}"#,
        |fleet, id| dramas(fleet, id) == 0,
    );
    assert!(dramas(&fleet, "n2") > 0, "n2 never got the deletion");
    // The leader finds n0 and n1 took it and n2 did not: n2's copies leave the in-sync set and
    // the repair brings it the deletion.
    fleet.eventually_within("n2's copies taken out", Duration::from_secs(120), || {
        let behind = out_of_sync_nodes(&fleet);
        let repaired = dramas(&fleet, "n2") == 0;
        (behind.contains("n2") || repaired)
            .then_some(())
            .ok_or_else(|| format!("out of sync: {behind:?}"))
    });
    wait_in_sync(&fleet);
    assert_eq!(dramas(&fleet, "n2"), 0);
    let dramas_in_ledger: Vec<u64> = ledger
        .ids()
        .into_iter()
        .filter(|id| document(*id, 0)["genre"] == "drama")
        .collect();
    ledger.forget(&dramas_in_ledger);
    check_holdings(&fleet, &ledger.snapshot());
    wait_counted(&fleet, "miroir_intents_replayed_total{result=\"marked\"}");
}

#[test]
fn searches_without_a_shard_fail_unless_the_cluster_takes_partial_answers() {
    let mut fleet = Fleet::start("repl-partial", three_nodes(1), FleetOptions::default());
    let ledger = prepare(&fleet, 300);
    fleet.kill_node("n2");
    wait_failed(&fleet, "n2");
    let search = |fleet: &Fleet| {
        let reply = fleet.client(0).post(
            "/indexes/movies/search",
            &json!({"q": "", "limit": 1000, "attributesToRetrieve": ["id"]}),
        );
        let degraded = reply.header("x-miroir-degraded").map(str::to_string);
        let (status, body) = reply.pair();
        (status, body, degraded)
    };
    let (status, body, _) = search(&fleet);
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_shard_unavailable")),
        "{body}"
    );

    let reply = admin(&fleet).send_json(
        "PATCH",
        "/_miroir/replication",
        &json!({"unavailableShards": "partial"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let epoch = reply.json()["topology"]["epoch"].as_u64().unwrap_or(0);
    fleet.eventually_within(
        "the Envoy at the policy's epoch",
        Duration::from_secs(60),
        || {
            let (status, body, _) = search(&fleet);
            (status == 200)
                .then_some(())
                .ok_or_else(|| format!("epoch {epoch}: {status} {body}"))
        },
    );
    let (status, body, degraded) = search(&fleet);
    assert_eq!(status, 200, "{body}");
    let degraded = degraded.expect("a partial answer says so");
    assert!(degraded.starts_with("unavailable shards: "), "{degraded}");
    let on_n2 = shard_map(&fleet).shards_of("g", "n2");
    let hits: BTreeSet<u64> = body["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["id"].as_u64())
        .collect();
    let expected: BTreeSet<u64> = ledger
        .ids()
        .into_iter()
        .filter(|id| !on_n2.contains(&shard_of(*id)))
        .collect();
    assert_eq!(
        hits, expected,
        "every document of the shards that answered, no other"
    );
    fleet.restart_node("n2");
}
