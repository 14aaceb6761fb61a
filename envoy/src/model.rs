//! One description of the Envoy resources that run Miroir, in plain Rust: the node clusters (and
//! the control plane's), the client listener with its guard route, and the filter's
//! configuration.
//!
//! Two thin encoders read it: this crate's static renderer (Envoy's JSON, see `lib.rs`) and
//! `miroir-xds` (protobuf, for ADS). Every value either of them sends lives here, so a file-fed
//! and an xDS-fed Envoy cannot drift apart; `miroir-xds`'s `tests/model_agreement.rs` checks that
//! the two encodings of one topology agree. See `README.md` for why each value is what it is.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Name of the HTTP filter, of its ECDS resource, of its wasm root context and VM.
pub const FILTER_NAME: &str = "miroir";
/// Name of the listener, of its route configuration and virtual host, and its stat prefix.
pub const LISTENER_NAME: &str = "miroir";
/// The client listener's access log, one line per request on Envoy's stdout: Envoy's default
/// format plus the trace context and the answer's `x-miroir-degraded`. The request id and the
/// trace context join a line to the nodes' logs and the control plane's spans (the filter passes
/// both on).
pub const ACCESS_LOG_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(TRACEPARENT)%\" \"%RESP(X-MIROIR-DEGRADED)%\"\n";
/// Envoy's access logger to stdout.
pub const STDOUT_ACCESS_LOG: &str = "envoy.access_loggers.stdout";
/// Per-node circuit breakers: the filter fans out many parallel calls to one node.
pub const CIRCUIT_BREAKER_LIMIT: u32 = 1024;
/// Holds the largest body the filter accepts (`miroir_topology::limits`, asserted to fit).
#[allow(clippy::cast_possible_truncation)]
pub const LISTENER_BUFFER_LIMIT_BYTES: u32 =
    miroir_topology::limits::LISTENER_BUFFER_LIMIT_BYTES as u32;

/// Body of the guard route: what a client sees if a request reaches the router, i.e. the filter
/// is absent or let the request through. Shaped like a Meilisearch error.
pub const GUARD_BODY: &str = r#"{"message":"Miroir filter unavailable: the request was not forwarded.","code":"miroir_filter_unavailable","type":"system","link":"https://docs.meilisearch.com/errors#miroir_filter_unavailable"}"#;

/// How a cluster finds its one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// An IP: `STATIC`, `dns_lookup_family` left at its default (`AUTO`).
    Static,
    /// A name: `STRICT_DNS` (re-resolved every 5 s, Envoy's default, so a node moved behind its
    /// name is followed without a new topology), `V4_PREFERRED`: container and VM names usually
    /// resolve to IPv4 only, and AUTO would try IPv6 first.
    StrictDnsV4Preferred,
}

impl Discovery {
    pub fn for_host(host: &str) -> Self {
        if host.parse::<IpAddr>().is_ok() {
            Discovery::Static
        } else {
            Discovery::StrictDnsV4Preferred
        }
    }
}

/// Active health check `GET <path>`. A passing check also un-ejects an outlier-ejected host, so a
/// restarted node is back after one interval, not only when its ejection time runs out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub timeout_ms: u64,
    pub interval_ms: u64,
    /// The default (60 s) applies until the cluster has seen traffic: the interval instead.
    pub no_traffic_interval_ms: u64,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    pub path: String,
}

impl HealthCheck {
    /// Checks every `interval_ms` (with or without traffic) of Meilisearch's `/health`.
    pub fn new(
        interval_ms: u64,
        timeout_ms: u64,
        unhealthy_threshold: u32,
        healthy_threshold: u32,
    ) -> Self {
        HealthCheck {
            timeout_ms,
            interval_ms,
            no_traffic_interval_ms: interval_ms,
            unhealthy_threshold,
            healthy_threshold,
            path: "/health".to_string(),
        }
    }
}

impl Default for HealthCheck {
    /// A restarted node is back within about a second, a dead one is out after two missed checks.
    fn default() -> Self {
        HealthCheck::new(1_000, 1_000, 2, 1)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierDetection {
    pub consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    /// Envoy enforces gateway-failure ejections at 0% unless told otherwise, which would make the
    /// lower gateway-failure threshold decorative.
    pub enforcing_consecutive_gateway_failure: u32,
    pub interval_ms: u64,
    pub base_ejection_time_ms: u64,
    pub max_ejection_time_ms: u64,
    /// The default (10%) of a single host ejects nobody.
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 3,
            enforcing_consecutive_gateway_failure: 100,
            interval_ms: 1_000,
            base_ejection_time_ms: 2_000,
            max_ejection_time_ms: 30_000,
            max_ejection_percent: 100,
        }
    }
}

/// The `DEFAULT` priority's thresholds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitBreakers {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        CircuitBreakers {
            max_connections: CIRCUIT_BREAKER_LIMIT,
            max_pending_requests: CIRCUIT_BREAKER_LIMIT,
            max_requests: CIRCUIT_BREAKER_LIMIT,
        }
    }
}

/// A cluster of one host, round robin, explicit HTTP/1.1 upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub discovery: Discovery,
    pub connect_timeout_ms: u64,
    /// `HttpProtocolOptions.common_http_protocol_options.idle_timeout`.
    pub idle_timeout_ms: u64,
    /// `common_lb_config.healthy_panic_threshold` (percent), when set.
    pub healthy_panic_threshold: Option<f64>,
    pub outlier_detection: Option<OutlierDetection>,
    pub health_check: Option<HealthCheck>,
    pub circuit_breakers: CircuitBreakers,
}

impl Cluster {
    /// One host at `host:port`, with circuit breakers and nothing else.
    pub fn upstream(name: &str, host: &str, port: u16) -> Self {
        Cluster {
            name: name.to_string(),
            host: host.to_string(),
            port,
            discovery: Discovery::for_host(host),
            connect_timeout_ms: 1_000,
            idle_timeout_ms: 60_000,
            healthy_panic_threshold: None,
            outlier_detection: None,
            health_check: None,
            circuit_breakers: CircuitBreakers::default(),
        }
    }

    /// The cluster reaching node `node_id`, named [`miroir_topology::cluster_name`]: health
    /// checked, outliers ejected, and no panic routing. The default panic threshold (50%) keeps
    /// sending to a cluster's only host once it is unhealthy; at 0 a down node gives a fast local
    /// 503 the filter can fail over on.
    pub fn node(node_id: &str, host: &str, port: u16, health: HealthCheck) -> Self {
        Cluster {
            healthy_panic_threshold: Some(0.0),
            outlier_detection: Some(OutlierDetection::default()),
            health_check: Some(health),
            ..Cluster::upstream(&miroir_topology::cluster_name(node_id), host, port)
        }
    }

    /// The control plane's HTTP listener (task registry calls, remote `.wasm`).
    pub fn control_plane(host: &str, port: u16) -> Self {
        Cluster::upstream(miroir_topology::CONTROL_PLANE_CLUSTER, host, port)
    }
}

/// The HCM's timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerTimeouts {
    pub request_timeout_ms: u64,
    pub stream_idle_timeout_ms: u64,
}

impl ListenerTimeouts {
    /// The filter holds a request for all its calls to nodes (possibly a few sequential rounds)
    /// while Envoy sees no downstream activity; both timeouts must outlast that, yet still end
    /// requests a crashed VM left hanging.
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

/// Where the HCM's ECDS filter gets its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterSource {
    /// A file, reloaded when something is renamed into `watched_directory` (watching the
    /// directory, not the file, is what makes an atomic rename trigger a reload).
    File {
        path: PathBuf,
        watched_directory: PathBuf,
    },
    /// The ADS stream. No default config: until the filter config arrives, the listener warms
    /// instead of serving requests the guard would refuse.
    Ads,
}

/// The only route: `prefix` → a direct response. The filter answers every request with a local
/// reply, so the router runs only when the filter is missing or let a request through, and then
/// nothing reaches a node unfiltered. There is deliberately no route to any cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardRoute {
    pub name: String,
    pub domains: Vec<String>,
    pub prefix: String,
    pub status: u32,
    pub body: String,
    /// Set (`OVERWRITE_IF_EXISTS_OR_ADD`) on the response.
    pub content_type: String,
}

impl Default for GuardRoute {
    fn default() -> Self {
        GuardRoute {
            name: LISTENER_NAME.to_string(),
            domains: vec!["*".to_string()],
            prefix: "/".to_string(),
            status: 503,
            body: GUARD_BODY.to_string(),
            content_type: "application/json".to_string(),
        }
    }
}

/// The client listener: one filter chain, the HTTP connection manager (codec `AUTO`) with
/// `[<filter_name> (ECDS), envoy.filters.http.router]` and the guard route inline.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub per_connection_buffer_limit_bytes: u32,
    pub stat_prefix: String,
    pub timeouts: ListenerTimeouts,
    pub filter_name: String,
    pub filter_source: FilterSource,
    pub route: GuardRoute,
}

impl Listener {
    pub fn new(
        address: SocketAddr,
        timeouts: ListenerTimeouts,
        filter_source: FilterSource,
    ) -> Self {
        Listener {
            name: LISTENER_NAME.to_string(),
            address,
            per_connection_buffer_limit_bytes: LISTENER_BUFFER_LIMIT_BYTES,
            stat_prefix: LISTENER_NAME.to_string(),
            timeouts,
            filter_name: FILTER_NAME.to_string(),
            filter_source,
            route: GuardRoute::default(),
        }
    }
}

/// Where Envoy loads the filter's `.wasm` from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WasmCode {
    /// `code.local.filename`.
    Local(PathBuf),
    /// `code.remote`: fetched through `cluster`, checked against `sha256` (hex).
    Remote {
        uri: String,
        sha256: String,
        cluster: String,
        timeout_ms: u64,
        retries: u32,
    },
}

impl WasmCode {
    /// Fetched from the control plane's cluster. The module is a few MiB from a nearby control
    /// plane: 30 s per try, 5 retries.
    pub fn remote(uri: &str, sha256: &str) -> Self {
        WasmCode::Remote {
            uri: uri.to_string(),
            sha256: sha256.to_string(),
            cluster: miroir_topology::CONTROL_PLANE_CLUSTER.to_string(),
            timeout_ms: 30_000,
            retries: 5,
        }
    }
}

/// The filter's ECDS resource: a `TypedExtensionConfig` wrapping the wasm HTTP filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// The `TypedExtensionConfig`'s and the plugin's name.
    pub name: String,
    pub root_id: String,
    /// Same vm_id and code across pushes: a config-only update reuses the VMs.
    pub vm_id: String,
    pub runtime: String,
    pub code: WasmCode,
    /// The plugin configuration (a `StringValue`), normally `PluginConfig::to_json()`.
    pub configuration: String,
    /// Without it a Pause in on_http_request_headers never lets the body through.
    pub allow_on_headers_stop_iteration: bool,
    /// `FAIL_RELOAD`: a trapped VM is rebuilt instead of failing every later request.
    pub fail_reload: bool,
}

impl Filter {
    pub fn new(configuration: String, code: WasmCode) -> Self {
        Filter {
            name: FILTER_NAME.to_string(),
            root_id: FILTER_NAME.to_string(),
            vm_id: FILTER_NAME.to_string(),
            runtime: "envoy.wasm.runtime.v8".to_string(),
            code,
            configuration,
            allow_on_headers_stop_iteration: true,
            fail_reload: true,
        }
    }
}
