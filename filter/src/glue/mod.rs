//! proxy-wasm glue: moves bytes between Envoy and [`Exchange`]. No decisions here.
//!
//! Rules that keep a worker's VM alive (a panic traps it): no unwrap/expect; when a call reply has
//! no headers (`num_headers == 0`, a reset) never read single response headers — the SDK panics
//! there — only the whole map, which is safe.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

use crate::config::FilterConfig;
use crate::exchange::{Exchange, Turns};
use crate::host::{Call, Host, Reply};
use crate::request::cors::Cors;
use crate::request::intake::Intake;
use crate::request::Request;
use crate::tasks::background::Background;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Stat ids of this VM, defined on first use (every VM defines the same names; Envoy aggregates).
/// A metric's labels are encoded in the stat's name as Istio encodes its own,
/// `<name>.<label>=.=<value>;.;` ([`miroir_topology::stats_tags`]); the bootstrap's `stats_tags` make them
/// labels again.
#[derive(Default)]
struct Metrics {
    ids: RefCell<HashMap<StatKey, u32>>,
}

/// A stat: its metric's name and its labels.
type StatKey = (&'static str, Vec<(&'static str, String)>);

impl Metrics {
    fn id(
        &self,
        name: &'static str,
        labels: &[(&'static str, &str)],
        kind: MetricType,
    ) -> Option<u32> {
        let key = (
            name,
            labels
                .iter()
                .map(|(k, v)| (*k, (*v).to_string()))
                .collect::<Vec<_>>(),
        );
        if let Some(id) = self.ids.borrow().get(&key) {
            return Some(*id);
        }
        let stat = miroir_topology::stats_tags::encode(name, labels);
        let id = hostcalls::define_metric(kind, &stat).ok()?;
        self.ids.borrow_mut().insert(key, id);
        Some(id)
    }
}

#[derive(Default)]
struct Root {
    config: Option<Rc<FilterConfig>>,
    turns: Rc<Turns>,
    metrics: Rc<Metrics>,
    background: Option<Background>,
}

fn envoy_id() -> String {
    hostcalls::get_property(vec!["node", "id"])
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// How often the root context leases uids and hands over task records.
const TICK: Duration = Duration::from_secs(1);

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let reply = call_reply(num_headers, body_size);
        let mut host = WasmHost {
            metrics: &self.metrics,
        };
        if let Some(background) = self.background.as_mut() {
            background.on_reply(token, reply, &mut host);
        }
    }
}

/// Header values as text. The SDK's `String` getters unwrap UTF-8 (a client's `\xff` would
/// panic the worker's VM): values are read as bytes and converted leniently, as any byte that is
/// not UTF-8 matters to no route. Names need no care: Envoy's codecs only pass token characters.
fn lossy(headers: Vec<(String, Vec<u8>)>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect()
}

/// The reply to a call, read from the host. With no headers (a reset) nothing else is read: the
/// SDK panics on single header reads then.
fn call_reply(num_headers: usize, body_size: usize) -> Reply {
    if num_headers == 0 {
        return Reply::Failed;
    }
    // `get_map` is safe here (num_headers > 0); per-header getters are not (the SDK panic trap).
    let (pseudo, headers): (Vec<_>, Vec<_>) =
        hostcalls::get_map_bytes(proxy_wasm::types::MapType::HttpCallResponseHeaders)
            .map(lossy)
            .unwrap_or_default()
            .into_iter()
            .partition(|(k, _)| k.starts_with(':'));
    let status = pseudo
        .into_iter()
        .find(|(k, _)| k == ":status")
        .and_then(|(_, v)| v.parse::<u16>().ok());
    match status {
        Some(status) => Reply::Response {
            status,
            headers,
            body: hostcalls::get_buffer(
                proxy_wasm::types::BufferType::HttpCallResponseBody,
                0,
                body_size,
            )
            .ok()
            .flatten()
            .unwrap_or_default(),
        },
        None => Reply::Failed,
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let mut host = WasmHost {
            metrics: &self.metrics,
        };
        match FilterConfig::configure(&bytes, &mut host) {
            Ok(config) => {
                log::info!("miroir: topology epoch {} accepted", config.topology.epoch);
                if config.control_plane.is_some() && self.background.is_none() {
                    self.background = Some(Background::new(envoy_id()));
                    let _ = hostcalls::set_tick_period(TICK);
                }
                self.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                // Returning false makes Envoy reject this config and keep serving the previous one.
                log::error!("miroir: rejected plugin configuration: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let (Some(config), Some(background)) = (self.config.clone(), self.background.as_mut())
        else {
            return;
        };
        background.ensure_envoy_id(envoy_id);
        let mut host = WasmHost {
            metrics: &self.metrics,
        };
        background.tick(&config, &mut host);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            config: self.config.clone(),
            turns: self.turns.clone(),
            metrics: self.metrics.clone(),
            exchange: None,
            intake: Intake::default(),
            body: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    config: Option<Rc<FilterConfig>>,
    turns: Rc<Turns>,
    metrics: Rc<Metrics>,
    exchange: Option<Exchange>,
    intake: Intake,
    /// The request body read so far, each part drained from Envoy's buffer once read.
    body: Vec<u8>,
}

impl Http {
    fn start(&mut self, body: Vec<u8>) {
        let headers = lossy(self.get_http_request_headers_bytes());
        let pseudo = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let (method, path) = (pseudo(":method"), pseudo(":path"));
        let request = Request::new(&method, &path, headers, body);
        let mut host = WasmHost {
            metrics: &self.metrics,
        };
        match self.config.clone() {
            Some(config) => {
                let turn = self.turns.next();
                self.exchange = Some(Exchange::start(config, request, turn, &mut host));
            }
            None => Exchange::not_configured(&request, &mut host),
        }
    }

    /// Whether a body of `size` bytes may go on (see [`Intake::admit`]).
    fn admit(&mut self, size: u64, known: bool) -> bool {
        let mut host = WasmHost {
            metrics: &self.metrics,
        };
        self.intake
            .admit(self.config.as_deref(), size, known, &mut host)
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let reply = call_reply(num_headers, body_size);
        let mut host = WasmHost {
            metrics: &self.metrics,
        };
        if let Some(exchange) = self.exchange.as_mut() {
            exchange.on_reply(token, reply, &mut host);
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let announced = self
            .get_http_request_header_bytes("content-length")
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let origin = self.get_http_request_header_bytes("origin").is_some();
        self.intake.set_cors(Cors::with_origin(origin));
        if !self.admit(announced, announced > 0) {
            return Action::Pause;
        }
        // Admitted: at most the payload limit.
        self.body
            .reserve_exact(usize::try_from(announced).unwrap_or(0));
        if end_of_stream {
            self.start(Vec::new());
        }
        // The filter answers every request itself; the route behind it is only a guard.
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let received = self.body.len().saturating_add(body_size);
        if !self.admit(received as u64, end_of_stream) || self.exchange.is_some() {
            return Action::Pause;
        }
        // Each part is moved into the VM as it arrives and drained from Envoy's buffer at
        // once (the filter answers every request itself: nothing is forwarded), so a large body
        // is held once while it arrives, not once by Envoy and once by the VM, and the memory
        // Envoy frees takes the next parts.
        if body_size > 0 {
            if let Some(part) = self.get_http_request_body(0, body_size) {
                self.body.extend_from_slice(&part);
                self.set_http_request_body(0, body_size, &[]);
            }
        }
        if end_of_stream {
            let body = std::mem::take(&mut self.body);
            self.start(body);
        }
        Action::Pause
    }
}

struct WasmHost<'a> {
    metrics: &'a Metrics,
}

impl Host for WasmHost<'_> {
    fn dispatch(&mut self, call: &Call) -> Result<u32, String> {
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", call.method),
            (":path", call.path.as_str()),
            (":authority", call.authority.as_str()),
        ];
        headers.extend(call.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        hostcalls::dispatch_http_call(
            &call.cluster,
            headers,
            call.body.as_deref(),
            vec![],
            Duration::from_millis(call.timeout_ms),
        )
        .map_err(|status: Status| format!("{status:?}"))
    }

    fn respond(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let _ = hostcalls::send_http_response(u32::from(status), headers.to_vec(), Some(body));
    }

    fn now_ms(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn gauge_with(&mut self, name: &'static str, labels: &[(&'static str, &str)], value: u64) {
        if let Some(id) = self.metrics.id(name, labels, MetricType::Gauge) {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    fn count_with(&mut self, name: &'static str, labels: &[(&'static str, &str)], delta: u64) {
        // Defining the stat creates it at 0; Envoy refuses an increment of 0.
        if let Some(id) = self.metrics.id(name, labels, MetricType::Counter) {
            if delta > 0 {
                let _ = hostcalls::increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX));
            }
        }
    }

    fn histogram(&mut self, name: &'static str, labels: &[(&'static str, &str)], value: u64) {
        if let Some(id) = self.metrics.id(name, labels, MetricType::Histogram) {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    fn log_warn(&mut self, message: &str) {
        log::warn!("miroir: {message}");
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, u32) {
        match hostcalls::get_shared_data(key) {
            Ok((value, cas)) => (value, cas.unwrap_or(0)),
            Err(_) => (None, 0),
        }
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        let cas = if cas == 0 { None } else { Some(cas) };
        hostcalls::set_shared_data(key, Some(value), cas).is_ok()
    }
}
