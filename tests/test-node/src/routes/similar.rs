//! `POST|GET /indexes/{uid}/similar`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::{json_body, ok, validate_index_uid};
use crate::error::Result;
use crate::similar::{similar, SimilarQuery};
use crate::state::SharedState;

fn run(state: &SharedState, uid: &str, query: &SimilarQuery) -> Result<Response> {
    validate_index_uid(uid)?;
    let store = state.lock();
    Ok(ok(similar(store.index(uid)?, query)?))
}

pub async fn similar_post(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    run(&state, &uid, &SimilarQuery::from_body(&body)?)
}

pub async fn similar_get(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    run(&state, &uid, &SimilarQuery::from_query(&q)?)
}
