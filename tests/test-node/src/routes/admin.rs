//! `POST /dumps`, `POST /snapshots`, `POST /indexes/{uid}/compact` (tasks that succeed; no file
//! is written) and `POST /render-template` (experimental `renderRoute`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use super::{accepted, json_body, ok, validate_index_uid};
use crate::error::{MeiliError, Result};
use crate::state::SharedState;
use crate::tasks::{enqueue, Payload};

// These routes take no `customMetadata`: 1.50 ignores their query string.

pub async fn dump(State(state): State<SharedState>) -> Response {
    accepted(enqueue(&state, None, Payload::DumpCreation, None))
}

pub async fn snapshot(State(state): State<SharedState>) -> Response {
    accepted(enqueue(&state, None, Payload::SnapshotCreation, None))
}

pub async fn compact(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    Ok(accepted(enqueue(
        &state,
        Some(&uid),
        Payload::IndexCompaction,
        None,
    )))
}

const TEMPLATE_KINDS: &[&str] = &[
    "documentTemplate",
    "chatDocumentTemplate",
    "indexingFragment",
    "searchFragment",
    "inlineDocumentTemplate",
    "inlineFragment",
];
const INPUT_KINDS: &[&str] = &["indexDocument", "inlineDocument", "inlineSearch"];

/// `{kind, ...}` of a template or input: checks the kind and returns it.
fn kind_of<'a>(
    value: &'a Value,
    at: &str,
    code: &'static str,
    kinds: &[&str],
) -> Result<(&'a str, &'a serde_json::Map<String, Value>)> {
    let Value::Object(map) = value else {
        return Err(crate::params::type_error(code, at, "an object", value));
    };
    let kind = match map.get("kind") {
        None => {
            return Err(MeiliError::invalid(
                code,
                format!("Missing field `kind` inside `{at}`"),
            ))
        }
        Some(Value::String(k)) => k.as_str(),
        Some(other) => {
            return Err(crate::params::type_error(
                code,
                &format!("{at}.kind"),
                "a string",
                other,
            ))
        }
    };
    if !kinds.contains(&kind) {
        return Err(MeiliError::invalid(
            code,
            format!(
                "Unknown value `{kind}` at `{at}.kind`: expected one of {}",
                crate::params::backticked(kinds)
            ),
        ));
    }
    Ok((kind, map))
}

pub async fn render_template(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&headers, &body)?;
    let map = crate::params::object(&body, &["template", "input"])?;
    let template = map
        .get("template")
        .ok_or_else(|| MeiliError::bad_request("Missing field `template`"))?;
    let (kind, template) = kind_of(
        template,
        ".template",
        "invalid_render_template",
        TEMPLATE_KINDS,
    )?;
    let input = match map.get("input") {
        None | Some(Value::Null) => None,
        Some(v) => Some(kind_of(v, ".input", "invalid_render_input", INPUT_KINDS)?),
    };
    if state.features().get("renderRoute") != Some(&Value::Bool(true)) {
        return Err(MeiliError::invalid(
            "feature_not_enabled",
            "calling the /render-template route requires enabling the `render_route` experimental feature. See https://github.com/orgs/meilisearch/discussions/888",
        ));
    }
    if kind != "inlineDocumentTemplate" {
        return Err(MeiliError::invalid(
            "invalid_render_template",
            format!("error while fetching template: the miroir test node only renders `inlineDocumentTemplate` templates, not `{kind}`"),
        ));
    }
    let text = match template.get("inline") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(MeiliError::invalid(
                "invalid_render_template",
                "error while fetching template: parameter `inline` missing for kind `inlineDocumentTemplate`",
            ))
        }
    };
    let parsed = crate::template::parse(&text).map_err(|e| {
        MeiliError::invalid(
            "template_parsing_error",
            format!("error while fetching template: user error: cannot parse template: {e}"),
        )
    })?;
    let rendered = match input {
        None => Value::Null,
        Some((input_kind, input)) => {
            if input_kind != "inlineDocument" {
                return Err(MeiliError::invalid(
                    "invalid_render_input",
                    format!("error while fetching input: the miroir test node only renders `inlineDocument` inputs, not `{input_kind}`"),
                ));
            }
            let doc = input.get("inline").ok_or_else(|| {
                MeiliError::invalid(
                    "invalid_render_input",
                    "error while fetching input: parameter `inline` missing for kind `inlineDocument`",
                )
            })?;
            let out = crate::template::render(&parsed, doc).map_err(|e| {
                MeiliError::invalid(
                    "template_rendering_error",
                    format!("error while rendering template: user error: missing field in document: {e}"),
                )
            })?;
            json!(out)
        }
    };
    Ok(ok(json!({"template": text, "rendered": rendered})))
}
