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
