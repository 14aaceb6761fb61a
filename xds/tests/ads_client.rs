//! The gRPC service and the rollout driver against a scripted ADS client (no Envoy needed):
//! gating on ACKs, a NACK stopping a rollout, a step timing out, disconnects.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node as EnvoyNode;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::google::rpc::Status;
use miroir_topology::{Node, NodeState, PluginConfig, Topology};
use miroir_xds::{
    HealthCheckOptions, ResourceOptions, RolloutError, RolloutStatus, RolloutStep, WasmSource, Xds,
    CLUSTER_TYPE_URL, ECDS_TYPE_URL, FILTER_NAME, LISTENER_TYPE_URL,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

fn config(epoch: u64, ids: &[&str]) -> PluginConfig {
    PluginConfig {
        topology: Topology {
            epoch,
            shards: 4,
            shard_map: Default::default(),
            replication_factor: 1,
            nodes: ids
                .iter()
                .enumerate()
                .map(|(i, id)| Node {
                    id: (*id).into(),
                    address: format!("10.0.0.{}:7700", i + 1),
                    group: "g".into(),
                    state: NodeState::Active,
                })
                .collect(),
        },
        node_timeout_ms: 5_000,
        node_api_key: None,
        control_plane: None,
        indexes: Default::default(),
    }
}

async fn serve() -> (Xds, SocketAddr) {
    let xds = Xds::new(ResourceOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
        wasm: WasmSource::Local(PathBuf::from("/opt/miroir/miroir_filter.wasm")),
        control_plane_http: "127.0.0.1:7701".into(),
        health: HealthCheckOptions::default(),
        node_timeout_ms: 5_000,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = xds.service();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    });
    (xds, addr)
}

/// How the fake Envoy answers what it receives.
#[derive(Clone, Debug, PartialEq)]
enum Policy {
    Ack,
    /// NACK filter configs with this message; ACK the rest.
    NackFilter(String),
    /// Never answer.
    Silent,
}

/// A scripted ADS client: subscribes like Envoy (CDS, LDS, ECDS `miroir`) and answers every
/// response by `policy`.
struct FakeEnvoy {
    policy: Arc<Mutex<Policy>>,
    task: JoinHandle<()>,
}

impl FakeEnvoy {
    async fn connect(addr: SocketAddr, id: &str) -> FakeEnvoy {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let node = EnvoyNode {
            id: id.into(),
            cluster: "miroir".into(),
            ..Default::default()
        };
        for (i, type_url) in [CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ECDS_TYPE_URL]
            .into_iter()
            .enumerate()
        {
            let names = if type_url == ECDS_TYPE_URL {
                vec![FILTER_NAME.to_string()]
            } else {
                vec![]
            };
            tx.send(DiscoveryRequest {
                node: (i == 0).then(|| node.clone()),
                type_url: type_url.into(),
                resource_names: names,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let mut inbound = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let policy = Arc::new(Mutex::new(Policy::Ack));
        let answer = policy.clone();
        let task = tokio::spawn(async move {
            // What this "Envoy" holds, per type.
            let mut held = std::collections::HashMap::<String, String>::new();
            while let Ok(Some(response)) = inbound.message().await {
                let policy = answer.lock().unwrap().clone();
                let names = if response.type_url == ECDS_TYPE_URL {
                    vec![FILTER_NAME.to_string()]
                } else {
                    vec![]
                };
                let previous = held.get(&response.type_url).cloned().unwrap_or_default();
                let request = match policy {
                    Policy::Silent => continue,
                    Policy::NackFilter(message) if response.type_url == ECDS_TYPE_URL => {
                        DiscoveryRequest {
                            version_info: previous,
                            error_detail: Some(Status {
                                code: 3,
                                message,
                                details: vec![],
                            }),
                            ..Default::default()
                        }
                    }
                    _ => {
                        held.insert(response.type_url.clone(), response.version_info.clone());
                        DiscoveryRequest {
                            version_info: response.version_info.clone(),
                            ..Default::default()
                        }
                    }
                };
                let request = DiscoveryRequest {
                    type_url: response.type_url.clone(),
                    response_nonce: response.nonce.clone(),
                    resource_names: names,
                    ..request
                };
                if tx.send(request).await.is_err() {
                    return;
                }
            }
        });
        FakeEnvoy { policy, task }
    }

    fn set(&self, policy: Policy) {
        *self.policy.lock().unwrap() = policy;
    }
}

impl Drop for FakeEnvoy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn rollouts_are_gated_stopped_by_nacks_and_time_out() {
    let (xds, addr) = serve().await;
    assert_eq!(xds.current(), None);
    xds.rollout(config(1, &["a"]), TIMEOUT).await.unwrap();

    let e1 = FakeEnvoy::connect(addr, "e1").await;
    let e2 = FakeEnvoy::connect(addr, "e2").await;
    wait_for("both Envoys on epoch 1", || {
        let fleet = xds.fleet();
        fleet.envoys.len() == 2 && fleet.envoys.iter().all(|e| e.epoch == Some(1))
    })
    .await;

    let report = xds.rollout(config(2, &["a", "b"]), TIMEOUT).await.unwrap();
    assert_eq!(report.acked_by, ["e1", "e2"]);
    assert!(report.ecds_version.starts_with("epoch-2-"));
    assert!(xds.fleet().envoys.iter().all(|e| e.epoch == Some(2)));
    assert_eq!(xds.rollout_status(), RolloutStatus::Idle);

    // One Envoy rejects the filter config: stopped, reported, withdrawn.
    e2.set(Policy::NackFilter(
        "Unable to create Wasm plugin miroir".into(),
    ));
    let err = xds
        .rollout(config(3, &["a", "b"]), TIMEOUT)
        .await
        .unwrap_err();
    match &err {
        RolloutError::Nack {
            step,
            envoy,
            type_url,
            version,
            message,
        } => {
            assert_eq!(*step, RolloutStep::Filter);
            assert_eq!(envoy, "e2");
            assert_eq!(type_url, ECDS_TYPE_URL);
            assert!(version.starts_with("epoch-3-"));
            assert_eq!(message, "Unable to create Wasm plugin miroir");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("e2"), "{err}");
    assert!(matches!(
        xds.rollout_status(),
        RolloutStatus::StoppedByNack { epoch: 3, .. }
    ));
    assert_eq!(xds.current().unwrap().topology.epoch, 2, "withdrawn");
    // e1 had taken epoch 3 and is brought back to 2 with the rest of the fleet.
    wait_for("the fleet back on epoch 2", || {
        xds.fleet().envoys.iter().all(|e| e.epoch == Some(2))
    })
    .await;
    let json = serde_json::to_value(xds.rollout_status()).unwrap();
    assert_eq!(json["state"], "stoppedByNack");
    assert_eq!(json["envoy"], "e2");
    assert_eq!(json["typeUrl"], ECDS_TYPE_URL);

    // The same configuration again, once the Envoy accepts it: it is sent again and goes through.
    e2.set(Policy::Ack);
    let report = xds.rollout(config(3, &["a", "b"]), TIMEOUT).await.unwrap();
    assert_eq!(report.acked_by, ["e1", "e2"]);

    // An Envoy that never answers: the step times out, naming it.
    e1.set(Policy::Silent);
    let err = xds
        .rollout(config(4, &["b"]), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RolloutError::Timeout {
            step: RolloutStep::Clusters,
            waiting_for: vec!["e1".into()]
        }
    );
    assert!(matches!(
        xds.rollout_status(),
        RolloutStatus::TimedOut { epoch: 4, .. }
    ));

    // It disconnects: it leaves the fleet, and the next rollout does not wait for it.
    drop(e1);
    wait_for("e1 gone", || xds.fleet().envoys.len() == 1).await;
    let report = xds.rollout(config(4, &["b"]), TIMEOUT).await.unwrap();
    assert_eq!(report.acked_by, ["e2"]);
    assert_eq!(xds.fleet().envoys[0].epoch, Some(4));
    drop(e2);
}

#[tokio::test]
async fn set_wasm_before_any_rollout_is_kept_for_the_first() {
    let (xds, _) = serve().await;
    let wasm = WasmSource::Remote {
        uri: "http://127.0.0.1:7701/_miroir/wasm/x.wasm".into(),
        sha256: "00".repeat(32),
    };
    let report = xds.set_wasm(wasm.clone(), TIMEOUT).await.unwrap();
    assert_eq!(report.epoch, 0);
    assert_eq!(xds.options().wasm, wasm);
    xds.rollout(config(1, &["a"]), TIMEOUT).await.unwrap();
    assert_eq!(xds.options().wasm, wasm);
}

#[tokio::test]
async fn invalid_topologies_are_refused_before_any_push() {
    let (xds, _) = serve().await;
    let mut bad = config(1, &["a"]);
    bad.topology.replication_factor = 5;
    let err = xds.rollout(bad, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, RolloutError::Invalid { .. }), "{err:?}");
    assert_eq!(xds.current(), None);
}

/// An Envoy fed by another control plane (Istio) that asks Miroir only for the filter config.
#[tokio::test]
async fn the_ecds_service_serves_and_gates_on_filter_configs_alone() {
    use envoy_types::pb::envoy::service::extension::v3::extension_config_discovery_service_client::ExtensionConfigDiscoveryServiceClient;

    let (xds, _) = serve().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ecds = xds.ecds_service();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ecds)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    });
    xds.rollout(config(1, &["a"]), TIMEOUT).await.unwrap();

    let mut client = ExtensionConfigDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(EnvoyNode {
            id: "sidecar-1".into(),
            cluster: "search.default".into(),
            ..Default::default()
        }),
        type_url: ECDS_TYPE_URL.into(),
        resource_names: vec![FILTER_NAME.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut inbound = client
        .stream_extension_configs(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = inbound.message().await.unwrap().unwrap();
    assert!(first.version_info.starts_with("epoch-1-"));
    assert_eq!(first.resources.len(), 1);
    // Envoy ACKs from now on, in the background.
    let acker = tokio::spawn(async move {
        let mut response = first;
        loop {
            tx.send(DiscoveryRequest {
                type_url: ECDS_TYPE_URL.into(),
                resource_names: vec![FILTER_NAME.into()],
                version_info: response.version_info.clone(),
                response_nonce: response.nonce.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
            match inbound.message().await {
                Ok(Some(next)) => response = next,
                _ => return,
            }
        }
    });
    wait_for("the sidecar on epoch 1", || {
        xds.fleet().envoys.first().and_then(|e| e.epoch) == Some(1)
    })
    .await;
    let report = xds.rollout(config(2, &["a", "b"]), TIMEOUT).await.unwrap();
    assert_eq!(report.acked_by, ["sidecar-1"]);
    let fleet = xds.fleet();
    assert_eq!(fleet.envoys[0].epoch, Some(2));
    assert_eq!(fleet.envoys[0].cluster, "search.default");
    assert_eq!(
        fleet.envoys[0].types.keys().collect::<Vec<_>>(),
        [ECDS_TYPE_URL],
        "subscribed to the filter config only"
    );
    acker.abort();
}
