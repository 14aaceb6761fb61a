use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use miroir_topology::{Node, NodeState, PluginConfig, Topology};
use serde_json::Value;

use super::*;

fn topology() -> Topology {
    let node = |id: &str, port: u16, group: &str| Node {
        id: id.into(),
        address: format!("127.0.0.1:{port}"),
        group: group.into(),
        state: NodeState::Active,
    };
    Topology {
        epoch: 7,
        shards: 8,
        shard_map: Default::default(),
        replication_factor: 1,
        nodes: vec![
            node("n1", 7701, "a"),
            node("n2", 7702, "a"),
            node("n3", 7703, "b"),
        ],
    }
}

fn opts(config_dir: &Path) -> RenderOptions {
    RenderOptions {
        listen: "127.0.0.1:7700".parse().unwrap(),
        admin: "127.0.0.1:9901".parse().unwrap(),
        wasm_path: PathBuf::from("/opt/miroir/miroir_filter.wasm"),
        config_dir: config_dir.to_path_buf(),
        node_timeout_ms: 5_000,
        node_api_key: None,
    }
}

fn hcm(bootstrap: &Value) -> &Value {
    &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

#[test]
fn clusters_are_named_by_node_id() {
    let rendered = render(&topology(), &opts(Path::new("/cfg")));
    let clusters = rendered.bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = clusters
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["miroir-node-n1", "miroir-node-n2", "miroir-node-n3"]
    );
    let n2 = &clusters[1];
    assert_eq!(n2["type"], "STATIC");
    assert_eq!(n2["connect_timeout"], "1s");
    assert_eq!(n2["load_assignment"]["cluster_name"], "miroir-node-n2");
    let addr = &n2["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"];
    assert_eq!(addr["address"], "127.0.0.1");
    assert_eq!(addr["port_value"], 7702);
    assert_eq!(
        n2["common_lb_config"]["healthy_panic_threshold"]["value"].as_f64(),
        Some(0.0)
    );
    assert_eq!(n2["outlier_detection"]["max_ejection_percent"], 100);
    assert_eq!(
        n2["outlier_detection"]["enforcing_consecutive_gateway_failure"],
        100
    );
    let thresholds = &n2["circuit_breakers"]["thresholds"][0];
    for field in ["max_connections", "max_pending_requests", "max_requests"] {
        assert_eq!(thresholds[field], 1024, "{field}");
    }
    let http = &n2["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert!(http["explicit_http_config"]["http_protocol_options"].is_object());
}

#[test]
fn the_only_route_is_the_guard() {
    let rendered = render(&topology(), &opts(Path::new("/cfg")));
    let routes = hcm(&rendered.bootstrap)["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    assert_eq!(routes.len(), 1);
    let route = &routes[0];
    assert_eq!(route["match"]["prefix"], "/");
    assert!(route.get("route").is_none(), "the guard must never proxy");
    assert_eq!(route["direct_response"]["status"], 503);
    let body: Value = serde_json::from_str(
        route["direct_response"]["body"]["inline_string"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["code"], "miroir_filter_unavailable");
    assert_eq!(body["type"], "system");
    assert_eq!(
        route["response_headers_to_add"][0]["header"]["value"],
        "application/json"
    );
}

#[test]
fn filter_chain_is_ecds_miroir_then_router() {
    let rendered = render(&topology(), &opts(Path::new("/cfg")));
    let hcm = hcm(&rendered.bootstrap);
    let filters = hcm["http_filters"].as_array().unwrap();
    assert_eq!(filters.len(), 2);
    assert_eq!(filters[0]["name"], "miroir");
    let source = &filters[0]["config_discovery"]["config_source"];
    assert_eq!(
        source["path_config_source"]["path"],
        "/cfg/ecds/miroir-filter.json"
    );
    assert_eq!(
        source["path_config_source"]["watched_directory"]["path"],
        "/cfg/ecds"
    );
    assert_eq!(
        filters[0]["config_discovery"]["type_urls"][0],
        WASM_TYPE_URL
    );
    assert_eq!(filters[1]["name"], "envoy.filters.http.router");
    assert!(hcm["request_timeout"].as_str().unwrap().ends_with('s'));
    assert!(hcm["stream_idle_timeout"].as_str().unwrap().ends_with('s'));
}

#[test]
fn limits_fit_meilisearch_payloads() {
    let rendered = render(&topology(), &opts(Path::new("/cfg")));
    let listener = &rendered.bootstrap["static_resources"]["listeners"][0];
    let limit = listener["per_connection_buffer_limit_bytes"]
        .as_u64()
        .unwrap();
    assert!(
        limit > miroir_topology::limits::PAYLOAD_LIMIT_BYTES,
        "{limit}"
    );
    let runtime = &rendered.bootstrap["layered_runtime"]["layers"][0]["static_layer"];
    let async_limit = runtime["http.async_response_buffer_limit"]
        .as_u64()
        .unwrap();
    assert!(async_limit >= 128 * 1024 * 1024, "{async_limit}");
    assert!(rendered.bootstrap["layered_runtime"]["layers"][1]["admin_layer"].is_object());
    assert_eq!(
        rendered.bootstrap["admin"]["address"]["socket_address"]["address"],
        "127.0.0.1"
    );
    assert!(rendered.bootstrap["node"]["id"].is_string());
    assert_eq!(rendered.bootstrap["node"]["cluster"], "miroir");
}

#[test]
fn ecds_file_carries_the_plugin_config() {
    let topo = topology();
    let rendered = render(&topo, &opts(Path::new("/cfg")));
    let ecds = &rendered.filter_config;
    assert_eq!(ecds["version_info"], "7");
    let resource = &ecds["resources"][0];
    assert_eq!(resource["@type"], EXTENSION_CONFIG_TYPE_URL);
    assert_eq!(resource["name"], "miroir");
    assert_eq!(resource["typed_config"]["@type"], WASM_TYPE_URL);
    let config = &resource["typed_config"]["config"];
    assert_eq!(config["root_id"], "miroir");
    assert_eq!(config["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
    assert_eq!(
        config["vm_config"]["code"]["local"]["filename"],
        "/opt/miroir/miroir_filter.wasm"
    );
    assert_eq!(config["allow_on_headers_stop_iteration"], true);
    assert_eq!(config["failure_policy"], "FAIL_RELOAD");
    let plugin = PluginConfig::from_json(
        config["configuration"]["value"]
            .as_str()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(plugin.topology, topo);
    assert_eq!(plugin.node_timeout_ms, 5_000);
}

#[test]
fn timeouts_outlast_node_calls() {
    let o = opts(Path::new("/cfg"));
    assert!(o.stream_idle_timeout_ms() > o.node_timeout_ms);
    assert!(o.request_timeout_ms() > o.stream_idle_timeout_ms());
    assert_eq!(duration(1_500), "1.500s");
    assert_eq!(duration(80_000), "80s");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("miroir-envoy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn write_replaces_the_ecds_file_atomically() {
    let dir = scratch("write");
    let rendered = render(&topology(), &opts(&dir));
    let bootstrap = rendered.write(&dir).unwrap();
    assert_eq!(bootstrap, dir.join("envoy.json"));
    let mut next = topology();
    next.epoch = 8;
    let path = write_filter_config(&dir.join("ecds"), &filter_config(&next, &opts(&dir))).unwrap();
    let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(written["version_info"], "8");
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("ecds"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["miroir-filter.json"], "no temp files left");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn envoy_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(bin);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/envoy")
}

/// Envoy's own schema check of the rendered bootstrap: catches misspelled fields and wrong enum
/// values that the structural tests above cannot.
#[test]
fn envoy_validates_the_rendered_bootstrap() {
    let bin = envoy_bin();
    assert!(
        bin.exists(),
        "Envoy not found at {} (set ENVOY_BIN or run `make setup`)",
        bin.display()
    );
    let dir = scratch("validate");
    let mut o = opts(&dir);
    o.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    o.admin = SocketAddr::from(([127, 0, 0, 1], 0));
    // A node behind a name: a STRICT_DNS cluster (Envoy refuses a name in a STATIC one).
    let mut topology = topology();
    topology.nodes.push(Node {
        id: "n4".into(),
        address: "meili-4.search.svc:7700".into(),
        group: "b".into(),
        state: NodeState::Active,
    });
    let bootstrap = render(&topology, &o).write(&dir).unwrap();
    let output = Command::new(&bin)
        .args(["--mode", "validate", "-l", "warn", "-c"])
        .arg(&bootstrap)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "envoy --mode validate rejected {}:\n{}{}",
        bootstrap.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--mode validate` does not read ECDS files, so check the filter config's field names by
/// inlining it into the HCM. Validation loads the module, hence needs a real one.
#[test]
fn envoy_validates_the_filter_config_inlined() {
    let bin = envoy_bin();
    assert!(
        bin.exists(),
        "Envoy not found at {} (set ENVOY_BIN or run `make setup`)",
        bin.display()
    );
    let wasm = std::env::var_os("MIROIR_FILTER_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
                .join("wasm32-wasip1/release/miroir_filter.wasm")
        });
    assert!(wasm.exists(), "{} not built (make wasm)", wasm.display());
    let dir = scratch("validate-inline");
    let mut o = opts(&dir);
    o.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    o.admin = SocketAddr::from(([127, 0, 0, 1], 0));
    o.wasm_path = std::path::absolute(&wasm).unwrap();
    let mut rendered = render(&topology(), &o);
    let typed_config = rendered.filter_config["resources"][0]["typed_config"].clone();
    let filters = rendered.bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]
        ["filters"][0]["typed_config"]["http_filters"]
        .as_array_mut()
        .unwrap();
    filters[0] = serde_json::json!({"name": FILTER_NAME, "typed_config": typed_config});
    let bootstrap = rendered.write(&dir).unwrap();
    let output = Command::new(&bin)
        .args(["--mode", "validate", "-l", "warn", "-c"])
        .arg(&bootstrap)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "envoy --mode validate rejected the inlined filter config {}:\n{}{}",
        bootstrap.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn ads_opts() -> AdsBootstrapOptions {
    AdsBootstrapOptions {
        node_id: "envoy-1".into(),
        cluster: "miroir".into(),
        xds: "127.0.0.1:18000".into(),
        admin: "127.0.0.1:9901".parse().unwrap(),
        xds_token: None,
    }
}

#[test]
fn ads_bootstrap_knows_only_the_control_plane() {
    let b = ads_bootstrap(&ads_opts());
    assert_eq!(b["node"]["id"], "envoy-1");
    assert_eq!(b["node"]["cluster"], "miroir");
    assert_eq!(
        b["admin"]["address"]["socket_address"]["address"],
        "127.0.0.1"
    );
    assert!(b["static_resources"].get("listeners").is_none());
    let clusters = b["static_resources"]["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1);
    let xds = &clusters[0];
    assert_eq!(xds["name"], XDS_CLUSTER);
    assert_eq!(xds["type"], "STATIC");
    let addr = &xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"];
    assert_eq!(addr["address"], "127.0.0.1");
    assert_eq!(addr["port_value"], 18000);
    let http = &xds["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"];
    assert!(
        http["http2_protocol_options"].is_object(),
        "gRPC needs HTTP/2"
    );

    let dynamic = &b["dynamic_resources"];
    let ads = &dynamic["ads_config"];
    assert_eq!(ads["api_type"], "GRPC");
    assert_eq!(ads["transport_api_version"], "V3");
    assert_eq!(
        ads["grpc_services"][0]["envoy_grpc"]["cluster_name"],
        XDS_CLUSTER
    );
    for source in ["cds_config", "lds_config"] {
        assert!(dynamic[source]["ads"].is_object(), "{source}");
        assert_eq!(dynamic[source]["resource_api_version"], "V3", "{source}");
    }
    // Same limits as the static bootstrap.
    let static_bootstrap = bootstrap(&topology(), &opts(Path::new("/cfg")));
    assert_eq!(b["layered_runtime"], static_bootstrap["layered_runtime"]);
    assert_eq!(b["overload_manager"], static_bootstrap["overload_manager"]);
    assert_eq!(b["stats_config"], static_bootstrap["stats_config"]);
}

#[test]
fn every_label_of_the_filters_metrics_has_a_stats_tag() {
    let b = bootstrap(&topology(), &opts(Path::new("/cfg")));
    let tags: Vec<(&str, &str)> = b["stats_config"]["stats_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tag_name"].as_str().unwrap(),
                t["regex"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        [
            ("route", r"(route=\.=(.*?);\.;)"),
            ("status", r"(status=\.=(.*?);\.;)"),
            ("node", r"(node=\.=(.*?);\.;)"),
            ("version", r"(version=\.=(.*?);\.;)"),
        ]
    );
}

#[test]
fn ads_bootstrap_presents_the_xds_token() {
    assert!(
        ads_bootstrap(&ads_opts())["dynamic_resources"]["ads_config"]["grpc_services"][0]
            .get("initial_metadata")
            .is_none()
    );
    let mut o = ads_opts();
    o.xds_token = Some("s3cret".into());
    let b = ads_bootstrap(&o);
    assert_eq!(
        b["dynamic_resources"]["ads_config"]["grpc_services"][0]["initial_metadata"],
        serde_json::json!([{"key": "authorization", "value": "Bearer s3cret"}])
    );
}

#[cfg(unix)]
#[test]
fn written_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("private");
    let path = dir.join("envoy.json");
    write_atomically(&path, b"{}").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ads_bootstrap_resolves_a_named_control_plane() {
    let mut o = ads_opts();
    o.xds = "miroir-control-plane.miroir.svc:18000".into();
    let b = ads_bootstrap(&o);
    let xds = &b["static_resources"]["clusters"][0];
    assert_eq!(xds["type"], "STRICT_DNS");
    let addr = &xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"];
    assert_eq!(addr["address"], "miroir-control-plane.miroir.svc");
}

#[test]
fn envoy_validates_the_ads_bootstrap() {
    let bin = envoy_bin();
    assert!(
        bin.exists(),
        "Envoy not found at {} (set ENVOY_BIN or run `make setup`)",
        bin.display()
    );
    let dir = scratch("validate-ads");
    let mut o = ads_opts();
    o.admin = SocketAddr::from(([127, 0, 0, 1], 0));
    o.xds_token = Some("xds-token".into());
    let path = dir.join(BOOTSTRAP_FILE);
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&ads_bootstrap(&o)).unwrap(),
    )
    .unwrap();
    let output = Command::new(&bin)
        .args(["--mode", "validate", "-l", "warn", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "envoy --mode validate rejected {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
