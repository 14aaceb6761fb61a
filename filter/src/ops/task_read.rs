use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::MeiliError;
use crate::exchange::Step;
use crate::fanout::{first_problem, outcome, Answer, Fanout, Outcome};
use crate::host::{Host, Reply};
use crate::tasks::{self, TaskRecord};

/// `GET /tasks/{uid}`: the node tasks behind a client task, read and aggregated.
pub(crate) struct TaskRead {
    uid: u32,
    record: TaskRecord,
    fanout: Fanout<String>,
}

impl TaskRead {
    pub(crate) fn start(
        ctx: &Ctx,
        uid: &str,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        let parsed: u32 = uid.parse().map_err(|_| {
            MeiliError::bad_request(
                "invalid_task_uids",
                format!("Invalid value in parameter `taskUid`: could not parse `{uid}` as a positive integer"),
            )
        })?;
        let record = tasks::lookup(host, parsed).ok_or_else(|| {
            MeiliError::new(
                404,
                "task_not_found",
                crate::error::ErrorType::InvalidRequest,
                format!("Task `{parsed}` not found."),
            )
        })?;
        let mut fanout = Fanout::new();
        for (node_id, uids) in &record.nodes {
            let Some(node) = ctx.config.topology.node(node_id) else {
                return Err(MeiliError::unavailable(
                    "miroir_node_unavailable",
                    format!("Task `{parsed}` ran on node `{node_id}`, which left the topology."),
                ));
            };
            for node_uid in uids {
                fanout.send(
                    host,
                    &ctx.call(node, "GET", format!("/tasks/{node_uid}"), None),
                    node_id.clone(),
                );
            }
        }
        let mut read = TaskRead {
            uid: parsed,
            record,
            fanout,
        };
        let step = read.answer_if_complete();
        Ok((read, step))
    }

    pub(crate) fn on_reply(&mut self, token: u32, reply: Reply) -> Step {
        if !self.fanout.accept(token, reply) {
            return Step::Wait;
        }
        self.answer_if_complete()
    }

    pub(crate) fn answer_if_complete(&mut self) -> Step {
        if !self.fanout.is_complete() {
            return Step::Wait;
        }
        let replies = std::mem::take(&mut self.fanout.replies);
        if let Some(problem) = first_problem(&replies) {
            return Step::Answer(problem);
        }
        let node_tasks: Vec<Value> = replies
            .iter()
            .filter_map(|(_, reply)| match outcome(reply) {
                Outcome::Success(body) => serde_json::from_slice(body).ok(),
                _ => None,
            })
            .collect();
        Step::Answer(Answer::json(
            200,
            &tasks::aggregate(self.uid, &self.record, &node_tasks),
        ))
    }
}
