//! One module per command group; each turns its arguments into admin REST calls and prints the
//! answer (`render` for text, the server's JSON with `--json`).

mod group;
mod jobs;
mod node;
mod rf;
mod status;

use std::process::ExitCode;

use serde_json::Value;

use crate::cli::{Cli, Command, WatchOpts};
use crate::client::{Client, Error};
use crate::{out, render, watch};

pub struct Ctx {
    pub client: Client,
    pub json: bool,
}

pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    let ctx = Ctx {
        client: Client::new(cli.url, cli.admin_key)?,
        json: cli.json,
    };
    match cli.command {
        Command::Node { action } => node::run(&ctx, action),
        Command::Group { action } => group::run(&ctx, action),
        Command::Rf { action } => rf::run(&ctx, action),
        Command::Replication {
            min_copies,
            unavailable_shards,
        } => rf::policy(&ctx, min_copies, unavailable_shards),
        Command::Jobs { action } => jobs::run(&ctx, action),
        Command::Status => status::run(&ctx),
    }
}

/// Prints the answer to a change and, with `--watch`, watches the job it started.
fn report_change(ctx: &Ctx, answer: &Value, watch: Option<&WatchOpts>) -> Result<ExitCode, Error> {
    if ctx.json {
        out::json(answer);
    } else {
        out::print(&render::accepted(answer));
    }
    if let Some(opts) = watch.filter(|w| w.watch) {
        match answer.pointer("/job/id").and_then(Value::as_str) {
            Some(id) => return watch::run(&ctx.client, Some(id), opts.interval, ctx.json),
            None if !ctx.json => out::line("Nothing to watch: the change started no job."),
            None => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}
