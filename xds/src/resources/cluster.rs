//! One cluster per Meilisearch node, and the control plane's cluster.

use std::collections::HashMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CommonLbConfig, DiscoveryType, DnsLookupFamily, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, Cluster, OutlierDetection};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::health_check::{HealthChecker, HttpHealthCheck};
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, HealthCheck, Http1ProtocolOptions, HttpProtocolOptions as CommonHttpOptions,
    RoutingPriority, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::util::pack_any;
use miroir_topology::{cluster_name, CONTROL_PLANE_CLUSTER};
use serde_json::json;

use super::{host_port, millis, resource, uint32, BuildError};
use crate::cache::Resource;
use crate::HealthCheckOptions;

/// The filter fans out many parallel calls to one node; overflow would show up as synthesized
/// 503s (same limit as the static renderer).
pub const CIRCUIT_BREAKER_LIMIT: u32 = 1024;
const CONNECT_TIMEOUT_MS: u64 = 1_000;
const IDLE_TIMEOUT_MS: u64 = 60_000;

/// The cluster reaching node `node_id` at `address` (`host:port`), named
/// [`miroir_topology::cluster_name`].
pub fn node_cluster(
    node_id: &str,
    address: &str,
    health: &HealthCheckOptions,
) -> Result<Resource, BuildError> {
    let name = cluster_name(node_id);
    let mut cluster = base_cluster(&name, address)?;
    cluster.health_checks = vec![health_check(health)];
    // The default (50%) keeps sending to a cluster's only host once it is unhealthy; at 0 a down
    // node gives a fast local 503 the filter can fail over on.
    cluster.common_lb_config = Some(CommonLbConfig {
        healthy_panic_threshold: Some(Percent { value: 0.0 }),
        ..Default::default()
    });
    cluster.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: uint32(5),
        consecutive_gateway_failure: uint32(3),
        // Envoy enforces gateway-failure ejections at 0% unless told otherwise, which would make
        // the lower threshold above decorative.
        enforcing_consecutive_gateway_failure: uint32(100),
        interval: millis(1_000),
        base_ejection_time: millis(2_000),
        max_ejection_time: millis(30_000),
        // The default (10%) of a single host ejects nobody.
        max_ejection_percent: uint32(100),
        ..Default::default()
    });
    let model = json!({"kind": "node", "name": name, "address": address, "health": health});
    Ok(resource(&name, &model, cluster))
}

/// The cluster of the control plane's HTTP listener: the filter's task registry calls, and the
/// remote `.wasm` when the code is served by the control plane.
pub fn control_plane_cluster(address: &str) -> Result<Resource, BuildError> {
    let cluster = base_cluster(CONTROL_PLANE_CLUSTER, address)?;
    let model = json!({"kind": "controlPlane", "address": address});
    Ok(resource(CONTROL_PLANE_CLUSTER, &model, cluster))
}

/// One host, HTTP/1.1, circuit breakers; STATIC for an IP, STRICT_DNS for a name (re-resolved
/// every 5 s, Envoy's default, so a node moved behind its name is followed without a new
/// topology).
fn base_cluster(name: &str, address: &str) -> Result<Cluster, BuildError> {
    let (host, port) = host_port(address)?;
    let is_ip = host.parse::<IpAddr>().is_ok();
    let discovery = if is_ip {
        DiscoveryType::Static
    } else {
        DiscoveryType::StrictDns
    };
    let endpoint = LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(AddressKind::SocketAddress(SocketAddress {
                    address: host,
                    port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let http_options = HttpProtocolOptions {
        common_http_protocol_options: Some(CommonHttpOptions {
            idle_timeout: millis(IDLE_TIMEOUT_MS),
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
    let limit = uint32(CIRCUIT_BREAKER_LIMIT);
    Ok(Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(discovery as i32)),
        connect_timeout: millis(CONNECT_TIMEOUT_MS),
        lb_policy: LbPolicy::RoundRobin as i32,
        dns_lookup_family: if is_ip {
            DnsLookupFamily::Auto as i32
        } else {
            // Container and VM names usually resolve to IPv4 only; AUTO would try IPv6 first.
            DnsLookupFamily::V4Preferred as i32
        },
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.to_string(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..Default::default()
            }],
            ..Default::default()
        }),
        typed_extension_protocol_options: HashMap::from([(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack_any(http_options),
        )]),
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![Thresholds {
                priority: RoutingPriority::Default as i32,
                max_connections: limit,
                max_pending_requests: limit,
                max_requests: limit,
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// `GET /health`. A passing check also un-ejects an outlier-ejected host, so a restarted node is
/// back after one interval, not only when its ejection time runs out.
fn health_check(options: &HealthCheckOptions) -> HealthCheck {
    HealthCheck {
        timeout: millis(options.timeout_ms),
        interval: millis(options.interval_ms),
        // The default (60 s) applies until the cluster has seen traffic.
        no_traffic_interval: millis(options.interval_ms),
        unhealthy_threshold: uint32(options.unhealthy_threshold),
        healthy_threshold: uint32(options.healthy_threshold),
        health_checker: Some(HealthChecker::HttpHealthCheck(HttpHealthCheck {
            path: "/health".to_string(),
            ..Default::default()
        })),
        ..Default::default()
    }
}
