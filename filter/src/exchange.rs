//! One client request from start to answer: a state machine fed by call replies. It owns no I/O;
//! every effect goes through [`Host`].

use std::rc::Rc;

use serde_json::json;

use crate::config::FilterConfig;

use crate::error::MeiliError;
use crate::host::Call;
use crate::host::{Host, Reply};
use crate::metrics::{self, Calls};
use crate::ops::broadcast::Broadcast;
use crate::ops::delete;
use crate::ops::fanout::Answer;
use crate::ops::keys::Everywhere;
use crate::ops::multi_search::MultiSearch;
use crate::ops::read::{FirstAnswer, Hide, ReadAll};
use crate::ops::register::Registration;
use crate::ops::scatter::Scatter;
use crate::ops::similar::Similar;
use crate::ops::task_read::{TaskForward, TaskRead};
use crate::ops::write::Write;
use crate::ops::{Op, Step};
use crate::plan::calls::Ctx;
use crate::plan::passthrough;
use crate::request::cors::{self, Cors};
use crate::request::encoding;
use crate::request::limits::{self, BodyLease};
use crate::request::route::{route, Route};
use crate::request::search_params;
use crate::request::Request;

/// Numbers the requests of one worker's VM: the number rotates replica groups and replicas.
#[derive(Default)]
pub struct Turns(std::cell::Cell<u64>);

impl Turns {
    pub fn next(&self) -> u64 {
        let turn = self.0.get();
        self.0.set(turn.wrapping_add(1));
        turn
    }
}

pub struct Exchange {
    ctx: Ctx,
    /// The operation in flight; `None` once the client is answered.
    op: Option<Box<dyn Op>>,
    /// A decoded body's room in the VM's budget of large bodies, until the request is done.
    _decoded: Option<BodyLease>,
    /// The route's family: the `route` label of the request's metrics.
    family: &'static str,
    /// When the whole request was in ([`Host::now_ms`]).
    started_ms: u64,
    /// The calls in flight, timed.
    calls: Calls,
}

impl Exchange {
    pub fn start(
        config: Rc<FilterConfig>,
        mut request: Request,
        turn: u64,
        host: &mut dyn Host,
    ) -> Exchange {
        let started_ms = host.now_ms();
        // Before anything else, as Meilisearch's CORS layer: a preflight needs no key.
        if let Some(preflight) = cors::preflight(&request) {
            answer_preflight(&preflight, Some(config.epoch_text.as_str()), host);
            metrics::answered(host, PREFLIGHT, preflight.status, started_ms);
            let ctx = Ctx {
                config,
                request,
                turn,
            };
            return Exchange {
                ctx,
                op: None,
                _decoded: None,
                family: PREFLIGHT,
                started_ms,
                calls: Calls::default(),
            };
        }
        let family = route_family(&route(&request.method, &request.path));
        let decoded = decode_body(&mut request, host);
        let ctx = Ctx {
            config,
            request,
            turn,
        };
        let mut exchange = Exchange {
            ctx,
            op: None,
            _decoded: None,
            family,
            started_ms,
            calls: Calls::default(),
        };
        let mut calls = std::mem::take(&mut exchange.calls);
        {
            let host = &mut calls.timing(host);
            let step = match decoded {
                Ok(lease) => {
                    exchange._decoded = lease;
                    exchange.begin(host)
                }
                Err(answer) => Step::Answer(answer),
            };
            exchange.settle(step, host);
        }
        exchange.calls = calls;
        exchange
    }

    /// Answers a request that came before any configuration was accepted.
    pub fn not_configured(request: &Request, host: &mut dyn Host) {
        let started_ms = host.now_ms();
        if let Some(preflight) = cors::preflight(request) {
            answer_preflight(&preflight, None, host);
            return metrics::answered(host, PREFLIGHT, preflight.status, started_ms);
        }
        let answer: Answer =
            MeiliError::unavailable("miroir_not_configured", "Miroir has no topology yet.").into();
        let mut headers = vec![("content-type", "application/json")];
        headers.extend_from_slice(Cors::of(request).headers());
        host.respond(answer.status, &headers, &answer.body);
        let family = route_family(&route(&request.method, &request.path));
        metrics::answered(host, family, answer.status, started_ms);
    }

    pub fn on_reply(&mut self, token: u32, reply: Reply, host: &mut dyn Host) {
        self.calls.finish(token, &reply, host);
        let Some(op) = self.op.as_mut() else {
            return;
        };
        let mut calls = std::mem::take(&mut self.calls);
        {
            let host = &mut calls.timing(host);
            let step = op.on_reply(&self.ctx, token, reply, host);
            self.settle(step, host);
        }
        self.calls = calls;
    }

    pub fn is_answered(&self) -> bool {
        self.op.is_none()
    }

    fn begin(&mut self, host: &mut dyn Host) -> Step {
        let ctx = &self.ctx;
        let route = route(&ctx.request.method, &ctx.request.path);
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
                self.op = Some(Box::new(read));
                return step;
            }
        }
        let (op, step) = match route {
            Route::Health => (
                None,
                Step::Answer(Answer::json(200, &json!({"status": "available"}))),
            ),
            Route::AnyNode => {
                let candidates = any_node_candidates(ctx);
                wrap(FirstAnswer::start(candidates, Hide::Nothing, host))
            }
            Route::Search { index } => started(Scatter::start(ctx, &index, host)),
            Route::SearchGet { index } => {
                let scatter = search_params::query_from_get(&ctx.request.query_pairs())
                    .and_then(|query| Scatter::with_query(ctx, &index, query, host));
                started(scatter)
            }
            Route::Similar { index, get } => wrap(Similar::start(ctx, &index, get, host)),
            Route::FacetSearch { index } => started(Scatter::facet_search(ctx, &index, host)),
            Route::ListDocuments { index, get } => {
                let body = if get {
                    crate::merge::documents::fetch_from_get(&ctx.request.query_pairs())
                } else {
                    ctx.body_object()
                };
                let scatter = body.and_then(|b| Scatter::documents(ctx, &index, b, host));
                started(scatter)
            }
            Route::MultiSearch => match ctx.body_object() {
                Ok(body) if body.get("federation").is_some_and(|f| !f.is_null()) => {
                    started(Scatter::federated(ctx, body, host))
                }
                _ => started(MultiSearch::start(ctx, host)),
            },
            Route::AddDocuments { index, merge } => started(Write::start(ctx, index, merge, host)),
            Route::GetDocument { index: _, id } => {
                let candidates = document_candidates(ctx, &id);
                wrap(FirstAnswer::start(candidates, Hide::Document, host))
            }
            Route::DeleteDocument { index, id } => wrap(delete::delete_one(ctx, &index, &id, host)),
            Route::DeleteDocuments { index } => started(delete::delete_batch(ctx, &index, host)),
            Route::CreateIndex => started(Broadcast::create_index(ctx, host)),
            Route::Broadcast { kind, index } => {
                let refused = match kind {
                    // A body that is not a JSON object is the nodes' to refuse.
                    "documentEdition" => ctx
                        .body_object()
                        .map_or(Ok(()), |b| crate::request::reserved_refs::check_edit(&b)),
                    _ => Ok(()),
                };
                match refused {
                    Ok(()) => wrap(Broadcast::change(ctx, kind, index, host)),
                    Err(e) => (None, Step::Answer(e.into())),
                }
            }
            Route::Settings { index, sub } => {
                started(Broadcast::settings(ctx, index, sub.as_deref(), host))
            }
            Route::CreateKey => started(Everywhere::create_key(ctx, host)),
            Route::Everywhere => wrap(Everywhere::start(ctx, ctx.raw_body(), host)),
            Route::ReadAll(kind) => wrap(ReadAll::start(ctx, kind, host)),
            Route::GetTask { uid } => match &ctx.config.control_plane {
                Some(_) => wrap(TaskForward::start(ctx, Some(uid), host)),
                None => started(TaskRead::start(ctx, &uid, host)),
            },
            Route::Tasks if ctx.config.control_plane.is_some() => {
                wrap(TaskForward::start(ctx, None, host))
            }
            Route::Network => (
                None,
                Step::Answer(
                    MeiliError::network_not_supported(&ctx.request.method, &ctx.request.path)
                        .into(),
                ),
            ),
            Route::Tasks | Route::Unsupported => (
                None,
                Step::Answer(
                    MeiliError::not_supported(&ctx.request.method, &ctx.request.path).into(),
                ),
            ),
        };
        self.op = op;
        step
    }

    fn settle(&mut self, step: Step, host: &mut dyn Host) {
        let answer = match step {
            Step::Wait => return,
            Step::Register(pending) => {
                let (registration, step) = Registration::start(&self.ctx, *pending, host);
                self.op = Some(Box::new(registration));
                return self.settle(step, host);
            }
            Step::Answer(answer) => answer,
        };
        self.op = None;
        let epoch = self.ctx.config.epoch_text.as_str();
        let mut headers = vec![
            ("content-type", "application/json"),
            ("x-miroir-topology-epoch", epoch),
        ];
        headers.extend(answer.headers.iter().map(|(k, v)| (*k, v.as_str())));
        headers.extend_from_slice(Cors::of(&self.ctx.request).headers());
        host.respond(answer.status, &headers, &answer.body);
        metrics::answered(host, self.family, answer.status, self.started_ms);
    }
}

#[cfg(test)]
mod tests;

/// A preflight's answer: Meilisearch's headers (and the epoch, as on every answer of Miroir's).
fn answer_preflight(preflight: &cors::Preflight, epoch: Option<&str>, host: &mut dyn Host) {
    let mut headers: Vec<(&str, &str)> = preflight
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    if let Some(epoch) = epoch.filter(|_| preflight.status == 200) {
        headers.push(("x-miroir-topology-epoch", epoch));
    }
    host.respond(preflight.status, &headers, preflight.body);
}

/// Undoes the body's `content-encoding` as Meilisearch does ([`encoding`]): the decoded body,
/// when large, takes its own room in the VM's budget. `Err` is the answer refusing it.
fn decode_body(request: &mut Request, host: &mut dyn Host) -> Result<Option<BodyLease>, Answer> {
    if encoding::of(request).is_none() {
        return Ok(None);
    }
    let reader = match route(&request.method, &request.path) {
        Route::AddDocuments { .. } => encoding::Reader::Documents,
        _ => encoding::Reader::Json,
    };
    if let Err(e) = encoding::decode(request, reader) {
        if e.status == 413 {
            host.count(crate::metrics::PAYLOAD_TOO_LARGE, 1);
        }
        return Err(e.into());
    }
    limits::admit_body(request.body.len() as u64).map_err(|refusal| {
        host.count(crate::metrics::LARGE_BODIES_REFUSED, 1);
        let mut answer: Answer = refusal.into();
        answer.headers.push(("retry-after", "10".to_string()));
        answer
    })
}

fn wrap<T: Op + 'static>((op, step): (T, Step)) -> (Option<Box<dyn Op>>, Step) {
    (Some(Box::new(op)), step)
}

fn started<T: Op + 'static>(result: Result<(T, Step), MeiliError>) -> (Option<Box<dyn Op>>, Step) {
    match result {
        Ok(started) => wrap(started),
        Err(e) => (None, Step::Answer(e.into())),
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

/// The `route` label of CORS preflights.
const PREFLIGHT: &str = "preflight";

/// The `route` label of a request's metrics: its route's family (docs/metrics.md).
fn route_family(route: &Route) -> &'static str {
    match route {
        Route::Health => "health",
        Route::Search { .. }
        | Route::SearchGet { .. }
        | Route::MultiSearch
        | Route::Similar { .. }
        | Route::FacetSearch { .. } => "search",
        Route::AddDocuments { .. }
        | Route::DeleteDocument { .. }
        | Route::DeleteDocuments { .. } => "document_writes",
        Route::GetDocument { .. } | Route::ListDocuments { .. } => "document_reads",
        Route::CreateIndex | Route::Broadcast { .. } | Route::Settings { .. } => "changes",
        Route::ReadAll(_) | Route::AnyNode => "reads",
        Route::GetTask { .. } | Route::Tasks => "tasks",
        Route::CreateKey | Route::Everywhere => "keys",
        Route::Unsupported | Route::Network => "unsupported",
    }
}

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
    ctx.config
        .nodes_in_read_order(ctx.turn)
        .into_iter()
        .map(|n| (n.id.clone(), passthrough::forward(ctx, n)))
        .collect()
}

/// The owners of a document's shard, in the order they are read.
fn document_candidates(ctx: &Ctx, id: &str) -> Vec<(String, Call)> {
    let shard = ctx.config.topology.shard_for_key(id);
    ctx.config
        .shard_readers(shard, ctx.turn)
        .into_iter()
        .map(|n| (n.id.clone(), ctx.call(n, "GET", ctx.path_and_query(), None)))
        .collect()
}
