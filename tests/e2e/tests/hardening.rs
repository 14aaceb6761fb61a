//! Client bytes that must not crash a worker's Wasm VM, through a real Envoy.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use miroir_e2e::Cluster;
use support::three_nodes;

/// One HTTP/1.1 request written byte for byte (no client library sends a non-UTF-8 header);
/// the status code Envoy answered, if it answered.
fn raw_request(url: &str, request: &[u8]) -> Option<u16> {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(request).ok()?;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    text.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_header_that_is_not_utf8_is_answered_and_the_vm_lives_on() {
    let cluster = Cluster::start("hardening_non_utf8_header", three_nodes(1));
    let key = cluster.master_key().to_string();
    let requests: Vec<Vec<u8>> = vec![
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: \xff\xfe\r\nConnection: close\r\n\r\n".to_vec(),
        [
            format!("GET /indexes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n").as_bytes(),
            b"X-Note: caf\xe9\r\nConnection: close\r\n\r\n",
        ]
        .concat(),
        b"GET /indexes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\r\nConnection: close\r\n\r\n".to_vec(),
    ];
    // Several rounds: each connection may land on another worker (and VM).
    for _ in 0..4 {
        for request in &requests {
            let status = raw_request(&cluster.envoy_url(), request);
            assert!(
                status.is_some(),
                "Envoy gave no answer; see {}",
                cluster.dir().display()
            );
        }
    }
    assert_eq!(
        raw_request(&cluster.envoy_url(), requests[0].as_slice()),
        Some(200),
        "/health is public whatever the other headers"
    );
    // A bad key is refused as one node refuses it, not with a crash.
    let refused = raw_request(&cluster.envoy_url(), requests[2].as_slice());
    assert!(matches!(refused, Some(401 | 403)), "{refused:?}");
    // Every worker still serves.
    for _ in 0..8 {
        let reply = cluster.client().get("/indexes");
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let log = cluster.envoy_log();
    for trap in ["panicked", "Uncaught", "Function: proxy_on_"] {
        assert!(
            !log.contains(trap),
            "Envoy logged a VM failure ({trap}):\n{log}"
        );
    }
}

/// An HTTP/1.1 request with a body, the path and header values written as raw bytes.
fn with_body(method: &str, path: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut request = [method.as_bytes(), b" ", path, b" HTTP/1.1\r\nHost: x\r\n"].concat();
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    request.extend_from_slice(body);
    request
}

/// What the fuzz targets (fuzz/, docs/fuzzing.md) feed the filter, as clients can send it:
/// garbage and deeply nested JSON, huge bodies, CSV and NDJSON quirks, odd content types,
/// non-UTF-8 paths and query strings, numbers past every integer type.
fn nasty_requests(key: &str) -> Vec<(&'static str, Vec<u8>)> {
    let auth = format!("Bearer {key}");
    let auth = auth.as_bytes();
    let json: &[u8] = b"application/json";
    let ndjson: &[u8] = b"application/x-ndjson";
    let csv: &[u8] = b"text/csv";
    let deep_array = "[".repeat(100_000);
    let deep_object = format!("{}1{}", "{\"q\":".repeat(20_000), "}".repeat(20_000));
    let many_queries = format!(
        "{{\"federation\":{{\"limit\":3}},\"queries\":[{}{{\"indexUid\":\"movies\"}}]}}",
        "{\"indexUid\":\"movies\",\"q\":\"kw\",\"facets\":[\"genre\"]},".repeat(2_000)
    );
    let long_string = format!("{{\"q\":\"{}\",\"limit\":1}}", "\u{e9}".repeat(1_000_000));
    let many_documents = format!(
        "[{}{{\"id\":\"last\"}}]",
        "{\"id\":\"x\",\"_vectors\":{\"a\":[1e308,-0.0]},\"n\":{\"a\":[[[{}]]]}},".repeat(20_000)
    );
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let search = b"/indexes/movies/search".as_slice();
    let documents = b"/indexes/movies/documents".as_slice();
    let h = |ct: &'static [u8]| vec![("Authorization", auth), ("Content-Type", ct)];
    vec![
        ("deeply nested array", with_body("POST", search, &h(json), deep_array.as_bytes())),
        ("deeply nested object", with_body("POST", search, &h(json), deep_object.as_bytes())),
        ("2000 federated queries", with_body("POST", b"/multi-search", &h(json), many_queries.as_bytes())),
        ("a 2 MB query", with_body("POST", search, &h(json), long_string.as_bytes())),
        ("garbage search body", with_body("POST", search, &h(json), &garbage)),
        ("garbage documents", with_body("POST", documents, &h(json), &garbage)),
        ("garbage NDJSON", with_body("POST", documents, &h(ndjson), &garbage)),
        ("garbage CSV", with_body("POST", documents, &h(csv), &garbage)),
        ("20000 odd documents", with_body("POST", documents, &h(json), many_documents.as_bytes())),
        ("deeply nested documents", with_body("POST", documents, &h(json), deep_array.as_bytes())),
        ("NDJSON lone surrogate and blank lines", with_body("POST", documents, &h(ndjson), b"{\"id\":1,\"t\":\"\\ud83d`\"}\n\n\r\n{\"id\":2}\n{\"id\":")),
        ("NDJSON scalars", with_body("POST", documents, &h(ndjson), b"1\n\"a\"\n[]\nnull\n")),
        ("CSV unbalanced quote", with_body("POST", documents, &h(csv), b"id,title\n1,\"never closed\n2,x\n")),
        ("CSV ragged rows and a BOM", with_body("POST", documents, &h(csv), b"\xef\xbb\xbfid:number,a:boolean\n1,true,extra\n2\n,\n")),
        ("CSV typed number out of range", with_body("POST", documents, &h(csv), b"id:number,n:number\n18446744073709551616,1e999\n-9223372036854775809,x\n")),
        ("CSV multi-byte delimiter", with_body("POST", b"/indexes/movies/documents?csvDelimiter=%F0%9F%98%80", &h(csv), "id\u{1f600}t\n1\u{1f600}a\n".as_bytes())),
        ("CSV quote as delimiter", with_body("POST", b"/indexes/movies/documents?csvDelimiter=%22", &h(csv), b"id\"t\n1\"a\"\"b\n")),
        ("CSV invalid UTF-8", with_body("POST", documents, &h(csv), b"id,t\n1,\xff\xfe\n")),
        ("odd content type", with_body("POST", documents, &h(b"multipart/form-data; boundary=--x"), b"--x\r\n\r\n[]\r\n--x--")),
        ("content type parameters only", with_body("POST", documents, &h(b";;;charset=utf-8"), b"[{\"id\":1}]")),
        ("primary key with dots and NUL", with_body("POST", b"/indexes/movies/documents?primaryKey=a..b%00", &h(json), b"[{\"a\":{\"\":{\"b\":1}}}]")),
        ("delete batch of non-ids", with_body("POST", b"/indexes/movies/documents/delete-batch", &h(json), b"[1e400,{\"a\":1},null,-0,\"\\ud800\",18446744073709551616]")),
        ("facet search oddities", with_body("POST", b"/indexes/movies/facet-search", &h(json), b"{\"facetName\":\"\\ud800\",\"facetQuery\":1,\"filter\":[[[[]]]]}")),
        ("search numbers past u64", with_body("POST", search, &h(json), b"{\"limit\":18446744073709551616,\"offset\":-1,\"page\":1e400,\"hitsPerPage\":0.5}")),
        ("similar without an id", with_body("POST", b"/indexes/movies/similar", &h(json), b"{\"id\":[],\"embedder\":null,\"limit\":4294967296}")),
        ("documents fetch oddities", with_body("POST", b"/indexes/movies/documents/fetch", &h(json), b"{\"fields\":[\"\\u0000\",1],\"limit\":-1,\"sort\":[\"a:sideways\"],\"ids\":[{}]}")),
        ("non-UTF-8 path", with_body("GET", b"/indexes/\xff\xfe/search?q=\xff", &[("Authorization", auth)], b"")),
        ("percent-encoded non-UTF-8 query", with_body("GET", b"/indexes/movies/search?q=%ff%fe&limit=99999999999999999999&offset=-1&facets=%00&sort=%C0", &[("Authorization", auth)], b"")),
        ("documents GET query oddities", with_body("GET", b"/indexes/movies/documents?fields=%00&filter=%22&limit=abc&ids=%ff", &[("Authorization", auth)], b"")),
        ("task filter oddities", with_body("DELETE", b"/tasks?uids=99999999999999999999&afterEnqueuedAt=9999-12-31T23:59:60%2B99:99", &[("Authorization", auth)], b"")),
        ("stats human", with_body("GET", b"/indexes/movies/stats?sizeFormat=human&x=%ff", &[("Authorization", auth)], b"")),
        ("index uid of dots", with_body("POST", b"/indexes/..%2F../documents", &h(json), b"[{\"id\":1}]")),
    ]
}

/// Envoy's Wasm stats: how many VMs are alive, and how many were ever created.
fn wasm_vms(cluster: &Cluster) -> (Option<u64>, Option<u64>) {
    (
        cluster.envoy_stat("wasm.envoy.wasm.runtime.v8.active"),
        cluster.envoy_stat("wasm.envoy.wasm.runtime.v8.created"),
    )
}

#[test]
fn nasty_inputs_found_by_the_fuzzers_never_trap_the_vm() {
    let cluster = Cluster::start("hardening_nasty_inputs", three_nodes(1));
    let client = cluster.client();
    support::create_movies(&client);
    support::add_in_batches(&client, &support::corpus(30), 30);
    let (active_before, created_before) = wasm_vms(&cluster);
    assert!(
        active_before.is_some_and(|n| n > 0),
        "no live Wasm VM in Envoy's stats: {active_before:?}"
    );
    let key = cluster.master_key().to_string();
    // Twice: each connection may land on another worker (and VM).
    for _ in 0..2 {
        for (what, request) in nasty_requests(&key) {
            let status = raw_request(&cluster.envoy_url(), &request);
            assert!(
                status.is_some_and(|s| s != 500 && s != 503),
                "{what}: Envoy answered {status:?}; see {}",
                cluster.dir().display()
            );
        }
    }
    // Every worker still serves, from the same VMs.
    for _ in 0..8 {
        let reply = client.get("/indexes/movies/search?q=kw0001");
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(
        wasm_vms(&cluster),
        (active_before, created_before),
        "a Wasm VM died or was replaced"
    );
    let log = cluster.envoy_log();
    for trap in [
        "panicked",
        "Uncaught",
        "Function: proxy_on_",
        "wasm log: RuntimeError",
    ] {
        assert!(
            !log.contains(trap),
            "Envoy logged a VM failure ({trap}):\n{log}"
        );
    }
}
