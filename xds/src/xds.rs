//! The handle the control plane holds.

use std::sync::Arc;
use std::time::Duration;

use miroir_topology::PluginConfig;

use crate::server::AdsService;
use crate::{FleetView, ResourceOptions, RolloutError, RolloutReport, RolloutStatus, WasmSource};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::extension::v3::extension_config_discovery_service_server::ExtensionConfigDiscoveryServiceServer;

/// Cheap to clone: every clone drives the same cache and fleet.
#[derive(Clone)]
pub struct Xds {
    inner: Arc<crate::shared::Shared>,
    /// The bearer token every stream must present; `None`: open (loopback development only).
    token: Option<Arc<str>>,
}

impl Xds {
    /// An xDS server that answers every client. The resources carry the filter's key and token:
    /// prefer [`Xds::authenticated`] anywhere but on a loopback address.
    pub fn new(options: ResourceOptions) -> Self {
        Xds {
            inner: Arc::new(crate::shared::Shared::new(options)),
            token: None,
        }
    }

    /// An xDS server whose services answer only clients presenting `authorization: Bearer
    /// <token>` in their gRPC metadata (Envoy: `grpc_service.initial_metadata`); the others get
    /// `UNAUTHENTICATED` before anything is read or sent. An empty token is no token.
    pub fn authenticated(options: ResourceOptions, token: Option<&str>) -> Self {
        Xds {
            inner: Arc::new(crate::shared::Shared::new(options)),
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
        }
    }

    /// The gRPC service to mount on a tonic server:
    /// `Server::builder().add_service(xds.service()).serve(addr)`.
    pub fn service(&self) -> AggregatedDiscoveryServiceServer<AdsService> {
        AggregatedDiscoveryServiceServer::new(AdsService::new(
            self.inner.clone(),
            self.token.clone(),
        ))
    }

    /// The ECDS-only gRPC service (`envoy.service.extension.v3.ExtensionConfigDiscoveryService`),
    /// for Envoys whose listeners and clusters come from another control plane (Istio, see
    /// docs/istio.md). Mount it next to [`Xds::service`] on the same server.
    pub fn ecds_service(&self) -> ExtensionConfigDiscoveryServiceServer<AdsService> {
        ExtensionConfigDiscoveryServiceServer::new(AdsService::new(
            self.inner.clone(),
            self.token.clone(),
        ))
    }

    /// Rolls `config` out in three steps (clusters old ∪ new, filter config, pruning), each
    /// gated on an ACK from every connected Envoy. `ack_timeout` bounds each step.
    pub async fn rollout(
        &self,
        config: PluginConfig,
        ack_timeout: Duration,
    ) -> Result<RolloutReport, RolloutError> {
        self.inner.rollout(Some(config), None, ack_timeout).await
    }

    /// Replaces the filter's code and rolls the current configuration out with it. A binary
    /// Envoy cannot load is NACKed: `Err`, and the previous code stays in place.
    pub async fn set_wasm(
        &self,
        wasm: WasmSource,
        ack_timeout: Duration,
    ) -> Result<RolloutReport, RolloutError> {
        self.inner.rollout(None, Some(wasm), ack_timeout).await
    }

    pub fn fleet(&self) -> FleetView {
        self.inner.fleet()
    }

    /// The configuration new Envoys receive (the last one rolled out, or partly rolled out when a
    /// step timed out); `None` before the first rollout.
    pub fn current(&self) -> Option<PluginConfig> {
        self.inner.current()
    }

    pub fn rollout_status(&self) -> RolloutStatus {
        self.inner.rollout_status()
    }

    /// The options resources are built from (with the wasm source of the last successful
    /// [`Xds::set_wasm`]).
    pub fn options(&self) -> ResourceOptions {
        self.inner.options()
    }
}
