//! Task reads. With a control plane, every task route is its: the request is forwarded with the
//! client's credentials and the answer relayed. A task this Envoy answered while the control
//! plane was unreachable can still be read here while it stays unreachable, from the nodes, with
//! the client's credentials.

use serde_json::Value;

use super::in_sync::OUT_OF_SYNC_HEADER;
use super::read::DISAGREEMENT_HEADER;
use crate::error::MeiliError;
use crate::host::{Host, Reply};
use crate::ops::fanout::{first_problem, outcome, Answer, Fanout, Outcome};
use crate::ops::Step;
use crate::plan::calls::Ctx;
use crate::tasks::control_plane;
use crate::tasks::{self, TaskRecord};

/// `GET /tasks/{uid}` from this Envoy's own records: the node tasks read and aggregated.
pub(crate) struct TaskRead {
    uid: u32,
    record: TaskRecord,
    fanout: Fanout<String>,
}

fn parse_uid(uid: &str) -> Result<u32, MeiliError> {
    uid.parse().map_err(|_| {
        MeiliError::bad_request(
            "invalid_task_uids",
            format!("Invalid value in parameter `taskUid`: could not parse `{uid}` as a positive integer"),
        )
    })
}

fn task_not_found(uid: u32) -> MeiliError {
    MeiliError::new(
        404,
        "task_not_found",
        crate::error::ErrorType::InvalidRequest,
        format!("Task `{uid}` not found."),
    )
}

impl TaskRead {
    pub(crate) fn start(
        ctx: &Ctx,
        uid: &str,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        let parsed = parse_uid(uid)?;
        let record = tasks::lookup(host, parsed).ok_or_else(|| task_not_found(parsed))?;
        let mut fanout = Fanout::new();
        for task in &record.node_tasks {
            let Some(node) = ctx.config.topology.node(&task.node) else {
                return Err(MeiliError::unavailable(
                    "miroir_node_unavailable",
                    format!(
                        "Task `{parsed}` ran on node `{}`, which left the topology.",
                        task.node
                    ),
                ));
            };
            // With the client's credentials: each node enforces the key's actions and indexes
            // as one Meilisearch does (a task on an index the key cannot see is not found).
            let call = ctx.call(node, "GET", format!("/tasks/{}", task.task_uid), None);
            fanout.send(host, &call, task.node.clone());
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
        // The node words it with its own uid: the client asked for this one.
        let not_found = replies
            .iter()
            .any(|(_, reply)| matches!(reply, Reply::Response { status: 404, .. }));
        if not_found {
            return Step::Answer(task_not_found(self.uid).into());
        }
        if let Some(problem) = first_problem(&replies) {
            return Step::Answer(problem);
        }
        let node_tasks: Vec<(String, Value)> = replies
            .iter()
            .filter_map(|(node, reply)| match outcome(reply) {
                Outcome::Success(body) => serde_json::from_slice(body)
                    .ok()
                    .map(|task| (node.clone(), task)),
                _ => None,
            })
            .collect();
        Step::Answer(Answer::json(
            200,
            &tasks::aggregate(self.uid, &self.record, &node_tasks),
        ))
    }
}

/// A task route answered by the control plane.
pub(crate) struct TaskForward {
    /// `Some` for `GET /tasks/{uid}`, which has a local fallback.
    uid: Option<String>,
    token: Option<u32>,
    local: Option<TaskRead>,
}

impl TaskForward {
    pub(crate) fn start(ctx: &Ctx, uid: Option<String>, host: &mut dyn Host) -> (Self, Step) {
        let mut forward = TaskForward {
            uid,
            token: None,
            local: None,
        };
        let Some(cp) = &ctx.config.control_plane else {
            return (
                forward,
                Step::Answer(MeiliError::internal("no control plane").into()),
            );
        };
        let headers = ctx.request.forwarded_headers();
        let call = control_plane::call(
            cp,
            ctx.request_method(),
            ctx.path_and_query(),
            headers,
            ctx.raw_body(),
        );
        let step = match host.dispatch(&call) {
            Ok(token) => {
                forward.token = Some(token);
                Step::Wait
            }
            Err(_) => forward.unreachable(ctx, host),
        };
        (forward, step)
    }

    pub(crate) fn on_reply(
        &mut self,
        ctx: &Ctx,
        token: u32,
        reply: Reply,
        host: &mut dyn Host,
    ) -> Step {
        if let Some(local) = &mut self.local {
            return local.on_reply(token, reply);
        }
        if self.token != Some(token) {
            return Step::Wait;
        }
        self.token = None;
        match reply {
            // A task answered here while the control plane was unreachable, not handed over yet
            // (a task handed over and then deleted is gone).
            Reply::Response { status: 404, .. } if self.unhanded(host) => {
                self.read_locally(ctx, host)
            }
            // Envoy's own 502/503/504 (connect failure, timeout) are not the control plane's.
            Reply::Response {
                status,
                headers,
                body,
            } if !(502..=504).contains(&status) => {
                // The nodes the control plane's settings check found disagreeing after this task,
                // and those its change has not reached yet.
                let mut answer = Answer::relay(status, body);
                for relayed in [DISAGREEMENT_HEADER, OUT_OF_SYNC_HEADER] {
                    if let Some((_, nodes)) = headers.iter().find(|(name, _)| name == relayed) {
                        answer = answer.with_header(relayed, nodes.clone());
                    }
                }
                Step::Answer(answer)
            }
            _ => {
                tasks::set_control_plane_unreachable(host, true);
                self.read_locally(ctx, host)
            }
        }
    }

    /// Whether the uid asked for is one this Envoy answered and has not handed over yet.
    fn unhanded(&self, host: &dyn Host) -> bool {
        self.uid
            .as_deref()
            .and_then(|uid| parse_uid(uid).ok())
            .is_some_and(|uid| tasks::outbox(host).contains(&uid))
    }

    /// The uid asked for, if this Envoy holds its record.
    fn local_uid(&self, host: &dyn Host) -> Option<String> {
        let uid = self.uid.as_deref()?;
        tasks::lookup(host, parse_uid(uid).ok()?)?;
        Some(uid.to_string())
    }

    fn unreachable(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        tasks::set_control_plane_unreachable(host, true);
        self.read_locally(ctx, host)
    }

    fn read_locally(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        let Some(uid) = self.local_uid(host) else {
            return Step::Answer(
                MeiliError::unavailable(
                    "miroir_control_plane_unavailable",
                    "The control plane, which keeps the cluster's tasks, is unreachable.",
                )
                .into(),
            );
        };
        match TaskRead::start(ctx, &uid, host) {
            Ok((read, step)) => {
                self.local = Some(read);
                step
            }
            Err(e) => Step::Answer(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use miroir_topology::CONTROL_PLANE_CLUSTER;
    use serde_json::json;

    use crate::exchange::Exchange;
    use crate::host::mock::{one_node, with_control_plane, MockHost};
    use crate::host::Reply;
    use crate::request::Request;

    /// `GET /tasks/5` through the filter, the control plane answering `task` with `headers`.
    fn read_task(task: &serde_json::Value, headers: &[(&str, &str)]) -> MockHost {
        let config = with_control_plane(one_node(2));
        let mut host = MockHost::default();
        let request = Request::new("GET", "/tasks/5", vec![], Vec::new());
        let mut exchange = Exchange::start(config, request, 0, &mut host);
        let (token, call) = host.in_flight.pop().expect("a call to the control plane");
        assert_eq!(call.cluster, CONTROL_PLANE_CLUSTER);
        let reply = Reply::Response {
            status: 200,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: serde_json::to_vec(task).unwrap(),
        };
        exchange.on_reply(token, reply, &mut host);
        host
    }

    #[test]
    fn the_nodes_the_control_plane_names_on_a_task_reach_the_client() {
        let task = json!({"uid": 5, "status": "succeeded", "type": "settingsUpdate"});
        let host = read_task(
            &task,
            &[
                ("x-miroir-disagreeing-nodes", "n1,n2"),
                ("x-miroir-out-of-sync-nodes", "n3"),
            ],
        );
        assert_eq!(host.answer(), Some((200, task.clone())));
        assert_eq!(host.header("x-miroir-disagreeing-nodes"), Some("n1,n2"));
        assert_eq!(host.header("x-miroir-out-of-sync-nodes"), Some("n3"));

        let host = read_task(&task, &[("content-type", "application/json")]);
        assert_eq!(host.answer(), Some((200, task)));
        assert_eq!(host.header("x-miroir-disagreeing-nodes"), None);
    }
}
