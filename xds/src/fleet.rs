//! The fleet as the control plane reports it: every connected Envoy and, per resource type, what
//! it acknowledged or rejected.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::connection::Event;
use crate::version;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetView {
    /// Connected Envoys, ordered by node id then connection time.
    pub envoys: Vec<EnvoyView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyView {
    pub node_id: String,
    pub cluster: String,
    /// Unix time in milliseconds when this ADS stream opened.
    pub connected_since_ms: u64,
    /// Topology epoch of the filter configuration this Envoy acknowledged (read off its acked
    /// ECDS version).
    pub epoch: Option<u64>,
    /// Per type URL.
    pub types: BTreeMap<String, TypeView>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeView {
    /// The last version this Envoy accepted.
    pub acked_version: Option<String>,
    /// The last version sent, acknowledged or not.
    pub sent_version: Option<String>,
    /// The last version this Envoy rejected, with its reason. Kept after later ACKs, so an
    /// operator still sees why a rollout stopped.
    pub last_nack: Option<NackView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NackView {
    pub version: String,
    /// Envoy's `error_detail.message`.
    pub message: String,
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// Fleet event counter when it happened: a rollout step counts only NACKs newer than itself.
    #[serde(skip)]
    pub seq: u64,
}

impl EnvoyView {
    pub fn acked(&self, type_url: &str) -> Option<&str> {
        self.types.get(type_url)?.acked_version.as_deref()
    }

    pub(crate) fn refresh_epoch(&mut self) {
        self.epoch = self.acked(crate::ECDS_TYPE_URL).and_then(version::epoch_of);
    }
}

/// The fleet as connection events build it. Pure: the caller supplies connection ids and time.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    envoys: BTreeMap<u64, EnvoyView>,
    /// Bumped by every change; NACKs are stamped with it.
    seq: u64,
}

impl Fleet {
    pub fn new() -> Self {
        Fleet::default()
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn len(&self) -> usize {
        self.envoys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.envoys.is_empty()
    }

    /// Applies one event of connection `id`, which opened at `connected_ms`.
    pub fn apply(&mut self, id: u64, connected_ms: u64, event: &Event, now_ms: u64) {
        self.seq += 1;
        let seq = self.seq;
        let envoy = self.envoys.entry(id).or_insert_with(|| EnvoyView {
            node_id: String::new(),
            cluster: String::new(),
            connected_since_ms: connected_ms,
            epoch: None,
            types: BTreeMap::new(),
        });
        match event {
            Event::Identified(node) => {
                envoy.node_id = node.id.clone();
                envoy.cluster = node.cluster.clone();
            }
            Event::Subscribed { type_url, .. } => {
                envoy.types.entry(type_url.clone()).or_default();
            }
            Event::Unsubscribed { type_url } => {
                envoy.types.remove(type_url);
            }
            Event::Sent {
                type_url, version, ..
            } => {
                envoy
                    .types
                    .entry(type_url.clone())
                    .or_default()
                    .sent_version = Some(version.clone());
            }
            Event::Ack { type_url, version } => {
                envoy
                    .types
                    .entry(type_url.clone())
                    .or_default()
                    .acked_version = Some(version.clone());
            }
            Event::Nack {
                type_url,
                version,
                message,
            } => {
                envoy.types.entry(type_url.clone()).or_default().last_nack = Some(NackView {
                    version: version.clone(),
                    message: message.clone(),
                    at_ms: now_ms,
                    seq,
                });
            }
            Event::StaleNonce { .. } => {}
        }
        envoy.refresh_epoch();
    }

    /// The stream closed: the Envoy leaves the fleet, and no rollout waits for it any longer.
    pub fn disconnect(&mut self, id: u64) {
        if self.envoys.remove(&id).is_some() {
            self.seq += 1;
        }
    }

    pub fn view(&self) -> FleetView {
        let mut envoys: Vec<EnvoyView> = self.envoys.values().cloned().collect();
        envoys.sort_by(|a, b| {
            (a.node_id.as_str(), a.connected_since_ms)
                .cmp(&(b.node_id.as_str(), b.connected_since_ms))
        });
        FleetView { envoys }
    }
}

#[cfg(test)]
mod tests;
