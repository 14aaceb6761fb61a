use std::net::SocketAddr;
use std::path::PathBuf;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::async_data_source::Specifier as CodeSpecifier;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::health_check::HealthChecker;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as NetworkConfigType;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::wasm::v3::plugin_config::Vm;
use envoy_types::pb::envoy::extensions::wasm::v3::FailurePolicy;
use envoy_types::pb::google::protobuf::{Any, StringValue};
use miroir_topology::{Node, NodeState, PluginConfig, Topology, CONTROL_PLANE_CLUSTER};
use prost::{Message, Name};

use super::*;
use crate::{
    version, HealthCheckOptions, WasmSource, FILTER_NAME, LISTENER_NAME, WASM_FILTER_TYPE_URL,
};

fn options() -> ResourceOptions {
    ResourceOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
        wasm: WasmSource::Local(PathBuf::from("/opt/miroir/miroir_filter.wasm")),
        control_plane_http: "control-plane.miroir:7701".into(),
        health: HealthCheckOptions {
            interval_ms: 2_000,
            timeout_ms: 500,
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        },
        node_timeout_ms: 5_000,
    }
}

fn config(epoch: u64) -> PluginConfig {
    let node = |id: &str, address: &str| Node {
        id: id.into(),
        address: address.into(),
        group: "g".into(),
        state: NodeState::Active,
    };
    PluginConfig {
        topology: Topology {
            epoch,
            shards: 8,
            shard_map: Default::default(),
            replication_factor: 1,
            nodes: vec![
                node("n1", "10.0.0.1:7700"),
                node("n2", "meili-2.local:7700"),
            ],
        },
        node_timeout_ms: 30_000,
        node_api_key: Some("key".into()),
        control_plane: None,
        indexes: Default::default(),
    }
}

fn decode<M: Message + Name + Default>(any: &Any) -> M {
    assert_eq!(any.type_url, M::type_url());
    M::decode(any.value.as_slice()).unwrap()
}

fn cluster(built: &Built, name: &str) -> Cluster {
    decode(&built.clusters.get(name).unwrap().body)
}

#[test]
fn a_cluster_per_node_plus_the_control_plane() {
    let built = build(&config(1), &options()).unwrap();
    assert_eq!(
        built.clusters.names().collect::<Vec<_>>(),
        ["miroir-control-plane", "miroir-node-n1", "miroir-node-n2"]
    );
    let n1 = cluster(&built, "miroir-node-n1");
    assert_eq!(
        n1.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32))
    );
    let n2 = cluster(&built, "miroir-node-n2");
    assert_eq!(
        n2.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32)),
        "a name is resolved"
    );
    let cp = cluster(&built, CONTROL_PLANE_CLUSTER);
    assert_eq!(
        cp.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32))
    );
    assert!(cp.health_checks.is_empty());
}

#[test]
fn node_clusters_eject_and_fail_fast() {
    let built = build(&config(1), &options()).unwrap();
    let n1 = cluster(&built, "miroir-node-n1");
    let hc = &n1.health_checks[0];
    assert_eq!(hc.interval, millis(2_000));
    assert_eq!(hc.no_traffic_interval, millis(2_000));
    assert_eq!(hc.timeout, millis(500));
    assert_eq!(hc.unhealthy_threshold, uint32(3));
    assert_eq!(hc.healthy_threshold, uint32(2));
    match &hc.health_checker {
        Some(HealthChecker::HttpHealthCheck(http)) => assert_eq!(http.path, "/health"),
        other => panic!("{other:?}"),
    }
    let od = n1.outlier_detection.unwrap();
    assert_eq!(od.max_ejection_percent, uint32(100));
    assert_eq!(od.consecutive_5xx, uint32(5));
    assert_eq!(od.consecutive_gateway_failure, uint32(3));
    assert_eq!(od.enforcing_consecutive_gateway_failure, uint32(100));
    let panic = n1
        .common_lb_config
        .unwrap()
        .healthy_panic_threshold
        .unwrap();
    assert_eq!(panic.value, 0.0);
    let thresholds = &n1.circuit_breakers.unwrap().thresholds[0];
    assert_eq!(thresholds.max_connections, uint32(1024));
    assert_eq!(thresholds.max_pending_requests, uint32(1024));
    assert_eq!(thresholds.max_requests, uint32(1024));
    assert!(n1
        .typed_extension_protocol_options
        .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"));
    let endpoint = n1.load_assignment.unwrap();
    assert_eq!(endpoint.cluster_name, "miroir-node-n1");
}

#[test]
fn the_listener_discovers_the_filter_over_ads_behind_the_guard() {
    let built = build(&config(1), &options()).unwrap();
    let listener: Listener = decode(&built.listeners.get(LISTENER_NAME).unwrap().body);
    // The listener holds the largest body the filter accepts, plus headers.
    let buffer = listener.per_connection_buffer_limit_bytes.unwrap().value;
    assert!(
        u64::from(buffer) > miroir_topology::limits::PAYLOAD_LIMIT_BYTES,
        "{buffer}"
    );
    let Some(NetworkConfigType::TypedConfig(any)) =
        &listener.filter_chains[0].filters[0].config_type
    else {
        panic!("HCM")
    };
    let hcm: HttpConnectionManager = decode(any);
    // The plugin configuration's node timeout (30 s) wins over the options' floor (5 s).
    assert_eq!(hcm.request_timeout, millis(180_000));
    assert_eq!(hcm.stream_idle_timeout, millis(90_000));
    let names: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, [FILTER_NAME, "envoy.filters.http.router"]);
    let Some(HttpConfigType::ConfigDiscovery(discovery)) = &hcm.http_filters[0].config_type else {
        panic!("ECDS")
    };
    assert_eq!(discovery.type_urls, [WASM_FILTER_TYPE_URL]);
    assert!(matches!(
        discovery
            .config_source
            .as_ref()
            .unwrap()
            .config_source_specifier,
        Some(ConfigSourceSpecifier::Ads(_))
    ));
    let Some(RouteSpecifier::RouteConfig(routes)) = &hcm.route_specifier else {
        panic!("inline routes")
    };
    let route = &routes.virtual_hosts[0].routes[0];
    match &route.action {
        Some(Action::DirectResponse(direct)) => assert_eq!(direct.status, 503),
        other => panic!("guard: {other:?}"),
    }
}

#[test]
fn the_filter_config_carries_the_plugin_config() {
    let config = config(7);
    let built = build(&config, &options()).unwrap();
    assert!(built.filter.version().starts_with("epoch-7-"));
    let extension: TypedExtensionConfig = decode(&built.filter.get(FILTER_NAME).unwrap().body);
    assert_eq!(extension.name, FILTER_NAME);
    let wasm: Wasm = decode(extension.typed_config.as_ref().unwrap());
    let plugin = wasm.config.unwrap();
    assert_eq!(plugin.root_id, FILTER_NAME);
    assert_eq!(plugin.failure_policy, FailurePolicy::FailReload as i32);
    assert!(plugin.allow_on_headers_stop_iteration.unwrap().value);
    let text: StringValue = decode(plugin.configuration.as_ref().unwrap());
    assert_eq!(text.value, config.to_json());
    let Some(Vm::VmConfig(vm)) = plugin.vm else {
        panic!("vm")
    };
    assert_eq!(vm.vm_id, FILTER_NAME);
    assert_eq!(vm.runtime, "envoy.wasm.runtime.v8");
    assert!(matches!(
        vm.code.unwrap().specifier,
        Some(CodeSpecifier::Local(_))
    ));
}

#[test]
fn remote_code_is_fetched_from_the_control_plane_and_checked() {
    let wasm = WasmSource::Remote {
        uri: "http://control-plane.miroir:7701/_miroir/wasm/abc.wasm".into(),
        sha256: "ab".repeat(32),
    };
    let resource = filter_config(&config(1), &wasm);
    let extension: TypedExtensionConfig = decode(&resource.body);
    let wasm_config: Wasm = decode(extension.typed_config.as_ref().unwrap());
    let Some(Vm::VmConfig(vm)) = wasm_config.config.unwrap().vm else {
        panic!("vm")
    };
    let Some(CodeSpecifier::Remote(remote)) = vm.code.unwrap().specifier else {
        panic!("remote")
    };
    assert_eq!(remote.sha256, "ab".repeat(32));
    let uri = remote.http_uri.unwrap();
    assert_eq!(
        uri.http_upstream_type,
        Some(HttpUpstreamType::Cluster(CONTROL_PLANE_CLUSTER.into()))
    );
    assert_ne!(
        resource.version,
        filter_config(&config(1), &options().wasm).version,
        "another binary is another version"
    );
}

#[test]
fn versions_come_from_the_model() {
    let a = build(&config(3), &options()).unwrap();
    let b = build(&config(3), &options()).unwrap();
    assert_eq!(a, b, "same model, same versions");
    let next = build(&config(4), &options()).unwrap();
    assert_eq!(a.clusters.version(), next.clusters.version());
    assert_eq!(a.listeners.version(), next.listeners.version());
    assert_ne!(a.filter.version(), next.filter.version());
    assert_eq!(version::epoch_of(next.filter.version()), Some(4));
    let mut moved = config(3);
    moved.topology.nodes[0].address = "10.0.0.9:7700".into();
    let moved = build(&moved, &options()).unwrap();
    assert_ne!(a.clusters.version(), moved.clusters.version());
    assert_eq!(
        a.clusters.get("miroir-node-n2").unwrap().version,
        moved.clusters.get("miroir-node-n2").unwrap().version,
        "untouched nodes keep their version"
    );
}

#[test]
fn bad_addresses_are_build_errors() {
    let mut bad = config(1);
    bad.topology.nodes[0].address = "10.0.0.1".into();
    assert!(build(&bad, &options()).is_err());
    let mut opts = options();
    opts.control_plane_http = "nowhere:http".into();
    assert!(build(&config(1), &opts).is_err());
    assert_eq!(host_port("[::1]:7700").unwrap(), ("::1".to_string(), 7700));
}
