use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};

use super::{json_body, ok, validate_index_uid};
use crate::auth::Access;
use crate::error::{MeiliError, Result};
use crate::params;
use crate::search::{
    facet_search as run_facet_search, search, FacetSearchQuery, SearchQuery, FIELDS,
};
use crate::state::SharedState;

fn run(state: &SharedState, uid: &str, query: &SearchQuery) -> Result<Value> {
    validate_index_uid(uid)?;
    let store = state.lock();
    search(store.index(uid)?, query)
}

pub async fn search_post(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    Ok(ok(run(&state, &uid, &SearchQuery::from_body(&body)?)?))
}

pub async fn facet_search(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    let body = json_body(&headers, &body)?;
    let query = FacetSearchQuery::from_body(&body)?;
    let store = state.lock();
    Ok(ok(run_facet_search(store.index(&uid)?, &query)?))
}

pub async fn search_get(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    Ok(ok(run(&state, &uid, &SearchQuery::from_query(&q)?)?))
}

/// Non-federated multi-search: each query runs on its own; the first error aborts the request
/// with ``Inside `.queries[i]`: `` prepended (and a missing index is a 400 here).
pub async fn multi_search(
    State(state): State<SharedState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    let map = params::object(&body, &["queries", "federation"])?;
    if map.get("federation").is_some_and(|f| !f.is_null()) {
        return Err(MeiliError::invalid(
            "invalid_multi_search_federated",
            "Federated multi-search is not supported by the miroir test node.",
        ));
    }
    let Some(Value::Array(queries)) = map.get("queries") else {
        return Err(MeiliError::invalid(
            "missing_multi_search_queries",
            "Missing field `queries`",
        ));
    };
    let mut fields: Vec<&str> = vec!["indexUid", "federationOptions"];
    fields.extend_from_slice(FIELDS);
    let mut results = Vec::new();
    for (i, query) in queries.iter().enumerate() {
        let wrap = |e: MeiliError| {
            MeiliError::invalid(e.code, format!("Inside `.queries[{i}]`: {}", e.message))
        };
        let obj = params::object(query, &fields).map_err(wrap)?;
        let uid = match obj.get("indexUid") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(wrap(MeiliError::invalid(
                    "missing_index_uid",
                    "Missing field `indexUid`",
                )))
            }
        };
        let mut rest: Map<String, Value> = obj.clone();
        rest.remove("indexUid");
        rest.remove("federationOptions");
        let parsed = SearchQuery::from_body(&Value::Object(rest)).map_err(wrap)?;
        if access
            .as_ref()
            .is_some_and(|Extension(a)| !a.is_index_authorized(&uid))
        {
            return Err(MeiliError::new(
                StatusCode::FORBIDDEN,
                "invalid_api_key",
                format!("Inside `.queries[{i}]`: The provided API key is invalid."),
            ));
        }
        let result = run(&state, &uid, &parsed).map_err(wrap)?;
        let mut entry = Map::new();
        entry.insert("indexUid".into(), json!(uid));
        if let Value::Object(r) = result {
            entry.extend(r);
        }
        results.push(Value::Object(entry));
    }
    Ok(ok(json!({"results": results})))
}
