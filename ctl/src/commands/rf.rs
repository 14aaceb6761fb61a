//! `rf set`.

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
