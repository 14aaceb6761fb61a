//! A Meilisearch-compatible, in-memory test node: Meilisearch's HTTP API shapes, status codes,
//! error codes and task life cycle, with its own simple deterministic ranking.

pub mod auth;
pub mod cli;
pub mod documents;
pub mod dsr;
pub mod error;
pub mod features;
pub mod federation;
pub mod filter;
pub mod hybrid;
pub mod keys;
pub mod params;
pub mod ranking;
mod routes;
pub mod search;
pub mod settings;
pub mod similar;
pub mod state;
pub mod tasks;
pub mod template;
pub mod tenant;
pub mod time;
pub mod vectors;
pub mod webhooks;

use tokio::net::TcpListener;

pub use routes::router;
pub use state::{AppState, SharedState};

/// Serves the API on an already-bound listener until the process ends, with the task worker
/// running alongside.
pub async fn serve(listener: TcpListener, master_key: Option<String>) -> std::io::Result<()> {
    let state = AppState::new(master_key);
    tokio::spawn(tasks::worker(state.clone()));
    axum::serve(listener, router(state)).await
}
