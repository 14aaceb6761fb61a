//! The ADS gRPC service: one tokio task per Envoy stream drives a [`crate::connection`] state
//! machine with the stream's requests and the cache's updates.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use miroir_topology::PluginConfig;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::{FleetView, ResourceOptions, RolloutError, RolloutReport, RolloutStatus, WasmSource};

pub(crate) struct Shared {
    options: std::sync::Mutex<ResourceOptions>,
}

impl Shared {
    pub(crate) fn new(options: ResourceOptions) -> Self {
        Shared {
            options: std::sync::Mutex::new(options),
        }
    }

    pub(crate) async fn rollout(
        &self,
        _config: Option<PluginConfig>,
        _wasm: Option<WasmSource>,
        _ack_timeout: Duration,
    ) -> Result<RolloutReport, RolloutError> {
        Err(RolloutError::Invalid {
            message: "not implemented yet".into(),
        })
    }

    pub(crate) fn fleet(&self) -> FleetView {
        FleetView::default()
    }

    pub(crate) fn current(&self) -> Option<PluginConfig> {
        None
    }

    pub(crate) fn rollout_status(&self) -> RolloutStatus {
        RolloutStatus::Idle
    }

    pub(crate) fn options(&self) -> ResourceOptions {
        match self.options.lock() {
            Ok(options) => options.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The tonic service; build it with [`crate::Xds::service`].
pub struct AdsService {
    shared: Arc<Shared>,
}

impl AdsService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        AdsService { shared }
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        _request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let _ = &self.shared;
        Err(Status::unimplemented("not yet"))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "Miroir serves state-of-the-world ADS only (set ads_config.api_type: GRPC)",
        ))
    }
}
