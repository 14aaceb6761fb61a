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

use miroir_topology::{cluster_name, PluginConfig, Topology};
use serde_json::{json, Value};

mod ads;
pub use ads::{ads_bootstrap, AdsBootstrapOptions, XDS_CLUSTER};

/// Name of the HTTP filter, of its ECDS resource, of its wasm root context and VM.
pub const FILTER_NAME: &str = "miroir";
/// File name of the bootstrap inside `config_dir`.
pub const BOOTSTRAP_FILE: &str = "envoy.json";
/// Directory (inside `config_dir`) Envoy watches for the filter configuration.
pub const ECDS_DIR: &str = "ecds";
/// File name of the filter configuration inside [`ECDS_DIR`].
pub const ECDS_FILE: &str = "miroir-filter.json";

pub const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
pub const EXTENSION_CONFIG_TYPE_URL: &str =
    "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

const MIB: u64 = 1024 * 1024;
/// Holds the largest body the filter accepts (shared with the xDS listener).
pub use miroir_topology::limits::LISTENER_BUFFER_LIMIT_BYTES;
/// `dispatch_http_call` responses above this are reset (the call fails). The default is 32 MiB.
pub const ASYNC_RESPONSE_BUFFER_LIMIT_BYTES: u64 = 128 * MIB;
/// Cap on client connections to one Envoy.
pub const MAX_DOWNSTREAM_CONNECTIONS: u64 = 50_000;
/// Per-node circuit breakers: the filter fans out many parallel calls to one node.
pub const CIRCUIT_BREAKER_LIMIT: u64 = 1024;

/// Body of the guard route: what a client sees if a request reaches the router, i.e. the filter
/// is absent or let the request through. Shaped like a Meilisearch error.
pub const GUARD_BODY: &str = r#"{"message":"Miroir filter unavailable: the request was not forwarded.","code":"miroir_filter_unavailable","type":"system","link":"https://docs.meilisearch.com/errors#miroir_filter_unavailable"}"#;

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
        self.node_timeout_ms
            .saturating_mul(4)
            .saturating_add(60_000)
    }

    pub fn stream_idle_timeout_ms(&self) -> u64 {
        self.node_timeout_ms
            .saturating_mul(2)
            .saturating_add(30_000)
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
    json!({
        "version_info": version,
        "resources": [{
            "@type": EXTENSION_CONFIG_TYPE_URL,
            "name": FILTER_NAME,
            "typed_config": {
                "@type": WASM_TYPE_URL,
                "config": {
                    "name": FILTER_NAME,
                    "root_id": FILTER_NAME,
                    "vm_config": {
                        // Same vm_id and code across pushes: a config-only update reuses the VMs.
                        "vm_id": FILTER_NAME,
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": wasm_path.to_string_lossy()}},
                    },
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": plugin_config_json,
                    },
                    // Without it a Pause in on_http_request_headers never lets the body through.
                    "allow_on_headers_stop_iteration": true,
                    // A trapped VM is rebuilt instead of failing every later request.
                    "failure_policy": "FAIL_RELOAD",
                },
            },
        }],
    })
}

/// Protobuf JSON `Duration`: seconds with an `s` suffix.
fn duration(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
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

pub fn bootstrap(topology: &Topology, opts: &RenderOptions) -> Value {
    let clusters: Vec<Value> = topology
        .nodes
        .iter()
        .map(|node| node_cluster(&cluster_name(&node.id), &node.address))
        .collect();
    json!({
        // ECDS needs both, and the xDS control plane will key its snapshots on them.
        "node": {"id": format!("miroir-envoy-{}", opts.listen), "cluster": "miroir"},
        "admin": {"address": socket_address(&opts.admin)},
        "static_resources": {
            "listeners": [listener(opts)],
            "clusters": clusters,
        },
        "layered_runtime": layered_runtime(),
        "overload_manager": overload_manager(),
    })
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

fn listener(opts: &RenderOptions) -> Value {
    let ecds_dir = opts.ecds_dir();
    json!({
        "name": "miroir",
        "address": socket_address(&opts.listen),
        "per_connection_buffer_limit_bytes": LISTENER_BUFFER_LIMIT_BYTES,
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "miroir",
                "codec_type": "AUTO",
                "request_timeout": duration(opts.request_timeout_ms()),
                "stream_idle_timeout": duration(opts.stream_idle_timeout_ms()),
                "route_config": guard_route_config(),
                "http_filters": [
                    {
                        "name": FILTER_NAME,
                        "config_discovery": {
                            "config_source": {
                                "path_config_source": {
                                    "path": opts.ecds_path().to_string_lossy(),
                                    // Watching the directory (not the file) is what makes an
                                    // atomic rename onto the file trigger a reload.
                                    "watched_directory": {"path": ecds_dir.to_string_lossy()},
                                },
                                "resource_api_version": "V3",
                            },
                            "type_urls": [WASM_TYPE_URL],
                        },
                    },
                    {
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                    },
                ],
            },
        }]}],
    })
}

/// The only route: a 503. The filter answers every request with a local reply, so the router
/// runs only when the filter is missing or let a request through, and then nothing reaches a
/// node unfiltered.
fn guard_route_config() -> Value {
    json!({
        "name": "miroir",
        "virtual_hosts": [{
            "name": "miroir",
            "domains": ["*"],
            "routes": [{
                "match": {"prefix": "/"},
                "direct_response": {"status": 503, "body": {"inline_string": GUARD_BODY}},
                "response_headers_to_add": [{
                    "header": {"key": "content-type", "value": "application/json"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }],
            }],
        }],
    })
}

fn node_cluster(name: &str, address: &str) -> Value {
    let (host, port) = host_port(address);
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": host, "port_value": port}},
        }}]}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {}},
                "common_http_protocol_options": {"idle_timeout": "60s"},
            },
        },
        // The default (50%) keeps sending to a cluster's only host once it is unhealthy; at 0 a
        // down node gives a fast local 503 the filter can fail over on.
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        "outlier_detection": {
            "consecutive_5xx": 5,
            "consecutive_gateway_failure": 3,
            "interval": "1s",
            "base_ejection_time": "2s",
            "max_ejection_time": "30s",
            // The default (10%) of a single host ejects nobody.
            "max_ejection_percent": 100,
        },
        // A node that is back is un-ejected by its next passing check (about 1 s), not only
        // when its ejection time runs out.
        "health_checks": [{
            "timeout": "1s",
            "interval": "1s",
            // The default (60 s) applies until the cluster has seen traffic.
            "no_traffic_interval": "1s",
            "unhealthy_threshold": 2,
            "healthy_threshold": 1,
            "http_health_check": {"path": "/health"},
        }],
        "circuit_breakers": {"thresholds": [{
            "priority": "DEFAULT",
            "max_connections": CIRCUIT_BREAKER_LIMIT,
            "max_pending_requests": CIRCUIT_BREAKER_LIMIT,
            "max_requests": CIRCUIT_BREAKER_LIMIT,
        }]},
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
