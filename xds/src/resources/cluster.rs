//! One cluster per Meilisearch node, and the control plane's cluster: [`miroir_envoy::model`]
//! clusters encoded as protobuf.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CommonLbConfig, DiscoveryType, DnsLookupFamily, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, Cluster, OutlierDetection};
use envoy_types::pb::envoy::config::core::v3::health_check::{HealthChecker, HttpHealthCheck};
use envoy_types::pb::envoy::config::core::v3::{
    HealthCheck, Http1ProtocolOptions, HttpProtocolOptions as CommonHttpOptions, RoutingPriority,
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
use miroir_envoy::model;
use miroir_topology::{cluster_name, CONTROL_PLANE_CLUSTER};
use serde_json::json;

use super::{host_port, millis, resource, socket_address, uint32, BuildError};
use crate::cache::Resource;
use crate::HealthCheckOptions;

/// The cluster reaching node `node_id` at `address` (`host:port`), named
/// [`miroir_topology::cluster_name`].
pub fn node_cluster(
    node_id: &str,
    address: &str,
    health: &HealthCheckOptions,
) -> Result<Resource, BuildError> {
    let name = cluster_name(node_id);
    let (host, port) = host_port(address)?;
    let cluster = model::Cluster::node(node_id, &host, port, health.model());
    let model = json!({"kind": "node", "name": name, "address": address, "health": health});
    Ok(resource(&name, &model, encode_cluster(&cluster)))
}

/// The cluster of the control plane's HTTP listener: the filter's task registry calls, and the
/// remote `.wasm` when the code is served by the control plane.
pub fn control_plane_cluster(address: &str) -> Result<Resource, BuildError> {
    let (host, port) = host_port(address)?;
    let cluster = model::Cluster::control_plane(&host, port);
    let model = json!({"kind": "controlPlane", "address": address});
    Ok(resource(
        CONTROL_PLANE_CLUSTER,
        &model,
        encode_cluster(&cluster),
    ))
}

/// `cluster` as protobuf.
pub fn encode_cluster(cluster: &model::Cluster) -> Cluster {
    let (discovery, dns_lookup_family) = match cluster.discovery {
        model::Discovery::Static => (DiscoveryType::Static, DnsLookupFamily::Auto),
        model::Discovery::StrictDnsV4Preferred => {
            (DiscoveryType::StrictDns, DnsLookupFamily::V4Preferred)
        }
    };
    let endpoint = LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket_address(&cluster.host, cluster.port)),
            ..Default::default()
        })),
        ..Default::default()
    };
    let http_options = HttpProtocolOptions {
        common_http_protocol_options: Some(CommonHttpOptions {
            idle_timeout: millis(cluster.idle_timeout_ms),
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
    let breakers = &cluster.circuit_breakers;
    Cluster {
        name: cluster.name.clone(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(discovery as i32)),
        connect_timeout: millis(cluster.connect_timeout_ms),
        lb_policy: LbPolicy::RoundRobin as i32,
        dns_lookup_family: dns_lookup_family as i32,
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: cluster.name.clone(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..Default::default()
            }],
            ..Default::default()
        }),
        typed_extension_protocol_options: HashMap::from([(
            miroir_envoy::HTTP_PROTOCOL_OPTIONS.to_string(),
            pack_any(http_options),
        )]),
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![Thresholds {
                priority: RoutingPriority::Default as i32,
                max_connections: uint32(breakers.max_connections),
                max_pending_requests: uint32(breakers.max_pending_requests),
                max_requests: uint32(breakers.max_requests),
                ..Default::default()
            }],
            ..Default::default()
        }),
        common_lb_config: cluster.healthy_panic_threshold.map(|value| CommonLbConfig {
            healthy_panic_threshold: Some(Percent { value }),
            ..Default::default()
        }),
        outlier_detection: cluster
            .outlier_detection
            .as_ref()
            .map(|od| OutlierDetection {
                consecutive_5xx: uint32(od.consecutive_5xx),
                consecutive_gateway_failure: uint32(od.consecutive_gateway_failure),
                enforcing_consecutive_gateway_failure: uint32(
                    od.enforcing_consecutive_gateway_failure,
                ),
                interval: millis(od.interval_ms),
                base_ejection_time: millis(od.base_ejection_time_ms),
                max_ejection_time: millis(od.max_ejection_time_ms),
                max_ejection_percent: uint32(od.max_ejection_percent),
                ..Default::default()
            }),
        health_checks: cluster.health_check.iter().map(health_check).collect(),
        ..Default::default()
    }
}

fn health_check(hc: &model::HealthCheck) -> HealthCheck {
    HealthCheck {
        timeout: millis(hc.timeout_ms),
        interval: millis(hc.interval_ms),
        no_traffic_interval: millis(hc.no_traffic_interval_ms),
        unhealthy_threshold: uint32(hc.unhealthy_threshold),
        healthy_threshold: uint32(hc.healthy_threshold),
        health_checker: Some(HealthChecker::HttpHealthCheck(HttpHealthCheck {
            path: hc.path.clone(),
            ..Default::default()
        })),
        ..Default::default()
    }
}
