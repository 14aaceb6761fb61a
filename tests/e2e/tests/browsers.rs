//! What browsers need, through a real Envoy: CORS answered as Meilisearch answers it (preflights
//! without a key, `Access-Control-Allow-Origin` and `Vary` on every answer, errors included), and
//! request bodies sent `Content-Encoding: gzip`, `deflate` or `br`, decoded by the filter before
//! it shards them.
//!
//! With `MEILISEARCH_BIN` set the nodes are real Meilisearch, and every answer here is compared
//! with the answer a node gives to the same request; without it, with the shapes recorded from
//! Meilisearch 1.50.

mod support;

use std::collections::BTreeSet;
use std::io::Write;

use miroir_e2e::{Client, Cluster, Fleet, FleetOptions, NodeKind, Reply};
use serde_json::{json, Value};
use support::{three_nodes, wait_task};

const ORIGIN: &str = "http://localhost:8080";
const VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

fn real_nodes() -> bool {
    NodeKind::from_env().is_real_meilisearch()
}

fn options(client: &Client, path: &str, headers: &[(&str, &str)]) -> Reply {
    let client = headers
        .iter()
        .fold(client.clone(), |c, (k, v)| c.with_header(k, v));
    client.send("OPTIONS", path, None)
}

/// The CORS headers of a reply, `access-control-allow-methods` as a set (Meilisearch lists it in
/// its process's hash order).
fn cors_of(reply: &Reply) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = reply
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("access-control-") || k == "vary")
        .map(|(k, v)| {
            if k == "access-control-allow-methods" {
                let set: BTreeSet<&str> = v.split(',').map(str::trim).collect();
                (k.clone(), set.into_iter().collect::<Vec<_>>().join(", "))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    headers.sort();
    headers
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

/// A preflight's answer as Meilisearch 1.50 gave it: status, CORS headers, body.
type Shape = (u16, Vec<(&'static str, &'static str)>, &'static str);

#[test]
fn preflights_are_answered_as_meilisearch_answers_them() {
    let cluster = Cluster::start("browsers_preflight", three_nodes(1));
    // Browsers send no key on a preflight.
    let miroir = cluster.client().without_auth();
    let node = cluster.node_client("n0").without_auth();
    let preflights: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "/indexes/movies/search",
            vec![
                ("origin", ORIGIN),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization, content-type, x-meilisearch-client",
                ),
            ],
        ),
        // No requested headers, a route that does not exist.
        (
            "/no/such/route",
            vec![
                ("origin", ORIGIN),
                ("access-control-request-method", "DELETE"),
            ],
        ),
        // No `Origin`: still a preflight.
        ("/indexes", vec![("access-control-request-method", "GET")]),
        // A method token outside the nine: refused, without CORS headers.
        (
            "/indexes",
            vec![
                ("origin", ORIGIN),
                ("access-control-request-method", "post"),
            ],
        ),
    ];
    let methods = "CONNECT, DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, TRACE";
    let recorded: [Shape; 4] = [
        (
            200,
            vec![
                ("access-control-allow-origin", "*"),
                ("access-control-allow-methods", methods),
                (
                    "access-control-allow-headers",
                    "authorization, content-type, x-meilisearch-client",
                ),
                ("access-control-max-age", "86400"),
                ("vary", VARY),
            ],
            "",
        ),
        (
            200,
            vec![
                ("access-control-allow-origin", "*"),
                ("access-control-allow-methods", methods),
                ("access-control-max-age", "86400"),
                ("vary", VARY),
            ],
            "",
        ),
        (
            200,
            vec![
                ("access-control-allow-origin", "*"),
                ("access-control-allow-methods", methods),
                ("access-control-max-age", "86400"),
                ("vary", VARY),
            ],
            "",
        ),
        (400, vec![], "Requested method is not allowed"),
    ];
    for ((path, headers), (status, cors, body)) in preflights.iter().zip(recorded) {
        let through = options(&miroir, path, headers);
        let what = format!("OPTIONS {path} {headers:?}");
        assert_eq!(through.status, status, "{what}: {}", through.text());
        assert_eq!(cors_of(&through), pairs(&cors), "{what}");
        assert_eq!(through.text(), body, "{what}");
        if real_nodes() {
            let direct = options(&node, path, headers);
            assert_eq!(
                (direct.status, cors_of(&direct), direct.text()),
                (through.status, cors_of(&through), through.text()),
                "{what}: node, then Miroir"
            );
        }
    }
}

#[test]
fn every_answer_carries_the_cors_headers() {
    let cluster = Cluster::start("browsers_answers", three_nodes(1));
    let miroir = cluster.client().with_header("origin", ORIGIN);
    let node = cluster.node_client("n0").with_header("origin", ORIGIN);
    let expected = pairs(&[("access-control-allow-origin", "*"), ("vary", VARY)]);

    let created = miroir.post("/indexes", &json!({"uid": "movies", "primaryKey": "id"}));
    assert_eq!(created.status, 202, "{}", created.text());
    assert_eq!(cors_of(&created), expected, "index creation");
    wait_task(&miroir, &created.json());

    let write = miroir.post(
        "/indexes/movies/documents",
        &json!([{"id": 1, "title": "Carol"}, {"id": 2, "title": "Wonder Woman"}]),
    );
    assert_eq!(write.status, 202, "{}", write.text());
    assert_eq!(cors_of(&write), expected, "document write");
    wait_task(&miroir, &write.json());

    let search = miroir.post("/indexes/movies/search", &json!({"q": "carol"}));
    assert_eq!(search.status, 200, "{}", search.text());
    assert_eq!(search.json()["hits"][0]["id"], 1);
    assert_eq!(cors_of(&search), expected, "search");

    // Errors: relayed node errors (no key, a missing index, a bad key), Miroir's own (a route it
    // refuses), the filter's refusal of a malformed batch.
    let errors: [(Client, &str, &str, Value); 5] = [
        (
            miroir.clone().without_auth(),
            "POST",
            "/indexes/movies/search",
            json!({"q": "carol"}),
        ),
        (
            miroir.clone(),
            "POST",
            "/indexes/nothere/search",
            json!({"q": "x"}),
        ),
        (
            miroir.clone().with_key("not-a-key"),
            "GET",
            "/indexes/movies",
            Value::Null,
        ),
        (miroir.clone(), "GET", "/network", Value::Null),
        (
            miroir.clone(),
            "POST",
            "/indexes/movies/documents",
            json!("not documents"),
        ),
    ];
    for (client, method, path, body) in errors {
        let reply = if body.is_null() {
            client.send(method, path, None)
        } else {
            client.send_json(method, path, &body)
        };
        assert!(reply.status >= 400, "{method} {path}: {}", reply.text());
        assert_eq!(
            cors_of(&reply),
            expected,
            "{method} {path}: {}",
            reply.text()
        );
    }

    // Without `Origin`: `vary` alone, as on Meilisearch.
    let plain = cluster.client().get("/health");
    assert_eq!(cors_of(&plain), pairs(&[("vary", VARY)]));

    if real_nodes() {
        for path in ["/health", "/indexes/nothere"] {
            let (direct, through) = (node.get(path), miroir.get(path));
            assert_eq!(direct.status, through.status, "{path}");
            assert_eq!(
                cors_of(&direct),
                cors_of(&through),
                "{path}: node, then Miroir"
            );
        }
        let (direct, through) = (
            cluster.node_client("n0").get("/health"),
            cluster.client().get("/health"),
        );
        assert_eq!(
            cors_of(&direct),
            cors_of(&through),
            "/health without Origin"
        );
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `deflate` in HTTP is the zlib format.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

fn send_encoded(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    encoding: &str,
    body: &[u8],
) -> Reply {
    client
        .clone()
        .with_header("content-encoding", encoding)
        .send(method, path, Some((content_type, body)))
}

#[test]
fn compressed_bodies_are_decoded_as_meilisearch_decodes_them() {
    let cluster = Cluster::start("browsers_compressed", three_nodes(1));
    let miroir = cluster.client();
    let created = miroir.post("/indexes", &json!({"uid": "movies", "primaryKey": "id"}));
    wait_task(&miroir, &created.json());

    // 300 documents per encoding, so every node gets some of each batch.
    let batch = |base: usize, word: &str| -> Vec<u8> {
        let docs: Vec<Value> = (base..base + 300)
            .map(|i| json!({"id": i, "title": format!("{word} movie {i}")}))
            .collect();
        serde_json::to_vec(&docs).unwrap()
    };
    let encoded: [(&str, &str, Vec<u8>); 3] = [
        ("gzip", "gzipped", gzip(&batch(0, "gzipped"))),
        ("deflate", "deflated", deflate(&batch(1000, "deflated"))),
        ("br", "brotlied", brotli(&batch(2000, "brotlied"))),
    ];
    for (encoding, _, body) in &encoded {
        let reply = send_encoded(
            &miroir,
            "POST",
            "/indexes/movies/documents",
            "application/json",
            encoding,
            body,
        );
        assert_eq!(reply.status, 202, "{encoding}: {}", reply.text());
        wait_task(&miroir, &reply.json());
    }
    // NDJSON and CSV too, and PUT (an update).
    let ndjson = b"{\"id\": 5000, \"title\": \"ndjson lines\"}\n{\"id\": 5001, \"title\": \"ndjson lines\"}\n";
    let reply = send_encoded(
        &miroir,
        "POST",
        "/indexes/movies/documents",
        "application/x-ndjson",
        "gzip",
        &gzip(ndjson),
    );
    assert_eq!(reply.status, 202, "{}", reply.text());
    wait_task(&miroir, &reply.json());
    let csv = b"id,title\n6000,csv rows\n6001,csv rows\n";
    let reply = send_encoded(
        &miroir,
        "PUT",
        "/indexes/movies/documents",
        "text/csv",
        "br",
        &brotli(csv),
    );
    assert_eq!(reply.status, 202, "{}", reply.text());
    wait_task(&miroir, &reply.json());

    // Every document is on its shard's owner (the filter read them to route them) and found.
    let stats = miroir.get("/indexes/movies/stats").json();
    assert_eq!(stats["numberOfDocuments"], 904, "{stats}");
    let held: u64 = cluster
        .node_ids()
        .iter()
        .map(|id| {
            cluster.node_client(id).get("/indexes/movies/stats").json()["numberOfDocuments"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(held, 904, "RF 1: each document once");
    for (encoding, word, _) in &encoded {
        // The search body itself compressed the same way.
        let query = serde_json::to_vec(&json!({"q": word, "limit": 1})).unwrap();
        let body = match *encoding {
            "gzip" => gzip(&query),
            "deflate" => deflate(&query),
            _ => brotli(&query),
        };
        let reply = send_encoded(
            &miroir,
            "POST",
            "/indexes/movies/search",
            "application/json",
            encoding,
            &body,
        );
        assert_eq!(reply.status, 200, "{encoding}: {}", reply.text());
        assert_eq!(reply.json()["estimatedTotalHits"], 300, "{encoding}");
    }
    for word in ["ndjson", "csv"] {
        let found = miroir
            .post("/indexes/movies/search", &json!({"q": word}))
            .json();
        assert_eq!(found["estimatedTotalHits"], 2, "{word}: {found}");
    }

    // Corrupt bodies: refused before any node sees them, in Meilisearch's words (the documents
    // route's payload reader and the JSON routes' word it differently).
    let corrupt = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbagegarbage".to_vec();
    let cases: [(&str, &str, Vec<u8>, &str); 3] = [
        (
            "/indexes/movies/documents",
            "gzip",
            corrupt.clone(),
            "The provided payload is incomplete and cannot be parsed",
        ),
        (
            "/indexes/movies/search",
            "gzip",
            corrupt,
            "Error that occur during reading payload: payload reached EOF before completing: Some(Custom { kind: InvalidInput, error: \"corrupt deflate stream\" })",
        ),
        (
            "/indexes/movies/search",
            "br",
            b"garbage-not-brotli-at-all".to_vec(),
            "Error that occur during reading payload: payload reached EOF before completing: Some(Custom { kind: InvalidData, error: \"Invalid Data\" })",
        ),
    ];
    let node = cluster.node_client("n0");
    for (path, encoding, body, message) in cases {
        let through = send_encoded(&miroir, "POST", path, "application/json", encoding, &body);
        let what = format!("{encoding} {path}");
        assert_eq!(
            through.pair(),
            (
                400,
                json!({
                    "message": message,
                    "code": "bad_request",
                    "type": "invalid_request",
                    "link": "https://docs.meilisearch.com/errors#bad_request",
                })
            ),
            "{what}"
        );
        if real_nodes() {
            let direct = send_encoded(&node, "POST", path, "application/json", encoding, &body);
            assert_eq!(direct.pair(), through.pair(), "{what}: node, then Miroir");
        }
    }
    // An encoding Meilisearch does not decode leaves the body as it is: malformed.
    let reply = send_encoded(
        &miroir,
        "POST",
        "/indexes/movies/documents",
        "application/json",
        "zstd",
        &gzip(b"[]"),
    );
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["code"], "malformed_payload");
    assert_eq!(
        miroir.get("/indexes/movies/stats").json()["numberOfDocuments"],
        904,
        "nothing refused was written"
    );
}

/// The same through the listener the control plane builds over xDS (the tests above use the
/// static one `miroir-envoy-config` renders): neither needs anything for CORS or compression, as
/// the filter does both.
#[test]
fn the_control_planes_listener_answers_browsers_alike() {
    let fleet = Fleet::start(
        "browsers_fleet",
        three_nodes(1),
        FleetOptions {
            envoys: 1,
            ..FleetOptions::default()
        },
    );
    let miroir = fleet.client(0);
    let preflight = options(
        &miroir.clone().without_auth(),
        "/indexes/movies/documents",
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "PUT"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
    );
    assert_eq!(preflight.status, 200, "{}", preflight.text());
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));

    let created = miroir.post("/indexes", &json!({"uid": "movies", "primaryKey": "id"}));
    wait_task(&miroir, &created.json());
    let docs: Vec<Value> = (0..50)
        .map(|i| json!({"id": i, "title": format!("fleet movie {i}")}))
        .collect();
    let reply = send_encoded(
        &miroir.clone().with_header("origin", ORIGIN),
        "POST",
        "/indexes/movies/documents",
        "application/json",
        "gzip",
        &gzip(&serde_json::to_vec(&docs).unwrap()),
    );
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    wait_task(&miroir, &reply.json());
    let found = miroir
        .post("/indexes/movies/search", &json!({"q": "fleet"}))
        .json();
    assert_eq!(found["estimatedTotalHits"], 50, "{found}");
}
