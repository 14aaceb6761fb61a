//! Task deletion and cancelation, batches, webhooks, dumps, snapshots, compaction, dynamic
//! search rules and `/render-template`, checked against answers recorded from Meilisearch 1.50.

mod support;

use serde_json::{json, Value};

use support::*;

async fn done(node: &Node, r: Reply) -> Value {
    assert!(r.status == 202 || r.status == 200, "{}", r.body);
    node.wait_task(r.body["taskUid"].as_u64().unwrap()).await
}

fn assert_error(r: &Reply, status: u16, code: &str, message: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["code"], code, "{}", r.body);
    assert_eq!(r.body["message"], message, "{}", r.body);
}

const MISSING_DELETE: &str = "Query parameters to filter the tasks to delete are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`.";

#[tokio::test]
async fn task_deletion_refuses_bad_filters_as_meilisearch() {
    let node = Node::start().await;
    assert_error(
        &node.call("DELETE", "/tasks", None).await,
        400,
        "missing_task_filters",
        MISSING_DELETE,
    );
    assert_error(
        &node.call("DELETE", "/tasks?statuses=foo", None).await,
        400,
        "invalid_task_statuses",
        "Invalid value in parameter `statuses`: `foo` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`.",
    );
    assert_error(
        &node.call("GET", "/tasks?statuses=*,foo", None).await,
        400,
        "invalid_task_statuses",
        "Invalid value in parameter `statuses[1]`: `foo` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`.",
    );
    assert_error(
        &node.call("DELETE", "/tasks?uids=a", None).await,
        400,
        "invalid_task_uids",
        "Invalid value in parameter `uids`: could not parse `a` as a positive integer",
    );
    assert_error(
        &node.call("DELETE", "/tasks?customMetadata=abc&statuses=succeeded", None).await,
        400,
        "bad_request",
        "Unknown parameter `customMetadata`: expected one of `uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`",
    );
    assert_error(
        &node.call("DELETE", "/tasks?afterEnqueuedAt=xx", None).await,
        400,
        "invalid_task_after_enqueued_at",
        "Invalid value in parameter `afterEnqueuedAt`: `xx` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.",
    );
    let r = node.call("DELETE", "/tasks?types=x", None).await;
    assert_eq!(r.body["code"], "invalid_task_types");
    assert_error(
        &node.call("GET", "/tasks?reverse=x", None).await,
        400,
        "invalid_task_reverse",
        "Invalid value in parameter `reverse`: could not parse `x` as a boolean, expected either `true` or `false`",
    );
    assert_error(
        &node.call("POST", "/tasks/cancel", None).await,
        400,
        "missing_task_filters",
        &MISSING_DELETE.replace("to delete", "to cancel"),
    );
}

#[tokio::test]
async fn task_deletion_deletes_finished_matching_tasks() {
    let node = Node::start().await;
    let created = done(
        &node,
        node.call("POST", "/indexes", Some(json!({"uid": "a"})))
            .await,
    )
    .await;
    assert_eq!(created["status"], "succeeded");
    let r = node
        .call("DELETE", "/tasks?statuses=succeeded,failed,canceled", None)
        .await;
    // 200, not 202, with a summarized taskDeletion.
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["type"], "taskDeletion");
    assert_eq!(r.body["indexUid"], Value::Null);
    assert_eq!(r.body["status"], "enqueued");
    let t = node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(
        t["details"],
        json!({"matchedTasks": 1, "deletedTasks": 1, "originalFilter": "?statuses=succeeded,failed,canceled"})
    );
    assert_eq!(node.call("GET", "/tasks/0", None).await.status, 404);
    let list = node.call("GET", "/tasks", None).await.body;
    assert_eq!(list["total"], 1);
    assert_eq!(list["results"][0]["uid"], 1);
    // Uids are not reused.
    let next = node
        .call("POST", "/indexes", Some(json!({"uid": "b"})))
        .await;
    assert_eq!(next.body["taskUid"], 2);
}

#[tokio::test]
async fn task_cancelation_has_meilisearch_details() {
    let node = Node::start().await;
    let r = node
        .call("POST", "/tasks/cancel?statuses=enqueued", None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["type"], "taskCancelation");
    let t = node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(
        t["details"],
        json!({"matchedTasks": 0, "canceledTasks": 0, "originalFilter": "?statuses=enqueued"})
    );
    assert_eq!(t["canceledBy"], Value::Null);
}

#[tokio::test]
async fn batches_list_and_get() {
    let node = Node::start().await;
    done(
        &node,
        node.call("POST", "/indexes", Some(json!({"uid": "movies"})))
            .await,
    )
    .await;
    let b = node.call("GET", "/batches/0", None).await;
    assert_eq!(b.status, 200, "{}", b.body);
    assert_eq!(b.body["uid"], 0);
    assert_eq!(b.body["progress"], Value::Null);
    assert_eq!(b.body["details"], json!({"primaryKey": null}));
    assert_eq!(b.body["stats"]["totalNbTasks"], 1);
    assert_eq!(b.body["stats"]["status"], json!({"succeeded": 1}));
    assert_eq!(b.body["stats"]["types"], json!({"indexCreation": 1}));
    assert_eq!(b.body["stats"]["indexUids"], json!({"movies": 1}));
    let list = node.call("GET", "/batches?limit=1", None).await.body;
    assert_eq!(list["total"], 1);
    assert_eq!(list["from"], 0);
    assert_eq!(list["next"], Value::Null);
    assert_error(
        &node.call("GET", "/batches/999", None).await,
        404,
        "batch_not_found",
        "Batch `999` not found.",
    );
    assert_error(
        &node.call("GET", "/batches/x", None).await,
        400,
        "invalid_batch_uids",
        "Batch uid `x` is invalid. It should only contain numeric characters.",
    );
}

#[tokio::test]
async fn dumps_snapshots_and_compaction_are_tasks() {
    let node = Node::start().await;
    let dump = done(&node, node.call("POST", "/dumps", None).await).await;
    assert_eq!(dump["type"], "dumpCreation");
    assert_eq!(dump["status"], "succeeded");
    let uid = dump["details"]["dumpUid"].as_str().unwrap();
    assert_eq!(uid.len(), 18, "{uid}");
    assert_eq!(&uid[8..9], "-");
    let snap = done(&node, node.call("POST", "/snapshots", None).await).await;
    assert_eq!(snap["type"], "snapshotCreation");
    assert!(snap.get("details").is_none(), "{snap}");
    let missing = done(
        &node,
        node.call("POST", "/indexes/movies/compact", None).await,
    )
    .await;
    assert_eq!(missing["status"], "failed");
    assert_eq!(missing["details"], json!({}));
    assert_eq!(missing["error"]["code"], "index_not_found");
    done(
        &node,
        node.call("POST", "/indexes", Some(json!({"uid": "movies"})))
            .await,
    )
    .await;
    let compacted = done(
        &node,
        node.call("POST", "/indexes/movies/compact", None).await,
    )
    .await;
    assert_eq!(compacted["type"], "indexCompaction");
    assert_eq!(compacted["indexUid"], "movies");
    assert!(
        compacted["details"]["preCompactionSize"].is_string(),
        "{compacted}"
    );
    assert!(compacted["details"]["postCompactionSize"].is_string());
}

#[tokio::test]
async fn webhooks_as_meilisearch() {
    let node = Node::start().await;
    assert_eq!(
        node.call("GET", "/webhooks", None).await.body,
        json!({"results": []})
    );
    let r = node
        .call(
            "POST",
            "/webhooks",
            Some(json!({"url": "http://localhost:9/x", "headers": {"a": "b"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let uuid = r.body["uuid"].as_str().unwrap().to_string();
    assert_eq!(r.body["isEditable"], true);
    assert_eq!(r.body["headers"], json!({"a": "b"}));
    let r = node
        .call(
            "PATCH",
            &format!("/webhooks/{uuid}"),
            Some(json!({"headers": {"a": null, "Authorization": "Bearer abcdefghijkl"}})),
        )
        .await;
    assert_eq!(
        r.body["headers"],
        json!({"Authorization": "Bearer abXXXX..."})
    );
    let r = node
        .call(
            "PATCH",
            &format!("/webhooks/{uuid}"),
            Some(json!({"url": null})),
        )
        .await;
    assert_error(
        &r,
        400,
        "invalid_webhook_url",
        &format!("The URL for the webhook `{uuid}` is missing."),
    );
    let r = node
        .call("POST", "/webhooks", Some(json!({"url": "notaurl"})))
        .await;
    assert_error(
        &r,
        400,
        "invalid_webhook_url",
        "Invalid URL `notaurl`: relative URL without a base",
    );
    let r = node
        .call(
            "POST",
            "/webhooks",
            Some(json!({"url": "http://x", "foo": 1})),
        )
        .await;
    assert_error(
        &r,
        400,
        "bad_request",
        "Unknown field `foo`: expected one of `url`, `headers`",
    );
    let r = node
        .call(
            "POST",
            "/webhooks",
            Some(json!({"url": "http://x", "headers": {"a": 1}})),
        )
        .await;
    assert_error(
        &r,
        400,
        "invalid_webhook_headers",
        "Invalid value type at `.headers.a`: expected a string, but found a positive integer: `1`",
    );
    assert_error(
        &node.call("GET", "/webhooks/zzz", None).await,
        400,
        "invalid_webhook_uuid",
        "Invalid UUID: invalid character: found `z` at 0",
    );
    let other = "e63ee46e-5830-4a01-967b-ff7cfccd3ab3";
    assert_error(
        &node.call("GET", &format!("/webhooks/{other}"), None).await,
        404,
        "webhook_not_found",
        &format!("Webhook `{other}` not found."),
    );
    assert_eq!(
        node.call("DELETE", &format!("/webhooks/{uuid}"), None)
            .await
            .status,
        204
    );
    for _ in 0..20 {
        assert_eq!(
            node.call("POST", "/webhooks", Some(json!({"url": "http://x"})))
                .await
                .status,
            201
        );
    }
    let r = node
        .call("POST", "/webhooks", Some(json!({"url": "http://x"})))
        .await;
    assert_error(&r, 400, "invalid_webhooks", "Defining too many webhooks would crush the server. Please limit the number of webhooks to 20. You may use a third-party proxy server to dispatch events to more than 20 endpoints.");
}

const RULE: &str = r#"{"description":"Black Friday products","precedence":10,"active":true,"conditions":{"query":{"words":"black friday"}},"actions":[{"selector":{"indexUid":"products","id":"123"},"action":{"type":"pin","position":1}}]}"#;

#[tokio::test]
async fn dynamic_search_rules_need_the_feature() {
    let node = Node::start().await;
    assert_error(
        &node.call("POST", "/dynamic-search-rules", Some(json!({}))).await,
        400,
        "feature_not_enabled",
        "Calling the `POST /dynamic-search-rules` route requires enabling the `dynamic search rules` experimental feature. See https://github.com/orgs/meilisearch/discussions/884",
    );
    assert_error(
        &node.call("PATCH", "/dynamic-search-rules/abc", Some(json!({}))).await,
        400,
        "feature_not_enabled",
        "Using the `/dynamic-search-rules` routes requires enabling the `dynamic search rules` experimental feature. See https://github.com/orgs/meilisearch/discussions/884",
    );
    // The body is checked first.
    assert_error(
        &node.call("PATCH", "/dynamic-search-rules/abc", Some(json!({"foo": 1}))).await,
        400,
        "bad_request",
        "Unknown field `foo`: expected one of `description`, `precedence`, `active`, `conditions`, `actions`",
    );
}

#[tokio::test]
async fn dynamic_search_rules_life_cycle() {
    let node = Node::start().await;
    node.call(
        "PATCH",
        "/experimental-features",
        Some(json!({"dynamicSearchRules": true})),
    )
    .await;
    let rule: Value = serde_json::from_str(RULE).unwrap();
    let r = node
        .call(
            "PATCH",
            "/dynamic-search-rules/black-friday?customMetadata=cm",
            Some(rule.clone()),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["indexUid"], ".meili_dsr");
    assert_eq!(r.body["type"], "dsrUpdate");
    assert_eq!(r.body["customMetadata"], "cm");
    let t = node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["details"], json!({"rule": rule, "updatedRules": 1}));
    assert_eq!(t["customMetadata"], "cm");
    done(
        &node,
        node.call(
            "PATCH",
            "/dynamic-search-rules/archived",
            Some(json!({"description": "Archived promotion", "active": false})),
        )
        .await,
    )
    .await;
    done(
        &node,
        node.call("PATCH", "/dynamic-search-rules/minimal", Some(json!({})))
            .await,
    )
    .await;
    let one = node
        .call("GET", "/dynamic-search-rules/minimal", None)
        .await;
    assert_eq!(
        one.body,
        json!({"uid": "minimal", "active": true, "conditions": {}, "actions": []})
    );
    let mut expected = rule.clone();
    expected
        .as_object_mut()
        .unwrap()
        .shift_insert(0, "uid".into(), json!("black-friday"));
    let list = node
        .call(
            "POST",
            "/dynamic-search-rules",
            Some(json!({"filter": {"query": "Black Friday", "active": true}})),
        )
        .await
        .body;
    assert_eq!(
        list,
        json!({"results": [expected], "offset": 0, "limit": 20, "total": 1})
    );
    let page = node
        .call(
            "POST",
            "/dynamic-search-rules",
            Some(json!({"offset": 1, "limit": 1})),
        )
        .await
        .body;
    assert_eq!(page["total"], 3);
    assert_eq!(page["results"][0]["uid"], "archived");
    let inactive = node
        .call(
            "POST",
            "/dynamic-search-rules",
            Some(json!({"filter": {"active": false}})),
        )
        .await
        .body;
    assert_eq!(inactive["total"], 1);
    let prefix = node
        .call(
            "POST",
            "/dynamic-search-rules",
            Some(json!({"filter": {"query": "arch"}})),
        )
        .await
        .body;
    assert_eq!(prefix["total"], 0);
    let updated = done(
        &node,
        node.call(
            "PATCH",
            "/dynamic-search-rules/minimal",
            Some(json!({"precedence": 3})),
        )
        .await,
    )
    .await;
    assert_eq!(
        updated["details"],
        json!({"rule": {"precedence": 3}, "updatedRules": 1})
    );
    let one = node
        .call("GET", "/dynamic-search-rules/minimal", None)
        .await;
    assert_eq!(
        one.body,
        json!({"uid": "minimal", "precedence": 3, "active": true, "conditions": {}, "actions": []})
    );
    let deleted = done(
        &node,
        node.call(
            "DELETE",
            "/dynamic-search-rules/minimal?customMetadata=del",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(deleted["details"], json!({"updatedRules": 1}));
    assert_eq!(deleted["customMetadata"], "del");
    assert_error(
        &node
            .call("GET", "/dynamic-search-rules/minimal", None)
            .await,
        404,
        "dynamic_search_rule_not_found",
        "Dynamic search rule `minimal` not found.",
    );
    let cleared = done(
        &node,
        node.call("DELETE", "/dynamic-search-rules", None).await,
    )
    .await;
    assert_eq!(cleared["type"], "dsrClear");
    assert_eq!(cleared["details"], json!({"deletedDocuments": 2}));
    // Validation, with 1.50's codes.
    for (body, code, message) in [
        (json!({"precedence": -1}), "invalid_dynamic_search_rule_priority", "Invalid value type at `.precedence`: expected a positive integer, but found a negative integer: `-1`"),
        (json!({"active": "yes"}), "invalid_dynamic_search_rule_active", "Invalid value type at `.active`: expected a boolean, but found a string: `\"yes\"`"),
        (json!({"actions": [{"selector": {}, "action": {"type": "pin", "position": 1}}]}), "invalid_dynamic_search_rule_actions", "Missing field `id` inside `.actions[0].selector`"),
        (json!({"actions": [{"selector": {"indexUid": "a", "id": "1"}, "action": {"type": "boost"}}]}), "invalid_dynamic_search_rule_actions", "Invalid value at `.actions[0].action`: Incorrect tag value"),
        (json!({"conditions": {"foo": 1}}), "invalid_dynamic_search_rule_conditions", "Unknown field `foo` inside `.conditions`: expected one of `time`, `query`"),
        (json!({"conditions": {"query": {"foo": 1}}}), "invalid_dynamic_search_rule_conditions", "Unknown field `foo` inside `.conditions.query`: expected one of `isEmpty`, `words`"),
        (json!({"description": 1}), "invalid_dynamic_search_rule_description", "Invalid value type at `.description`: expected a string, but found a positive integer: `1`"),
    ] {
        assert_error(&node.call("PATCH", "/dynamic-search-rules/y", Some(body)).await, 400, code, message);
    }
    assert_error(
        &node
            .call(
                "POST",
                "/dynamic-search-rules",
                Some(json!({"filter": {"foo": 1}})),
            )
            .await,
        400,
        "invalid_dynamic_search_rule_filter",
        "Unknown field `foo` inside `.filter`: expected one of `query`, `active`",
    );
}

#[tokio::test]
async fn render_template_inline() {
    let node = Node::start().await;
    let body = json!({
        "template": {"kind": "inlineDocumentTemplate", "inline": "Rendered on {{doc.id}}"},
        "input": {"kind": "inlineDocument", "inline": {"id": "this document"}}
    });
    assert_error(
        &node.call("POST", "/render-template", Some(body.clone())).await,
        400,
        "feature_not_enabled",
        "calling the /render-template route requires enabling the `render_route` experimental feature. See https://github.com/orgs/meilisearch/discussions/888",
    );
    assert_error(
        &node.call("POST", "/render-template", Some(json!({}))).await,
        400,
        "bad_request",
        "Missing field `template`",
    );
    node.call(
        "PATCH",
        "/experimental-features",
        Some(json!({"renderRoute": true})),
    )
    .await;
    let r = node.call("POST", "/render-template", Some(body)).await;
    assert_eq!(
        r.body,
        json!({"template": "Rendered on {{doc.id}}", "rendered": "Rendered on this document"})
    );
    let r = node
        .call("POST", "/render-template", Some(json!({"template": {"kind": "inlineDocumentTemplate", "inline": "Rendered on {{doc.id}}"}})))
        .await;
    assert_eq!(
        r.body,
        json!({"template": "Rendered on {{doc.id}}", "rendered": null})
    );
    assert_error(
        &node.call("POST", "/render-template", Some(json!({"template": {"kind": "foo"}}))).await,
        400,
        "invalid_render_template",
        "Unknown value `foo` at `.template.kind`: expected one of `documentTemplate`, `chatDocumentTemplate`, `indexingFragment`, `searchFragment`, `inlineDocumentTemplate`, `inlineFragment`",
    );
    let r = node
        .call("POST", "/render-template", Some(json!({
            "template": {"kind": "inlineDocumentTemplate", "inline": "{{doc.missing}}"},
            "input": {"kind": "inlineDocument", "inline": {"a": {"b": "x"}, "n": 3.5, "arr": [1, 2]}}
        })))
        .await;
    assert_error(&r, 400, "template_rendering_error", "error while rendering template: user error: missing field in document: liquid: Unknown index\n  with:\n    variable=doc\n    requested index=missing\n    available indexes=a, n, arr\n");
}
