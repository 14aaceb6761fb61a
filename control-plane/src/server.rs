//! Wires the store, the xDS publisher, the HTTP routes and the background loops together.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::app::{pause, App};
use crate::config::Config;
use crate::publisher::{MemoryPublisher, Publisher};
use crate::tasks::registry;
use crate::{health, leader, routes, store};

/// The replica's name in the leader lease.
fn replica_id(config: &Config) -> String {
    config.replica_id.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "control-plane".into());
        format!("{host}-{}", std::process::id())
    })
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
    let publisher: Arc<dyn Publisher> = Arc::new(MemoryPublisher::new());
    let app = App::new(config.clone(), store.clone(), publisher);
    if let Err(e) = app.sync_from_store().await {
        tracing::warn!(error = %e, "initial rollout");
    }

    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .map_err(|e| format!("httpListen {}: {e}", config.http_listen))?;
    let http_addr = http.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let loops = spawn_loops(&app, &config, stopped.clone());
    let xds_addr: SocketAddr = config.xds_listen;

    println!(
        "miroir-control-plane ready: http={http_addr} xds={xds_addr} store={}",
        config.store
    );
    let served = axum::serve(http, routes::router(app.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("http: {e}"));
    let _ = stop.send(true);
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
