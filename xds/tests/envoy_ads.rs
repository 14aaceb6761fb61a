//! A real Envoy on the ADS bootstrap, fed by the tonic server: rollouts reach it, a filter it
//! cannot load is NACKed and the previous configuration keeps serving.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use miroir_envoy::{ads_bootstrap, AdsBootstrapOptions};
use miroir_topology::{Node, NodeState, PluginConfig, Topology};
use miroir_xds::{
    HealthCheckOptions, ResourceOptions, RolloutError, RolloutStatus, WasmSource, Xds,
    ECDS_TYPE_URL,
};
use support::{filter_wasm, http_get, test_dir, Envoy};
use tokio_stream::wrappers::TcpListenerStream;

const ACK_TIMEOUT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(60);

/// Ports nothing listens on: the node clusters exist, their health checks fail fast.
fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn config(epoch: u64, node_ids: &[&str]) -> PluginConfig {
    PluginConfig {
        topology: Topology {
            epoch,
            shards: 8,
            shard_map: Default::default(),
            replication_factor: 1,
            nodes: node_ids
                .iter()
                .map(|id| Node {
                    id: (*id).to_string(),
                    address: format!("127.0.0.1:{}", unused_port()),
                    group: "g0".into(),
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

/// The xDS token the servers here require and the Envoys here present.
const TOKEN: &str = "envoy-ads-test-token";

/// The tonic server on an ephemeral port, requiring [`TOKEN`]; runs until the test's runtime
/// ends.
async fn serve(wasm: &Path) -> (Xds, SocketAddr) {
    let xds = Xds::authenticated(
        ResourceOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            wasm: WasmSource::Local(wasm.to_path_buf()),
            control_plane_http: "127.0.0.1:9".into(),
            health: HealthCheckOptions::default(),
            node_timeout_ms: 5_000,
        },
        Some(TOKEN),
    );
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

fn start_envoy(dir: &Path, node_id: &str, xds: SocketAddr) -> Envoy {
    start_envoy_with(dir, node_id, xds, Some(TOKEN))
}

fn start_envoy_with(dir: &Path, node_id: &str, xds: SocketAddr, token: Option<&str>) -> Envoy {
    let bootstrap = ads_bootstrap(&AdsBootstrapOptions {
        node_id: node_id.into(),
        cluster: "miroir".into(),
        xds: xds.to_string(),
        admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        xds_token: token.map(str::to_string),
    });
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("envoy.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&bootstrap).unwrap()).unwrap();
    Envoy::start(&path, dir)
}

/// The built filter. A missing build fails the test: `make test` builds it first.
fn wasm_or_skip() -> Option<std::path::PathBuf> {
    let bin = support::envoy_bin();
    assert!(
        bin.exists(),
        "Envoy not found at {} (set ENVOY_BIN or run `make setup`)",
        bin.display()
    );
    let wasm = filter_wasm();
    assert!(
        wasm.exists(),
        "{} not built (run `make wasm`)",
        wasm.display()
    );
    Some(std::path::absolute(wasm).unwrap())
}

fn epoch_of(xds: &Xds, node_id: &str) -> Result<u64, String> {
    let fleet = xds.fleet();
    fleet
        .envoys
        .iter()
        .find(|e| e.node_id == node_id)
        .and_then(|e| e.epoch)
        .ok_or_else(|| format!("no acked epoch for {node_id} in {fleet:?}"))
}

fn health(listener: SocketAddr) -> Result<(), String> {
    match http_get(listener, "/health")? {
        (200, body) if body.contains("available") => Ok(()),
        (status, body) => Err(format!("GET /health: {status} {body}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_reach_envoy_and_a_broken_filter_is_nacked() {
    let Some(wasm) = wasm_or_skip() else { return };
    let dir = test_dir("rollouts");
    let (xds, xds_addr) = serve(&wasm).await;
    let mut envoy = start_envoy(&dir, "envoy-it-1", xds_addr);
    envoy.poll("the Envoy to connect", WAIT, |_| {
        let fleet = xds.fleet();
        match fleet.envoys.first() {
            Some(e) if e.node_id == "envoy-it-1" && e.cluster == "miroir" => Ok(()),
            _ => Err(format!("{fleet:?}")),
        }
    });

    // First rollout: Envoy subscribes to the listener and filter config as it gets them.
    xds.rollout(config(1, &["n1", "n2"]), ACK_TIMEOUT)
        .await
        .unwrap();
    envoy.poll("epoch 1 acked", WAIT, |_| {
        match epoch_of(&xds, "envoy-it-1")? {
            1 => Ok(()),
            other => Err(format!("epoch {other}")),
        }
    });
    let listener = envoy.poll("the listener", WAIT, |e| e.listener());
    envoy.poll("the filter answering", WAIT, |_| health(listener));
    let clusters = envoy.clusters().unwrap();
    for name in ["miroir-node-n1", "miroir-node-n2", "miroir-control-plane"] {
        assert!(clusters.iter().any(|c| c == name), "{name} in {clusters:?}");
    }

    // Second rollout, every step gated on this Envoy: n1 leaves, n3 arrives.
    let report = xds
        .rollout(config(2, &["n2", "n3"]), ACK_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(report.acked_by, ["envoy-it-1"]);
    assert_eq!(report.epoch, 2);
    assert!(report.ecds_version.starts_with("epoch-2-"), "{report:?}");
    assert_eq!(epoch_of(&xds, "envoy-it-1").unwrap(), 2);
    assert_eq!(envoy.ecds_version().unwrap(), report.ecds_version);
    envoy.poll("n1 removed, n3 added", WAIT, |envoy| {
        let clusters = envoy.clusters()?;
        let has = |n: &str| clusters.iter().any(|c| c == n);
        if !has("miroir-node-n1") && has("miroir-node-n2") && has("miroir-node-n3") {
            Ok(())
        } else {
            Err(format!("{clusters:?}"))
        }
    });
    health(listener).unwrap();

    // A filter binary Envoy cannot load: NACKed with Envoy's reason, old config keeps serving.
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"this is not a wasm module").unwrap();
    let err = xds
        .set_wasm(WasmSource::Local(garbage.clone()), ACK_TIMEOUT)
        .await
        .unwrap_err();
    let RolloutError::Nack {
        envoy: nacking,
        type_url,
        message,
        ..
    } = &err
    else {
        panic!("expected a NACK, got {err:?}");
    };
    assert_eq!(nacking, "envoy-it-1");
    assert_eq!(type_url, ECDS_TYPE_URL);
    assert!(!message.is_empty(), "{err:?}");
    eprintln!("Envoy's NACK: {message}");
    let status = xds.rollout_status();
    assert!(
        matches!(&status, RolloutStatus::StoppedByNack { envoy, message: m, .. } if envoy == "envoy-it-1" && m == message),
        "{status:?}"
    );
    let fleet = xds.fleet();
    let nack = fleet.envoys[0].types[ECDS_TYPE_URL]
        .last_nack
        .as_ref()
        .expect("the NACK in the fleet view");
    assert_eq!(&nack.message, message);
    assert_eq!(fleet.envoys[0].epoch, Some(2));
    assert_eq!(envoy.ecds_version().unwrap(), report.ecds_version);
    assert_eq!(envoy.ecds_rejections().unwrap(), 1);
    health(listener).unwrap();
    assert_eq!(xds.current().unwrap().topology.epoch, 2);
    assert_eq!(xds.options().wasm, WasmSource::Local(wasm.clone()));

    // The rejected code was withdrawn: the next rollout goes through.
    let report = xds
        .rollout(config(3, &["n2", "n3"]), ACK_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(report.acked_by, ["envoy-it-1"]);
    assert_eq!(envoy.ecds_version().unwrap(), report.ecds_version);
    assert_eq!(xds.rollout_status(), RolloutStatus::Idle);

    // A disconnected Envoy leaves the fleet; nothing waits for it.
    drop(envoy);
    let deadline = std::time::Instant::now() + WAIT;
    while !xds.fleet().envoys.is_empty() {
        assert!(std::time::Instant::now() < deadline, "{:?}", xds.fleet());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        xds.rollout(config(4, &["n3"]), ACK_TIMEOUT),
    )
    .await
    .expect("no Envoy to wait for")
    .unwrap();
    assert!(report.acked_by.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_connecting_later_gets_the_final_snapshot() {
    let Some(wasm) = wasm_or_skip() else { return };
    let dir = test_dir("late");
    let (xds, xds_addr) = serve(&wasm).await;
    // Nobody connected: every step completes at once.
    let report = xds
        .rollout(config(5, &["a", "b", "c"]), ACK_TIMEOUT)
        .await
        .unwrap();
    assert!(report.acked_by.is_empty());
    let mut envoy = start_envoy(&dir, "envoy-late", xds_addr);
    envoy.poll("epoch 5 acked", WAIT, |_| {
        match epoch_of(&xds, "envoy-late")? {
            5 => Ok(()),
            other => Err(format!("epoch {other}")),
        }
    });
    let listener = envoy.poll("the listener", WAIT, |e| e.listener());
    envoy.poll("the filter answering", WAIT, |_| health(listener));
    assert_eq!(envoy.ecds_version().unwrap(), report.ecds_version);
    let clusters = envoy.clusters().unwrap();
    for name in ["miroir-node-a", "miroir-node-b", "miroir-node-c"] {
        assert!(clusters.iter().any(|c| c == name), "{name} in {clusters:?}");
    }
}

/// Issue 10: the resources carry the filter's key and token, so an Envoy (or anything speaking
/// ADS) without the xDS token, or with another, gets nothing: no listener, no filter config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_without_the_xds_token_gets_nothing() {
    let Some(wasm) = wasm_or_skip() else { return };
    let dir = test_dir("unauthenticated");
    let (xds, xds_addr) = serve(&wasm).await;
    let mut secret = config(3, &["a"]);
    secret.node_api_key = Some("the-filter-key".into());
    xds.rollout(secret, ACK_TIMEOUT).await.unwrap();
    let mut intruders = vec![
        start_envoy_with(&dir.join("none"), "no-token", xds_addr, None),
        start_envoy_with(&dir.join("wrong"), "wrong-token", xds_addr, Some("guess")),
    ];
    let mut trusted = start_envoy(&dir.join("trusted"), "trusted", xds_addr);
    // The trusted Envoy, started last, is served: the intruders had their chance by then.
    trusted.poll(
        "the trusted Envoy to ack epoch 3",
        WAIT,
        |_| match epoch_of(&xds, "trusted")? {
            3 => Ok(()),
            other => Err(format!("epoch {other}")),
        },
    );
    for envoy in &mut intruders {
        // Envoy retries a refused stream (backoff from 0.5 s): wait for a second attempt.
        envoy.poll("the ADS stream to be refused twice", WAIT, |e| {
            let (_, stats) = e.admin_get("/stats?filter=miroir-xds.upstream_rq_total")?;
            let attempts: u64 = stats
                .lines()
                .find_map(|l| l.strip_prefix("cluster.miroir-xds.upstream_rq_total: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if attempts >= 2 {
                Ok(())
            } else {
                Err(format!("{attempts} ADS stream attempts"))
            }
        });
        let (_, dump) = envoy.admin_get("/config_dump").unwrap();
        assert!(
            !dump.contains("the-filter-key"),
            "the filter key leaked: {dump}"
        );
        assert!(!dump.contains("miroir-node-a"), "a node cluster leaked");
        assert!(envoy.listener().is_err(), "a listener was sent");
    }
    let ids: Vec<String> = xds
        .fleet()
        .envoys
        .iter()
        .map(|e| e.node_id.clone())
        .collect();
    assert_eq!(ids, ["trusted"], "only the trusted Envoy joins the fleet");
}

/// The Istio shape (docs/istio.md): listener and clusters come from elsewhere (here a static
/// bootstrap), and only the filter config from Miroir, through `api_config_source` and the
/// ECDS service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_can_take_only_the_filter_config_from_miroir() {
    let Some(wasm) = wasm_or_skip() else { return };
    let dir = test_dir("ecds-only");
    let xds = Xds::new(ResourceOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        wasm: WasmSource::Local(wasm.clone()),
        control_plane_http: "127.0.0.1:9".into(),
        health: HealthCheckOptions::default(),
        node_timeout_ms: 5_000,
    });
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let xds_addr = tcp.local_addr().unwrap();
    let ecds = xds.ecds_service();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ecds)
            .serve_with_incoming(TcpListenerStream::new(tcp))
            .await
    });
    let config = config(9, &["x", "y"]);
    xds.rollout(config.clone(), ACK_TIMEOUT).await.unwrap();

    let opts = miroir_envoy::RenderOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        wasm_path: wasm,
        config_dir: dir.clone(),
        node_timeout_ms: 5_000,
        node_api_key: None,
    };
    let mut bootstrap = miroir_envoy::bootstrap(&config.topology, &opts);
    bootstrap["node"] = serde_json::json!({"id": "sidecar-it", "cluster": "search.default"});
    let filter = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
        [0]["typed_config"]["http_filters"][0];
    filter["config_discovery"]["config_source"] = serde_json::json!({
        "api_config_source": {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "miroir-xds"}}],
        },
        "resource_api_version": "V3",
    });
    bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "miroir-xds",
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "miroir-xds", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": xds_addr.port()}},
            }}]}]},
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                },
            },
        }));
    let path = dir.join("envoy.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&bootstrap).unwrap()).unwrap();
    let mut envoy = Envoy::start(&path, &dir);
    envoy.poll("epoch 9 acked", WAIT, |_| {
        match epoch_of(&xds, "sidecar-it")? {
            9 => Ok(()),
            other => Err(format!("epoch {other}")),
        }
    });
    let listener = envoy.poll("the listener", WAIT, |e| e.listener());
    envoy.poll("the filter answering", WAIT, |_| health(listener));
    let fleet = xds.fleet();
    assert_eq!(
        fleet.envoys[0].types.keys().collect::<Vec<_>>(),
        [ECDS_TYPE_URL]
    );
    // A topology change reaches it, gated on its ACK.
    let report = xds
        .rollout(self::config(10, &["x", "y"]), ACK_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(report.acked_by, ["sidecar-it"]);
    assert_eq!(envoy.ecds_version().unwrap(), report.ecds_version);
}
