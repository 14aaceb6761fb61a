//! `rf set`, and the replication policy (`replication`).

use std::process::ExitCode;

use reqwest::Method;
use serde_json::json;

use super::{report_change, Ctx};
use crate::cli::RfAction;
use crate::client::Error;

pub fn run(ctx: &Ctx, action: RfAction) -> Result<ExitCode, Error> {
    match action {
        RfAction::Set {
            factor,
            group,
            watch,
        } => {
            let body = json!({"replicationFactor": factor});
            let answer = ctx.client.send(
                Method::PUT,
                &["_miroir", "groups", &group, "replication-factor"],
                &[],
                Some(&body),
            )?;
            report_change(ctx, &answer, Some(&watch))
        }
    }
}

/// `replication [--min-copies N] [--unavailable-shards error|partial]`.
pub fn policy(
    ctx: &Ctx,
    min_copies: Option<u32>,
    unavailable_shards: Option<String>,
) -> Result<ExitCode, Error> {
    let mut body = serde_json::Map::new();
    if let Some(n) = min_copies {
        body.insert("minCopies".into(), json!(n));
    }
    if let Some(policy) = unavailable_shards {
        body.insert("unavailableShards".into(), json!(policy));
    }
    let answer = ctx.client.send(
        Method::PATCH,
        &["_miroir", "replication"],
        &[],
        Some(&serde_json::Value::Object(body)),
    )?;
    report_change(ctx, &answer, None)
}
