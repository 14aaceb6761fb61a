//! The fleet as the control plane reports it: every connected Envoy and, per resource type, what
//! it acknowledged or rejected.

use std::collections::BTreeMap;

use serde::Serialize;

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
}

impl EnvoyView {
    pub fn acked(&self, type_url: &str) -> Option<&str> {
        self.types.get(type_url)?.acked_version.as_deref()
    }

    pub(crate) fn refresh_epoch(&mut self) {
        self.epoch = self.acked(crate::ECDS_TYPE_URL).and_then(version::epoch_of);
    }
}
