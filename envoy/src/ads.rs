//! The bootstrap of an Envoy fed by Miroir's control plane over ADS: it knows only the control
//! plane, and receives the listener, the clusters and the filter configuration from it.

use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::{host_port, layered_runtime, overload_manager, socket_address, stats_config};

/// Static cluster of the control plane's gRPC (ADS) listener.
pub const XDS_CLUSTER: &str = "miroir-xds";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdsBootstrapOptions {
    /// `node.id`: how the control plane's fleet view names this Envoy; unique per Envoy.
    pub node_id: String,
    /// `node.cluster`: the node group the control plane picks a snapshot by.
    pub cluster: String,
    /// `host:port` of the control plane's ADS listener (an IP, or a name resolved by DNS).
    pub xds: String,
    /// The admin interface exposes secrets (`/config_dump`): keep it on a loopback address.
    pub admin: SocketAddr,
    /// The control plane's xDS token, sent on the ADS stream as `authorization: Bearer <token>`
    /// (`grpc_service.initial_metadata`). The bootstrap then holds a secret: keep its file
    /// private ([`crate::write_atomically`] writes it `0600`).
    pub xds_token: Option<String>,
}

pub fn ads_bootstrap(opts: &AdsBootstrapOptions) -> Value {
    let (host, port) = host_port(&opts.xds);
    let discovery = if host.parse::<std::net::IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    let ads_source = json!({"ads": {}, "resource_api_version": "V3"});
    let mut grpc_service = json!({"envoy_grpc": {"cluster_name": XDS_CLUSTER}});
    if let Some(token) = opts.xds_token.as_deref().filter(|t| !t.is_empty()) {
        grpc_service["initial_metadata"] =
            json!([{"key": "authorization", "value": format!("Bearer {token}")}]);
    }
    json!({
        "node": {"id": opts.node_id, "cluster": opts.cluster},
        "admin": {"address": socket_address(&opts.admin)},
        "dynamic_resources": {
            "ads_config": {
                // State of the world; the control plane does not serve DELTA_GRPC.
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [grpc_service],
                "set_node_on_first_message_only": true,
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": {"clusters": [{
            "name": XDS_CLUSTER,
            "type": discovery,
            "connect_timeout": "1s",
            "load_assignment": {"cluster_name": XDS_CLUSTER, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": host, "port_value": port}},
            }}]}]},
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {
                        // A control plane that vanished without a FIN (host down, network
                        // partition) is noticed and reconnected to, instead of being waited
                        // on forever.
                        "connection_keepalive": {"interval": "15s", "timeout": "5s"},
                    }},
                },
            },
        }]},
        "layered_runtime": layered_runtime(),
        "overload_manager": overload_manager(),
        "stats_config": stats_config(),
    })
}
