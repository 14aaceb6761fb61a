//! Meilisearch's `/webhooks` routes, served by the control plane for the whole cluster, and the
//! calls to those webhooks when a cluster-wide task finishes (once per task, never once per node
//! task: the nodes' own webhooks are not used).
//!
//! Shapes, codes and messages are Meilisearch 1.50's (meilisearch: crates/meilisearch/src/routes/
//! webhooks.rs); the notification is its `notify_webhooks` (crates/index-scheduler/src/lib.rs):
//! `POST <url>` with the finished task objects as gzip-encoded NDJSON.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use tracing::Instrument;
use uuid::Uuid;

use crate::app::App;
use crate::error::{ApiError, Failure};
use crate::nodes::Right;
use crate::store::{SharedStore, Webhook, MAX_WEBHOOKS};
use crate::tasks::routes::authorize_for;
use miroir_topology::deserr;

#[cfg(test)]
mod tests;

/// Meilisearch's limit on one webhook's headers.
pub const MAX_HEADERS: usize = 200;

/// Meilisearch gives a webhook call 30 s in all.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

const FIELDS: &[&str] = &["url", "headers"];

/// A field of a create/update body: absent, `null`, or a value.
#[derive(Clone, Debug, Default, PartialEq)]
enum Setting<T> {
    #[default]
    NotSet,
    Reset,
    Set(T),
}

#[derive(Debug, Default, PartialEq)]
struct WebhookSettings {
    url: Setting<String>,
    headers: Setting<BTreeMap<String, Setting<String>>>,
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_string(),
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a positive integer",
        Value::Number(n) if n.is_i64() => "a negative integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("{kind}: `{value}`")
}

fn type_error(code: &'static str, location: &str, expected: &str, found: &Value) -> ApiError {
    let at = if location.is_empty() {
        String::new()
    } else {
        format!(" at `{location}`")
    };
    ApiError::invalid(
        code,
        format!(
            "Invalid value type{at}: expected {expected}, but found {}",
            describe(found)
        ),
    )
}

/// The body as Meilisearch's JSON extractor and deserr read it: content type, payload, then the
/// fields in order (the first error wins).
fn parse_settings(headers: &HeaderMap, body: &[u8]) -> Result<WebhookSettings, ApiError> {
    if let Some(ct) = headers.get("content-type") {
        let text = ct.to_str().unwrap_or_default();
        let media = text.split(';').next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_content_type",
                "invalid_request",
                format!("The Content-Type `{text}` is invalid. Accepted values for the Content-Type header are: `application/json`"),
            ));
        }
    }
    if body.is_empty() {
        return Err(ApiError::invalid(
            "missing_payload",
            "A json payload is missing.",
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            "malformed_payload",
            format!("The json payload provided is malformed. `{e}`."),
        )
    })?;
    let Value::Object(fields) = value else {
        return Err(type_error("bad_request", "", "an object", &value));
    };
    let mut settings = WebhookSettings::default();
    for (field, value) in fields {
        match field.as_str() {
            "url" => {
                settings.url = match value {
                    Value::Null => Setting::Reset,
                    Value::String(url) => Setting::Set(url),
                    other => {
                        return Err(type_error(
                            "invalid_webhook_url",
                            ".url",
                            "a string",
                            &other,
                        ))
                    }
                }
            }
            "headers" => {
                settings.headers = match value {
                    Value::Null => Setting::Reset,
                    Value::Object(map) => {
                        let mut headers = BTreeMap::new();
                        for (name, value) in map {
                            let setting = match value {
                                Value::Null => Setting::Reset,
                                Value::String(v) => Setting::Set(v),
                                other => {
                                    return Err(type_error(
                                        "invalid_webhook_headers",
                                        &format!(".headers.{name}"),
                                        "a string",
                                        &other,
                                    ))
                                }
                            };
                            headers.insert(name, setting);
                        }
                        Setting::Set(headers)
                    }
                    other => {
                        return Err(type_error(
                            "invalid_webhook_headers",
                            ".headers",
                            "an object",
                            &other,
                        ))
                    }
                }
            }
            "uuid" => {
                return Err(ApiError::invalid(
                    "immutable_webhook_uuid",
                    format!(
                        "Immutable field `uuid`: expected one of {}",
                        deserr::quoted(FIELDS)
                    ),
                ))
            }
            "isEditable" => {
                return Err(ApiError::invalid(
                    "immutable_webhook_is_editable",
                    format!(
                        "Immutable field `isEditable`: expected one of {}",
                        deserr::quoted(FIELDS)
                    ),
                ))
            }
            other => {
                return Err(ApiError::invalid(
                    "bad_request",
                    deserr::unknown("field", other, FIELDS),
                ))
            }
        }
    }
    Ok(settings)
}

fn missing_url(uuid: &Uuid) -> ApiError {
    ApiError::invalid(
        "invalid_webhook_url",
        format!("The URL for the webhook `{uuid}` is missing."),
    )
}

fn too_many_headers(uuid: &Uuid) -> ApiError {
    ApiError::invalid(
        "invalid_webhook_headers",
        format!("Too many headers for the webhook `{uuid}`. Please limit the number of headers to {MAX_HEADERS}. Hint: To remove an already defined header set its value to `null`"),
    )
}

fn too_many_webhooks() -> ApiError {
    ApiError::invalid(
        "invalid_webhooks",
        format!("Defining too many webhooks would crush the server. Please limit the number of webhooks to {MAX_WEBHOOKS}. You may use a third-party proxy server to dispatch events to more than {MAX_WEBHOOKS} endpoints."),
    )
}

fn immutable(uuid: &Uuid) -> ApiError {
    ApiError::invalid(
        "immutable_webhook",
        format!("Webhook `{uuid}` is immutable. The webhook defined from the command line cannot be modified using the API."),
    )
}

fn not_found(uuid: &Uuid) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "webhook_not_found",
        "invalid_request",
        format!("Webhook `{uuid}` not found."),
    )
}

fn parse_uuid(text: &str) -> Result<Uuid, ApiError> {
    Uuid::from_str(text)
        .map_err(|e| ApiError::invalid("invalid_webhook_uuid", format!("Invalid UUID: {e}")))
}

/// Meilisearch's `check_changed`: what a stored webhook must satisfy.
fn check(uuid: &Uuid, webhook: &Webhook) -> Result<(), ApiError> {
    if uuid.is_nil() {
        return Err(immutable(uuid));
    }
    if webhook.url.is_empty() {
        return Err(missing_url(uuid));
    }
    if webhook.headers.len() > MAX_HEADERS {
        return Err(too_many_headers(uuid));
    }
    for (name, value) in &webhook.headers {
        HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
            ApiError::invalid(
                "invalid_webhook_headers",
                format!("Invalid header name `{name}`: {e}"),
            )
        })?;
        HeaderValue::from_str(value).map_err(|e| {
            ApiError::invalid(
                "invalid_webhook_headers",
                format!("Invalid header value `{name}`: {e}"),
            )
        })?;
    }
    reqwest::Url::parse(&webhook.url).map_err(|e| {
        ApiError::invalid(
            "invalid_webhook_url",
            format!("Invalid URL `{}`: {e}", webhook.url),
        )
    })?;
    Ok(())
}

/// Meilisearch's `patch_webhook_inner`: a `null` header removes it, `headers: null` removes them
/// all, `url: null` is refused.
fn patch(uuid: &Uuid, old: Webhook, settings: WebhookSettings) -> Result<Webhook, ApiError> {
    let Webhook { url, mut headers } = old;
    let url = match settings.url {
        Setting::Set(url) => url,
        Setting::NotSet => url,
        Setting::Reset => return Err(missing_url(uuid)),
    };
    match settings.headers {
        Setting::Set(changes) => {
            for (name, value) in changes {
                match value {
                    Setting::Set(value) => {
                        headers.insert(name, value);
                    }
                    Setting::Reset => {
                        headers.remove(&name);
                    }
                    Setting::NotSet => {}
                }
            }
        }
        Setting::Reset => headers.clear(),
        Setting::NotSet => {}
    }
    if headers.len() > MAX_HEADERS {
        return Err(too_many_headers(uuid));
    }
    Ok(Webhook { url, headers })
}

/// Meilisearch's `hide_secret`: keeps a short prefix of the secret after `offset` bytes.
fn hide_secret(secret: &mut String, offset: usize) {
    let ceil = |s: &str, mut i: usize| {
        while i < s.len() && !s.is_char_boundary(i) {
            i += 1;
        }
        i.min(s.len())
    };
    let (keep, mask) = match secret.len().checked_sub(offset) {
        None => return,
        Some(x) if x < 10 => (0, "XXX..."),
        Some(x) if x < 20 => (2, "XXXX..."),
        Some(x) if x < 30 => (3, "XXXXX..."),
        Some(_) => (5, "XXXXXX..."),
    };
    let at = ceil(secret, offset + keep);
    secret.replace_range(at.., mask);
}

/// What `PATCH /webhooks/{uuid}` makes of a body over the stored `old` webhook, without the
/// store: the webhook as the route would show it. For the fuzz targets (fuzz/).
pub fn update_view(headers: &HeaderMap, body: &[u8], old: Webhook) -> Result<Value, ApiError> {
    let settings = parse_settings(headers, body)?;
    let uuid = Uuid::from_u128(1);
    let webhook = patch(&uuid, old, settings)?;
    check(&uuid, &webhook)?;
    Ok(view(&uuid.to_string(), &webhook))
}

/// The webhook as the routes show it: `Authorization` values redacted.
fn view(uuid: &str, webhook: &Webhook) -> Value {
    let mut headers = Map::new();
    for (name, value) in &webhook.headers {
        let mut value = value.clone();
        if name.eq_ignore_ascii_case("authorization") {
            let offset = if value.starts_with("Bearer ") {
                "Bearer ".len()
            } else {
                0
            };
            hide_secret(&mut value, offset);
        }
        headers.insert(name.clone(), Value::String(value));
    }
    json!({
        "uuid": uuid,
        "isEditable": uuid != Uuid::nil().to_string(),
        "url": webhook.url,
        "headers": headers,
    })
}

/// `GET /webhooks`.
pub async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Json<Value>, Failure> {
    async move {
        authorize_for(&app, &headers, Right::WebhooksGet).await?;
        let all = app.store.webhooks().await.map_err(ApiError::store)?;
        let results: Vec<Value> = all.iter().map(|(uuid, w)| view(uuid, w)).collect();
        Ok(Json(json!({ "results": results })))
    }
    .instrument(tracing::info_span!("list_webhooks"))
    .await
}

/// `GET /webhooks/{uuid}`.
pub async fn get(
    State(app): State<Arc<App>>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    async move {
        authorize_for(&app, &headers, Right::WebhooksGet).await?;
        let uuid = parse_uuid(&uuid)?;
        let key = uuid.to_string();
        let all = app.store.webhooks().await.map_err(ApiError::store)?;
        let webhook = all.get(&key).ok_or_else(|| not_found(&uuid))?;
        Ok(Json(view(&key, webhook)))
    }
    .instrument(tracing::info_span!("get_webhook"))
    .await
}

/// `POST /webhooks` → 201.
pub async fn create(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    async move {
        authorize_for(&app, &headers, Right::WebhooksCreate).await?;
        let settings = parse_settings(&headers, &body)?;
        let uuid = Uuid::new_v4();
        if let Setting::Set(h) = &settings.headers {
            if h.len() > MAX_HEADERS {
                return Err(too_many_headers(&uuid).into());
            }
        }
        let existing = app.store.webhooks().await.map_err(ApiError::store)?;
        if existing.len() >= MAX_WEBHOOKS {
            return Err(too_many_webhooks().into());
        }
        let Setting::Set(url) = settings.url else {
            return Err(missing_url(&uuid).into());
        };
        let headers = match settings.headers {
            Setting::Set(h) => h
                .into_iter()
                .map(|(name, value)| match value {
                    Setting::Set(v) => (name, v),
                    _ => (name, String::new()),
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let webhook = Webhook { url, headers };
        check(&uuid, &webhook)?;
        let key = uuid.to_string();
        if !app
            .store
            .insert_webhook(&key, &webhook)
            .await
            .map_err(ApiError::store)?
        {
            return Err(too_many_webhooks().into());
        }
        tracing::info!(uuid = key, "webhook created");
        Ok((StatusCode::CREATED, Json(view(&key, &webhook))).into_response())
    }
    .instrument(tracing::info_span!("create_webhook"))
    .await
}

/// `PATCH /webhooks/{uuid}`.
pub async fn update(
    State(app): State<Arc<App>>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Failure> {
    async move {
        authorize_for(&app, &headers, Right::WebhooksUpdate).await?;
        let settings = parse_settings(&headers, &body)?;
        let uuid = parse_uuid(&uuid)?;
        if uuid.is_nil() {
            return Err(immutable(&uuid).into());
        }
        let key = uuid.to_string();
        let all = app.store.webhooks().await.map_err(ApiError::store)?;
        let old = all.get(&key).cloned().ok_or_else(|| not_found(&uuid))?;
        let webhook = patch(&uuid, old, settings)?;
        check(&uuid, &webhook)?;
        if !app
            .store
            .replace_webhook(&key, &webhook)
            .await
            .map_err(ApiError::store)?
        {
            return Err(not_found(&uuid).into());
        }
        Ok(Json(view(&key, &webhook)))
    }
    .instrument(tracing::info_span!("update_webhook"))
    .await
}

/// `DELETE /webhooks/{uuid}` → 204.
pub async fn delete(
    State(app): State<Arc<App>>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    async move {
        authorize_for(&app, &headers, Right::WebhooksDelete).await?;
        let uuid = parse_uuid(&uuid)?;
        if uuid.is_nil() {
            return Err(immutable(&uuid).into());
        }
        if !app
            .store
            .delete_webhook(&uuid.to_string())
            .await
            .map_err(ApiError::store)?
        {
            return Err(not_found(&uuid).into());
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .instrument(tracing::info_span!("delete_webhook"))
    .await
}

/// The finished task objects as one NDJSON document (one object per line, each ending in `\n`).
pub fn ndjson(tasks: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for task in tasks {
        if serde_json::to_writer(&mut out, task).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// Calls every webhook once with `tasks` (task objects that just finished), in the background:
/// the caller (the poller, a read) never waits for it. Each call is bounded by [`CALL_TIMEOUT`];
/// a failure is logged, not retried (as Meilisearch does).
pub fn notify(app: &App, tasks: Vec<Value>) {
    if tasks.is_empty() {
        return;
    }
    let (store, http) = (app.store.clone(), app.http.clone());
    tokio::spawn(send_all(store, http, tasks).instrument(tracing::info_span!("notify_webhooks")));
}

/// The body as Meilisearch sends it: gzip (`Content-Encoding: gzip`).
pub(crate) fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data)?;
    encoder.finish()
}

async fn send_all(store: SharedStore, http: reqwest::Client, tasks: Vec<Value>) {
    let webhooks = match store.webhooks().await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "webhooks not read: finished tasks not notified");
            return;
        }
    };
    if webhooks.is_empty() {
        return;
    }
    let body = match gzip(&ndjson(&tasks)) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            tracing::warn!(error = %e, "finished tasks not gzip-encoded: not notified");
            return;
        }
    };
    let mut calls = tokio::task::JoinSet::new();
    for (uuid, webhook) in webhooks {
        let mut request = http
            .post(&webhook.url)
            .timeout(CALL_TIMEOUT)
            .header("content-encoding", "gzip")
            .header("content-type", "application/x-ndjson");
        for (name, value) in &webhook.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request.body(body.clone());
        calls.spawn(async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(uuid, status = %r.status(), "webhook refused the tasks"),
                Err(e) => tracing::warn!(uuid, error = %e, "webhook not reached"),
            }
        });
    }
    while calls.join_next().await.is_some() {}
}
