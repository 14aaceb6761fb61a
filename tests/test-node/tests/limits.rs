//! Meilisearch's limits: `pagination.maxTotalHits` caps the hits a search can reach (not its
//! totals, as a live 1.50 node shows), and the 100 MB payload limit is answered with its error
//! object.

mod support;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::*;

async fn done(node: &Node, r: Reply) {
    assert_eq!(r.status, 202, "{}", r.body);
    let task = node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
}

#[tokio::test]
async fn max_total_hits_caps_reachable_hits_not_totals() {
    let node = Node::start().await;
    let docs: Vec<Value> = (0..5).map(|i| json!({"id": i, "title": "same"})).collect();
    done(
        &node,
        node.call("POST", "/indexes/t/documents", Some(json!(docs)))
            .await,
    )
    .await;
    let r = node
        .call(
            "PATCH",
            "/indexes/t/settings",
            Some(json!({"pagination": {"maxTotalHits": 3}})),
        )
        .await;
    done(&node, r).await;

    let r = node
        .call("POST", "/indexes/t/search", Some(json!({"hitsPerPage": 2})))
        .await;
    assert_eq!(
        (r.body["totalHits"].clone(), r.body["totalPages"].clone()),
        (json!(5), json!(3)),
        "{}",
        r.body
    );
    let r = node
        .call("POST", "/indexes/t/search", Some(json!({"limit": 10})))
        .await;
    assert_eq!(r.body["estimatedTotalHits"], json!(5), "{}", r.body);
    assert_eq!(
        r.body["hits"].as_array().map(Vec::len),
        Some(3),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_payload_above_100_mb_is_refused_with_meilisearchs_error() {
    let node = Node::start().await;
    // Only the headers: the node answers from `content-length` and closes the connection.
    let mut stream = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let head = format!(
        "POST /indexes/t/documents HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100000001\r\n\r\n",
        node.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let r = Reply {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        body: serde_json::from_str(body).unwrap(),
    };
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.body,
        json!({
            "message": "The provided payload reached the size limit. The maximum accepted payload size is 95.367431640625 MiB.",
            "code": "payload_too_large",
            "type": "invalid_request",
            "link": "https://docs.meilisearch.com/errors#payload_too_large"
        })
    );
}
