//! The client listener: HCM with the ECDS-discovered filter, the router, and the guard route.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier as DataSpecifier;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, ExtensionConfigSource,
    HeaderValue, HeaderValueOption, SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as NetworkConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use serde::Serialize;
use serde_json::json;

use super::{millis, resource};
use crate::cache::Resource;
use crate::{FILTER_NAME, LISTENER_NAME, WASM_FILTER_TYPE_URL};

/// Holds the largest body the filter accepts (`miroir_topology::limits`); fits the proto's u32.
pub const LISTENER_BUFFER_LIMIT_BYTES: u32 =
    miroir_topology::limits::LISTENER_BUFFER_LIMIT_BYTES as u32;

/// What a client sees if a request reaches the router: the filter is absent or let it through.
pub use miroir_envoy::GUARD_BODY;

/// The HCM's timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTimeouts {
    pub request_timeout_ms: u64,
    pub stream_idle_timeout_ms: u64,
}

impl ListenerTimeouts {
    /// The filter holds a request for all its calls to nodes (possibly a few sequential rounds)
    /// while Envoy sees no downstream activity; both timeouts must outlast that, yet still end
    /// requests a crashed VM left hanging (the static renderer's formulas).
    pub fn for_node_timeout(node_timeout_ms: u64) -> Self {
        ListenerTimeouts {
            request_timeout_ms: node_timeout_ms.saturating_mul(4).saturating_add(60_000),
            stream_idle_timeout_ms: node_timeout_ms.saturating_mul(2).saturating_add(30_000),
        }
    }

    /// Timeouts that suit both `self` and `other`: while a rollout moves between two node
    /// timeouts, requests under either must not be cut.
    pub fn union(self, other: Self) -> Self {
        ListenerTimeouts {
            request_timeout_ms: self.request_timeout_ms.max(other.request_timeout_ms),
            stream_idle_timeout_ms: self
                .stream_idle_timeout_ms
                .max(other.stream_idle_timeout_ms),
        }
    }
}

pub fn listener(listen: SocketAddr, timeouts: ListenerTimeouts) -> Resource {
    let hcm = HttpConnectionManager {
        stat_prefix: "miroir".to_string(),
        codec_type: CodecType::Auto as i32,
        request_timeout: millis(timeouts.request_timeout_ms),
        stream_idle_timeout: millis(timeouts.stream_idle_timeout_ms),
        route_specifier: Some(RouteSpecifier::RouteConfig(guard_route_config())),
        http_filters: vec![
            HttpFilter {
                name: FILTER_NAME.to_string(),
                config_type: Some(HttpConfigType::ConfigDiscovery(ExtensionConfigSource {
                    config_source: Some(ConfigSource {
                        resource_api_version: ApiVersion::V3 as i32,
                        config_source_specifier: Some(ConfigSourceSpecifier::Ads(
                            AggregatedConfigSource {},
                        )),
                        ..Default::default()
                    }),
                    // No default config: until the filter config arrives, the listener warms
                    // instead of serving requests the guard would refuse.
                    type_urls: vec![WASM_FILTER_TYPE_URL.to_string()],
                    ..Default::default()
                })),
                ..Default::default()
            },
            HttpFilter {
                name: "envoy.filters.http.router".to_string(),
                config_type: Some(HttpConfigType::TypedConfig(pack_any(Router::default()))),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let listener = Listener {
        name: LISTENER_NAME.to_string(),
        address: Some(Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: listen.ip().to_string(),
                port_specifier: Some(PortSpecifier::PortValue(u32::from(listen.port()))),
                ..Default::default()
            })),
        }),
        per_connection_buffer_limit_bytes: Some(UInt32Value {
            value: LISTENER_BUFFER_LIMIT_BYTES,
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_string(),
                config_type: Some(NetworkConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let model = json!({"listen": listen.to_string(), "timeouts": timeouts});
    resource(LISTENER_NAME, &model, listener)
}

/// The only route: a 503. The filter answers every request with a local reply, so the router
/// runs only when the filter is missing or let a request through, and then nothing reaches a
/// node unfiltered. There is deliberately no route to any cluster.
fn guard_route_config() -> RouteConfiguration {
    RouteConfiguration {
        name: LISTENER_NAME.to_string(),
        virtual_hosts: vec![VirtualHost {
            name: LISTENER_NAME.to_string(),
            domains: vec!["*".to_string()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
                    ..Default::default()
                }),
                action: Some(Action::DirectResponse(DirectResponseAction {
                    status: 503,
                    body: Some(DataSource {
                        specifier: Some(DataSpecifier::InlineString(GUARD_BODY.to_string())),
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
                response_headers_to_add: vec![HeaderValueOption {
                    header: Some(HeaderValue {
                        key: "content-type".to_string(),
                        value: "application/json".to_string(),
                        ..Default::default()
                    }),
                    append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}
