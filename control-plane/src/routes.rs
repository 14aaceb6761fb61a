//! Every HTTP route of the control plane's listener.

use std::sync::Arc;

use axum::routing::{delete, get, patch, post, put};
use axum::Router;

use crate::admin::{fleet, jobs, topology, ui};
use crate::app::App;
use crate::error::ApiError;
use crate::tasks::batches;
use crate::tasks::routes as tasks;
use crate::webhooks;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/_miroir/live", get(fleet::live))
        .route("/_miroir/ready", get(fleet::ready))
        .route("/_miroir/ui", get(ui::page))
        .route("/_miroir/ui/app.js", get(ui::script))
        .route("/_miroir/ui/style.css", get(ui::style))
        .route("/_miroir/topology", get(topology::get_topology))
        .route("/_miroir/shards", get(topology::get_shards))
        .route("/_miroir/fleet", get(fleet::fleet))
        .route("/_miroir/indexes", get(fleet::indexes))
        .route("/_miroir/nodes", post(topology::add_node))
        .route("/_miroir/nodes/{id}", delete(topology::remove_node))
        .route("/_miroir/nodes/{id}/drain", post(topology::drain_node))
        .route("/_miroir/groups", post(topology::add_group))
        .route("/_miroir/groups/{name}", delete(topology::remove_group))
        .route(
            "/_miroir/groups/{name}/replication-factor",
            put(topology::set_replication),
        )
        .route(
            "/_miroir/replication",
            patch(topology::set_replication_policy),
        )
        .route("/_miroir/jobs", get(jobs::list))
        .route("/_miroir/jobs/{id}", get(jobs::get))
        .route("/_miroir/jobs/{id}/{action}", post(jobs::act))
        .route("/_miroir/filter", put(fleet::put_filter))
        .route("/_miroir/internal/tasks", post(tasks::register_task))
        .route("/_miroir/internal/uid-leases", post(tasks::lease_uids))
        .route("/_miroir/internal/missed", post(tasks::record_missed))
        .route("/_miroir/internal/intents", post(tasks::record_intent))
        .route(
            "/_miroir/internal/intents/{id}",
            axum::routing::delete(tasks::close_intent),
        )
        .route("/metrics", get(fleet::metrics))
        .route("/tasks", get(tasks::list_tasks).delete(tasks::delete_tasks))
        .route("/tasks/cancel", post(tasks::cancel_tasks))
        .route("/tasks/{uid}", get(tasks::get_task))
        .route("/batches", get(batches::list_batches))
        .route("/batches/{uid}", get(batches::get_batch))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{uuid}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn(crate::telemetry::request_span))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "miroir_not_found",
        "invalid_request",
        "This route does not exist on the control plane.",
    )
}
