//! A scripted [`Host`] for native tests of the filter's decisions.

use std::collections::BTreeMap;

use crate::host::{Call, Host, Reply};

/// Status, headers and body of the answer.
pub type Response = (u16, Vec<(String, String)>, Vec<u8>);

#[derive(Default)]
pub struct MockHost {
    next_token: u32,
    /// Calls dispatched and not yet answered, in dispatch order.
    pub in_flight: Vec<(u32, Call)>,
    /// Every call ever dispatched, in order.
    pub sent: Vec<Call>,
    /// Clusters this "Envoy" does not know: dispatching to them fails synchronously.
    pub unknown_clusters: Vec<String>,
    pub response: Option<Response>,
    pub responses: usize,
    /// Counters by name, every label set summed.
    pub counters: BTreeMap<&'static str, u64>,
    /// Counters by `name{label=value,...}` (labels in the order given).
    pub labeled: BTreeMap<String, u64>,
    pub gauges: BTreeMap<&'static str, u64>,
    /// Values recorded in histograms, as `name{label=value,...}` and value, in order.
    pub histograms: Vec<(String, u64)>,
    pub shared: BTreeMap<String, (Vec<u8>, u32)>,
    pub warnings: Vec<String>,
}

impl MockHost {
    /// The answer's status and JSON body.
    pub fn answer(&self) -> Option<(u16, serde_json::Value)> {
        let (status, _, body) = self.response.as_ref()?;
        Some((
            *status,
            serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
        ))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let (_, headers, _) = self.response.as_ref()?;
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Host for MockHost {
    fn dispatch(&mut self, call: &Call) -> Result<u32, String> {
        if self.unknown_clusters.contains(&call.cluster) {
            return Err("BadArgument".into());
        }
        self.next_token = self.next_token.wrapping_add(1);
        self.in_flight.push((self.next_token, call.clone()));
        self.sent.push(call.clone());
        Ok(self.next_token)
    }

    fn respond(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        self.responses = self.responses.saturating_add(1);
        self.response = Some((
            status,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body.to_vec(),
        ));
    }

    fn now_ms(&self) -> u64 {
        1_700_000_000_000
    }

    fn count_with(&mut self, name: &'static str, labels: &[(&'static str, &str)], delta: u64) {
        let counter = self.counters.entry(name).or_default();
        *counter = counter.saturating_add(delta);
        let counter = self.labeled.entry(series(name, labels)).or_default();
        *counter = counter.saturating_add(delta);
    }

    fn gauge_with(&mut self, name: &'static str, _labels: &[(&'static str, &str)], value: u64) {
        self.gauges.insert(name, value);
    }

    fn histogram(&mut self, name: &'static str, labels: &[(&'static str, &str)], value: u64) {
        self.histograms.push((series(name, labels), value));
    }

    fn log_warn(&mut self, message: &str) {
        self.warnings.push(message.to_string());
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, u32) {
        match self.shared.get(key) {
            Some((value, cas)) => (Some(value.clone()), *cas),
            None => (None, 0),
        }
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        let current = self.shared.get(key).map(|(_, c)| *c).unwrap_or(0);
        if cas != 0 && cas != current {
            return false;
        }
        self.shared
            .insert(key.to_string(), (value.to_vec(), current.wrapping_add(1)));
        true
    }
}

/// `name{label=value,...}`, or `name` without labels.
fn series(name: &str, labels: &[(&'static str, &str)]) -> String {
    for (label, _) in labels {
        // Envoy leaves a label without its `stats_tags` entry in the stat's name.
        assert!(
            miroir_topology::stats_tags::LABELS.contains(label),
            "{name}: label `{label}` has no stats_tags entry"
        );
    }
    if labels.is_empty() {
        return name.to_string();
    }
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// Convenience for scripted node replies.
pub fn json_reply(status: u16, body: serde_json::Value) -> Reply {
    Reply::Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// Token the filter presents to the control plane in [`with_control_plane`] configurations.
pub const CONTROL_PLANE_TOKEN: &str = "filter-secret";

/// One active node `n0` in group `g`, over `shards` shards.
pub fn one_node(shards: u32) -> miroir_topology::PluginConfig {
    miroir_topology::PluginConfig::new(miroir_topology::Topology {
        epoch: 1,
        shards,
        shard_map: Default::default(),
        replication_factor: 1,
        nodes: vec![miroir_topology::Node {
            id: "n0".into(),
            address: "127.0.0.1:1".into(),
            group: "g".into(),
            state: miroir_topology::NodeState::Active,
        }],
    })
}

/// `config` with a control plane (cluster `miroir-control-plane`, authority `cp:7701`).
pub fn with_control_plane(
    mut config: miroir_topology::PluginConfig,
) -> std::rc::Rc<crate::config::FilterConfig> {
    config.control_plane = Some(miroir_topology::ControlPlaneRef {
        cluster: miroir_topology::CONTROL_PLANE_CLUSTER.into(),
        authority: "cp:7701".into(),
        token: CONTROL_PLANE_TOKEN.into(),
        timeout_ms: 2000,
    });
    std::rc::Rc::new(crate::config::FilterConfig::compile(config))
}
