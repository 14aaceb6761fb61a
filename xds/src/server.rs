//! The ADS gRPC service: one tokio task per Envoy stream feeds a [`Connection`] the stream's
//! requests and the cache's changes, and sends what it answers.

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::connection::{Connection, Output};
use crate::shared::{now_ms, Shared};

/// Responses queued per stream. Envoy acknowledges each before the next of its type is sent, so
/// a handful per type is the most that can be in flight.
const OUTBOUND_QUEUE: usize = 32;

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
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        tokio::spawn(run_stream(self.shared.clone(), inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "Miroir serves state-of-the-world ADS only (ads_config.api_type: GRPC)",
        ))
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
