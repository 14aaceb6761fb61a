//! The ADS gRPC service: one tokio task per Envoy stream feeds a [`Connection`] the stream's
//! requests and the cache's changes, and sends what it answers.

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::extension::v3::extension_config_discovery_service_server::ExtensionConfigDiscoveryService;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::connection::{Connection, Output};
use crate::shared::{now_ms, Shared};
use crate::ECDS_TYPE_URL;

/// Responses queued per stream. Envoy acknowledges each before the next of its type is sent, so
/// a handful per type is the most that can be in flight.
const OUTBOUND_QUEUE: usize = 32;

/// The tonic services (ADS, and ECDS alone for Envoys whose other resources come from another
/// control plane, e.g. istiod); build them with [`crate::Xds::service`] and
/// [`crate::Xds::ecds_service`].
pub struct AdsService {
    shared: Arc<Shared>,
    token: Option<Arc<str>>,
}

impl AdsService {
    pub(crate) fn new(shared: Arc<Shared>, token: Option<Arc<str>>) -> Self {
        AdsService { shared, token }
    }

    /// With a token, the request's `authorization` metadata must be `Bearer <token>` (compared
    /// in constant time); anything else is `UNAUTHENTICATED`, before the stream is read.
    fn authenticate<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let presented = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .and_then(|v| v.strip_prefix(b"Bearer "));
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        match presented {
            Some(presented) if token_matches(token.as_bytes(), presented) => Ok(()),
            Some(_) => {
                tracing::warn!(peer, "xDS client refused: invalid token");
                Err(Status::unauthenticated("invalid xDS token"))
            }
            None => {
                tracing::warn!(peer, "xDS client refused: no token");
                Err(Status::unauthenticated(
                    "missing `authorization: Bearer <xds token>` metadata",
                ))
            }
        }
    }
}

/// Constant time in the content (the length is no secret worth hiding).
fn token_matches(expected: &[u8], presented: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    expected.len() == presented.len() && bool::from(expected.ct_eq(presented))
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        self.authenticate(&request)?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        tokio::spawn(run_stream(self.shared.clone(), inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        self.authenticate(&request)?;
        Err(Status::unimplemented(
            "Miroir serves state-of-the-world ADS only (ads_config.api_type: GRPC)",
        ))
    }
}

/// The filter configuration alone, for Envoys that point an HTTP filter's `config_discovery` at
/// Miroir with an `api_config_source` (their listeners and clusters come from elsewhere). Same
/// connection state machine, cache and fleet as ADS: such Envoys gate rollouts' filter step.
#[tonic::async_trait]
impl ExtensionConfigDiscoveryService for AdsService {
    type StreamExtensionConfigsStream = ResponseStream<DiscoveryResponse>;
    type DeltaExtensionConfigsStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_extension_configs(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamExtensionConfigsStream>, Status> {
        self.authenticate(&request)?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        tokio::spawn(run_stream(self.shared.clone(), inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_extension_configs(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaExtensionConfigsStream>, Status> {
        self.authenticate(&request)?;
        Err(Status::unimplemented(
            "Miroir serves state-of-the-world ECDS only (api_config_source.api_type: GRPC)",
        ))
    }

    async fn fetch_extension_configs(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        self.authenticate(&request)?;
        let request = request.into_inner();
        let group = request
            .node
            .as_ref()
            .map(|n| n.cluster.clone())
            .unwrap_or_default();
        let snapshot = self.shared.snapshot(&group);
        let Some(resources) = snapshot.as_deref().and_then(|s| s.get(ECDS_TYPE_URL)) else {
            return Err(Status::unavailable("no configuration rolled out yet"));
        };
        Ok(Response::new(DiscoveryResponse {
            version_info: resources.version().to_string(),
            resources: resources.select(&request.resource_names, false),
            type_url: ECDS_TYPE_URL.to_string(),
            ..Default::default()
        }))
    }
}

/// Leaves the fleet however the stream task ends.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
    connection: Connection,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.disconnect(self.id, self.connection.node());
    }
}

async fn run_stream(
    shared: Arc<Shared>,
    mut inbound: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
) {
    let id = shared.next_connection_id();
    let connected_ms = now_ms();
    let mut cache_changes = shared.subscribe_cache();
    cache_changes.borrow_and_update();
    let mut registration = Registration {
        shared: shared.clone(),
        id,
        connection: Connection::new(),
    };
    loop {
        let output = tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(request)) => {
                    let group = registration.connection.group_for(&request);
                    let snapshot = shared.snapshot(&group);
                    registration.connection.handle_request(request, snapshot.as_deref())
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(%status, "ADS stream ended");
                    break;
                }
            },
            changed = cache_changes.changed() => {
                if changed.is_err() {
                    break;
                }
                cache_changes.borrow_and_update();
                let group = registration
                    .connection
                    .node()
                    .map(|n| n.cluster.clone())
                    .unwrap_or_default();
                let snapshot = shared.snapshot(&group);
                registration.connection.handle_snapshot(snapshot.as_deref())
            }
            () = tx.closed() => break,
        };
        let Output { responses, events } = output;
        for event in &events {
            tracing::debug!(connection = id, ?event, "ADS");
        }
        shared.record(id, connected_ms, &events);
        for response in responses {
            if tx.send(Ok(response)).await.is_err() {
                return;
            }
        }
    }
}
