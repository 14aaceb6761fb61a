//! Task reads. With a control plane, every task route is its: the request is forwarded with the
//! client's credentials and the answer relayed. A task this Envoy answered while the control
//! plane was unreachable can still be read here while it stays unreachable, from the nodes.

use serde::Deserialize;
use serde_json::Value;

use super::read::DISAGREEMENT_HEADER;
use crate::control_plane;
use crate::ctx::Ctx;
use crate::error::MeiliError;
use crate::exchange::Step;
use crate::fanout::{first_problem, outcome, Answer, Fanout, Outcome};
use crate::host::{Host, Reply};
use crate::tasks::{self, TaskRecord};

/// Asks the control plane to answer `GET /tasks/{uid}` as [`Envelope`]: a reply reaches the
/// filter as status and body only, and the nodes its settings check after the task found
/// disagreeing must reach the client as `x-miroir-disagreeing-nodes`.
const ENVELOPE_HEADER: &str = "x-miroir-envelope";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    task: Value,
    #[serde(default)]
    disagreeing_nodes: Vec<String>,
}

/// The task of an envelope, with the header; any other body (a control plane that does not
/// know envelopes) as it came.
fn unwrap_task(body: Vec<u8>) -> Answer {
    match serde_json::from_slice::<Envelope>(&body) {
        Ok(envelope) => {
            let answer = Answer::json(200, &envelope.task);
            if envelope.disagreeing_nodes.is_empty() {
                answer
            } else {
                answer.with_header(DISAGREEMENT_HEADER, envelope.disagreeing_nodes.join(","))
            }
        }
        Err(_) => Answer::relay(200, body),
    }
}

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
            let call = ctx.lookup_call(node, format!("/tasks/{}", task.task_uid));
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
        let mut headers = ctx.request.forwarded_headers();
        if forward.uid.is_some() {
            headers.push((ENVELOPE_HEADER.into(), "task".into()));
        }
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
            // A task answered here while the control plane was unreachable, not handed over yet.
            Reply::Response { status: 404, .. } if self.local_uid(host).is_some() => {
                self.read_locally(ctx, host)
            }
            Reply::Response { status: 200, body } if self.uid.is_some() => {
                Step::Answer(unwrap_task(body))
            }
            // Envoy's own 502/503/504 (connect failure, timeout) are not the control plane's.
            Reply::Response { status, body } if !(502..=504).contains(&status) => {
                Step::Answer(Answer::relay(status, body))
            }
            _ => {
                tasks::set_control_plane_unreachable(host, true);
                self.read_locally(ctx, host)
            }
        }
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
    use std::rc::Rc;

    use miroir_topology::{
        ControlPlaneRef, Node, NodeState, PluginConfig, Topology, CONTROL_PLANE_CLUSTER,
    };
    use serde_json::json;

    use crate::exchange::Exchange;
    use crate::mock::{json_reply, MockHost};
    use crate::request::Request;

    /// `GET /tasks/5` through the filter, the control plane answering `reply`.
    fn read_task(reply: serde_json::Value) -> MockHost {
        let mut config = PluginConfig::new(Topology {
            epoch: 1,
            shards: 2,
            replication_factor: 1,
            nodes: vec![Node {
                id: "n0".into(),
                address: "127.0.0.1:1".into(),
                group: "g".into(),
                state: NodeState::Active,
            }],
        });
        config.control_plane = Some(ControlPlaneRef {
            cluster: CONTROL_PLANE_CLUSTER.into(),
            authority: "cp:7701".into(),
            token: "t".into(),
            timeout_ms: 2000,
        });
        let mut host = MockHost::default();
        let request = Request::new("GET", "/tasks/5", vec![], Vec::new());
        let mut exchange = Exchange::start(Rc::new(config), request, 0, &mut host);
        let (token, call) = host.in_flight.pop().expect("a call to the control plane");
        assert!(call
            .headers
            .contains(&("x-miroir-envelope".into(), "task".into())));
        exchange.on_reply(token, json_reply(200, reply), &mut host);
        host
    }

    #[test]
    fn the_disagreeing_nodes_the_control_plane_found_reach_the_client() {
        let task = json!({"uid": 5, "status": "succeeded", "type": "settingsUpdate"});
        let host = read_task(json!({"task": task, "disagreeingNodes": ["n1", "n2"]}));
        assert_eq!(host.answer(), Some((200, task.clone())));
        assert_eq!(host.header("x-miroir-disagreeing-nodes"), Some("n1,n2"));

        let host = read_task(json!({"task": task, "disagreeingNodes": []}));
        assert_eq!(host.answer(), Some((200, task.clone())));
        assert_eq!(host.header("x-miroir-disagreeing-nodes"), None);
        // A control plane that does not wrap its answers.
        let host = read_task(task.clone());
        assert_eq!(host.answer(), Some((200, task)));
    }
}
