//! One client request from start to answer: a state machine fed by call replies. It owns no I/O;
//! every effect goes through [`Host`].

use std::rc::Rc;

use miroir_topology::limits::PAYLOAD_LIMIT_BYTES;
use miroir_topology::{rotation, Node, NodeState, PluginConfig};
use serde_json::json;

use crate::error::MeiliError;
use crate::host::Call;
use crate::host::{Host, Reply};
use crate::ops::broadcast::Broadcast;
use crate::ops::delete;
use crate::ops::fanout::Answer;
use crate::ops::keys::Everywhere;
use crate::ops::multi_search::MultiSearch;
use crate::ops::phases::Progress;
use crate::ops::read::{FirstAnswer, Hide, ReadAll};
use crate::ops::register::{Pending, Registration};
use crate::ops::routed::RoutedWrite;
use crate::ops::scatter::Scatter;
use crate::ops::similar::Similar;
use crate::ops::task_read::{TaskForward, TaskRead};
use crate::ops::write::Write;
use crate::plan::calls::Ctx;
use crate::plan::passthrough;
use crate::request::route::{route, Route};
use crate::request::search_params;
use crate::request::Request;

pub struct Exchange {
    ctx: Ctx,
    state: State,
}

enum State {
    Answered,
    Broadcast(Box<Broadcast>),
    Write(Box<Write>),
    Routed(RoutedWrite),
    Search(Box<Scatter>),
    MultiSearch(Box<MultiSearch>),
    Similar(Box<Similar>),
    ReadAll(ReadAll),
    FirstAnswer(FirstAnswer),
    Everywhere(Everywhere),
    TaskRead(TaskRead),
    TaskForward(TaskForward),
    Register(Registration),
}

impl Exchange {
    pub fn start(
        config: Rc<PluginConfig>,
        request: Request,
        seq: u64,
        host: &mut dyn Host,
    ) -> Exchange {
        let ctx = Ctx {
            config,
            request,
            seq,
        };
        let mut exchange = Exchange {
            ctx,
            state: State::Answered,
        };
        let step = exchange.begin(host);
        exchange.settle(step, host);
        exchange
    }

    /// Refuses a request whose body (announced by `content-length`, or buffered so far) is above
    /// Meilisearch's payload limit, before the rest of it is buffered. True when it answered.
    pub fn refuse_oversized(config: &PluginConfig, size: u64, host: &mut dyn Host) -> bool {
        if size <= PAYLOAD_LIMIT_BYTES {
            return false;
        }
        host.count("miroir_payload_too_large", 1);
        let epoch = config.topology.epoch.to_string();
        let answer: Answer = MeiliError::payload_too_large(PAYLOAD_LIMIT_BYTES).into();
        host.respond(
            answer.status,
            &[
                ("content-type", "application/json"),
                ("x-miroir-topology-epoch", epoch.as_str()),
            ],
            &answer.body,
        );
        true
    }

    /// Admits a body of `size` bytes into this VM (see [`crate::request::limits::admit_body`]): the lease
    /// to hold until the request is done, or `Refused` once the 503 (with `Retry-After: 10`)
    /// that refuses it was answered.
    pub fn admit_body(
        config: &PluginConfig,
        size: u64,
        host: &mut dyn Host,
    ) -> crate::request::limits::Admission {
        let refusal = match crate::request::limits::admit_body(size) {
            Ok(lease) => return crate::request::limits::Admission::Admitted(lease),
            Err(refusal) => refusal,
        };
        host.count("miroir_large_bodies_refused", 1);
        let epoch = config.topology.epoch.to_string();
        let answer: Answer = refusal.into();
        host.respond(
            answer.status,
            &[
                ("content-type", "application/json"),
                ("x-miroir-topology-epoch", epoch.as_str()),
                ("retry-after", "10"),
            ],
            &answer.body,
        );
        crate::request::limits::Admission::Refused
    }

    pub fn on_reply(&mut self, token: u32, reply: Reply, host: &mut dyn Host) {
        let step = match &mut self.state {
            State::Answered => return,
            State::Broadcast(op) => op.on_reply(&self.ctx, token, reply, host),
            State::Write(op) => op.on_reply(&self.ctx, token, reply, host),
            State::Routed(op) => op.on_reply(token, reply, host),
            State::MultiSearch(op) => op.on_reply(&self.ctx, token, reply, host),
            State::Similar(op) => op.on_reply(&self.ctx, token, reply, host),
            State::ReadAll(op) => op.on_reply(token, reply, host),
            State::FirstAnswer(op) => op.on_reply(token, reply, host),
            State::Everywhere(op) => op.on_reply(token, reply),
            State::Search(op) => op.on_reply(&self.ctx, token, reply, host),
            State::TaskRead(op) => op.on_reply(token, reply),
            State::TaskForward(op) => op.on_reply(&self.ctx, token, reply, host),
            State::Register(op) => op.on_reply(token, reply, host),
        };
        self.settle(step, host);
    }

    pub fn is_answered(&self) -> bool {
        matches!(self.state, State::Answered)
    }

    fn begin(&mut self, host: &mut dyn Host) -> Step {
        let ctx = &self.ctx;
        let route = route(&ctx.request.method, &ctx.request.path);
        host.count(route_metric(&route), 1);
        if makes_task(&route) && !can_track_tasks(ctx, host) {
            return Step::Answer(
                MeiliError::unavailable(
                    "miroir_control_plane_unavailable",
                    "The control plane, which gives writes their task uid, is unreachable, and this Envoy has no uid left to give. Nothing was written.",
                )
                .into(),
            );
        }
        if is_read(&route) {
            if let Some(candidates) = passthrough::candidates(ctx) {
                let (read, step) = FirstAnswer::start(candidates, Hide::Read, host);
                self.state = State::FirstAnswer(read);
                return step;
            }
        }
        let (state, step) = match route {
            Route::Health => (
                State::Answered,
                Step::Answer(Answer::json(200, &json!({"status": "available"}))),
            ),
            Route::AnyNode => {
                let candidates = any_node_candidates(ctx);
                wrap(
                    FirstAnswer::start(candidates, Hide::Nothing, host),
                    State::FirstAnswer,
                )
            }
            Route::Search { index } => started(Scatter::start(ctx, &index, host), |s| {
                State::Search(Box::new(s))
            }),
            Route::SearchGet { index } => {
                let scatter = search_params::query_from_get(&ctx.request.query_pairs())
                    .and_then(|query| Scatter::with_query(ctx, &index, query, host));
                started(scatter, |s| State::Search(Box::new(s)))
            }
            Route::Similar { index, get } => wrap(Similar::start(ctx, &index, get, host), |s| {
                State::Similar(Box::new(s))
            }),
            Route::FacetSearch { index } => {
                started(Scatter::facet_search(ctx, &index, host), |s| {
                    State::Search(Box::new(s))
                })
            }
            Route::ListDocuments { index, get } => {
                let body = if get {
                    crate::merge::documents::fetch_from_get(&ctx.request.query_pairs())
                } else {
                    ctx.body_object()
                };
                let scatter = body.and_then(|b| Scatter::documents(ctx, &index, b, host));
                started(scatter, |s| State::Search(Box::new(s)))
            }
            Route::MultiSearch => match ctx.body_object() {
                Ok(body) if body.get("federation").is_some_and(|f| !f.is_null()) => {
                    started(Scatter::federated(ctx, body, host), |s| {
                        State::Search(Box::new(s))
                    })
                }
                _ => started(MultiSearch::start(ctx, host), |m| {
                    State::MultiSearch(Box::new(m))
                }),
            },
            Route::AddDocuments { index, merge } => {
                started(Write::start(ctx, index, merge, host), |w| {
                    State::Write(Box::new(w))
                })
            }
            Route::GetDocument { index: _, id } => {
                let candidates = document_candidates(ctx, &id);
                wrap(
                    FirstAnswer::start(candidates, Hide::Document, host),
                    State::FirstAnswer,
                )
            }
            Route::DeleteDocument { index, id } => {
                wrap(delete::delete_one(ctx, &index, &id, host), State::Routed)
            }
            Route::DeleteDocuments { index } => {
                started(delete::delete_batch(ctx, &index, host), State::Routed)
            }
            Route::CreateIndex => started(Broadcast::create_index(ctx, host), |b| {
                State::Broadcast(Box::new(b))
            }),
            Route::Broadcast { kind, index } => {
                let refused = match kind {
                    // A body that is not a JSON object is the nodes' to refuse.
                    "documentEdition" => ctx
                        .body_object()
                        .map_or(Ok(()), |b| crate::request::reserved_refs::check_edit(&b)),
                    _ => Ok(()),
                };
                match refused {
                    Ok(()) => wrap(Broadcast::change(ctx, kind, index, host), |b| {
                        State::Broadcast(Box::new(b))
                    }),
                    Err(e) => (State::Answered, Step::Answer(e.into())),
                }
            }
            Route::Settings { index, sub } => {
                started(Broadcast::settings(ctx, index, sub.as_deref(), host), |b| {
                    State::Broadcast(Box::new(b))
                })
            }
            Route::CreateKey => started(Everywhere::create_key(ctx, host), State::Everywhere),
            Route::Everywhere => wrap(
                Everywhere::start(ctx, ctx.raw_body(), host),
                State::Everywhere,
            ),
            Route::ReadAll(kind) => wrap(ReadAll::start(ctx, kind, host), State::ReadAll),
            Route::GetTask { uid } => match &ctx.config.control_plane {
                Some(_) => wrap(TaskForward::start(ctx, Some(uid), host), State::TaskForward),
                None => started(TaskRead::start(ctx, &uid, host), State::TaskRead),
            },
            Route::Tasks if ctx.config.control_plane.is_some() => {
                wrap(TaskForward::start(ctx, None, host), State::TaskForward)
            }
            Route::Network => (
                State::Answered,
                Step::Answer(
                    MeiliError::network_not_supported(&ctx.request.method, &ctx.request.path)
                        .into(),
                ),
            ),
            Route::Tasks | Route::Unsupported => (
                State::Answered,
                Step::Answer(
                    MeiliError::not_supported(&ctx.request.method, &ctx.request.path).into(),
                ),
            ),
        };
        self.state = state;
        step
    }

    fn settle(&mut self, step: Step, host: &mut dyn Host) {
        let answer = match step {
            Step::Wait => return,
            Step::Register(pending) => {
                let (registration, step) = Registration::start(&self.ctx, *pending, host);
                self.state = State::Register(registration);
                return self.settle(step, host);
            }
            Step::Answer(answer) => answer,
        };
        self.state = State::Answered;
        let epoch = self.ctx.config.topology.epoch.to_string();
        let mut headers = vec![
            ("content-type", "application/json"),
            ("x-miroir-topology-epoch", epoch.as_str()),
        ];
        headers.extend(answer.headers.iter().map(|(k, v)| (*k, v.as_str())));
        if answer.status >= 400 {
            host.count("miroir_responses_error", 1);
        }
        host.respond(answer.status, &headers, &answer.body);
    }
}

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

#[cfg(test)]
mod tests;

fn wrap<T>((op, step): (T, Step), state: impl FnOnce(T) -> State) -> (State, Step) {
    (state(op), step)
}

fn started<T>(
    result: Result<(T, Step), MeiliError>,
    state: impl FnOnce(T) -> State,
) -> (State, Step) {
    match result {
        Ok(started) => wrap(started, state),
        Err(e) => (State::Answered, Step::Answer(e.into())),
    }
}

/// Whether the request, once it reached the nodes, is answered with a task.
fn makes_task(route: &Route) -> bool {
    matches!(
        route,
        Route::AddDocuments { .. }
            | Route::DeleteDocument { .. }
            | Route::DeleteDocuments { .. }
            | Route::CreateIndex
            | Route::Broadcast { .. }
            | Route::Settings { .. }
    )
}

/// A write is only sent to nodes if its task can be given a uid: by the control plane, or, while
/// it is known to be unreachable, from this Envoy's leased uids.
fn can_track_tasks(ctx: &Ctx, host: &dyn Host) -> bool {
    ctx.config.control_plane.is_none()
        || !crate::tasks::control_plane_unreachable(host)
        || crate::tasks::leased_remaining(host) > 0
}

/// Envoy stat counting requests of a route's family.
fn route_metric(route: &Route) -> &'static str {
    match route {
        Route::Health => "miroir_requests_health",
        Route::Search { .. }
        | Route::SearchGet { .. }
        | Route::MultiSearch
        | Route::Similar { .. }
        | Route::FacetSearch { .. } => "miroir_requests_search",
        Route::AddDocuments { .. }
        | Route::DeleteDocument { .. }
        | Route::DeleteDocuments { .. } => "miroir_requests_document_writes",
        Route::GetDocument { .. } | Route::ListDocuments { .. } => "miroir_requests_document_reads",
        Route::CreateIndex | Route::Broadcast { .. } | Route::Settings { .. } => {
            "miroir_requests_changes"
        }
        Route::ReadAll(_) | Route::AnyNode => "miroir_requests_reads",
        Route::GetTask { .. } | Route::Tasks => "miroir_requests_tasks",
        Route::CreateKey | Route::Everywhere => "miroir_requests_keys",
        Route::Unsupported | Route::Network => "miroir_requests_unsupported",
    }
}

/// Every node, active ones first, rotated so that reads spread.
/// Reads a node holding every shard answers alone ([`passthrough`]).
fn is_read(route: &Route) -> bool {
    matches!(
        route,
        Route::Search { .. }
            | Route::SearchGet { .. }
            | Route::Similar { .. }
            | Route::FacetSearch { .. }
            | Route::ListDocuments { .. }
            | Route::MultiSearch
    )
}

fn any_node_candidates(ctx: &Ctx) -> Vec<(String, Call)> {
    nodes_in_read_order(ctx)
        .into_iter()
        .map(|n| (n.id.clone(), passthrough::forward(ctx, n)))
        .collect()
}

/// Every node, active ones first, rotated so that reads spread.
pub(crate) fn nodes_in_read_order(ctx: &Ctx) -> Vec<&Node> {
    let nodes: Vec<&Node> = ctx.nodes().collect();
    let offset = rotation(ctx.seq, nodes.len());
    let mut ordered: Vec<&Node> = nodes
        .iter()
        .cycle()
        .skip(offset)
        .take(nodes.len())
        .copied()
        .collect();
    ordered.sort_by_key(|n| n.state != NodeState::Active);
    ordered
}

/// The owners of a document's shard, in the order they are read.
fn document_candidates(ctx: &Ctx, id: &str) -> Vec<(String, Call)> {
    shard_readers(ctx, ctx.config.topology.shard_for_key(id))
        .into_iter()
        .map(|n| (n.id.clone(), ctx.call(n, "GET", ctx.path_and_query(), None)))
        .collect()
}

/// The owners of a shard: first in one replica group (rotating), then in the others, active
/// owners first, so a read fails over to another replica.
pub(crate) fn shard_readers(ctx: &Ctx, shard: u32) -> Vec<&Node> {
    let topology = &ctx.config.topology;
    let groups = topology.group_names();
    let offset = rotation(ctx.seq, groups.len());
    let mut owners: Vec<&Node> = Vec::new();
    for group in groups.iter().cycle().skip(offset).take(groups.len()) {
        let in_group = topology.owners(shard, group);
        let rotate = rotation(ctx.seq, in_group.len());
        owners.extend(in_group.iter().cycle().skip(rotate).take(in_group.len()));
    }
    owners.sort_by_key(|n| n.state != NodeState::Active);
    owners
}
