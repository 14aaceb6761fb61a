use super::*;

const VALID: &str = r#"{"topology":{"epoch":3,"shards":8,"replicationFactor":1,
  "nodes":[{"id":"n0","address":"127.0.0.1:7700","group":"g0"},
           {"id":"n1","address":"127.0.0.1:7701","group":"g0","state":"failed"}]}}"#;

#[test]
fn parses_the_plugin_configuration() {
    let config = PluginConfig::from_json(VALID.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.topology.epoch, 3);
    assert_eq!(config.node_timeout_ms, 30_000);
    assert_eq!(config.topology.nodes[1].state, NodeState::Failed);
    let again = PluginConfig::from_json(config.to_json().as_bytes());
    assert_eq!(again, Ok(config));
}

#[test]
fn golden_json() {
    let config = PluginConfig::from_json(VALID.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.to_json(),
        r#"{"topology":{"epoch":3,"shards":8,"replicationFactor":1,"nodes":[{"id":"n0","address":"127.0.0.1:7700","group":"g0","state":"active"},{"id":"n1","address":"127.0.0.1:7701","group":"g0","state":"failed"}]},"nodeTimeoutMs":30000}"#
    );
}

fn rejects(json: &str, needle: &str) {
    match PluginConfig::from_json(json.as_bytes()) {
        Ok(_) => panic!("accepted {json}"),
        Err(e) => assert!(e.0.contains(needle), "`{e}` lacks `{needle}`"),
    }
}

#[test]
fn rejects_invalid_topologies() {
    let t = |body: &str| format!(r#"{{"topology":{{"epoch":1,{body}}}}}"#);
    let n0 = r#"{"id":"n0","address":"h:1","group":"g"}"#;
    rejects(
        &t(&format!(
            r#""shards":0,"replicationFactor":1,"nodes":[{n0}]"#
        )),
        "shards",
    );
    rejects(
        &t(&format!(
            r#""shards":4,"replicationFactor":0,"nodes":[{n0}]"#
        )),
        "replicationFactor",
    );
    rejects(
        &t(&format!(
            r#""shards":4,"replicationFactor":2,"nodes":[{n0}]"#
        )),
        "fewer than",
    );
    rejects(
        &t(r#""shards":4,"replicationFactor":1,"nodes":[]"#),
        "at least one node",
    );
    rejects(
        &t(&format!(
            r#""shards":4,"replicationFactor":1,"nodes":[{n0},{n0}]"#
        )),
        "twice",
    );
    rejects(
        &t(
            r#""shards":4,"replicationFactor":1,"nodes":[{"id":"n 0","address":"h:1","group":"g"}]"#,
        ),
        "node id",
    );
    rejects(
        &t(
            r#""shards":4,"replicationFactor":1,"nodes":[{"id":"n0","address":"nohost","group":"g"}]"#,
        ),
        "host:port",
    );
    rejects(r#"{"topology":{}}"#, "invalid JSON");
    rejects(
        &t(&format!(
            r#""shards":4,"replicationFactor":1,"nodes":[{n0}],"extra":1"#
        )),
        "unknown field",
    );
}
