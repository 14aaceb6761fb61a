//! Renders the Envoy configuration that runs Miroir: a bootstrap (listener, guard route, one
//! cluster per Meilisearch node, runtime limits) and the filter's configuration, delivered to the
//! running Envoy through ECDS from a watched file; or ([`ads_bootstrap`]) a bootstrap that only
//! knows the control plane, which sends everything else over ADS.
//!
//! See `README.md` for why each setting is there.

use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use miroir_topology::{PluginConfig, Topology};
use serde_json::{json, Value};

mod ads;
pub mod model;
pub use ads::{ads_bootstrap, AdsBootstrapOptions, XDS_CLUSTER};

pub use model::{CIRCUIT_BREAKER_LIMIT, FILTER_NAME, GUARD_BODY, LISTENER_BUFFER_LIMIT_BYTES};

/// File name of the bootstrap inside `config_dir`.
pub const BOOTSTRAP_FILE: &str = "envoy.json";
/// Directory (inside `config_dir`) Envoy watches for the filter configuration.
pub const ECDS_DIR: &str = "ecds";
/// File name of the filter configuration inside [`ECDS_DIR`].
pub const ECDS_FILE: &str = "miroir-filter.json";

pub const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
pub const EXTENSION_CONFIG_TYPE_URL: &str =
    "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
const HCM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const STDOUT_ACCESS_LOG_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
/// Key of the upstream HTTP options in `typed_extension_protocol_options`.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const HTTP_PROTOCOL_OPTIONS_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

const MIB: u64 = 1024 * 1024;
/// `dispatch_http_call` responses above this are reset (the call fails). The default is 32 MiB.
pub const ASYNC_RESPONSE_BUFFER_LIMIT_BYTES: u64 = 128 * MIB;
/// Cap on client connections to one Envoy.
pub const MAX_DOWNSTREAM_CONNECTIONS: u64 = 50_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// Where clients connect (port 0 lets the OS pick; read it back from the admin `/listeners`).
    pub listen: SocketAddr,
    /// The admin interface exposes secrets (`/config_dump`): keep it on a loopback address.
    pub admin: SocketAddr,
    /// Absolute path of the filter's `.wasm`, as seen by Envoy.
    pub wasm_path: PathBuf,
    /// Absolute directory holding the bootstrap and the `ecds/` directory.
    pub config_dir: PathBuf,
    /// Deadline of each call from the filter to a node; also sizes the HCM timeouts.
    pub node_timeout_ms: u64,
    /// The filter's key for its own metadata lookups (`PluginConfig::node_api_key`).
    pub node_api_key: Option<String>,
}

impl RenderOptions {
    pub fn ecds_dir(&self) -> PathBuf {
        self.config_dir.join(ECDS_DIR)
    }

    pub fn ecds_path(&self) -> PathBuf {
        self.ecds_dir().join(ECDS_FILE)
    }

    pub fn bootstrap_path(&self) -> PathBuf {
        self.config_dir.join(BOOTSTRAP_FILE)
    }

    /// The filter holds a request for all its calls to nodes (possibly in a few sequential
    /// rounds), and Envoy sees no downstream activity meanwhile; both timeouts must outlast
    /// that, yet still end requests a crashed VM left hanging.
    pub fn request_timeout_ms(&self) -> u64 {
        model::ListenerTimeouts::for_node_timeout(self.node_timeout_ms).request_timeout_ms
    }

    pub fn stream_idle_timeout_ms(&self) -> u64 {
        model::ListenerTimeouts::for_node_timeout(self.node_timeout_ms).stream_idle_timeout_ms
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// Envoy bootstrap (`-c envoy.json`).
    pub bootstrap: Value,
    /// ECDS `DiscoveryResponse` carrying the filter's configuration.
    pub filter_config: Value,
}

impl Rendered {
    /// Writes `<dir>/envoy.json` and `<dir>/ecds/miroir-filter.json`; returns the bootstrap path.
    pub fn write(&self, dir: &Path) -> io::Result<PathBuf> {
        let ecds_dir = dir.join(ECDS_DIR);
        fs::create_dir_all(&ecds_dir)?;
        let bootstrap = dir.join(BOOTSTRAP_FILE);
        write_atomically(&bootstrap, &to_pretty(&self.bootstrap))?;
        write_filter_config(&ecds_dir, &self.filter_config)?;
        Ok(bootstrap)
    }
}

/// Renders the bootstrap and the filter configuration for `topology`.
///
/// Does not validate the topology: callers that want to exercise Envoy's rejection of an invalid
/// configuration need to render it anyway.
pub fn render(topology: &Topology, opts: &RenderOptions) -> Rendered {
    Rendered {
        bootstrap: bootstrap(topology, opts),
        filter_config: filter_config(topology, opts),
    }
}

/// The ECDS file's content for `topology`. Its `version_info` is the topology's epoch.
pub fn filter_config(topology: &Topology, opts: &RenderOptions) -> Value {
    let plugin_config = PluginConfig {
        topology: topology.clone(),
        node_timeout_ms: opts.node_timeout_ms,
        node_api_key: opts.node_api_key.clone(),
        control_plane: None,
        indexes: Default::default(),
    };
    filter_config_raw(
        &topology.epoch.to_string(),
        &plugin_config.to_json(),
        &opts.wasm_path,
    )
}

/// The ECDS file's content with an arbitrary plugin configuration string (which need not be
/// valid: used to check that the filter NACKs what it cannot parse).
pub fn filter_config_raw(version: &str, plugin_config_json: &str, wasm_path: &Path) -> Value {
    let filter = model::Filter::new(
        plugin_config_json.to_string(),
        model::WasmCode::Local(wasm_path.to_path_buf()),
    );
    json!({"version_info": version, "resources": [encode_filter(&filter)]})
}

/// Protobuf JSON `Duration`: seconds with an `s` suffix.
fn duration(ms: u64) -> String {
    match ms % 1000 {
        0 => format!("{}s", ms / 1000),
        frac => format!("{}.{frac:03}s", ms / 1000),
    }
}

fn socket_address(addr: &SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

/// Splits `host:port` (the topology validated it; a bad one renders as port 0, which Envoy's
/// validation then reports).
fn host_port(address: &str) -> (String, u16) {
    match address.rsplit_once(':') {
        Some((host, port)) => (
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port.parse().unwrap_or(0),
        ),
        None => (address.to_string(), 0),
    }
}

/// The model of `topology`'s node clusters, checked with [`model::HealthCheck::default`].
pub fn node_clusters(topology: &Topology) -> Vec<model::Cluster> {
    topology
        .nodes
        .iter()
        .map(|node| {
            let (host, port) = host_port(&node.address);
            model::Cluster::node(&node.id, &host, port, model::HealthCheck::default())
        })
        .collect()
}

/// The model of the static listener: the filter's configuration from the watched ECDS file.
pub fn static_listener(opts: &RenderOptions) -> model::Listener {
    model::Listener::new(
        opts.listen,
        model::ListenerTimeouts::for_node_timeout(opts.node_timeout_ms),
        model::FilterSource::File {
            path: opts.ecds_path(),
            watched_directory: opts.ecds_dir(),
        },
    )
}

pub fn bootstrap(topology: &Topology, opts: &RenderOptions) -> Value {
    let clusters: Vec<Value> = node_clusters(topology).iter().map(encode_cluster).collect();
    json!({
        // ECDS needs both, and the xDS control plane will key its snapshots on them.
        "node": {"id": format!("miroir-envoy-{}", opts.listen), "cluster": "miroir"},
        "admin": {"address": socket_address(&opts.admin)},
        "static_resources": {
            "listeners": [encode_listener(&static_listener(opts))],
            "clusters": clusters,
        },
        "layered_runtime": layered_runtime(),
        "overload_manager": overload_manager(),
        "stats_config": stats_config(),
    })
}

/// One tag per label of the filter's metrics ([`miroir_topology::stats_tags`]), so Envoy's
/// `/stats/prometheus` shows `miroir_filter_requests_total{route="search",status="2xx"}` rather
/// than the label inside the name. Envoy's default tags are kept.
fn stats_config() -> Value {
    let tags: Vec<Value> = miroir_topology::stats_tags::LABELS
        .iter()
        .map(|label| json!({"tag_name": label, "regex": miroir_topology::stats_tags::regex(label)}))
        .collect();
    json!({"stats_tags": tags})
}

fn layered_runtime() -> Value {
    json!({"layers": [
        {"name": "static", "static_layer": {
            "http.async_response_buffer_limit": ASYNC_RESPONSE_BUFFER_LIMIT_BYTES,
        }},
        // Lets tests and operators flip runtime keys through the admin `/runtime_modify`.
        {"name": "admin", "admin_layer": {}},
    ]})
}

/// Envoy warns at startup without a downstream connection cap.
fn overload_manager() -> Value {
    json!({"resource_monitors": [{
        "name": "envoy.resource_monitors.global_downstream_max_connections",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
            "max_active_downstream_connections": MAX_DOWNSTREAM_CONNECTIONS,
        },
    }]})
}

/// The listener in Envoy's JSON (protobuf JSON with the proto field names).
pub fn encode_listener(listener: &model::Listener) -> Value {
    let config_source = match &listener.filter_source {
        model::FilterSource::File {
            path,
            watched_directory,
        } => json!({
            "path_config_source": {
                "path": path.to_string_lossy(),
                "watched_directory": {"path": watched_directory.to_string_lossy()},
            },
            "resource_api_version": "V3",
        }),
        model::FilterSource::Ads => json!({"ads": {}, "resource_api_version": "V3"}),
    };
    json!({
        "name": listener.name,
        "address": socket_address(&listener.address),
        "per_connection_buffer_limit_bytes": listener.per_connection_buffer_limit_bytes,
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM_TYPE_URL,
                "stat_prefix": listener.stat_prefix,
                "codec_type": "AUTO",
                "request_timeout": duration(listener.timeouts.request_timeout_ms),
                "stream_idle_timeout": duration(listener.timeouts.stream_idle_timeout_ms),
                "route_config": encode_guard_route(&listener.route),
                "access_log": [{
                    "name": model::STDOUT_ACCESS_LOG,
                    "typed_config": {
                        "@type": STDOUT_ACCESS_LOG_TYPE_URL,
                        "log_format": {"text_format_source": {
                            "inline_string": model::ACCESS_LOG_FORMAT,
                        }},
                    },
                }],
                "http_filters": [
                    {
                        "name": listener.filter_name,
                        "config_discovery": {
                            "config_source": config_source,
                            "type_urls": [WASM_TYPE_URL],
                        },
                    },
                    {
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": ROUTER_TYPE_URL},
                    },
                ],
            },
        }]}],
    })
}

fn encode_guard_route(route: &model::GuardRoute) -> Value {
    json!({
        "name": route.name,
        "virtual_hosts": [{
            "name": route.name,
            "domains": route.domains,
            "routes": [{
                "match": {"prefix": route.prefix},
                "direct_response": {"status": route.status, "body": {"inline_string": route.body}},
                "response_headers_to_add": [{
                    "header": {"key": "content-type", "value": route.content_type},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }],
            }],
        }],
    })
}

/// A cluster in Envoy's JSON (protobuf JSON with the proto field names).
pub fn encode_cluster(cluster: &model::Cluster) -> Value {
    let mut out = json!({
        "name": cluster.name,
        "type": match cluster.discovery {
            model::Discovery::Static => "STATIC",
            model::Discovery::StrictDnsV4Preferred => "STRICT_DNS",
        },
        "connect_timeout": duration(cluster.connect_timeout_ms),
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": cluster.name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": cluster.host, "port_value": cluster.port}},
        }}]}]},
        "typed_extension_protocol_options": {
            HTTP_PROTOCOL_OPTIONS: {
                "@type": HTTP_PROTOCOL_OPTIONS_TYPE_URL,
                "explicit_http_config": {"http_protocol_options": {}},
                "common_http_protocol_options": {"idle_timeout": duration(cluster.idle_timeout_ms)},
            },
        },
        "circuit_breakers": {"thresholds": [{
            "priority": "DEFAULT",
            "max_connections": cluster.circuit_breakers.max_connections,
            "max_pending_requests": cluster.circuit_breakers.max_pending_requests,
            "max_requests": cluster.circuit_breakers.max_requests,
        }]},
    });
    if cluster.discovery == model::Discovery::StrictDnsV4Preferred {
        out["dns_lookup_family"] = json!("V4_PREFERRED");
    }
    if let Some(threshold) = cluster.healthy_panic_threshold {
        out["common_lb_config"] = json!({"healthy_panic_threshold": {"value": threshold}});
    }
    if let Some(od) = &cluster.outlier_detection {
        out["outlier_detection"] = json!({
            "consecutive_5xx": od.consecutive_5xx,
            "consecutive_gateway_failure": od.consecutive_gateway_failure,
            "enforcing_consecutive_gateway_failure": od.enforcing_consecutive_gateway_failure,
            "interval": duration(od.interval_ms),
            "base_ejection_time": duration(od.base_ejection_time_ms),
            "max_ejection_time": duration(od.max_ejection_time_ms),
            "max_ejection_percent": od.max_ejection_percent,
        });
    }
    if let Some(hc) = &cluster.health_check {
        out["health_checks"] = json!([{
            "timeout": duration(hc.timeout_ms),
            "interval": duration(hc.interval_ms),
            "no_traffic_interval": duration(hc.no_traffic_interval_ms),
            "unhealthy_threshold": hc.unhealthy_threshold,
            "healthy_threshold": hc.healthy_threshold,
            "http_health_check": {"path": hc.path},
        }]);
    }
    out
}

/// The filter's `TypedExtensionConfig` in Envoy's JSON.
pub fn encode_filter(filter: &model::Filter) -> Value {
    let code = match &filter.code {
        model::WasmCode::Local(path) => json!({"local": {"filename": path.to_string_lossy()}}),
        model::WasmCode::Remote {
            uri,
            sha256,
            cluster,
            timeout_ms,
            retries,
        } => json!({"remote": {
            "http_uri": {"uri": uri, "cluster": cluster, "timeout": duration(*timeout_ms)},
            "sha256": sha256,
            "retry_policy": {"num_retries": retries},
        }}),
    };
    let mut config = json!({
        "name": filter.name,
        "root_id": filter.root_id,
        "vm_config": {
            "vm_id": filter.vm_id,
            "runtime": filter.runtime,
            "code": code,
        },
        "configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": filter.configuration,
        },
        "allow_on_headers_stop_iteration": filter.allow_on_headers_stop_iteration,
    });
    if filter.fail_reload {
        config["failure_policy"] = json!("FAIL_RELOAD");
    }
    json!({
        "@type": EXTENSION_CONFIG_TYPE_URL,
        "name": filter.name,
        "typed_config": {"@type": WASM_TYPE_URL, "config": config},
    })
}

fn to_pretty(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Replaces the ECDS file in `ecds_dir` atomically. Envoy watches the directory for moves, so a
/// rename is one reload of a complete file, never a read of a half-written one.
pub fn write_filter_config(ecds_dir: &Path, filter_config: &Value) -> io::Result<PathBuf> {
    fs::create_dir_all(ecds_dir)?;
    let target = ecds_dir.join(ECDS_FILE);
    write_atomically(&target, &to_pretty(filter_config))?;
    Ok(target)
}

/// Writes `bytes` to a temporary file next to `target` (mode `0600`: readable by its owner
/// only), then renames it onto `target`.
pub fn write_atomically(target: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = target.parent().unwrap_or(Path::new("."));
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Dot-prefixed, unique per process and call: concurrent writers never share a temp file.
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        // Private: a bootstrap may hold the xDS token, a filter configuration the filter's key.
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
