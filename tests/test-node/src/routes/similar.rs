//! `POST|GET /indexes/{uid}/similar`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;

use super::{json_body, ok, validate_index_uid};
use crate::auth::Access;
use crate::error::Result;
use crate::similar::{similar, SimilarQuery};
use crate::state::SharedState;

fn run(
    state: &SharedState,
    uid: &str,
    access: Option<Extension<Access>>,
    mut query: SimilarQuery,
) -> Result<Response> {
    validate_index_uid(uid)?;
    if let Some(Extension(access)) = access {
        query.filter = access.search_filter(uid, query.filter.take());
    }
    let query = &query;
    let store = state.lock();
    Ok(ok(similar(store.index(uid)?, query)?))
}

pub async fn similar_post(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    run(&state, &uid, access, SimilarQuery::from_body(&body)?)
}

pub async fn similar_get(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    access: Option<Extension<Access>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    run(&state, &uid, access, SimilarQuery::from_query(&q)?)
}
