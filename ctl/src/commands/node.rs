//! `node add|drain|remove`.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::json;

use super::{report_change, Ctx};
use crate::cli::NodeAction;
use crate::client::Error;

pub fn run(ctx: &Ctx, action: NodeAction) -> Result<ExitCode, Error> {
    match action {
        NodeAction::Add {
            id,
            address,
            group,
            weight,
            watch,
        } => {
            let mut body = json!({"id": id, "address": address, "group": group});
            if let (Some(weight), Some(fields)) = (weight, body.as_object_mut()) {
                fields.insert("weight".into(), json!(weight));
            }
            let answer = ctx.client.post(&["_miroir", "nodes"], Some(&body))?;
            report_change(ctx, &answer, Some(&watch))
        }
        NodeAction::Drain { id, watch } => {
            let answer = ctx.client.post(&["_miroir", "nodes", &id, "drain"], None)?;
            report_change(ctx, &answer, Some(&watch))
        }
        NodeAction::Remove { id, force, watch } => {
            let query: &[(&str, &str)] = if force { &[("force", "true")] } else { &[] };
            let answer =
                ctx.client
                    .send(Method::DELETE, &["_miroir", "nodes", &id], query, None)?;
            report_change(ctx, &answer, Some(&watch))
        }
    }
}
