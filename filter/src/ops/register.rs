//! The last step of every write: a task uid for the client. The node tasks are registered with
//! the control plane, which allocates the uid; if it does not answer, a uid leased in advance is
//! used and the record kept here until it can be handed over (see docs/control-plane.md).

use miroir_topology::tasks::{Registered, TaskRegistration};
use serde_json::{json, Map, Value};

use crate::error::MeiliError;
use crate::host::{Host, Reply};
use crate::ops::fanout::Answer;
use crate::ops::in_sync::{self, Unsynced};
use crate::ops::Step;
use crate::plan::calls::Ctx;
use crate::tasks::control_plane;
use crate::tasks::{self, TaskRecord};

/// A write that reached its nodes: what it stands for and the summarized task to answer with.
pub(crate) struct Pending {
    pub(crate) record: TaskRecord,
    pub(crate) summary: Map<String, Value>,
    /// Copies the write missed, which the control plane must record out of sync before the
    /// write is acknowledged, and the answer's degraded header.
    pub(crate) missed: Option<Unsynced>,
}

pub(crate) struct Registration {
    pending: Pending,
    token: Option<u32>,
}

impl Registration {
    pub(crate) fn start(ctx: &Ctx, mut pending: Pending, host: &mut dyn Host) -> (Self, Step) {
        let topology = &ctx.config.topology;
        // Task details are summed over the first group's node tasks, then divided by its copies.
        pending.record.copies = topology
            .group_names()
            .first()
            .map_or(topology.replication_factor, |g| topology.replication_of(g));
        for task in &mut pending.record.node_tasks {
            if let Some(node) = topology.node(&task.node) {
                task.group = node.group.clone();
            }
        }
        let mut registration = Registration {
            pending,
            token: None,
        };
        let Some(control_plane) = &ctx.config.control_plane else {
            let step = match tasks::register_here(host, &registration.pending.record) {
                Some(uid) => registration.answer(uid),
                None => {
                    Step::Answer(MeiliError::internal("The task could not be registered.").into())
                }
            };
            return (registration, step);
        };
        let body = TaskRegistration {
            task_uid: None,
            record: registration.pending.record.clone(),
            missed: registration
                .pending
                .missed
                .as_ref()
                .map(|u| u.missed.clone()),
        };
        let call = control_plane::call(
            control_plane,
            "POST",
            control_plane::REGISTER_PATH.into(),
            ctx.request.trace_headers(),
            serde_json::to_vec(&body).ok(),
        );
        let step = match host.dispatch(&call) {
            Ok(token) => {
                registration.token = Some(token);
                Step::Wait
            }
            Err(_) => registration.fall_back(host),
        };
        (registration, step)
    }

    pub(crate) fn on_reply(&mut self, token: u32, reply: Reply, host: &mut dyn Host) -> Step {
        if self.token != Some(token) {
            return Step::Wait;
        }
        self.token = None;
        let registered = match &reply {
            Reply::Response { status, body, .. } if (200..300).contains(status) => {
                serde_json::from_slice::<Registered>(body).ok()
            }
            _ => None,
        };
        match registered {
            Some(Registered { task_uid }) => {
                tasks::set_control_plane_unreachable(host, false);
                self.answer(task_uid)
            }
            None => match (&self.pending.missed, &reply) {
                // The control plane's own refusal (the in-sync rule does not hold any more).
                (Some(_), Reply::Response { status, body, .. })
                    if *status == 503 && is_write_unavailable(body) =>
                {
                    host.count(crate::metrics::WRITES_UNAVAILABLE, 1);
                    Step::Answer(Answer::relay(*status, body.clone()))
                }
                _ => self.fall_back(host),
            },
        }
    }

    fn fall_back(&mut self, host: &mut dyn Host) -> Step {
        if let Some(unsynced) = self.pending.missed.as_ref().filter(|u| u.needs_mark) {
            // A leased uid would acknowledge the write with the missed copies still in sync.
            host.count(crate::metrics::WRITES_UNAVAILABLE, 1);
            return Step::Answer(in_sync::unrecorded(&unsynced.missed, "unreachable"));
        }
        tasks::set_control_plane_unreachable(host, true);
        let Some(uid) = tasks::take_leased(host) else {
            host.count(crate::metrics::TASK_REGISTRATIONS_FAILED, 1);
            return Step::Answer(
                MeiliError::unavailable(
                    "miroir_control_plane_unavailable",
                    "The write reached the nodes, but the control plane is unreachable and this Envoy has no task uid left to track it. Retrying the same request is safe.",
                )
                .into(),
            );
        };
        if !tasks::store(host, uid, &self.pending.record) || !tasks::outbox_add(host, uid) {
            return Step::Answer(MeiliError::internal("The task could not be recorded.").into());
        }
        host.count(crate::metrics::TASK_REGISTRATIONS_DEFERRED, 1);
        self.answer(uid)
    }

    fn answer(&mut self, uid: u32) -> Step {
        let mut summary = std::mem::take(&mut self.pending.summary);
        summary.insert("taskUid".into(), json!(uid));
        let answer = Answer::json(202, &Value::Object(summary));
        Step::Answer(match self.pending.missed.take() {
            Some(unsynced) => answer.with_header(in_sync::DEGRADED_HEADER, unsynced.degraded),
            None => answer,
        })
    }
}

fn is_write_unavailable(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_string))
        .is_some_and(|code| code == "miroir_write_unavailable")
}
