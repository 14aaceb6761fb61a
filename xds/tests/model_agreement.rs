//! The static renderer (`miroir-envoy`, JSON) and the xDS builder (protobuf) encode one model
//! (`miroir_envoy::model`): the same topology, encoded both ways, must give the same resources.
//!
//! The comparison parses the static JSON into the protobuf messages with a strict decoder (every
//! JSON key must be known to it, so nothing the renderer writes goes unchecked), then compares
//! whole messages with `==` (so nothing the builder sets goes unchecked either). The one
//! intended difference, where the filter's configuration comes from (a watched file vs ADS), is
//! checked on each side and then aligned.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType as AccessLogConfig;
use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
use envoy_types::pb::envoy::config::core::v3::SubstitutionFormatString;
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::stdout_access_log::AccessLogFormat;
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::StdoutAccessLog;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CommonLbConfig, DiscoveryType, DnsLookupFamily, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, Cluster, OutlierDetection};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::async_data_source::Specifier as CodeSpecifier;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier as DataSpecifier;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::health_check::{HealthChecker, HttpHealthCheck};
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, AsyncDataSource, ConfigSource, DataSource,
    ExtensionConfigSource, HealthCheck, HeaderValue, HeaderValueOption, Http1ProtocolOptions,
    HttpProtocolOptions as CommonHttpOptions, HttpUri, PathConfigSource, RemoteDataSource,
    RetryPolicy, RoutingPriority, SocketAddress, TypedExtensionConfig, WatchedDirectory,
};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as NetworkConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::wasm::v3::plugin_config::Vm;
use envoy_types::pb::envoy::extensions::wasm::v3::{FailurePolicy, PluginConfig, VmConfig};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration, StringValue, UInt32Value};
use envoy_types::util::pack_any;
use miroir_envoy::model;
use miroir_envoy::RenderOptions;
use miroir_topology::{Node, NodeState, PluginConfig as MiroirConfig, Topology};
use miroir_xds::resources::{self, Built};
use miroir_xds::{
    HealthCheckOptions, ResourceOptions, WasmSource, LISTENER_NAME, WASM_FILTER_TYPE_URL,
};
use prost::{Message, Name};
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------------
// A strict decoder of Envoy's JSON (proto field names) into the envoy-types messages: each object
// is consumed key by key and must be empty at the end.

struct Obj {
    map: Map<String, Value>,
    at: String,
}

fn obj(value: &Value, at: &str) -> Obj {
    let Value::Object(map) = value else {
        panic!("{at}: not an object: {value}")
    };
    Obj {
        map: map.clone(),
        at: at.to_string(),
    }
}

impl Obj {
    fn opt(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    fn take(&mut self, key: &str) -> Value {
        self.opt(key)
            .unwrap_or_else(|| panic!("{}: missing `{key}`", self.at))
    }

    fn obj(&mut self, key: &str) -> Obj {
        let at = format!("{}.{key}", self.at);
        obj(&self.take(key), &at)
    }

    fn opt_obj(&mut self, key: &str) -> Option<Obj> {
        let at = format!("{}.{key}", self.at);
        self.opt(key).map(|v| obj(&v, &at))
    }

    /// The one element of the array at `key`.
    fn only(&mut self, key: &str) -> Obj {
        let at = format!("{}.{key}[0]", self.at);
        match self.take(key) {
            Value::Array(items) if items.len() == 1 => obj(&items[0], &at),
            other => panic!("{at}: not a one-element array: {other}"),
        }
    }

    fn array(&mut self, key: &str) -> Vec<Value> {
        match self.take(key) {
            Value::Array(items) => items,
            other => panic!("{}.{key}: not an array: {other}", self.at),
        }
    }

    fn str(&mut self, key: &str) -> String {
        match self.take(key) {
            Value::String(s) => s,
            other => panic!("{}.{key}: not a string: {other}", self.at),
        }
    }

    fn u32(&mut self, key: &str) -> u32 {
        let value = self.take(key);
        value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or_else(|| panic!("{}.{key}: not a u32: {value}", self.at))
    }

    fn wrapped_u32(&mut self, key: &str) -> Option<UInt32Value> {
        Some(UInt32Value {
            value: self.u32(key),
        })
    }

    fn bool(&mut self, key: &str) -> bool {
        match self.take(key) {
            Value::Bool(b) => b,
            other => panic!("{}.{key}: not a bool: {other}", self.at),
        }
    }

    fn duration(&mut self, key: &str) -> Option<Duration> {
        let text = self.str(key);
        let at = format!("{}.{key}", self.at);
        let secs = text
            .strip_suffix('s')
            .unwrap_or_else(|| panic!("{at}: `{text}` is no duration"));
        let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
        let nanos = format!("{frac:0<9}");
        Some(Duration {
            seconds: whole.parse().unwrap(),
            nanos: nanos.parse().unwrap(),
        })
    }

    /// An enum by its proto name.
    fn enumeration<E: Into<i32>>(&mut self, key: &str, parse: fn(&str) -> Option<E>) -> i32 {
        let name = self.str(key);
        parse(&name)
            .unwrap_or_else(|| panic!("{}.{key}: unknown value `{name}`", self.at))
            .into()
    }

    /// The `@type` of a packed message, checked against `M`.
    fn type_url<M: Name>(&mut self) {
        assert_eq!(self.str("@type"), M::type_url(), "{}", self.at);
    }

    fn done(self) {
        assert!(
            self.map.is_empty(),
            "{}: keys the decoder does not know: {:?}",
            self.at,
            self.map.keys().collect::<Vec<_>>()
        );
    }
}

fn address(mut o: Obj) -> Address {
    let mut sa = o.obj("socket_address");
    let address = Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: sa.str("address"),
            port_specifier: Some(PortSpecifier::PortValue(sa.u32("port_value"))),
            ..Default::default()
        })),
    };
    sa.done();
    o.done();
    address
}

fn decode_cluster(value: &Value) -> Cluster {
    let mut c = obj(value, "cluster");
    let name = c.str("name");
    let discovery = c.enumeration("type", DiscoveryType::from_str_name);
    let connect_timeout = c.duration("connect_timeout");
    let lb_policy = c.enumeration("lb_policy", LbPolicy::from_str_name);
    let dns_lookup_family = match c.opt("dns_lookup_family") {
        Some(Value::String(family)) => DnsLookupFamily::from_str_name(&family).unwrap() as i32,
        Some(other) => panic!("dns_lookup_family: {other}"),
        None => DnsLookupFamily::Auto as i32,
    };

    let mut la = c.obj("load_assignment");
    let cluster_name = la.str("cluster_name");
    let mut locality = la.only("endpoints");
    let mut lb = locality.only("lb_endpoints");
    let mut endpoint = lb.obj("endpoint");
    let endpoint_address = address(endpoint.obj("address"));
    endpoint.done();
    lb.done();
    locality.done();
    la.done();

    let mut protocol = c.obj("typed_extension_protocol_options");
    let mut http = protocol.obj(miroir_envoy::HTTP_PROTOCOL_OPTIONS);
    protocol.done();
    http.type_url::<HttpProtocolOptions>();
    let mut explicit = http.obj("explicit_http_config");
    explicit.obj("http_protocol_options").done();
    explicit.done();
    let mut common = http.obj("common_http_protocol_options");
    let idle_timeout = common.duration("idle_timeout");
    common.done();
    http.done();
    let http_options = HttpProtocolOptions {
        common_http_protocol_options: Some(CommonHttpOptions {
            idle_timeout,
            ..Default::default()
        }),
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::HttpProtocolOptions(
                    Http1ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };

    let mut breakers = c.obj("circuit_breakers");
    let mut t = breakers.only("thresholds");
    let thresholds = Thresholds {
        priority: t.enumeration("priority", RoutingPriority::from_str_name),
        max_connections: t.wrapped_u32("max_connections"),
        max_pending_requests: t.wrapped_u32("max_pending_requests"),
        max_requests: t.wrapped_u32("max_requests"),
        ..Default::default()
    };
    t.done();
    breakers.done();

    let common_lb_config = c.opt_obj("common_lb_config").map(|mut lb| {
        let mut threshold = lb.obj("healthy_panic_threshold");
        let value = threshold.take("value").as_f64().unwrap();
        threshold.done();
        lb.done();
        CommonLbConfig {
            healthy_panic_threshold: Some(Percent { value }),
            ..Default::default()
        }
    });
    let outlier_detection = c.opt_obj("outlier_detection").map(|mut od| {
        let decoded = OutlierDetection {
            consecutive_5xx: od.wrapped_u32("consecutive_5xx"),
            consecutive_gateway_failure: od.wrapped_u32("consecutive_gateway_failure"),
            enforcing_consecutive_gateway_failure: od
                .wrapped_u32("enforcing_consecutive_gateway_failure"),
            interval: od.duration("interval"),
            base_ejection_time: od.duration("base_ejection_time"),
            max_ejection_time: od.duration("max_ejection_time"),
            max_ejection_percent: od.wrapped_u32("max_ejection_percent"),
            ..Default::default()
        };
        od.done();
        decoded
    });
    let health_checks = match c.opt("health_checks") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let mut hc = obj(item, "health_check");
                let mut http = hc.obj("http_health_check");
                let decoded = HealthCheck {
                    timeout: hc.duration("timeout"),
                    interval: hc.duration("interval"),
                    no_traffic_interval: hc.duration("no_traffic_interval"),
                    unhealthy_threshold: hc.wrapped_u32("unhealthy_threshold"),
                    healthy_threshold: hc.wrapped_u32("healthy_threshold"),
                    health_checker: Some(HealthChecker::HttpHealthCheck(HttpHealthCheck {
                        path: http.str("path"),
                        ..Default::default()
                    })),
                    ..Default::default()
                };
                http.done();
                hc.done();
                decoded
            })
            .collect(),
        Some(other) => panic!("health_checks: {other}"),
    };
    c.done();

    Cluster {
        name,
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(discovery)),
        connect_timeout,
        lb_policy,
        dns_lookup_family,
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                        address: Some(endpoint_address),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        typed_extension_protocol_options: HashMap::from([(
            miroir_envoy::HTTP_PROTOCOL_OPTIONS.to_string(),
            pack_any(http_options),
        )]),
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![thresholds],
            ..Default::default()
        }),
        common_lb_config,
        outlier_detection,
        health_checks,
        ..Default::default()
    }
}

fn decode_route_config(mut rc: Obj) -> RouteConfiguration {
    let name = rc.str("name");
    let mut vh = rc.only("virtual_hosts");
    let vh_name = vh.str("name");
    let domains = vh
        .array("domains")
        .into_iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let mut route = vh.only("routes");
    let mut matcher = route.obj("match");
    let prefix = matcher.str("prefix");
    matcher.done();
    let mut direct = route.obj("direct_response");
    let status = direct.u32("status");
    let mut body = direct.obj("body");
    let inline = body.str("inline_string");
    body.done();
    direct.done();
    let mut header_option = route.only("response_headers_to_add");
    let mut header = header_option.obj("header");
    let header_value = HeaderValue {
        key: header.str("key"),
        value: header.str("value"),
        ..Default::default()
    };
    header.done();
    let append_action =
        header_option.enumeration("append_action", HeaderAppendAction::from_str_name);
    header_option.done();
    route.done();
    vh.done();
    rc.done();
    RouteConfiguration {
        name,
        virtual_hosts: vec![VirtualHost {
            name: vh_name,
            domains,
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix(prefix)),
                    ..Default::default()
                }),
                action: Some(Action::DirectResponse(DirectResponseAction {
                    status,
                    body: Some(DataSource {
                        specifier: Some(DataSpecifier::InlineString(inline)),
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
                response_headers_to_add: vec![HeaderValueOption {
                    header: Some(header_value),
                    append_action,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn decode_config_source(mut cs: Obj) -> ConfigSource {
    let resource_api_version = cs.enumeration("resource_api_version", ApiVersion::from_str_name);
    let specifier = if let Some(ads) = cs.opt_obj("ads") {
        ads.done();
        ConfigSourceSpecifier::Ads(AggregatedConfigSource {})
    } else {
        let mut path = cs.obj("path_config_source");
        let mut watched = path.obj("watched_directory");
        let decoded = PathConfigSource {
            path: path.str("path"),
            watched_directory: Some(WatchedDirectory {
                path: watched.str("path"),
                ..Default::default()
            }),
            ..Default::default()
        };
        watched.done();
        path.done();
        ConfigSourceSpecifier::PathConfigSource(decoded)
    };
    cs.done();
    ConfigSource {
        resource_api_version,
        config_source_specifier: Some(specifier),
        ..Default::default()
    }
}

/// The listener and, unpacked, its HCM (for readable failures).
fn decode_listener(value: &Value) -> (Listener, HttpConnectionManager) {
    let mut l = obj(value, "listener");
    let name = l.str("name");
    let listen = address(l.obj("address"));
    let buffer = l.wrapped_u32("per_connection_buffer_limit_bytes");
    let mut chain = l.only("filter_chains");
    let mut network = chain.only("filters");
    let network_name = network.str("name");
    let mut h = network.obj("typed_config");
    network.done();
    chain.done();
    l.done();

    h.type_url::<HttpConnectionManager>();
    let stat_prefix = h.str("stat_prefix");
    let codec_type = h.enumeration("codec_type", CodecType::from_str_name);
    let request_timeout = h.duration("request_timeout");
    let stream_idle_timeout = h.duration("stream_idle_timeout");
    let route_config = decode_route_config(h.obj("route_config"));
    let access_log = h
        .array("access_log")
        .iter()
        .map(decode_access_log)
        .collect();
    let filters = h.array("http_filters");
    h.done();
    let http_filters = filters
        .iter()
        .map(|filter| {
            let mut f = obj(filter, "http_filter");
            let name = f.str("name");
            let config_type = if let Some(mut discovery) = f.opt_obj("config_discovery") {
                let config_source = decode_config_source(discovery.obj("config_source"));
                let type_urls = discovery
                    .array("type_urls")
                    .into_iter()
                    .map(|u| u.as_str().unwrap().to_string())
                    .collect();
                discovery.done();
                HttpConfigType::ConfigDiscovery(ExtensionConfigSource {
                    config_source: Some(config_source),
                    type_urls,
                    ..Default::default()
                })
            } else {
                let mut typed = f.obj("typed_config");
                typed.type_url::<Router>();
                typed.done();
                HttpConfigType::TypedConfig(pack_any(Router::default()))
            };
            f.done();
            HttpFilter {
                name,
                config_type: Some(config_type),
                ..Default::default()
            }
        })
        .collect();
    let hcm = HttpConnectionManager {
        stat_prefix,
        codec_type,
        request_timeout,
        stream_idle_timeout,
        route_specifier: Some(RouteSpecifier::RouteConfig(route_config)),
        access_log,
        http_filters,
        ..Default::default()
    };
    let listener = Listener {
        name,
        address: Some(listen),
        per_connection_buffer_limit_bytes: buffer,
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: network_name,
                config_type: Some(NetworkConfigType::TypedConfig(pack_any(hcm.clone()))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    (listener, hcm)
}

/// A stdout access log with an inline text format.
fn decode_access_log(value: &Value) -> AccessLog {
    let mut a = obj(value, "access_log");
    let name = a.str("name");
    let mut typed = a.obj("typed_config");
    typed.type_url::<StdoutAccessLog>();
    let mut format = typed.obj("log_format");
    let mut source = format.obj("text_format_source");
    let inline = source.str("inline_string");
    source.done();
    format.done();
    typed.done();
    a.done();
    AccessLog {
        name,
        config_type: Some(AccessLogConfig::TypedConfig(pack_any(StdoutAccessLog {
            access_log_format: Some(AccessLogFormat::LogFormat(SubstitutionFormatString {
                format: Some(Format::TextFormatSource(DataSource {
                    specifier: Some(DataSpecifier::InlineString(inline)),
                    ..Default::default()
                })),
                ..Default::default()
            })),
        }))),
        ..Default::default()
    }
}

/// The `TypedExtensionConfig` and, unpacked, its `PluginConfig`.
fn decode_filter(value: &Value) -> (TypedExtensionConfig, PluginConfig) {
    let mut e = obj(value, "filter");
    e.type_url::<TypedExtensionConfig>();
    let name = e.str("name");
    let mut w = e.obj("typed_config");
    e.done();
    w.type_url::<Wasm>();
    let mut p = w.obj("config");
    w.done();
    let plugin_name = p.str("name");
    let root_id = p.str("root_id");
    let mut vm = p.obj("vm_config");
    let vm_id = vm.str("vm_id");
    let runtime = vm.str("runtime");
    let mut code = vm.obj("code");
    vm.done();
    let specifier = if let Some(mut local) = code.opt_obj("local") {
        let filename = local.str("filename");
        local.done();
        CodeSpecifier::Local(DataSource {
            specifier: Some(DataSpecifier::Filename(filename)),
            ..Default::default()
        })
    } else {
        let mut remote = code.obj("remote");
        let mut uri = remote.obj("http_uri");
        let http_uri = HttpUri {
            uri: uri.str("uri"),
            timeout: uri.duration("timeout"),
            http_upstream_type: Some(HttpUpstreamType::Cluster(uri.str("cluster"))),
        };
        uri.done();
        let mut retry = remote.obj("retry_policy");
        let retry_policy = RetryPolicy {
            num_retries: retry.wrapped_u32("num_retries"),
            ..Default::default()
        };
        retry.done();
        let decoded = RemoteDataSource {
            http_uri: Some(http_uri),
            sha256: remote.str("sha256"),
            retry_policy: Some(retry_policy),
        };
        remote.done();
        CodeSpecifier::Remote(decoded)
    };
    code.done();
    let mut configuration = p.obj("configuration");
    configuration.type_url::<StringValue>();
    let configuration_text = configuration.str("value");
    configuration.done();
    let allow = p.bool("allow_on_headers_stop_iteration");
    let failure_policy = match p.opt("failure_policy") {
        Some(Value::String(policy)) => FailurePolicy::from_str_name(&policy).unwrap() as i32,
        Some(other) => panic!("failure_policy: {other}"),
        None => FailurePolicy::Unspecified as i32,
    };
    p.done();
    let plugin = PluginConfig {
        name: plugin_name,
        root_id,
        vm: Some(Vm::VmConfig(VmConfig {
            vm_id,
            runtime,
            code: Some(AsyncDataSource {
                specifier: Some(specifier),
            }),
            ..Default::default()
        })),
        configuration: Some(pack_any(StringValue {
            value: configuration_text,
        })),
        allow_on_headers_stop_iteration: Some(BoolValue { value: allow }),
        failure_policy,
        ..Default::default()
    };
    let extension = TypedExtensionConfig {
        name,
        typed_config: Some(pack_any(Wasm {
            config: Some(plugin.clone()),
        })),
    };
    (extension, plugin)
}

// ---------------------------------------------------------------------------------------------

fn unpack<M: Message + Name + Default>(any: &Any) -> M {
    assert_eq!(any.type_url, M::type_url());
    M::decode(any.value.as_slice()).unwrap()
}

fn hcm_of(listener: &Listener) -> HttpConnectionManager {
    match &listener.filter_chains[0].filters[0].config_type {
        Some(NetworkConfigType::TypedConfig(any)) => unpack(any),
        other => panic!("{other:?}"),
    }
}

fn plugin_of(extension: &TypedExtensionConfig) -> PluginConfig {
    let wasm: Wasm = unpack(extension.typed_config.as_ref().unwrap());
    wasm.config.unwrap()
}

/// An IP node, a named node (STRICT_DNS), a bracketed IPv6 node.
fn plugin_config() -> MiroirConfig {
    let node = |id: &str, address: &str| Node {
        id: id.into(),
        address: address.into(),
        group: "g".into(),
        state: NodeState::Active,
    };
    MiroirConfig {
        topology: Topology {
            epoch: 12,
            shards: 8,
            shard_map: Default::default(),
            replication_factor: 1,
            nodes: vec![
                node("n1", "10.0.0.1:7700"),
                node("n2", "meili-2.search.svc:7700"),
                node("n3", "[fd00::3]:7701"),
            ],
        },
        node_timeout_ms: 7_500,
        node_api_key: Some("node-key".into()),
        control_plane: None,
        indexes: Default::default(),
    }
}

const LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 7700);
const WASM: &str = "/opt/miroir/miroir_filter.wasm";

fn render_options() -> RenderOptions {
    let config = plugin_config();
    RenderOptions {
        listen: SocketAddr::from(LISTEN),
        admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
        wasm_path: PathBuf::from(WASM),
        config_dir: PathBuf::from("/etc/miroir"),
        node_timeout_ms: config.node_timeout_ms,
        node_api_key: config.node_api_key,
    }
}

fn resource_options(wasm: WasmSource) -> ResourceOptions {
    ResourceOptions {
        listen: SocketAddr::from(LISTEN),
        wasm,
        control_plane_http: "control-plane.miroir:7701".into(),
        // The static renderer's health checks.
        health: HealthCheckOptions::default(),
        // Below the plugin configuration's: its node timeout sizes the listener, as statically.
        node_timeout_ms: 1_000,
    }
}

fn built() -> Built {
    resources::build(
        &plugin_config(),
        &resource_options(WasmSource::Local(PathBuf::from(WASM))),
    )
    .unwrap()
}

#[test]
fn node_clusters_agree() {
    let bootstrap = miroir_envoy::bootstrap(&plugin_config().topology, &render_options());
    let rendered = bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap();
    let built = built();
    assert_eq!(rendered.len(), plugin_config().topology.nodes.len());
    for json in rendered {
        let name = json["name"].as_str().unwrap();
        let from_json = decode_cluster(json);
        let from_xds: Cluster = unpack(&built.clusters.get(name).unwrap().body);
        let key = miroir_envoy::HTTP_PROTOCOL_OPTIONS;
        assert_eq!(
            unpack::<HttpProtocolOptions>(&from_json.typed_extension_protocol_options[key]),
            unpack::<HttpProtocolOptions>(&from_xds.typed_extension_protocol_options[key]),
            "{name}: upstream HTTP options"
        );
        assert_eq!(from_json, from_xds, "{name}");
    }
    // The named node is resolved, not a STATIC cluster Envoy would refuse.
    let n2 = decode_cluster(&rendered[1]);
    assert_eq!(
        n2.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32))
    );
    assert_eq!(n2.dns_lookup_family, DnsLookupFamily::V4Preferred as i32);
}

#[test]
fn the_control_plane_cluster_agrees() {
    let rendered =
        miroir_envoy::encode_cluster(&model::Cluster::control_plane("control-plane.miroir", 7701));
    let built = built();
    let from_xds: Cluster = unpack(
        &built
            .clusters
            .get(miroir_topology::CONTROL_PLANE_CLUSTER)
            .unwrap()
            .body,
    );
    assert_eq!(decode_cluster(&rendered), from_xds);
}

#[test]
fn the_listener_agrees_but_for_where_the_filter_config_comes_from() {
    let bootstrap = miroir_envoy::bootstrap(&plugin_config().topology, &render_options());
    let (mut from_json, mut json_hcm) =
        decode_listener(&bootstrap["static_resources"]["listeners"][0]);
    let built = built();
    let from_xds: Listener = unpack(&built.listeners.get(LISTENER_NAME).unwrap().body);
    let xds_hcm = hcm_of(&from_xds);

    // The one intended difference: a watched file statically, the ADS stream over xDS.
    let Some(HttpConfigType::ConfigDiscovery(discovery)) =
        &mut json_hcm.http_filters[0].config_type
    else {
        panic!("ECDS")
    };
    assert_eq!(discovery.type_urls, [WASM_FILTER_TYPE_URL]);
    let source = discovery.config_source.as_mut().unwrap();
    match &source.config_source_specifier {
        Some(ConfigSourceSpecifier::PathConfigSource(path)) => {
            assert_eq!(path.path, "/etc/miroir/ecds/miroir-filter.json");
            assert_eq!(
                path.watched_directory.as_ref().unwrap().path,
                "/etc/miroir/ecds"
            );
        }
        other => panic!("{other:?}"),
    }
    let Some(HttpConfigType::ConfigDiscovery(xds_discovery)) = &xds_hcm.http_filters[0].config_type
    else {
        panic!("ECDS")
    };
    let xds_source = xds_discovery.config_source.as_ref().unwrap();
    assert!(matches!(
        xds_source.config_source_specifier,
        Some(ConfigSourceSpecifier::Ads(_))
    ));
    source.config_source_specifier = xds_source.config_source_specifier.clone();

    assert_eq!(json_hcm, xds_hcm, "the HTTP connection manager");
    from_json.filter_chains[0].filters[0].config_type =
        Some(NetworkConfigType::TypedConfig(pack_any(json_hcm)));
    assert_eq!(from_json, from_xds, "the listener");
}

#[test]
fn both_encoders_write_a_file_sourced_listener_alike() {
    // The model's other filter source, through both encoders (the xDS one never sends it).
    let listener = model::Listener::new(
        SocketAddr::from(LISTEN),
        model::ListenerTimeouts::for_node_timeout(2_500),
        model::FilterSource::File {
            path: Path::new("/x/ecds/f.json").into(),
            watched_directory: Path::new("/x/ecds").into(),
        },
    );
    let (from_json, json_hcm) = decode_listener(&miroir_envoy::encode_listener(&listener));
    let from_xds = resources::encode_listener(&listener);
    assert_eq!(json_hcm, hcm_of(&from_xds));
    assert_eq!(from_json, from_xds);
}

#[test]
fn the_filter_config_agrees() {
    let rendered = miroir_envoy::filter_config(&plugin_config().topology, &render_options());
    assert_eq!(rendered["version_info"], "12");
    let resources_json = rendered["resources"].as_array().unwrap();
    assert_eq!(resources_json.len(), 1);
    let (from_json, json_plugin) = decode_filter(&resources_json[0]);
    let built = built();
    let from_xds: TypedExtensionConfig =
        unpack(&built.filter.get(miroir_xds::FILTER_NAME).unwrap().body);
    assert_eq!(json_plugin, plugin_of(&from_xds), "the plugin config");
    assert_eq!(from_json, from_xds);
}

#[test]
fn remote_code_agrees() {
    let (uri, sha256) = (
        "http://control-plane.miroir:7701/_miroir/wasm/abc.wasm",
        "ab".repeat(32),
    );
    let config = plugin_config();
    let rendered = miroir_envoy::encode_filter(&model::Filter::new(
        config.to_json(),
        model::WasmCode::remote(uri, &sha256),
    ));
    let from_xds: TypedExtensionConfig = unpack(
        &resources::filter_config(
            &config,
            &WasmSource::Remote {
                uri: uri.into(),
                sha256,
            },
        )
        .body,
    );
    let (from_json, json_plugin) = decode_filter(&rendered);
    assert_eq!(json_plugin, plugin_of(&from_xds));
    assert_eq!(from_json, from_xds);
}
