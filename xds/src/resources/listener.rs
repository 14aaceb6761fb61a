//! The client listener: HCM with the ECDS-discovered filter, the router, and the guard route.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier as DataSpecifier;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, ExtensionConfigSource,
    HeaderValue, HeaderValueOption, PathConfigSource, WatchedDirectory,
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
use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType as AccessLogConfig;
use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
use envoy_types::pb::envoy::config::core::v3::SubstitutionFormatString;
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::stdout_access_log::AccessLogFormat;
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::StdoutAccessLog;
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use serde_json::json;

use miroir_envoy::model;

use super::{millis, resource, socket_address};
use crate::cache::Resource;
use crate::{LISTENER_NAME, WASM_FILTER_TYPE_URL};

/// The HCM's timeouts.
pub use miroir_envoy::model::ListenerTimeouts;

/// The client listener on `listen`, discovering the filter over ADS.
pub fn listener(listen: SocketAddr, timeouts: ListenerTimeouts) -> Resource {
    let listener = model::Listener::new(listen, timeouts, model::FilterSource::Ads);
    let model = json!({"listen": listen.to_string(), "timeouts": {
        "requestTimeoutMs": timeouts.request_timeout_ms,
        "streamIdleTimeoutMs": timeouts.stream_idle_timeout_ms,
    }});
    resource(LISTENER_NAME, &model, encode_listener(&listener))
}

/// `listener` as protobuf.
pub fn encode_listener(listener: &model::Listener) -> Listener {
    let config_source_specifier = match &listener.filter_source {
        model::FilterSource::Ads => ConfigSourceSpecifier::Ads(AggregatedConfigSource {}),
        model::FilterSource::File {
            path,
            watched_directory,
        } => ConfigSourceSpecifier::PathConfigSource(PathConfigSource {
            path: path.to_string_lossy().into_owned(),
            watched_directory: Some(WatchedDirectory {
                path: watched_directory.to_string_lossy().into_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let hcm = HttpConnectionManager {
        stat_prefix: listener.stat_prefix.clone(),
        codec_type: CodecType::Auto as i32,
        request_timeout: millis(listener.timeouts.request_timeout_ms),
        stream_idle_timeout: millis(listener.timeouts.stream_idle_timeout_ms),
        route_specifier: Some(RouteSpecifier::RouteConfig(guard_route_config(
            &listener.route,
        ))),
        access_log: vec![access_log()],
        http_filters: vec![
            HttpFilter {
                name: listener.filter_name.clone(),
                config_type: Some(HttpConfigType::ConfigDiscovery(ExtensionConfigSource {
                    config_source: Some(ConfigSource {
                        resource_api_version: ApiVersion::V3 as i32,
                        config_source_specifier: Some(config_source_specifier),
                        ..Default::default()
                    }),
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
    Listener {
        name: listener.name.clone(),
        address: Some(socket_address(
            &listener.address.ip().to_string(),
            listener.address.port(),
        )),
        per_connection_buffer_limit_bytes: Some(UInt32Value {
            value: listener.per_connection_buffer_limit_bytes,
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_string(),
                config_type: Some(NetworkConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// [`model::ACCESS_LOG_FORMAT`] on Envoy's stdout.
fn access_log() -> AccessLog {
    let stdout = StdoutAccessLog {
        access_log_format: Some(AccessLogFormat::LogFormat(SubstitutionFormatString {
            format: Some(Format::TextFormatSource(DataSource {
                specifier: Some(DataSpecifier::InlineString(
                    model::ACCESS_LOG_FORMAT.to_string(),
                )),
                ..Default::default()
            })),
            ..Default::default()
        })),
    };
    AccessLog {
        name: model::STDOUT_ACCESS_LOG.to_string(),
        config_type: Some(AccessLogConfig::TypedConfig(pack_any(stdout))),
        ..Default::default()
    }
}

fn guard_route_config(route: &model::GuardRoute) -> RouteConfiguration {
    RouteConfiguration {
        name: route.name.clone(),
        virtual_hosts: vec![VirtualHost {
            name: route.name.clone(),
            domains: route.domains.clone(),
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix(route.prefix.clone())),
                    ..Default::default()
                }),
                action: Some(Action::DirectResponse(DirectResponseAction {
                    status: route.status,
                    body: Some(DataSource {
                        specifier: Some(DataSpecifier::InlineString(route.body.clone())),
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
                response_headers_to_add: vec![HeaderValueOption {
                    header: Some(HeaderValue {
                        key: "content-type".to_string(),
                        value: route.content_type.clone(),
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
