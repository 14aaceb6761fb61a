//! Wires the store, the xDS publisher, the HTTP routes and the background loops together.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use miroir_xds::{HealthCheckOptions, ResourceOptions};

use crate::app::{pause, App, WASM_SETTING};
use crate::config::{Config, WasmSpec};
use crate::publisher::{wasm_source, MemoryPublisher, Publisher, XdsPublisher};
use crate::tasks::registry;
use crate::{health, leader, routes, store};

/// The replica's name in the leader lease.
fn replica_id(config: &Config) -> String {
    config.replica_id.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "control-plane".into());
        format!("{host}-{}", std::process::id())
    })
}

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

/// Runs until `shutdown` completes, then stops cleanly (gives the leadership up).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let store = store::open(&config.store)
        .await
        .map_err(|e| format!("store {}: {e}", config.store))?;
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
    let (stop, stopped) = tokio::sync::watch::channel(false);

    // Without a filter binary there is nothing to serve Envoys: run the registry and admin API
    // alone (a development setup with a file-configured Envoy).
    let (publisher, xds): (Arc<dyn Publisher>, Option<(miroir_xds::Xds, SocketAddr)>) =
        match wasm(&store, &config).await? {
            Some(wasm) => {
                let xds = miroir_xds::Xds::new(resource_options(&config, &wasm));
                let listener = tokio::net::TcpListener::bind(config.xds_listen)
                    .await
                    .map_err(|e| format!("xdsListen {}: {e}", config.xds_listen))?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                let service = xds.service();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let served = tonic::transport::Server::builder()
                        .add_service(service)
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
                let publisher = XdsPublisher { xds: xds.clone() };
                (Arc::new(publisher), Some((xds, addr)))
            }
            None => {
                tracing::warn!("no `wasm` configured: the xDS server is off");
                (Arc::new(MemoryPublisher::new()), None)
            }
        };
    let app = App::new(config.clone(), store.clone(), publisher);
    if let Some(w) = wasm(&store, &config).await? {
        // Already in the xDS options: not a change to roll out again.
        app.remember_wasm(w);
    }
    // The stored topology as is (no epoch bump), so a restart serves the same versions.
    if let Err(e) = app.sync_from_store().await {
        tracing::warn!(error = %e, "initial rollout");
    }
    let loops = spawn_loops(&app, &config, stopped.clone());

    let xds_text = xds
        .as_ref()
        .map(|(_, a)| a.to_string())
        .unwrap_or_else(|| "off".into());
    println!(
        "miroir-control-plane ready: http={http_addr} xds={xds_text} store={}",
        config.store
    );
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let mut http_stopped = stopped.clone();
    let served = axum::serve(http, routes::router(app.clone()))
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
            replica_id(config),
            ttl,
            app.leader.clone(),
            stopped.clone(),
        )),
        tokio::spawn(health::run(app.clone(), stopped.clone())),
        tokio::spawn(poll_tasks(app.clone(), stopped.clone())),
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
