//! Wires the store, the xDS publisher, the HTTP routes and the background loops together.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use miroir_xds::{HealthCheckOptions, ResourceOptions};

use crate::app::{pause, App, WASM_SETTING};
use crate::config::redact_url;
use crate::config::{Config, WasmSpec};
use crate::publisher::{wasm_source, MemoryPublisher, Publisher, XdsPublisher};
use crate::tasks::registry;
use crate::{default_keys, filter_key, health, leader, routes, store};

/// The filter binary: the one `PUT /_miroir/filter` stored, else the configuration's.
async fn wasm(store: &store::SharedStore, config: &Config) -> Result<Option<WasmSpec>, String> {
    let stored = store
        .get_setting(WASM_SETTING)
        .await
        .map_err(|e| format!("store: {e}"))?
        .and_then(|text| serde_json::from_str(&text).ok());
    Ok(stored.or_else(|| config.wasm.clone()))
}

fn resource_options(config: &Config, wasm: &WasmSpec) -> ResourceOptions {
    ResourceOptions {
        listen: config.envoy_listen,
        wasm: wasm_source(wasm),
        control_plane_http: config.http_advertise(),
        health: HealthCheckOptions {
            interval_ms: config.health.interval_ms,
            timeout_ms: config.health.timeout_ms,
            unhealthy_threshold: config.health.unhealthy_threshold,
            healthy_threshold: config.health.healthy_threshold,
        },
        node_timeout_ms: config.node_timeout_ms,
    }
}

/// A started control plane: where it listens, and how to stop it.
pub struct Running {
    pub http_addr: SocketAddr,
    /// `None` when no filter binary is configured (the xDS server is off).
    pub xds_addr: Option<SocketAddr>,
    pub app: Arc<App>,
    stop: tokio::sync::watch::Sender<bool>,
    served: tokio::task::JoinHandle<Result<(), String>>,
}

impl Running {
    /// Stops serving, ends the background loops, gives the leadership up.
    pub async fn stop(self) -> Result<(), String> {
        let _ = self.stop.send(true);
        self.served.await.map_err(|e| e.to_string())?
    }
}

/// Runs until `shutdown` completes, then stops cleanly.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let running = start(config).await?;
    let xds_text = running
        .xds_addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "off".into());
    println!(
        "miroir-control-plane ready: http={} xds={xds_text} store={}",
        running.http_addr,
        redact_url(&running.app.config.store)
    );
    shutdown.await;
    running.stop().await
}

/// Opens the store, binds both listeners, rolls the stored topology out (no epoch bump), and
/// starts serving and the background loops.
pub async fn start(mut config: Config) -> Result<Running, String> {
    config.check()?;
    let store = store::open(&config.store)
        .await
        .map_err(|e| format!("store {}: {e}", redact_url(&config.store)))?;
    if store
        .load_topology()
        .await
        .map_err(|e| format!("store: {e}"))?
        .is_none()
    {
        if let Some(initial) = &config.topology {
            // `false`: another replica stored one first, which is as good.
            let stored = store
                .cas_topology(None, &initial.topology())
                .await
                .map_err(|e| format!("store: {e}"))?;
            if stored {
                tracing::info!(epoch = initial.epoch, "initial topology stored");
            }
        }
    }

    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .map_err(|e| format!("httpListen {}: {e}", config.http_listen))?;
    let http_addr = http.local_addr().map_err(|e| e.to_string())?;
    if config.http_advertise.is_none() {
        // An ephemeral port (`:0`) is only known once bound.
        config.http_advertise = Some(http_addr.to_string());
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);

    // Without a filter binary there is nothing to serve Envoys: run the registry and admin API
    // alone (a development setup with a file-configured Envoy).
    let wasm = wasm(&store, &config).await?;
    let (publisher, xds_addr): (Arc<dyn Publisher>, Option<SocketAddr>) = match &wasm {
        Some(wasm) => {
            let token = config.xds_token.as_deref();
            if token.is_none() {
                tracing::warn!(
                    xds = %config.xds_listen,
                    "no `xdsToken`: any local process can read the filter's key and token over xDS"
                );
            }
            let xds = miroir_xds::Xds::authenticated(resource_options(&config, wasm), token);
            let listener = tokio::net::TcpListener::bind(config.xds_listen)
                .await
                .map_err(|e| format!("xdsListen {}: {e}", config.xds_listen))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let service = xds.service();
            let ecds = xds.ecds_service();
            let mut stopped = stopped.clone();
            // Not awaited at shutdown: ADS streams never end on their own, and a graceful stop
            // would wait for them.
            tokio::spawn(async move {
                let served = tonic::transport::Server::builder()
                    .add_service(service)
                    .add_service(ecds)
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(listener),
                        async move {
                            let _ = stopped.changed().await;
                        },
                    )
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "xDS server stopped");
                }
            });
            (Arc::new(XdsPublisher { xds }), Some(addr))
        }
        None => {
            tracing::warn!("no `wasm` configured: the xDS server is off");
            (Arc::new(MemoryPublisher::new()), None)
        }
    };
    let app = App::new(config.clone(), store.clone(), publisher);
    if config.master_key.is_none() {
        tracing::warn!("no `masterKey`: the filter's lookups use each client's key, and task routes cannot scope a client key to its indexes");
    }
    // The filter's key on the nodes before the first Envoy is given it (best effort: the loop
    // keeps at it).
    filter_key::round(&app, &mut filter_key::State::default()).await;
    if let Some(w) = wasm {
        // Already in the xDS options: not a change to roll out again.
        app.remember_wasm(w);
    }
    // The stored topology as is (no epoch bump), so a restart serves the same versions.
    if let Err(e) = app.sync_from_store().await {
        tracing::warn!(error = %e, "initial rollout");
    }
    let loops = spawn_loops(&app, &config, stopped.clone());

    let mut http_stopped = stopped.clone();
    let router = routes::router(app.clone());
    let served = tokio::spawn(async move {
        let served = axum::serve(http, router)
            .with_graceful_shutdown(async move {
                let _ = http_stopped.changed().await;
            })
            .await
            .map_err(|e| format!("http: {e}"));
        for handle in loops {
            let _ = handle.await;
        }
        tracing::info!("stopped");
        served
    });
    Ok(Running {
        http_addr,
        xds_addr,
        app,
        stop,
        served,
    })
}

fn spawn_loops(
    app: &Arc<App>,
    config: &Config,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let ttl = Duration::from_millis(config.leader_ttl_ms.max(300));
    vec![
        tokio::spawn(leader::run(
            app.store.clone(),
            config.replica_name(),
            ttl,
            app.leader.clone(),
            stopped.clone(),
        )),
        tokio::spawn(health::run(app.clone(), stopped.clone())),
        tokio::spawn(default_keys::run(app.clone(), stopped.clone())),
        tokio::spawn(filter_key::run(app.clone(), stopped.clone())),
        tokio::spawn(poll_tasks(app.clone(), stopped.clone())),
        tokio::spawn(crate::jobs::runner::run(app.clone(), stopped.clone())),
        tokio::spawn(crate::jobs::anti_entropy::run(app.clone(), stopped.clone())),
        tokio::spawn(crate::intents::run(app.clone(), stopped.clone())),
        tokio::spawn(crate::fleet_reports::run(
            app.clone(),
            config.replica_name(),
            stopped.clone(),
        )),
        tokio::spawn(follow_store(app.clone(), stopped)),
    ]
}

/// The leader refreshes unfinished tasks from the nodes.
async fn poll_tasks(app: Arc<App>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let period = Duration::from_millis(app.config.task_poll_interval_ms);
    loop {
        if app.is_leader() {
            if let Err(e) = registry::poll_pending(&app).await {
                tracing::warn!(error = %e, "task polling");
            }
        }
        if !pause(&mut stopped, period).await {
            return;
        }
    }
}

/// Every replica serves its own Envoys: it follows the store so a change made through another
/// replica reaches them too.
async fn follow_store(app: Arc<App>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        if !pause(&mut stopped, Duration::from_secs(1)).await {
            return;
        }
        if let Err(e) = app.sync_from_store().await {
            tracing::warn!(error = %e, "following the store");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InitialTopology;
    use crate::testutil::TempDir;
    use miroir_topology::{Node, NodeState};
    use serde_json::Value;

    fn config(dir: &TempDir) -> Config {
        Config {
            http_listen: "127.0.0.1:0".parse().expect("addr"),
            xds_listen: "127.0.0.1:0".parse().expect("addr"),
            store: format!("embedded:{}", dir.path().join("data").display()),
            admin_key: Some("adm".into()),
            wasm: Some(WasmSpec::Path("/opt/miroir/miroir_filter.wasm".into())),
            topology: Some(InitialTopology {
                epoch: 1,
                shards: 4,
                replication_factor: 1,
                min_copies: None,
                unavailable_shards: None,
                nodes: vec![Node {
                    id: "n0".into(),
                    address: "127.0.0.1:7700".into(),
                    group: "g0".into(),
                    state: NodeState::Active,
                }],
            }),
            ..Default::default()
        }
    }

    async fn fleet(running: &Running) -> Value {
        reqwest::Client::new()
            .get(format!("http://{}/_miroir/fleet", running.http_addr))
            .header("authorization", "Bearer adm")
            .send()
            .await
            .expect("fleet")
            .json()
            .await
            .expect("json")
    }

    #[tokio::test]
    async fn restarts_serve_the_stored_epoch() {
        let dir = TempDir::new("server");
        let running = start(config(&dir)).await.expect("start");
        assert!(running.xds_addr.is_some());
        let first = fleet(&running).await;
        assert_eq!(first["servedEpoch"], 1);
        let served = running.app.publisher.current().expect("current");
        let authority = served.control_plane.as_ref().map(|c| c.authority.clone());
        assert_eq!(authority, Some(running.http_addr.to_string()));
        running.stop().await.expect("stop");

        let mut cfg = config(&dir);
        // Same advertised address as before, so the plugin configuration is the same.
        cfg.http_advertise = authority;
        let running = start(cfg).await.expect("restart");
        assert_eq!(fleet(&running).await["servedEpoch"], 1, "no epoch bump");
        assert_eq!(running.app.publisher.current(), Some(served));
        running.stop().await.expect("stop");
    }
}
