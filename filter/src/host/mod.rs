//! The seam between the filter's decisions and Envoy. Everything behind it is plain Rust tested
//! natively with [`crate::host::mock::MockHost`]; the proxy-wasm glue implements it by moving bytes.

/// A call to one node's cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub cluster: String,
    /// `:authority` of the call: what the cluster's listener routes on.
    pub authority: String,
    pub method: &'static str,
    /// Path and query string, as sent to the node.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
}

/// What came back from a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The node (or Envoy on its behalf: 503 on connect failure, 504 on timeout) answered.
    /// `headers` are lower-case, pseudo-headers (`:status`) excluded.
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// No response at all: the call was reset or its response exceeded the buffer limit.
    Failed,
}

pub trait Host {
    /// Starts a call; the reply arrives later through `Exchange::on_reply` with the same token.
    fn dispatch(&mut self, call: &Call) -> Result<u32, String>;
    /// Answers the client. Called exactly once per request.
    fn respond(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]);
    /// Wall-clock time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Adds `delta` to a counter (an Envoy stat `wasmcustom.<name>`); 0 only defines it.
    fn count(&mut self, name: &'static str, delta: u64) {
        self.count_with(name, &[], delta);
    }
    /// Adds `delta` to the counter `name` with these labels ([`crate::metrics`] says how Envoy
    /// shows them).
    fn count_with(&mut self, name: &'static str, labels: &[(&'static str, &str)], delta: u64);
    /// Sets a gauge (an Envoy stat `wasmcustom.<name>`).
    fn gauge(&mut self, name: &'static str, value: u64) {
        self.gauge_with(name, &[], value);
    }
    fn gauge_with(&mut self, name: &'static str, labels: &[(&'static str, &str)], value: u64);
    /// Records a value in a histogram.
    fn histogram(&mut self, name: &'static str, labels: &[(&'static str, &str)], value: u64);
    fn log_warn(&mut self, message: &str);
    /// Process-wide key/value shared by every worker's VM (proxy-wasm shared data): the value and
    /// its compare-and-swap token.
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, u32);
    /// Stores `value` if `cas` still matches (0 = unconditionally); false on a CAS mismatch.
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> bool;
}

#[cfg(any(test, feature = "mock"))]
pub mod mock;
