//! Authentication and authorization, following Meilisearch's `ActionPolicy`: without a master key
//! every route is open except `/keys`; with one, every route but `/health` needs
//! `Authorization: Bearer <master key | API key>`, and an API key must hold the route's action on
//! the route's index and not be expired.

use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use serde_json::Value;

use crate::error::MeiliError;
use crate::keys::generate_key;
use crate::state::SharedState;
use crate::tenant::{fuse_filters, SearchRules, TokenError};

/// What the caller may see, for handlers that filter or check indexes named in the body.
#[derive(Debug, Clone)]
pub struct Access {
    /// The key's index patterns; `None` for the master key or a node without one.
    pub indexes: Option<Vec<String>>,
    /// Whether the key may create indexes (`indexes.create` on some index).
    pub can_create_index: bool,
    /// A tenant token's search rules.
    pub tenant: Option<SearchRules>,
}

impl Access {
    pub fn all() -> Self {
        Self {
            indexes: None,
            can_create_index: true,
            tenant: None,
        }
    }

    pub fn is_index_authorized(&self, index: &str) -> bool {
        self.indexes.as_ref().is_none_or(|patterns| {
            patterns
                .iter()
                .any(|p| crate::keys::pattern_matches(p, index))
        }) && self
            .tenant
            .as_ref()
            .is_none_or(|rules| rules.is_index_authorized(index))
    }

    /// A search filter with the tenant token's rule for `index` ANDed in.
    pub fn search_filter(&self, index: &str, filter: Option<Value>) -> Option<Value> {
        match &self.tenant {
            Some(rules) => fuse_filters(filter, rules.filter_for(index)),
            None => filter,
        }
    }

    /// Meilisearch's `allow_index_creation`.
    pub fn allow_index_creation(&self, index: &str) -> bool {
        self.can_create_index && self.is_index_authorized(index)
    }
}

pub fn invalid_api_key() -> MeiliError {
    MeiliError::new(
        StatusCode::FORBIDDEN,
        "invalid_api_key",
        "The provided API key is invalid.",
    )
}

fn missing_authorization_header() -> MeiliError {
    MeiliError::new(
        StatusCode::UNAUTHORIZED,
        "missing_authorization_header",
        "The Authorization header is missing. It must use the bearer authorization method.",
    )
}

fn missing_master_key() -> MeiliError {
    MeiliError::new(
        StatusCode::UNAUTHORIZED,
        "missing_master_key",
        "Meilisearch is running without a master key. To access this API endpoint, you must have set a master key at launch.",
    )
}

/// The action Meilisearch requires for a route, and the index named in its path (`None` for
/// routes that are not under `/indexes/{uid}`). `None` for routes the node does not know, which
/// are left to answer 404.
pub fn route_action(method: &Method, path: &str) -> Option<(&'static str, Option<String>)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let m = method.as_str();
    let action = match (m, segments.as_slice()) {
        ("GET", ["version"]) => "version",
        ("GET", ["experimental-features"]) => "experimental.get",
        ("PATCH", ["experimental-features"]) => "experimental.update",
        ("GET", ["stats"]) => "stats.get",
        ("GET", ["tasks"]) | ("GET", ["tasks", _]) => "tasks.get",
        ("POST", ["tasks", "cancel"]) => "tasks.cancel",
        ("DELETE", ["tasks"]) => "tasks.delete",
        ("POST", ["multi-search"]) => "search",
        ("POST", ["swap-indexes"]) => "indexes.swap",
        ("GET", ["batches"]) | ("GET", ["batches", _]) => "tasks.get",
        ("GET", ["webhooks"]) | ("GET", ["webhooks", _]) => "webhooks.get",
        ("POST", ["webhooks"]) => "webhooks.create",
        ("PATCH", ["webhooks", _]) => "webhooks.update",
        ("DELETE", ["webhooks", _]) => "webhooks.delete",
        ("POST", ["dumps"]) => "dumps.create",
        ("POST", ["snapshots"]) => "snapshots.create",
        ("POST", ["render-template"]) => "*.get",
        ("POST", ["dynamic-search-rules"]) | ("GET", ["dynamic-search-rules", _]) => {
            "dynamicSearchRules.get"
        }
        ("PATCH", ["dynamic-search-rules", _]) => "dynamicSearchRules.update",
        ("DELETE", ["dynamic-search-rules"]) | ("DELETE", ["dynamic-search-rules", _]) => {
            "dynamicSearchRules.delete"
        }
        ("GET", ["keys"]) | ("GET", ["keys", _]) => "keys.get",
        ("POST", ["keys"]) => "keys.create",
        ("PATCH", ["keys", _]) => "keys.update",
        ("DELETE", ["keys", _]) => "keys.delete",
        ("GET", ["indexes"]) => "indexes.get",
        ("POST", ["indexes"]) => "indexes.create",
        (_, ["indexes", uid, rest @ ..]) => {
            let action = match (m, rest) {
                ("GET", []) => "indexes.get",
                ("PATCH", []) => "indexes.update",
                ("DELETE", []) => "indexes.delete",
                ("GET", ["stats"]) => "stats.get",
                ("GET", ["documents"]) | ("GET", ["documents", _]) => "documents.get",
                ("POST", ["documents", "fetch"]) => "documents.get",
                ("POST", ["documents"]) | ("PUT", ["documents"]) => "documents.add",
                ("DELETE", ["documents"]) | ("DELETE", ["documents", _]) => "documents.delete",
                ("POST", ["documents", "delete-batch"]) | ("POST", ["documents", "delete"]) => {
                    "documents.delete"
                }
                ("GET", ["search"])
                | ("POST", ["search"])
                | ("POST", ["facet-search"])
                | ("GET", ["similar"])
                | ("POST", ["similar"]) => "search",
                ("GET", ["settings"]) | ("GET", ["settings", _]) => "settings.get",
                (_, ["settings"]) | (_, ["settings", _]) => "settings.update",
                ("POST", ["fields"]) => "fields.post",
                ("POST", ["compact"]) => "indexes.compact",
                _ => return None,
            };
            return Some((action, Some(uid.to_string())));
        }
        _ => return None,
    };
    Some((action, None))
}

/// Checks a request's `Authorization` header for `action` on `index`.
pub fn authorize(
    state: &SharedState,
    authorization: Option<&str>,
    action: &str,
    index: Option<&str>,
) -> Result<Access, MeiliError> {
    let token = match authorization {
        None => None,
        Some(value) => {
            let mut parts = value.splitn(2, ' ');
            match parts.next() {
                Some("Bearer") => match parts.next() {
                    Some(token) => Some(token),
                    None => return Err(invalid_api_key()),
                },
                _ => return Err(missing_authorization_header()),
            }
        }
    };
    let is_keys_action = action.starts_with("keys.");
    let Some(master_key) = state.master_key.as_deref() else {
        return if is_keys_action {
            Err(missing_master_key())
        } else {
            Ok(Access::all())
        };
    };
    let Some(token) = token else {
        return Err(missing_authorization_header());
    };
    if token == master_key {
        return Ok(Access::all());
    }
    let keys = state.keys();
    let Some(key) = keys
        .iter()
        .find(|k| token.eq_ignore_ascii_case(&generate_key(master_key, &k.uid)))
    else {
        drop(keys);
        return authorize_tenant_token(state, master_key, token, action, index);
    };
    if let Some(index) = index {
        if !key.is_index_authorized(index) {
            return Err(MeiliError::new(
                StatusCode::FORBIDDEN,
                "invalid_api_key",
                format!(
                    "The API key cannot acces the index `{index}`, authorized indexes are {:?}.",
                    key.sorted_indexes()
                ),
            ));
        }
    }
    let now = SystemTime::now();
    if !key.is_authorized(action, index, now) {
        return Err(invalid_api_key());
    }
    Ok(Access {
        indexes: Some(key.indexes.clone()),
        can_create_index: key.is_authorized("indexes.create", None, now),
        tenant: None,
    })
}

/// A bearer that is no API key: a tenant token, on the `search` action only (see
/// [`crate::tenant`] for the order of the checks).
fn authorize_tenant_token(
    state: &SharedState,
    master_key: &str,
    token: &str,
    action: &str,
    index: Option<&str>,
) -> Result<Access, MeiliError> {
    if action != "search" {
        return Err(invalid_api_key());
    }
    let decoded = match crate::tenant::decode(token, |uid| generate_key(master_key, uid)) {
        Ok(t) => t,
        Err(TokenError::NotAToken) => return Err(invalid_api_key()),
        Err(TokenError::Decode(reason)) => return Err(crate::tenant::decode_error(&reason)),
    };
    let now = SystemTime::now();
    if let Some(exp) = decoded.exp {
        let unix = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if unix > exp {
            return Err(crate::tenant::expired(exp, unix));
        }
    }
    let keys = state.keys();
    let uid = uuid::Uuid::parse_str(&decoded.api_key_uid)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| invalid_api_key())?;
    let key = keys
        .iter()
        .find(|k| k.uid == uid)
        .ok_or_else(invalid_api_key)?;
    if !key.is_authorized(action, index, now) {
        return Err(invalid_api_key());
    }
    if let Some(index) = index {
        if !decoded.search_rules.is_index_authorized(index) {
            return Err(crate::tenant::unauthorized_index(
                index,
                &decoded.search_rules,
            ));
        }
    }
    Ok(Access {
        indexes: Some(key.indexes.clone()),
        can_create_index: false,
        tenant: Some(decoded.search_rules),
    })
}

pub async fn authenticate(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let Some((action, index)) = route_action(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    // Like actix's `to_str().unwrap_or_default()`: a non-ASCII header counts as empty.
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default().to_string());
    match authorize(&state, authorization.as_deref(), action, index.as_deref()) {
        Ok(access) => {
            request.extensions_mut().insert(access);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_meilisearch_actions() {
        let cases = [
            (Method::GET, "/version", "version", None),
            (Method::GET, "/tasks/3", "tasks.get", None),
            (Method::POST, "/multi-search", "search", None),
            (Method::POST, "/indexes", "indexes.create", None),
            (Method::DELETE, "/keys/abc", "keys.delete", None),
            (
                Method::PUT,
                "/indexes/movies/documents",
                "documents.add",
                Some("movies"),
            ),
            (
                Method::POST,
                "/indexes/movies/documents/fetch",
                "documents.get",
                Some("movies"),
            ),
            (
                Method::POST,
                "/indexes/movies/facet-search",
                "search",
                Some("movies"),
            ),
            (
                Method::PATCH,
                "/indexes/movies/settings/faceting",
                "settings.update",
                Some("movies"),
            ),
            (
                Method::GET,
                "/indexes/movies/stats",
                "stats.get",
                Some("movies"),
            ),
        ];
        for (method, path, action, index) in cases {
            assert_eq!(
                route_action(&method, path),
                Some((action, index.map(String::from))),
                "{method} {path}"
            );
        }
        assert_eq!(route_action(&Method::GET, "/nope"), None);
    }
}
