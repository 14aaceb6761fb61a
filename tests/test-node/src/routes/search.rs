use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};

use super::{json_body, ok, validate_index_uid};
use crate::auth::Access;
use crate::error::{MeiliError, Result};
use crate::federation::{federated_search, FederatedQuery, Federation, FederationOptions};
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

/// Adds a tenant token's search rule for `uid` to the query's filter.
pub fn with_rules(
    access: &Option<Extension<Access>>,
    uid: &str,
    mut query: SearchQuery,
) -> SearchQuery {
    if let Some(Extension(access)) = access {
        query.filter = access.search_filter(uid, query.filter.take());
    }
    query
}

pub async fn search_post(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    let query = with_rules(&access, &uid, SearchQuery::from_body(&body)?);
    Ok(ok(run(&state, &uid, &query)?))
}

pub async fn facet_search(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    let body = json_body(&headers, &body)?;
    let mut query = FacetSearchQuery::from_body(&body)?;
    query.search = with_rules(&access, &uid, query.search);
    let store = state.lock();
    Ok(ok(run_facet_search(store.index(&uid)?, &query)?))
}

pub async fn search_get(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    access: Option<Extension<Access>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let query = with_rules(&access, &uid, SearchQuery::from_query(&q)?);
    Ok(ok(run(&state, &uid, &query)?))
}

/// `POST /multi-search`. Without `federation`, each query runs on its own and the first error
/// aborts the request with ``Inside `.queries[i]`: `` prepended (a missing index is a 400 here);
/// with it, the queries are merged into one list (see [`crate::federation`]).
pub async fn multi_search(
    State(state): State<SharedState>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    let map = params::object(&body, &["queries", "federation"])?;
    let queries = match map.get("queries") {
        Some(Value::Array(queries)) => queries,
        None => return Err(MeiliError::bad_request("Missing field `queries`")),
        Some(other) => {
            return Err(params::type_error(
                "bad_request",
                ".queries",
                "an array",
                other,
            ))
        }
    };
    let federation = match map.get("federation") {
        None | Some(Value::Null) => None,
        Some(f) => Some(Federation::from_json(f)?),
    };
    let mut fields: Vec<&str> = vec!["indexUid", "federationOptions"];
    fields.extend_from_slice(FIELDS);
    let mut parsed = Vec::new();
    for (i, query) in queries.iter().enumerate() {
        let wrap = |e: MeiliError| {
            MeiliError::invalid(e.code, format!("Inside `.queries[{i}]`: {}", e.message))
        };
        let obj = params::object(query, &fields).map_err(wrap)?;
        let uid = match obj.get("indexUid") {
            Some(Value::String(s)) => s.clone(),
            None => {
                return Err(MeiliError::invalid(
                    "missing_index_uid",
                    format!("Missing field `indexUid` inside `.queries[{i}]`"),
                ))
            }
            Some(other) => {
                return Err(params::type_error(
                    "invalid_index_uid",
                    &format!(".queries[{i}].indexUid"),
                    "a string",
                    other,
                ))
            }
        };
        validate_index_uid(&uid).map_err(|e| {
            MeiliError::invalid(
                e.code,
                format!("Invalid value at `.queries[{i}].indexUid`: {}", e.message),
            )
        })?;
        let options = match obj.get("federationOptions") {
            None | Some(Value::Null) => None,
            Some(o) => Some(FederationOptions::from_json(o, i)?),
        };
        let mut rest: Map<String, Value> = obj.clone();
        rest.remove("indexUid");
        rest.remove("federationOptions");
        let query = SearchQuery::from_body(&Value::Object(rest)).map_err(wrap)?;
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
        let query = with_rules(&access, &uid, query);
        parsed.push((uid, query, options));
    }

    if let Some(federation) = federation {
        let queries: Vec<FederatedQuery> = parsed
            .into_iter()
            .map(|(index_uid, query, options)| FederatedQuery {
                index_uid,
                query,
                options: options.unwrap_or(FederationOptions {
                    weight: 1.0,
                    remote: None,
                    query_position: None,
                }),
            })
            .collect();
        let network = state.network_enabled();
        let store = state.lock();
        return Ok(ok(federated_search(
            &store,
            &queries,
            &federation,
            network,
        )?));
    }

    if let Some(i) = parsed.iter().position(|(_, _, o)| o.is_some()) {
        return Err(MeiliError::invalid(
            "invalid_multi_search_federation_options",
            format!("Using `federationOptions` is not allowed in a non-federated search.\n - Hint: remove `federationOptions` from query #{i} or add `federation` to the request."),
        ));
    }
    let mut results = Vec::new();
    for (i, (uid, query, _)) in parsed.iter().enumerate() {
        let wrap = |e: MeiliError| {
            MeiliError::invalid(e.code, format!("Inside `.queries[{i}]`: {}", e.message))
        };
        let result = run(&state, uid, query).map_err(wrap)?;
        let mut entry = Map::new();
        entry.insert("indexUid".into(), json!(uid));
        if let Value::Object(r) = result {
            entry.extend(r);
        }
        results.push(Value::Object(entry));
    }
    Ok(ok(json!({"results": results})))
}

/// `GET /experimental-features`.
pub async fn features_get(State(state): State<SharedState>) -> Response {
    ok(Value::Object(state.features().clone()))
}

/// `PATCH /experimental-features`: applied at once, answered with every flag.
pub async fn features_patch(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    let mut features = state.features();
    crate::features::patch(&mut features, &body)?;
    Ok(ok(Value::Object(features.clone())))
}
