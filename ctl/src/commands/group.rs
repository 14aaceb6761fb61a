//! `group add|remove`.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::json;

use super::{report_change, Ctx};
use crate::cli::GroupAction;
use crate::client::Error;

pub fn run(ctx: &Ctx, action: GroupAction) -> Result<ExitCode, Error> {
    match action {
        GroupAction::Add { name, nodes, watch } => {
            let nodes: Vec<_> = nodes
                .into_iter()
                .map(|(id, address)| json!({"id": id, "address": address}))
                .collect();
            let body = json!({"name": name, "nodes": nodes});
            let answer = ctx.client.post(&["_miroir", "groups"], Some(&body))?;
            report_change(ctx, &answer, Some(&watch))
        }
        GroupAction::Remove { name } => {
            let answer =
                ctx.client
                    .send(Method::DELETE, &["_miroir", "groups", &name], &[], None)?;
            report_change(ctx, &answer, None)
        }
    }
}
