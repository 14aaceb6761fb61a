//! The operations a request can be: each a small state machine fed by call replies.

pub(crate) mod fanout;
pub(crate) mod in_sync;
pub(crate) mod intent;
pub(crate) mod phases;

use serde_json::{Map, Value};

use crate::error::MeiliError;
use crate::host::Host;
use crate::host::Reply;
use crate::ops::fanout::Answer;
use crate::ops::fanout::{outcome, Outcome};
use crate::ops::phases::Progress;
use crate::ops::register::Pending;
use crate::plan::calls::Ctx;
use crate::tasks::{NodeTask, TaskRecord};

pub(crate) mod broadcast;
pub(crate) mod delete;
pub(crate) mod follow_up;
pub(crate) mod keys;
pub(crate) mod lookup;
pub(crate) mod multi_search;
pub(crate) mod read;
pub(crate) mod register;
pub(crate) mod routed;
pub(crate) mod scatter;
pub(crate) mod similar;
pub(crate) mod task_read;
pub(crate) mod write;

/// An operation in flight: fed each reply to one of its calls, it says what happens next.
pub(crate) trait Op {
    fn on_reply(&mut self, ctx: &Ctx, token: u32, reply: Reply, host: &mut dyn Host) -> Step;
}

/// What an operation does next.
pub(crate) enum Step {
    Wait,
    Answer(Answer),
    /// The write reached its nodes; its task needs a uid before the client is answered.
    Register(Box<Pending>),
}

impl From<Progress> for Step {
    fn from(p: Progress) -> Self {
        match p {
            Progress::Failed(answer) => Step::Answer(answer),
            Progress::Waiting | Progress::Finished => Step::Wait,
        }
    }
}

/// Ops whose replies need no context.
macro_rules! op_without_ctx {
    ($($op:ty),*) => {$(
        impl Op for $op {
            fn on_reply(&mut self, _: &Ctx, token: u32, reply: Reply, host: &mut dyn Host) -> Step {
                <$op>::on_reply(self, token, reply, host)
            }
        }
    )*};
}

/// Ops whose replies are read against the request's context.
macro_rules! op_with_ctx {
    ($($op:ty),*) => {$(
        impl Op for $op {
            fn on_reply(&mut self, ctx: &Ctx, token: u32, reply: Reply, host: &mut dyn Host) -> Step {
                <$op>::on_reply(self, ctx, token, reply, host)
            }
        }
    )*};
}

op_with_ctx!(
    broadcast::Broadcast,
    write::Write,
    multi_search::MultiSearch,
    similar::Similar,
    scatter::Scatter,
    task_read::TaskForward,
    routed::RoutedWrite,
    keys::Everywhere
);
op_without_ctx!(read::ReadAll, read::FirstAnswer, register::Registration);

/// The node's summarized task, or `None` if the body is not one.
pub(crate) fn node_task_uid(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("taskUid")?
        .as_u64()
}

/// Collects node task uids from successful replies into a task record.
pub(crate) fn record_tasks(record: &mut TaskRecord, replies: &[(String, Reply)]) {
    for (node, reply) in replies {
        if let Outcome::Success(body) = outcome(reply) {
            if let Some(uid) = node_task_uid(body) {
                // The group is filled in from the topology when the task is registered.
                record.node_tasks.push(NodeTask {
                    node: node.clone(),
                    group: String::new(),
                    task_uid: uid,
                });
            }
        }
    }
}

/// The write reached its nodes: register its task, then answer the client's 202 with the
/// summarized task of the first node in id order, carrying the uid that stands for every node
/// task of the write. `missed`: the copies it missed, for the control plane to record, with the
/// answer's degraded header.
pub(crate) fn enqueued(
    record: TaskRecord,
    replies: &[(String, Reply)],
    missed: Option<in_sync::Unsynced>,
) -> Step {
    let mut sorted: Vec<&(String, Reply)> = replies.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let summary = sorted.iter().find_map(|(_, reply)| match outcome(reply) {
        Outcome::Success(body) => serde_json::from_slice::<Map<String, Value>>(body).ok(),
        _ => None,
    });
    match summary {
        Some(summary) => Step::Register(Box::new(register::Pending {
            record,
            summary,
            missed,
        })),
        None => Step::Answer(MeiliError::internal("No node returned a task.").into()),
    }
}

pub(crate) fn is_index_not_found(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("code")
                .and_then(Value::as_str)
                .map(|c| c == "index_not_found")
        })
        .unwrap_or(false)
}

impl Op for task_read::TaskRead {
    fn on_reply(&mut self, _: &Ctx, token: u32, reply: Reply, _: &mut dyn Host) -> Step {
        task_read::TaskRead::on_reply(self, token, reply)
    }
}
