//! `jobs [list|show|watch|pause|resume|cancel]`.

use std::process::ExitCode;

use crate::cli::JobsAction;
use crate::client::Error;
use crate::model::{parse, Job, JobList};
use crate::{out, render, watch};

use super::Ctx;

pub fn run(ctx: &Ctx, action: Option<JobsAction>) -> Result<ExitCode, Error> {
    match action.unwrap_or(JobsAction::List) {
        JobsAction::List => {
            let answer = ctx.client.get(&["_miroir", "jobs"])?;
            if ctx.json {
                out::json(&answer);
            } else {
                let list: JobList = parse(&answer).map_err(Error::Decode)?;
                out::print(&render::jobs_table(&list.results));
            }
        }
        JobsAction::Show { id } => {
            let answer = ctx.client.get(&["_miroir", "jobs", &id])?;
            if ctx.json {
                out::json(&answer);
            } else {
                let job: Job = parse(&answer).map_err(Error::Decode)?;
                out::print(&render::job_detail(&job));
            }
        }
        JobsAction::Watch { id, interval } => {
            return watch::run(&ctx.client, id.as_deref(), interval, ctx.json)
        }
        JobsAction::Pause { id } => act(ctx, &id, "pause")?,
        JobsAction::Resume { id } => act(ctx, &id, "resume")?,
        JobsAction::Cancel { id } => act(ctx, &id, "cancel")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `POST /_miroir/jobs/{id}/{verb}`, which answers the job.
fn act(ctx: &Ctx, id: &str, verb: &str) -> Result<(), Error> {
    let answer = ctx.client.post(&["_miroir", "jobs", id, verb], None)?;
    if ctx.json {
        out::json(&answer);
    } else {
        // Some servers may wrap it as `{"job": Job}`.
        let job = answer.get("job").unwrap_or(&answer);
        let job: Job = parse(job).map_err(Error::Decode)?;
        out::print(&render::job_state(&job));
    }
    Ok(())
}
