//! Job routes: start the jobs behind topology changes, read them, pause, resume, cancel.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use miroir_topology::Topology;
use serde_json::{json, Value};
use tracing::Instrument;

use super::authorize;
use crate::app::{no_topology, App};
use crate::error::ApiError;
use crate::jobs::plan::{propose, staged};
use crate::jobs::runner::{load, save, unfinished};
use crate::jobs::{Edit, Job, JobKind, JobState, Move, PauseCause, Phase};

pub(crate) async fn stored(app: &App) -> Result<Topology, ApiError> {
    app.store
        .load_topology()
        .await
        .map_err(ApiError::store)?
        .ok_or_else(no_topology)
}

fn conflict(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, "invalid_request", message)
}

/// Refuses a topology change while a job runs: jobs plan their moves from the map they start on.
pub(crate) async fn no_job_running(app: &App) -> Result<(), ApiError> {
    let jobs = load(app).await?;
    if let Some(job) = unfinished(&jobs) {
        return Err(conflict(
            "miroir_job_running",
            format!(
                "Job `{}` ({:?}) is not finished: wait for it, or cancel it, before another topology change.",
                job.id, job.kind
            ),
        ));
    }
    Ok(())
}

/// Records a job that takes the stored topology to its balanced placement under `edit`, plus
/// `extra` moves (copies placed already that still need their documents).
pub(crate) async fn start(
    app: &App,
    kind: JobKind,
    edit: Edit,
    extra: Vec<Move>,
) -> Result<Job, ApiError> {
    no_job_running(app).await?;
    let topology = stored(app).await?;
    let invalid = |e: String| ApiError::invalid("miroir_invalid_topology", e);
    let mut moves = propose(&topology, &edit).map_err(|e| invalid(e.to_string()))?;
    for m in extra {
        match moves
            .iter_mut()
            .find(|x| x.group == m.group && x.shard == m.shard)
        {
            Some(x) => {
                for n in m.to {
                    if !x.to.contains(&n) {
                        x.to.push(n);
                    }
                }
            }
            None => moves.push(m),
        }
    }
    moves.sort_by(|a, b| (a.group.as_str(), a.shard).cmp(&(b.group.as_str(), b.shard)));
    let number = app.store.next_job_number().await.map_err(ApiError::store)?;
    let mut job = Job::new(
        format!("job-{number}"),
        kind,
        edit,
        moves,
        crate::time::now(),
    );
    // The Envoys every epoch of the job waits for, from the start.
    let now = crate::time::now_nanos() / 1_000_000;
    for (envoy, _) in crate::fleet_reports::views(app)
        .await
        .map_err(ApiError::internal)?
    {
        job.fleet.insert(envoy, now);
    }
    staged(&topology, &job)
        .validate()
        .map_err(|e| invalid(format!("Invalid topology: {e}")))?;
    save(app, &mut job).await?;
    tracing::info!(job = job.id, kind = ?kind, moves = job.shards_total, "job started");
    Ok(job)
}

pub(crate) fn accepted(job: &Job) -> (StatusCode, Json<Value>) {
    (StatusCode::ACCEPTED, Json(json!({ "job": job })))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "miroir_job_not_found",
        "invalid_request",
        format!("Job `{id}` not found."),
    )
}

async fn one(app: &App, id: &str) -> Result<Job, ApiError> {
    let text = app
        .store
        .get_job(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| not_found(id))?;
    serde_json::from_str(&text).map_err(|e| ApiError::internal(e.to_string()))
}

/// `GET /_miroir/jobs`: every job, oldest first.
pub async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&app, &headers)?;
    let jobs = load(&app).await?;
    Ok(Json(json!({ "results": jobs })))
}

/// `GET /_miroir/jobs/{id}`.
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Job>, ApiError> {
    authorize(&app, &headers)?;
    Ok(Json(one(&app, &id).await?))
}

/// `POST /_miroir/jobs/{id}/{pause|resume|cancel}`.
pub async fn act(
    State(app): State<Arc<App>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Job>, ApiError> {
    let span = tracing::info_span!("job_action", job = %id, action = %action);
    async move {
        authorize(&app, &headers)?;
        let mut job = one(&app, &id).await?;
        let over = job.state.is_finished();
        match action.as_str() {
            "pause" if !over => {
                job.state = JobState::Paused;
                job.pause_cause = Some(PauseCause::Operator);
                job.reason = Some("paused by an operator".into());
            }
            "resume" if !over => {
                job.state = JobState::Running;
                job.pause_cause = None;
                job.reason = None;
            }
            "cancel" if !over && job.phase <= Phase::Copy => {
                // The runner withdraws the copies being filled, then marks it finished.
                job.state = JobState::Canceled;
                job.reason = Some("canceled by an operator".into());
            }
            "cancel" if !over => {
                return Err(conflict(
                    "miroir_job_not_cancelable",
                    format!(
                        "Job `{id}` already moved reads to the new copies (phase {:?}); it can only finish.",
                        job.phase
                    ),
                ))
            }
            "pause" | "resume" | "cancel" => {
                return Err(conflict(
                    "miroir_job_finished",
                    format!("Job `{id}` is finished ({:?}).", job.state),
                ))
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "miroir_not_supported",
                    "invalid_request",
                    format!("Unknown job action `{other}`: use pause, resume or cancel."),
                ))
            }
        }
        save(&app, &mut job).await?;
        Ok(Json(job))
    }
    .instrument(span)
    .await
}
