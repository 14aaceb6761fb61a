//! The task routes against fake nodes: registration, leases, reads, lists, cancel and delete.

use serde_json::{json, Value};

use crate::testutil::{node_task, Cluster, FILTER_TOKEN};

/// A write that reached node task `uid` on every node of the cluster.
fn registration(uid: u64, nodes: usize, task_uid: Option<u32>) -> Value {
    let node_tasks: Vec<Value> = (0..nodes)
        .map(|i| json!({"node": format!("n{i}"), "group": "g0", "taskUid": uid}))
        .collect();
    let mut body = json!({"record": {"indexUid": "movies", "type": "documentAdditionOrUpdate",
                                     "details": {"receivedDocuments": 4}, "copies": 1,
                                     "nodeTasks": node_tasks}});
    if let Some(t) = task_uid {
        body["taskUid"] = json!(t);
    }
    body
}

async fn write(cluster: &Cluster, node_uid: u64, status: &str) -> u64 {
    for node in &cluster.nodes {
        node.put(node_task(node_uid, status, 2));
    }
    let (status, body) = cluster
        .filter(
            "/_miroir/internal/tasks",
            registration(node_uid, cluster.nodes.len(), None),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["taskUid"].as_u64().expect("taskUid")
}

#[tokio::test]
async fn registration_allocates_increasing_uids_and_checks_the_token() {
    let cluster = Cluster::start(2).await;
    let a = write(&cluster, 0, "enqueued").await;
    let b = write(&cluster, 1, "enqueued").await;
    assert!(b > a, "{a} then {b}");

    let (status, body) = cluster
        .call(
            "POST",
            "/_miroir/internal/tasks",
            &[],
            Some(registration(0, 1, None)),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("miroir_missing_token"))
    );
    let (status, body) = cluster
        .call(
            "POST",
            "/_miroir/internal/tasks",
            &[("x-miroir-token", "nope")],
            Some(registration(0, 1, None)),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("miroir_invalid_token"))
    );
    let (status, body) = cluster
        .filter("/_miroir/internal/tasks", json!({"nope": 1}))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    let _ = FILTER_TOKEN;
}

#[tokio::test]
async fn leased_uids_register_once() {
    let cluster = Cluster::start(1).await;
    let (status, lease) = cluster
        .filter(
            "/_miroir/internal/uid-leases",
            json!({"envoy": "envoy-a", "count": 5}),
        )
        .await;
    assert_eq!(status, 201, "{lease}");
    let first = lease["first"].as_u64().expect("first") as u32;
    assert_eq!(lease["last"].as_u64(), Some(u64::from(first) + 4));
    cluster.nodes[0].put(node_task(7, "succeeded", 3));

    let body = registration(7, 1, Some(first + 2));
    let (status, answer) = cluster
        .filter("/_miroir/internal/tasks", body.clone())
        .await;
    assert_eq!((status, answer), (201, json!({"taskUid": first + 2})));
    let (status, answer) = cluster.filter("/_miroir/internal/tasks", body).await;
    assert_eq!(
        (status, answer),
        (201, json!({"taskUid": first + 2})),
        "idempotent"
    );
    let (status, answer) = cluster
        .filter(
            "/_miroir/internal/tasks",
            registration(8, 1, Some(first + 2)),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("miroir_task_uid_conflict"))
    );
    let (status, answer) = cluster
        .filter(
            "/_miroir/internal/tasks",
            registration(7, 1, Some(first + 5)),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("miroir_invalid_task_uid"))
    );

    // A fresh uid comes after the lease.
    let next = write(&cluster, 9, "enqueued").await;
    assert!(next > u64::from(first + 4));
    let (status, lease) = cluster
        .filter(
            "/_miroir/internal/uid-leases",
            json!({"envoy": "envoy-a", "count": 0}),
        )
        .await;
    assert_eq!(status, 400, "{lease}");
}

#[tokio::test]
async fn a_task_is_aggregated_and_refreshed_when_read() {
    let cluster = Cluster::start(2).await;
    let uid = write(&cluster, 3, "enqueued").await;
    let (status, task) = cluster.client("GET", &format!("/tasks/{uid}")).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["status"], "enqueued");
    assert_eq!(task["uid"], json!(uid));
    assert_eq!(task["type"], "documentAdditionOrUpdate");

    cluster.nodes[0].set_status(3, "succeeded");
    let (_, task) = cluster.client("GET", &format!("/tasks/{uid}")).await;
    assert_eq!(task["status"], "processing", "one node done, one enqueued");
    cluster.nodes[1].set_status(3, "succeeded");
    let (_, task) = cluster.client("GET", &format!("/tasks/{uid}")).await;
    assert_eq!(task["status"], "succeeded");
    assert_eq!(
        task["details"]["receivedDocuments"], 4,
        "the request's own details win"
    );
    assert_eq!(
        task["details"]["indexedDocuments"], 4,
        "summed over the group"
    );
    assert_eq!(task["finishedAt"], "2026-11-21T10:00:11Z");

    // Finished: served from the registry even if the nodes forget it.
    cluster.nodes[0].tasks.lock().expect("lock").clear();
    let (_, again) = cluster.client("GET", &format!("/tasks/{uid}")).await;
    assert_eq!(again, task);

    let (status, body) = cluster.client("GET", "/tasks/999999").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"message": "Task `999999` not found.", "code": "task_not_found",
               "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#task_not_found"})
    );
    let (status, body) = cluster.client("GET", "/tasks/abc").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_task_uids"))
    );
}

#[tokio::test]
async fn client_keys_are_checked_by_a_node() {
    let cluster = Cluster::start(1).await;
    let (status, body) = cluster.call("GET", "/tasks", &[], None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("missing_authorization_header"))
    );
    let (status, body) = cluster
        .call(
            "GET",
            "/tasks/0",
            &[("authorization", "Bearer wrong")],
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["message"], "The provided API key is invalid.");
}

#[tokio::test]
async fn the_list_filters_and_pages_newest_first() {
    let cluster = Cluster::start(1).await;
    let mut uids = Vec::new();
    for i in 0..5 {
        uids.push(
            write(
                &cluster,
                i,
                if i % 2 == 0 { "succeeded" } else { "enqueued" },
            )
            .await,
        );
    }
    let (status, page) = cluster.client("GET", "/tasks?limit=2").await;
    assert_eq!(status, 200, "{page}");
    let got: Vec<u64> = page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|t| t["uid"].as_u64().expect("uid"))
        .collect();
    assert_eq!(got, vec![uids[4], uids[3]]);
    assert_eq!(page["total"], 5);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["from"], json!(uids[4]));
    assert_eq!(page["next"], json!(uids[2]));

    let (_, page) = cluster.client("GET", "/tasks?statuses=enqueued").await;
    assert_eq!(page["total"], 2);
    let (_, page) = cluster
        .client(
            "GET",
            &format!("/tasks?uids={},{}&reverse=true", uids[0], uids[1]),
        )
        .await;
    assert_eq!(page["results"][0]["uid"], json!(uids[0]));
    let (status, body) = cluster.client("GET", "/tasks?statuses=nope").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_task_statuses"))
    );
}

#[tokio::test]
async fn cancel_reaches_the_node_tasks() {
    let cluster = Cluster::start(2).await;
    let done = write(&cluster, 0, "succeeded").await;
    let pending = write(&cluster, 1, "enqueued").await;

    let (status, body) = cluster.client("POST", "/tasks/cancel").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("missing_task_filters"))
    );

    let (status, summary) = cluster
        .client("POST", "/tasks/cancel?statuses=enqueued,processing")
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["type"], "taskCancelation");
    assert_eq!(summary["status"], "enqueued");
    assert_eq!(summary["indexUid"], Value::Null);
    let cancel_uid = summary["taskUid"].as_u64().expect("taskUid");
    assert!(cancel_uid > pending);
    for node in &cluster.nodes {
        assert_eq!(
            *node.calls.lock().expect("lock"),
            vec!["cancel [1]".to_string()]
        );
    }

    let (_, task) = cluster.client("GET", &format!("/tasks/{pending}")).await;
    assert_eq!(task["status"], "canceled");
    let (_, task) = cluster.client("GET", &format!("/tasks/{cancel_uid}")).await;
    assert_eq!(task["type"], "taskCancelation");
    assert_eq!(task["status"], "succeeded");
    assert_eq!(task["details"]["matchedTasks"], 1);
    assert_eq!(
        task["details"]["originalFilter"],
        "?statuses=enqueued,processing"
    );

    // Deletion: only finished tasks, removed from the registry too.
    let (status, summary) = cluster
        .client("DELETE", &format!("/tasks?uids={done},{pending}"))
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["type"], "taskDeletion");
    let deletion = summary["taskUid"].as_u64().expect("taskUid");
    let (_, task) = cluster.client("GET", &format!("/tasks/{deletion}")).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["details"]["deletedTasks"], 2);
    let (status, _) = cluster.client("GET", &format!("/tasks/{done}")).await;
    assert_eq!(status, 404);
    let (status, _) = cluster.client("GET", &format!("/tasks/{pending}")).await;
    assert_eq!(status, 404, "canceled is finished: deleted too");
    assert!(cluster.nodes[0]
        .calls
        .lock()
        .expect("lock")
        .contains(&"delete [0, 1]".to_string()));
}

#[tokio::test]
async fn the_poller_finishes_tasks() {
    let cluster = Cluster::start(1).await;
    let uid = write(&cluster, 0, "enqueued").await;
    cluster.nodes[0].set_status(0, "failed");
    let finished = super::registry::poll_pending(&cluster.app)
        .await
        .expect("poll");
    assert_eq!(finished, 1);
    assert!(cluster
        .app
        .store
        .pending_tasks()
        .await
        .expect("pending")
        .is_empty());
    let task = cluster
        .app
        .store
        .get_task(uid as u32)
        .await
        .expect("get")
        .expect("task");
    assert_eq!(task.task["status"], "failed");
}

#[tokio::test]
async fn each_started_task_is_its_own_batch() {
    let cluster = Cluster::start(2).await;
    let enqueued = write(&cluster, 0, "enqueued").await;
    let done = write(&cluster, 1, "succeeded").await;
    let (_, task) = cluster.client("GET", &format!("/tasks/{enqueued}")).await;
    assert_eq!(task["batchUid"], Value::Null);
    let (_, task) = cluster.client("GET", &format!("/tasks/{done}")).await;
    assert_eq!(task["batchUid"], json!(done));

    let (status, body) = cluster.client("GET", &format!("/batches/{enqueued}")).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"message": format!("Batch `{enqueued}` not found."), "code": "batch_not_found",
                     "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#batch_not_found"})
        )
    );
    let (status, body) = cluster.client("GET", "/batches/abc").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_batch_uids");
    assert_eq!(
        body["message"],
        "Batch uid `abc` is invalid. It should only contain numeric characters."
    );

    let (status, batch) = cluster.client("GET", &format!("/batches/{done}")).await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(
        batch,
        json!({"uid": done, "progress": null,
               "details": {"receivedDocuments": 4, "indexedDocuments": 4},
               "stats": {"totalNbTasks": 1, "status": {"succeeded": 1},
                         "types": {"documentAdditionOrUpdate": 1}, "indexUids": {"movies": 1}},
               "duration": "PT0.5S", "startedAt": "2026-11-21T10:00:10Z",
               "finishedAt": "2026-11-21T10:00:11Z",
               "batchStrategy": "batched up to configured batch limit of 1 tasks"})
    );

    // Half done: processing, with progress.
    cluster.nodes[0].set_status(0, "succeeded");
    let (_, batch) = cluster.client("GET", &format!("/batches/{enqueued}")).await;
    assert_eq!(batch["stats"]["status"], json!({"processing": 1}));
    assert_eq!(batch["progress"]["percentage"], json!(50.0));
    assert_eq!(batch["finishedAt"], Value::Null);

    let (status, page) = cluster.client("GET", "/batches").await;
    assert_eq!(status, 200, "{page}");
    let uids = |p: &Value| -> Vec<u64> {
        p["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter_map(|b| b["uid"].as_u64())
            .collect()
    };
    assert_eq!(uids(&page), vec![done, enqueued]);
    assert_eq!(
        (
            page["total"].clone(),
            page["from"].clone(),
            page["next"].clone()
        ),
        (json!(2), json!(done), Value::Null)
    );
    let (_, reversed) = cluster.client("GET", "/batches?reverse=true").await;
    assert_eq!(uids(&reversed), vec![enqueued, done]);
    let (_, limited) = cluster.client("GET", "/batches?limit=1").await;
    assert_eq!(
        (uids(&limited), limited["next"].clone()),
        (vec![done], json!(enqueued))
    );
    let (_, filtered) = cluster.client("GET", "/batches?statuses=succeeded").await;
    assert_eq!(uids(&filtered), vec![done]);
    let (_, by_batch) = cluster
        .client("GET", &format!("/tasks?batchUids={done}"))
        .await;
    assert_eq!(by_batch["total"], 1);
    let (status, body) = cluster.client("GET", "/batches?nope=1").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
}

#[tokio::test]
async fn custom_metadata_is_shown_on_the_task() {
    let cluster = Cluster::start(1).await;
    let mut tagged = node_task(0, "succeeded", 2);
    tagged["customMetadata"] = json!("from-node");
    cluster.nodes[0].put(tagged);
    let (_, body) = cluster
        .filter("/_miroir/internal/tasks", registration(0, 1, None))
        .await;
    let from_node = body["taskUid"].as_u64().expect("uid");
    cluster.nodes[0].put(node_task(1, "enqueued", 2));
    let mut with_meta = registration(1, 1, None);
    with_meta["record"]["customMetadata"] = json!("");
    let (_, body) = cluster.filter("/_miroir/internal/tasks", with_meta).await;
    let registered = body["taskUid"].as_u64().expect("uid");
    let plain = write(&cluster, 2, "succeeded").await;

    let (_, task) = cluster.client("GET", &format!("/tasks/{from_node}")).await;
    assert_eq!(task["customMetadata"], "from-node");
    let (_, task) = cluster.client("GET", &format!("/tasks/{registered}")).await;
    assert_eq!(
        task["customMetadata"], "",
        "given empty: shown empty, before any node answer"
    );
    let (_, task) = cluster.client("GET", &format!("/tasks/{plain}")).await;
    assert!(
        task.get("customMetadata").is_none(),
        "absent when not given: {task}"
    );
    let (_, page) = cluster.client("GET", "/tasks").await;
    assert_eq!(page["results"][2]["customMetadata"], "from-node");
}

#[tokio::test]
async fn deleting_finished_tasks_by_status() {
    let cluster = Cluster::start(2).await;
    let done = write(&cluster, 0, "succeeded").await;
    let failed = write(&cluster, 1, "failed").await;
    let pending = write(&cluster, 2, "enqueued").await;
    let (status, summary) = cluster
        .client("DELETE", "/tasks?statuses=succeeded%2Cfailed%2Ccanceled")
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["type"], "taskDeletion");
    assert_eq!(summary["indexUid"], Value::Null);
    let deletion = summary["taskUid"].as_u64().expect("taskUid");
    // Applied when the deletion finishes (read here).
    let (_, task) = cluster.client("GET", &format!("/tasks/{deletion}")).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    for gone in [done, failed] {
        let (status, _) = cluster.client("GET", &format!("/tasks/{gone}")).await;
        assert_eq!(status, 404);
        let (status, _) = cluster.client("GET", &format!("/batches/{gone}")).await;
        assert_eq!(status, 404, "its batch goes with it");
    }
    let (status, _) = cluster.client("GET", &format!("/tasks/{pending}")).await;
    assert_eq!(status, 200, "unfinished tasks are not deleted");
    assert_eq!(
        task["details"],
        json!({"matchedTasks": 2, "deletedTasks": 2,
               "originalFilter": "?statuses=succeeded%2Cfailed%2Ccanceled"})
    );
    let (_, page) = cluster.client("GET", "/tasks").await;
    assert_eq!(page["results"][0]["uid"], json!(deletion));

    for (query, code) in [
        ("", "missing_task_filters"),
        ("statuses=done", "invalid_task_statuses"),
        ("statuse=failed", "bad_request"),
        ("indexUids=a%20b", "invalid_index_uid"),
        ("limit=1", "bad_request"),
    ] {
        let (status, body) = cluster.client("DELETE", &format!("/tasks?{query}")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some(code)),
            "{query}"
        );
    }
    let (status, body) = cluster
        .client("POST", "/tasks/cancel?customMetadata=x")
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    let (status, body) = cluster.client("GET", "/tasks/abc").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Task uid `abc` is invalid. It should only contain numeric characters."
    );
}

fn pause(cluster: &Cluster) {
    for node in &cluster.nodes {
        node.paused
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test]
async fn deleting_an_unfinished_task_deletes_it_once_it_and_the_deletion_finish() {
    let cluster = Cluster::start(2).await;
    let addition = write(&cluster, 0, "processing").await;
    pause(&cluster);
    let (status, summary) = cluster
        .client("DELETE", &format!("/tasks?uids={addition}"))
        .await;
    assert_eq!(status, 200, "{summary}");
    let deletion = summary["taskUid"].as_u64().expect("taskUid");
    for node in &cluster.nodes {
        assert_eq!(
            *node.calls.lock().expect("lock"),
            vec!["delete [0]".to_string()],
            "sent although unfinished: the node's queue orders it"
        );
    }
    let (_, task) = cluster.client("GET", &format!("/tasks/{deletion}")).await;
    assert_eq!(task["status"], "enqueued", "{task}");
    assert_eq!(
        task["details"],
        json!({"matchedTasks": 1, "deletedTasks": null,
               "originalFilter": format!("?uids={addition}")})
    );
    let (status, _) = cluster.client("GET", &format!("/tasks/{addition}")).await;
    assert_eq!(status, 200, "not deleted before the deletion is processed");

    // The addition finishes, then each node processes the deletion (deleting it there, before
    // the control plane read it finished).
    for node in &cluster.nodes {
        node.set_status(0, "succeeded");
        node.process();
    }
    let (_, task) = cluster.client("GET", &format!("/tasks/{deletion}")).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(
        task["details"],
        json!({"matchedTasks": 1, "deletedTasks": 1,
               "originalFilter": format!("?uids={addition}")})
    );
    let (status, body) = cluster.client("GET", &format!("/tasks/{addition}")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("task_not_found"))
    );
    let (_, page) = cluster.client("GET", "/tasks").await;
    assert_eq!(page["total"], 1, "{page}");
    let stored = cluster
        .app
        .store
        .get_task(deletion as u32)
        .await
        .expect("get")
        .expect("task");
    assert_eq!(stored.deletes, None, "applied once");
}

#[tokio::test]
async fn a_deletion_matching_nothing_deletes_nothing() {
    let cluster = Cluster::start(2).await;
    let (status, summary) = cluster.client("DELETE", "/tasks?uids=999").await;
    assert_eq!(status, 200, "{summary}");
    let deletion = summary["taskUid"].as_u64().expect("taskUid");
    let (_, task) = cluster.client("GET", &format!("/tasks/{deletion}")).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(
        task["details"],
        json!({"matchedTasks": 0, "deletedTasks": 0, "originalFilter": "?uids=999"})
    );
    for node in &cluster.nodes {
        assert!(node.calls.lock().expect("lock").is_empty());
    }
}

#[tokio::test]
async fn a_task_still_enqueued_when_the_deletion_is_processed_is_kept() {
    // Meilisearch processes a task deletion before the enqueued tasks it matched.
    let cluster = Cluster::start(1).await;
    let addition = write(&cluster, 0, "enqueued").await;
    pause(&cluster);
    let (_, summary) = cluster
        .client("DELETE", &format!("/tasks?uids={addition}"))
        .await;
    let deletion = summary["taskUid"].as_u64().expect("taskUid");
    cluster.nodes[0].process();
    let (_, task) = cluster.client("GET", &format!("/tasks/{deletion}")).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["details"]["matchedTasks"], 1);
    assert_eq!(task["details"]["deletedTasks"], 0);
    cluster.nodes[0].set_status(0, "succeeded");
    let (status, task) = cluster.client("GET", &format!("/tasks/{addition}")).await;
    assert_eq!((status, task["status"].as_str()), (200, Some("succeeded")));
}

#[tokio::test]
async fn canceling_a_task_still_enqueued() {
    let cluster = Cluster::start(1).await;
    let waiting = write(&cluster, 0, "enqueued").await;
    let finishing = write(&cluster, 1, "enqueued").await;
    let done = write(&cluster, 2, "succeeded").await;
    pause(&cluster);
    let (status, summary) = cluster
        .client(
            "POST",
            &format!("/tasks/cancel?uids={waiting},{finishing},{done}"),
        )
        .await;
    assert_eq!(status, 200, "{summary}");
    let cancelation = summary["taskUid"].as_u64().expect("taskUid");
    assert_eq!(
        *cluster.nodes[0].calls.lock().expect("lock"),
        vec!["cancel [0, 1]".to_string()]
    );
    let (_, task) = cluster
        .client("GET", &format!("/tasks/{cancelation}"))
        .await;
    assert_eq!(task["status"], "enqueued", "{task}");
    assert_eq!(
        (
            task["details"]["matchedTasks"].clone(),
            task["details"]["canceledTasks"].clone()
        ),
        (json!(3), Value::Null),
        "every matched task counts, finished or not"
    );

    // One of them finishes before the cancelation is processed: only the other is canceled.
    cluster.nodes[0].set_status(1, "succeeded");
    cluster.nodes[0].process();
    let (_, task) = cluster
        .client("GET", &format!("/tasks/{cancelation}"))
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(
        task["details"],
        json!({"matchedTasks": 3, "canceledTasks": 1,
               "originalFilter": format!("?uids={waiting},{finishing},{done}")})
    );
    let (_, task) = cluster.client("GET", &format!("/tasks/{waiting}")).await;
    assert_eq!(task["status"], "canceled");
    let (_, task) = cluster.client("GET", &format!("/tasks/{finishing}")).await;
    assert_eq!(task["status"], "succeeded");
}

#[tokio::test]
async fn a_pending_deletion_survives_a_restart() {
    let cluster = Cluster::start(1).await;
    let addition = write(&cluster, 0, "processing").await;
    pause(&cluster);
    let (_, summary) = cluster
        .client("DELETE", &format!("/tasks?uids={addition}"))
        .await;
    let deletion = summary["taskUid"].as_u64().expect("taskUid") as u32;

    let config = cluster.app.config.clone();
    let Cluster {
        app,
        dir,
        nodes,
        server,
        http,
        ..
    } = cluster;
    server.abort();
    drop((app, http));
    let mut restarted = None;
    for _ in 0..500 {
        match crate::store::open(&config.store).await {
            Ok(store) => {
                drop(store);
                restarted = Some(Cluster::with(config.clone(), nodes.clone(), dir).await);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let cluster = restarted.expect("store reopened");
    let stored = cluster
        .app
        .store
        .get_task(deletion)
        .await
        .expect("get")
        .expect("task");
    assert_eq!(stored.deletes, Some(vec![addition as u32]));
    assert!(!stored.terminal);

    cluster.nodes[0].set_status(0, "succeeded");
    cluster.nodes[0].process();
    super::registry::poll_pending(&cluster.app)
        .await
        .expect("poll");
    let stored = cluster
        .app
        .store
        .get_task(deletion)
        .await
        .expect("get")
        .expect("task");
    assert!(stored.terminal);
    assert_eq!(stored.task["details"]["deletedTasks"], 1);
    assert_eq!(
        cluster
            .app
            .store
            .get_task(addition as u32)
            .await
            .expect("get"),
        None
    );
}

async fn as_key(cluster: &Cluster, key: &str, method: &str, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    cluster
        .call(method, path, &[("authorization", &auth)], None)
        .await
}

/// Issue 10: a key sees (and cancels, deletes) only its indexes' tasks, as on one Meilisearch:
/// the control plane reads the key's definition from a node with the master key.
#[tokio::test]
async fn a_key_sees_only_its_indexes_tasks() {
    let cluster = Cluster::start(1).await;
    let node = &cluster.nodes[0];
    let movies = write(&cluster, 0, "succeeded").await;
    let mut books_task = node_task(1, "succeeded", 2);
    books_task["indexUid"] = json!("books");
    node.put(books_task);
    let mut books = registration(1, 1, None);
    books["record"]["indexUid"] = json!("books");
    let (status, body) = cluster.filter("/_miroir/internal/tasks", books).await;
    assert_eq!(status, 201, "{body}");
    let books = body["taskUid"].as_u64().expect("taskUid");
    node.keys.lock().expect("lock").extend([
        json!({"uid": "b0000000-0000-4000-8000-000000000000", "key": "books-key",
               "actions": ["tasks.get", "tasks.delete"], "indexes": ["boo*"], "expiresAt": null}),
        json!({"uid": "b0000000-0000-4000-8000-000000000001", "key": "reader-key",
               "actions": ["tasks.get"], "indexes": ["*"], "expiresAt": null}),
    ]);
    let (status, list) = as_key(&cluster, "books-key", "GET", "/tasks").await;
    assert_eq!(status, 200, "{list}");
    let uids: Vec<u64> = list["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|t| t["uid"].as_u64())
        .collect();
    assert_eq!(uids, [books], "only the books task");
    assert_eq!(list["total"], 1);
    let (status, body) = as_key(&cluster, "books-key", "GET", &format!("/tasks/{movies}")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("task_not_found"))
    );
    let (status, _) = as_key(&cluster, "books-key", "GET", &format!("/tasks/{books}")).await;
    assert_eq!(status, 200);
    let (status, body) = as_key(&cluster, "books-key", "GET", &format!("/batches/{movies}")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("batch_not_found"))
    );

    // The deletion matches (and sends to the node) the books task only.
    let (status, body) = as_key(
        &cluster,
        "books-key",
        "DELETE",
        &format!("/tasks?uids={movies},{books}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let calls = node.calls.lock().expect("lock").clone();
    assert_eq!(calls, ["delete [1]"], "the movies task is not touched");
    let deletion = body["taskUid"].as_u64().expect("taskUid");
    let (_, task) = cluster.client("GET", &format!("/tasks/{deletion}")).await;
    assert_eq!(task["details"]["matchedTasks"], 1, "{task}");

    // A key without `tasks.cancel` cannot cancel.
    let (status, body) = as_key(
        &cluster,
        "reader-key",
        "POST",
        &format!("/tasks/cancel?uids={movies}"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid_api_key"))
    );
    // The master key sees every task: the movies write (kept) and the deletion.
    let (_, all) = cluster.client("GET", "/tasks").await;
    let uids: Vec<u64> = all["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|t| t["uid"].as_u64())
        .collect();
    assert_eq!(uids, [deletion, movies], "{all}");
}

/// The primary keys of the registry the filter is given.
async fn pushed_registry(cluster: &Cluster) -> Vec<(String, String)> {
    cluster.app.sync_from_store().await.expect("sync");
    let config = cluster.publisher.rollouts().pop().expect("rolled out");
    config
        .indexes
        .into_iter()
        .map(|(uid, index)| (uid, index.primary_key))
        .collect()
}

#[tokio::test]
async fn the_filter_is_given_the_primary_keys_writes_were_routed_by() {
    let cluster = Cluster::start(1).await;
    assert_eq!(pushed_registry(&cluster).await, []);
    let register = |kind: &str, index: &str, extra: Value| {
        let mut record = json!({"indexUid": index, "type": kind, "copies": 1,
                                "nodeTasks": [{"node": "n0", "group": "g0", "taskUid": 0}]});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            record[k] = v;
        }
        json!({ "record": record })
    };
    cluster.nodes[0].put(node_task(0, "enqueued", 2));
    for body in [
        register(
            "documentAdditionOrUpdate",
            "movies",
            json!({"primaryKey": "id"}),
        ),
        register(
            "indexCreation",
            "books",
            json!({"details": {"primaryKey": "isbn"}}),
        ),
    ] {
        let (status, body) = cluster.filter("/_miroir/internal/tasks", body).await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(
        pushed_registry(&cluster).await,
        [
            ("books".to_string(), "isbn".to_string()),
            ("movies".to_string(), "id".to_string())
        ]
    );
    // A swap: forgotten until read back from the nodes; a deletion: gone.
    let swap = json!({"record": {"type": "indexSwap", "copies": 1,
        "details": {"swaps": [{"indexes": ["movies", "films"]}]},
        "nodeTasks": [{"node": "n0", "group": "g0", "taskUid": 0}]}});
    let (status, body) = cluster.filter("/_miroir/internal/tasks", swap).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = cluster
        .filter(
            "/_miroir/internal/tasks",
            register("indexDeletion", "books", json!({})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(pushed_registry(&cluster).await, []);
}
