//! `status`: the topology (required), the shards and the fleet (shown as unavailable when they
//! cannot be read).

use std::process::ExitCode;

use serde_json::{json, Value};

use crate::client::Error;
use crate::model::{parse, Shards, Topology};
use crate::{out, render};

use super::Ctx;

/// The first line of an error, for a one-line note.
fn brief(e: &Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

pub fn run(ctx: &Ctx) -> Result<ExitCode, Error> {
    let topology = ctx.client.get(&["_miroir", "topology"])?;
    let shards = ctx.client.get(&["_miroir", "shards"]);
    let fleet = ctx.client.get(&["_miroir", "fleet"]);
    if ctx.json {
        let or_error = |r: Result<Value, Error>| r.unwrap_or_else(|e| json!({"error": brief(&e)}));
        out::json(&json!({
            "topology": topology,
            "shards": or_error(shards),
            "fleet": or_error(fleet),
        }));
        return Ok(ExitCode::SUCCESS);
    }
    let topology: Topology = parse(&topology).map_err(Error::Decode)?;
    let shards = shards.and_then(|v| parse::<Shards>(&v).map_err(Error::Decode));
    let shards_error = shards.as_ref().err().map(brief);
    let fleet_error = fleet.as_ref().err().map(brief);
    let text = render::status(
        &topology,
        shards
            .as_ref()
            .map_err(|_| shards_error.as_deref().unwrap_or_default()),
        fleet
            .as_ref()
            .map_err(|_| fleet_error.as_deref().unwrap_or_default()),
    );
    out::print(&text);
    Ok(ExitCode::SUCCESS)
}
