//! What the filter counts: every metric's name and labels (docs/metrics.md lists them).
//!
//! The core decides what is counted, under which labels; the host only emits. In Envoy each
//! metric is a stat `wasmcustom.<name>` whose labels are encoded in the stat's name the way
//! Istio encodes its own (`<name>.<label>=.=<value>;.;`), and the bootstrap's `stats_tags` turn
//! them back into labels ([`miroir_topology::stats_tags`]): `/stats/prometheus` shows
//! `miroir_filter_requests_total{route="search",status="2xx"}`.
//!
//! Every name starts with `miroir_filter_`; the control plane's metrics never do, so the two
//! never collide in one Prometheus.

use std::collections::BTreeMap;

use crate::host::{Call, Host, Reply};

/// Requests answered, by `route` (the route's family, [`crate::exchange`]) and `status` (class
/// of the answer: `2xx`, `4xx`, `5xx`).
pub const REQUESTS: &str = "miroir_filter_requests_total";
/// Time from a request's whole body to its answer, by `route`.
pub const REQUEST_DURATION: &str = "miroir_filter_request_duration_milliseconds";
/// Calls to nodes, by `node` and `status` (class of the node's answer, or `failed`: reset,
/// response over the buffer limit, or a cluster this Envoy does not know).
pub const NODE_CALLS: &str = "miroir_filter_node_calls_total";
/// Time from a call to a node to its reply, by `node`.
pub const NODE_CALL_DURATION: &str = "miroir_filter_node_call_duration_milliseconds";
/// Calls to the control plane (task registrations, reads, uid leases, hand-overs), by `status`.
pub const CONTROL_PLANE_CALLS: &str = "miroir_filter_control_plane_calls_total";
/// Time from a call to the control plane to its reply.
pub const CONTROL_PLANE_CALL_DURATION: &str =
    "miroir_filter_control_plane_call_duration_milliseconds";
/// 1, labelled with the filter's `version`.
pub const BUILD_INFO: &str = "miroir_filter_build_info";
/// Epoch of the topology this Envoy's filter runs.
pub const TOPOLOGY_EPOCH: &str = "miroir_filter_topology_epoch";

pub const READ_FAILOVERS: &str = "miroir_filter_read_failovers_total";
pub const SEARCH_FAILOVERS: &str = "miroir_filter_search_failovers_total";
pub const NODE_DISAGREEMENTS: &str = "miroir_filter_node_disagreements_total";
pub const BATCHES_REJECTED: &str = "miroir_filter_batches_rejected_total";
pub const WRITES_DEGRADED: &str = "miroir_filter_writes_degraded_total";
pub const WRITES_UNAVAILABLE: &str = "miroir_filter_writes_unavailable_total";
pub const SEARCH_SHARDS_UNAVAILABLE: &str = "miroir_filter_search_shards_unavailable_total";
pub const SEARCH_DISTINCT_UNSETTLED: &str = "miroir_filter_search_distinct_unsettled_total";
pub const SEARCH_FOLLOW_UP_ROUNDS_EXHAUSTED: &str =
    "miroir_filter_search_follow_up_rounds_exhausted_total";
pub const TASK_REGISTRATIONS_FAILED: &str = "miroir_filter_task_registrations_failed_total";
pub const TASK_REGISTRATIONS_DEFERRED: &str = "miroir_filter_task_registrations_deferred_total";
pub const PAYLOAD_TOO_LARGE: &str = "miroir_filter_payload_too_large_total";
pub const LARGE_BODIES_REFUSED: &str = "miroir_filter_large_bodies_refused_total";
pub const UID_LEASES: &str = "miroir_filter_uid_leases_total";
pub const TASK_HANDOVERS: &str = "miroir_filter_task_handovers_total";
/// Document writes that asked every node for the index (the registry the control plane pushes
/// had no primary key for it, or the nodes the write goes to said otherwise).
pub const INDEX_LOOKUPS: &str = "miroir_filter_index_lookups_total";

/// The counters without labels, defined (at 0) as soon as a configuration is accepted, so each
/// exists before its first event and `rate()` sees its first increase.
pub const COUNTERS: &[&str] = &[
    READ_FAILOVERS,
    SEARCH_FAILOVERS,
    NODE_DISAGREEMENTS,
    BATCHES_REJECTED,
    WRITES_DEGRADED,
    WRITES_UNAVAILABLE,
    SEARCH_SHARDS_UNAVAILABLE,
    SEARCH_DISTINCT_UNSETTLED,
    SEARCH_FOLLOW_UP_ROUNDS_EXHAUSTED,
    TASK_REGISTRATIONS_FAILED,
    TASK_REGISTRATIONS_DEFERRED,
    PAYLOAD_TOO_LARGE,
    LARGE_BODIES_REFUSED,
    UID_LEASES,
    TASK_HANDOVERS,
    INDEX_LOOKUPS,
];

/// The filter's version, the value of [`BUILD_INFO`]'s `version` label.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A reply's status as a `status` label value.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// What a configuration's acceptance records: the build, the epoch, the counters at 0.
pub fn on_configure(host: &mut dyn Host, epoch: u64) {
    host.gauge_with(BUILD_INFO, &[("version", VERSION)], 1);
    host.gauge(TOPOLOGY_EPOCH, epoch);
    for name in COUNTERS {
        host.count(name, 0);
    }
}

/// Counts an answered request and its duration.
pub fn answered(host: &mut dyn Host, route: &'static str, status: u16, started_ms: u64) {
    host.count_with(
        REQUESTS,
        &[("route", route), ("status", status_class(status))],
        1,
    );
    let elapsed = host.now_ms().saturating_sub(started_ms);
    host.histogram(REQUEST_DURATION, &[("route", route)], elapsed);
}

/// What [`miroir_topology::cluster_name`] puts before a node's id.
const NODE_CLUSTER_PREFIX: &str = "miroir-node-";

/// The node a cluster stands for (`None`: not a node's cluster, the control plane's).
fn node_of(cluster: &str) -> Option<&str> {
    cluster.strip_prefix(NODE_CLUSTER_PREFIX)
}

fn call_done(host: &mut dyn Host, cluster: &str, status: &'static str, elapsed: Option<u64>) {
    match node_of(cluster) {
        Some(node) => {
            host.count_with(NODE_CALLS, &[("node", node), ("status", status)], 1);
            if let Some(elapsed) = elapsed {
                host.histogram(NODE_CALL_DURATION, &[("node", node)], elapsed);
            }
        }
        None => {
            host.count_with(CONTROL_PLANE_CALLS, &[("status", status)], 1);
            if let Some(elapsed) = elapsed {
                host.histogram(CONTROL_PLANE_CALL_DURATION, &[], elapsed);
            }
        }
    }
}

/// The calls in flight of one request (or of the background work): when each started, to count
/// it and its duration when its reply comes.
#[derive(Default)]
pub struct Calls {
    started: BTreeMap<u32, (String, u64)>,
}

impl Calls {
    /// Counts the reply to `token` if it is one of these calls.
    pub fn finish(&mut self, token: u32, reply: &Reply, host: &mut dyn Host) {
        let Some((cluster, started)) = self.started.remove(&token) else {
            return;
        };
        let status = match reply {
            Reply::Response { status, .. } => status_class(*status),
            Reply::Failed => "failed",
        };
        let elapsed = host.now_ms().saturating_sub(started);
        call_done(host, &cluster, status, Some(elapsed));
    }

    /// `host`, with every call dispatched through it timed here.
    pub fn timing<'a>(&'a mut self, host: &'a mut dyn Host) -> Timed<'a> {
        Timed { host, calls: self }
    }
}

/// A [`Host`] that records the calls dispatched through it in [`Calls`]; everything else goes
/// straight through.
pub struct Timed<'a> {
    host: &'a mut dyn Host,
    calls: &'a mut Calls,
}

impl Host for Timed<'_> {
    fn dispatch(&mut self, call: &Call) -> Result<u32, String> {
        let result = self.host.dispatch(call);
        match &result {
            Ok(token) => {
                let now = self.host.now_ms();
                self.calls
                    .started
                    .insert(*token, (call.cluster.clone(), now));
            }
            Err(_) => call_done(self.host, &call.cluster, "failed", None),
        }
        result
    }

    fn respond(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        self.host.respond(status, headers, body);
    }

    fn now_ms(&self) -> u64 {
        self.host.now_ms()
    }

    fn count_with(&mut self, name: &'static str, labels: &[(&'static str, &str)], delta: u64) {
        self.host.count_with(name, labels, delta);
    }

    fn gauge_with(&mut self, name: &'static str, labels: &[(&'static str, &str)], value: u64) {
        self.host.gauge_with(name, labels, value);
    }

    fn histogram(&mut self, name: &'static str, labels: &[(&'static str, &str)], value: u64) {
        self.host.histogram(name, labels, value);
    }

    fn log_warn(&mut self, message: &str) {
        self.host.log_warn(message);
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, u32) {
        self.host.shared_get(key)
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        self.host.shared_set(key, value, cas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::{json_reply, MockHost};
    use serde_json::json;

    fn call(cluster: &str) -> Call {
        Call {
            cluster: cluster.into(),
            authority: "a".into(),
            method: "GET",
            path: "/".into(),
            headers: Vec::new(),
            body: None,
            timeout_ms: 1,
        }
    }

    #[test]
    fn calls_are_counted_by_node_and_status_class() {
        let mut host = MockHost::default();
        host.unknown_clusters.push("miroir-node-n9".into());
        let mut calls = Calls::default();
        let (a, b, c) = {
            let mut timed = calls.timing(&mut host);
            let a = timed.dispatch(&call("miroir-node-n0")).unwrap();
            let b = timed.dispatch(&call("miroir-node-n1")).unwrap();
            let c = timed.dispatch(&call("miroir-control-plane")).unwrap();
            assert!(timed.dispatch(&call("miroir-node-n9")).is_err());
            (a, b, c)
        };
        calls.finish(a, &json_reply(200, json!({})), &mut host);
        calls.finish(b, &Reply::Failed, &mut host);
        calls.finish(c, &json_reply(503, json!({})), &mut host);
        // A token finished twice, or never dispatched here, counts nothing.
        calls.finish(a, &json_reply(200, json!({})), &mut host);
        let labeled = |key: &str| host.labeled.get(key).copied();
        assert_eq!(
            labeled("miroir_filter_node_calls_total{node=n0,status=2xx}"),
            Some(1)
        );
        assert_eq!(
            labeled("miroir_filter_node_calls_total{node=n1,status=failed}"),
            Some(1)
        );
        assert_eq!(
            labeled("miroir_filter_node_calls_total{node=n9,status=failed}"),
            Some(1)
        );
        assert_eq!(
            labeled("miroir_filter_control_plane_calls_total{status=5xx}"),
            Some(1)
        );
        let timed: Vec<&str> = host.histograms.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            timed,
            [
                "miroir_filter_node_call_duration_milliseconds{node=n0}",
                "miroir_filter_node_call_duration_milliseconds{node=n1}",
                "miroir_filter_control_plane_call_duration_milliseconds",
            ]
        );
    }

    #[test]
    fn names_follow_the_conventions() {
        for name in COUNTERS
            .iter()
            .chain(&[REQUESTS, NODE_CALLS, CONTROL_PLANE_CALLS])
        {
            assert!(name.starts_with("miroir_filter_"), "{name}");
            assert!(name.ends_with("_total"), "{name}");
        }
        for name in [
            REQUEST_DURATION,
            NODE_CALL_DURATION,
            CONTROL_PLANE_CALL_DURATION,
            BUILD_INFO,
            TOPOLOGY_EPOCH,
        ] {
            assert!(name.starts_with("miroir_filter_"), "{name}");
            assert!(!name.ends_with("_total"), "{name}");
        }
        assert_eq!(miroir_topology::cluster_name(""), NODE_CLUSTER_PREFIX);
    }
}
