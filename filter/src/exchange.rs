//! One client request from start to answer: a state machine fed by call replies. It owns no I/O;
//! every effect goes through [`Host`].

use std::collections::BTreeMap;
use std::rc::Rc;

use miroir_topology::{cluster_name, Node, PluginConfig, SHARD_FIELD};
use serde_json::{json, Map, Value};

use crate::documents::{self, Document};
use crate::error::MeiliError;
use crate::fanout::{first_problem, outcome, Answer, Fanout, Outcome};
use crate::host::{Call, Host, Reply};
use crate::request::{encode_query, Request};
use crate::route::{route, Route};
use crate::search::{self, Pagination};
use crate::sequence::{Phase, Progress, Sequence};
use crate::tasks::{self, TaskRecord};

pub struct Exchange {
    ctx: Ctx,
    state: State,
}

/// What every step of a request needs to know.
struct Ctx {
    config: Rc<PluginConfig>,
    request: Request,
    /// Per-worker request counter: rotates replica groups and replicas.
    seq: u64,
}

enum State {
    Answered,
    Broadcast(Broadcast),
    Write(Box<Write>),
    Search(Box<Scatter>),
    TaskRead(TaskRead),
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

    pub fn on_reply(&mut self, token: u32, reply: Reply, host: &mut dyn Host) {
        let step = match &mut self.state {
            State::Answered => return,
            State::Broadcast(op) => op.on_reply(&self.ctx, token, reply, host),
            State::Write(op) => op.on_reply(&self.ctx, token, reply, host),
            State::Search(op) => op.on_reply(&self.ctx, token, reply, host),
            State::TaskRead(op) => op.on_reply(token, reply),
        };
        self.settle(step, host);
    }

    pub fn is_answered(&self) -> bool {
        matches!(self.state, State::Answered)
    }

    fn begin(&mut self, host: &mut dyn Host) -> Step {
        let request = &self.ctx.request;
        match route(&request.method, &request.path) {
            Route::Health => {
                host.count("miroir_requests_health", 1);
                Step::Answer(Answer::Json {
                    status: 200,
                    body: json!({"status": "available"}),
                })
            }
            Route::Search { index } => {
                host.count("miroir_requests_search", 1);
                self.enter(Scatter::start(&self.ctx, &index, host), |s| {
                    State::Search(Box::new(s))
                })
            }
            Route::AddDocuments { index, merge } => {
                host.count("miroir_requests_documents", 1);
                self.enter(Write::start(&self.ctx, index, merge, host), |w| {
                    State::Write(Box::new(w))
                })
            }
            Route::CreateIndex => {
                host.count("miroir_requests_indexes", 1);
                self.enter(Broadcast::create_index(&self.ctx, host), State::Broadcast)
            }
            Route::UpdateSettings { index } => {
                host.count("miroir_requests_settings", 1);
                self.enter(
                    Broadcast::settings(&self.ctx, index, host),
                    State::Broadcast,
                )
            }
            Route::GetTask { uid } => {
                host.count("miroir_requests_tasks", 1);
                self.enter(TaskRead::start(&self.ctx, &uid, host), State::TaskRead)
            }
            Route::Unsupported => {
                host.count("miroir_requests_unsupported", 1);
                Step::Answer(MeiliError::not_supported(&request.method, &request.path).into())
            }
        }
    }

    fn enter<T>(
        &mut self,
        started: Result<(T, Step), MeiliError>,
        wrap: impl FnOnce(T) -> State,
    ) -> Step {
        match started {
            Ok((op, step)) => {
                self.state = wrap(op);
                step
            }
            Err(e) => Step::Answer(e.into()),
        }
    }

    fn settle(&mut self, step: Step, host: &mut dyn Host) {
        let Step::Answer(answer) = step else { return };
        self.state = State::Answered;
        let epoch = self.ctx.config.topology.epoch.to_string();
        let headers = [
            ("content-type", "application/json"),
            ("x-miroir-topology-epoch", epoch.as_str()),
        ];
        match answer {
            Answer::Json { status, body } => {
                if status >= 400 {
                    host.count("miroir_responses_error", 1);
                }
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                host.respond(status, &headers, &bytes);
            }
            Answer::Relay { status, body } => {
                host.count("miroir_responses_error", 1);
                host.respond(status, &headers, &body);
            }
        }
    }
}

pub enum Step {
    Wait,
    Answer(Answer),
}

impl From<Progress> for Step {
    fn from(p: Progress) -> Self {
        match p {
            Progress::Failed(answer) => Step::Answer(answer),
            Progress::Waiting | Progress::Finished => Step::Wait,
        }
    }
}

impl Ctx {
    fn timeout_ms(&self) -> u64 {
        self.config.node_timeout_ms
    }

    fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.config.topology.nodes.iter()
    }

    fn call(&self, node: &Node, method: &'static str, path: String, body: Option<Vec<u8>>) -> Call {
        let mut headers = self.request.forwarded_headers();
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        Call {
            cluster: cluster_name(&node.id),
            method,
            path,
            headers,
            body,
            timeout_ms: self.timeout_ms(),
        }
    }

    fn json_call(&self, node: &Node, method: &'static str, path: String, body: &Value) -> Call {
        self.call(
            node,
            method,
            path,
            Some(serde_json::to_vec(body).unwrap_or_default()),
        )
    }

    fn body_object(&self) -> Result<Map<String, Value>, MeiliError> {
        match serde_json::from_slice::<Value>(&self.request.body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(MeiliError::bad_request(
                "bad_request",
                format!(
                    "Invalid value type: expected an object, but found {}",
                    kind_of(&other)
                ),
            )),
            Err(e) if self.request.body.is_empty() => Err(MeiliError::bad_request(
                "missing_payload",
                format!("A json payload is missing. {e}"),
            )),
            Err(e) => Err(MeiliError::bad_request(
                "malformed_payload",
                format!("The json payload provided is malformed. `{e}`."),
            )),
        }
    }
}

fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean: `{b}`"),
        Value::Number(n) => format!("a number: `{n}`"),
        Value::String(s) => format!("a string: `\"{s}\"`"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The node's summarized task, or `None` if the body is not one.
fn node_task_uid(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("taskUid")?
        .as_u64()
}

/// Collects node task uids from successful replies into a task record.
fn record_tasks(record: &mut TaskRecord, replies: &[(String, Reply)]) {
    for (node, reply) in replies {
        if let Outcome::Success(body) = outcome(reply) {
            if let Some(uid) = node_task_uid(body) {
                record.nodes.entry(node.clone()).or_default().push(uid);
            }
        }
    }
}

/// The client's 202: the summarized task of the first node in id order, carrying the uid that
/// stands for every node task of the write.
fn enqueued_answer(
    host: &mut dyn Host,
    record: &TaskRecord,
    replies: &[(String, Reply)],
) -> Answer {
    let mut sorted: Vec<&(String, Reply)> = replies.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let summary = sorted.iter().find_map(|(_, reply)| match outcome(reply) {
        Outcome::Success(body) => serde_json::from_slice::<Map<String, Value>>(body).ok(),
        _ => None,
    });
    let Some(mut summary) = summary else {
        return MeiliError::internal("No node returned a task.").into();
    };
    match tasks::register(host, record) {
        Some(uid) => {
            summary.insert("taskUid".into(), json!(uid));
            Answer::Json {
                status: 202,
                body: Value::Object(summary),
            }
        }
        None => MeiliError::internal("The task could not be registered.").into(),
    }
}

/// Index creation and settings: the same change on every node, phase after phase.
struct Broadcast {
    sequence: Sequence,
    /// Phases whose node tasks the client's task stands for.
    kind: &'static str,
    index_uid: Option<String>,
}

impl Broadcast {
    fn create_index(ctx: &Ctx, host: &mut dyn Host) -> Result<(Self, Step), MeiliError> {
        let body = ctx.body_object()?;
        let uid = body.get("uid").and_then(Value::as_str).map(str::to_string);
        let mut phases: Vec<Phase> = vec![ctx
            .nodes()
            .map(|n| {
                (
                    n.id.clone(),
                    ctx.json_call(n, "POST", "/indexes".into(), &Value::Object(body.clone())),
                )
            })
            .collect()];
        if let Some(uid) = &uid {
            phases.push(shard_field_filterable(ctx, ctx.nodes(), uid));
        }
        let (sequence, progress) = Sequence::start(phases, host);
        let op = Broadcast {
            sequence,
            kind: "indexCreation",
            index_uid: uid,
        };
        Ok((op, progress.into()))
    }

    fn settings(ctx: &Ctx, index: String, host: &mut dyn Host) -> Result<(Self, Step), MeiliError> {
        let mut body = ctx.body_object()?;
        if let Some(filterable) = body.get_mut("filterableAttributes") {
            keep_shard_field(filterable);
        }
        let body = Value::Object(body);
        let path = format!("/indexes/{index}/settings");
        let phase: Phase = ctx
            .nodes()
            .map(|n| (n.id.clone(), ctx.json_call(n, "PATCH", path.clone(), &body)))
            .collect();
        let (sequence, progress) = Sequence::start(vec![phase], host);
        let op = Broadcast {
            sequence,
            kind: "settingsUpdate",
            index_uid: Some(index),
        };
        Ok((op, progress.into()))
    }

    fn on_reply(&mut self, _ctx: &Ctx, token: u32, reply: Reply, host: &mut dyn Host) -> Step {
        match self.sequence.on_reply(token, reply, host) {
            Progress::Finished => {
                let mut record = TaskRecord {
                    index_uid: self.index_uid.clone(),
                    kind: self.kind.into(),
                    nodes: BTreeMap::new(),
                };
                for phase in &self.sequence.finished {
                    record_tasks(&mut record, phase);
                }
                let first = self.sequence.finished.first().cloned().unwrap_or_default();
                Step::Answer(enqueued_answer(host, &record, &first))
            }
            other => other.into(),
        }
    }
}

/// The settings phase that makes `_miroir_shard` filterable on `nodes`.
fn shard_field_filterable<'a>(
    ctx: &Ctx,
    nodes: impl Iterator<Item = &'a Node>,
    index: &str,
) -> Phase {
    let body = json!({"filterableAttributes": [SHARD_FIELD]});
    nodes
        .map(|n| {
            (
                n.id.clone(),
                ctx.json_call(n, "PATCH", format!("/indexes/{index}/settings"), &body),
            )
        })
        .collect()
}

/// A client's filterable attributes plus `_miroir_shard`, which searches need on every node.
fn keep_shard_field(filterable: &mut Value) {
    let has_field = |items: &Vec<Value>| {
        items.iter().any(|item| {
            item.as_str() == Some(SHARD_FIELD)
                || item
                    .get("attributePatterns")
                    .and_then(Value::as_array)
                    .is_some_and(|p| p.iter().any(|x| x.as_str() == Some(SHARD_FIELD)))
        })
    };
    match filterable {
        Value::Array(items) if !has_field(items) => items.push(json!(SHARD_FIELD)),
        Value::Array(_) => {}
        other => *other = json!([SHARD_FIELD]),
    }
}

/// A document batch: learn the index's primary key, create the index where it is missing, then
/// send each node its documents.
struct Write {
    index: String,
    merge: bool,
    batch: Vec<Document>,
    phase: WritePhase,
    /// Documents split per node once the primary key is known.
    pending: Option<Routed>,
    record: TaskRecord,
}

struct Routed {
    primary_key: String,
    per_node: BTreeMap<String, Vec<Document>>,
    shards_of: Vec<u32>,
}

enum WritePhase {
    Lookup(Fanout<String>),
    Setup(Sequence),
    Documents {
        fanout: Fanout<String>,
        /// Node → shards it was sent documents of, for the quorum check.
        shards: BTreeMap<u32, Vec<String>>,
    },
}

impl Write {
    fn start(
        ctx: &Ctx,
        index: String,
        merge: bool,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        let batch = documents::parse_batch(ctx.request.header("content-type"), &ctx.request.body)?;
        let mut lookup = Fanout::new();
        for node in ctx.nodes() {
            lookup.send(
                host,
                &ctx.call(node, "GET", format!("/indexes/{index}"), None),
                node.id.clone(),
            );
        }
        let mut write = Write {
            index: index.clone(),
            merge,
            batch,
            phase: WritePhase::Lookup(lookup),
            pending: None,
            record: TaskRecord {
                index_uid: Some(index),
                kind: "documentAdditionOrUpdate".into(),
                nodes: BTreeMap::new(),
            },
        };
        let step = write.after_lookup_if_complete(ctx, host);
        Ok((write, step))
    }

    fn on_reply(&mut self, ctx: &Ctx, token: u32, reply: Reply, host: &mut dyn Host) -> Step {
        match &mut self.phase {
            WritePhase::Lookup(fanout) => {
                if !fanout.accept(token, reply) {
                    return Step::Wait;
                }
                self.after_lookup_if_complete(ctx, host)
            }
            WritePhase::Setup(sequence) => match sequence.on_reply(token, reply, host) {
                Progress::Finished => {
                    for phase in &sequence.finished {
                        record_tasks(&mut self.record, phase);
                    }
                    self.send_documents(ctx, host)
                }
                other => other.into(),
            },
            WritePhase::Documents { fanout, shards } => {
                if !fanout.accept(token, reply) || !fanout.is_complete() {
                    return Step::Wait;
                }
                let replies = std::mem::take(&mut fanout.replies);
                let shards = std::mem::take(shards);
                self.conclude(host, &replies, &shards)
            }
        }
    }

    fn after_lookup_if_complete(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        let WritePhase::Lookup(fanout) = &mut self.phase else {
            return Step::Wait;
        };
        if !fanout.is_complete() {
            return Step::Wait;
        }
        let replies = std::mem::take(&mut fanout.replies);
        let mut missing = Vec::new();
        let mut index_pk: Option<String> = None;
        let mut others = Vec::new();
        for (node, reply) in replies {
            match &reply {
                Reply::Response { status: 404, body } if is_index_not_found(body) => {
                    missing.push(node)
                }
                Reply::Response { status: 200, body } => {
                    let pk = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                        v.get("primaryKey")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    });
                    if index_pk.is_none() {
                        index_pk = pk;
                    }
                }
                _ => others.push((node, reply)),
            }
        }
        if let Some(problem) = first_problem(&others) {
            return Step::Answer(problem);
        }
        let primary_key = match index_pk.or_else(|| ctx.request.query_param("primaryKey")) {
            Some(pk) => pk,
            None => match documents::infer_primary_key(&self.batch) {
                Ok(pk) => pk,
                Err(e) => return Step::Answer(e.into()),
            },
        };
        let ids = match documents::validate(&self.batch, &primary_key) {
            Ok(ids) => ids,
            Err(e) => {
                host.count("miroir_batches_rejected", 1);
                return Step::Answer(e.into());
            }
        };
        self.route_documents(ctx, primary_key.clone(), ids);
        if missing.is_empty() {
            return self.send_documents(ctx, host);
        }
        // Meilisearch would create the index implicitly, without `_miroir_shard` filterable.
        let missing_nodes: Vec<&Node> = ctx.nodes().filter(|n| missing.contains(&n.id)).collect();
        let create = json!({"uid": self.index, "primaryKey": primary_key});
        let creation: Phase = missing_nodes
            .iter()
            .map(|n| {
                (
                    n.id.clone(),
                    ctx.json_call(n, "POST", "/indexes".into(), &create),
                )
            })
            .collect();
        let settings = shard_field_filterable(ctx, missing_nodes.into_iter(), &self.index);
        let (sequence, progress) = Sequence::start(vec![creation, settings], host);
        let finished = matches!(progress, Progress::Finished);
        self.phase = WritePhase::Setup(sequence);
        if finished {
            return self.send_documents(ctx, host);
        }
        progress.into()
    }

    fn route_documents(&mut self, ctx: &Ctx, primary_key: String, ids: Vec<String>) {
        self.pending = Some(Routed {
            primary_key,
            per_node: documents::partition(
                &ctx.config.topology,
                std::mem::take(&mut self.batch),
                &ids,
            ),
            shards_of: ids
                .iter()
                .map(|id| ctx.config.topology.shard_for_key(id))
                .collect(),
        });
    }

    fn send_documents(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        let Some(routed) = self.pending.take() else {
            return Step::Answer(MeiliError::internal("documents were not routed").into());
        };
        let mut query: Vec<(String, String)> = ctx
            .request
            .query_pairs()
            .into_iter()
            .filter(|(k, _)| k != "primaryKey")
            .collect();
        query.push(("primaryKey".into(), routed.primary_key));
        let path = format!("/indexes/{}/documents?{}", self.index, encode_query(&query));
        let method = if self.merge { "PUT" } else { "POST" };

        let mut per_node = routed.per_node;
        if per_node.is_empty() {
            // An empty batch still makes a task on one node, as on Meilisearch.
            if let Some(first) = ctx.nodes().next() {
                per_node.insert(first.id.clone(), Vec::new());
            }
        }
        let mut shards: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for shard in routed.shards_of {
            shards.entry(shard).or_insert_with(|| {
                ctx.config
                    .topology
                    .write_targets(shard)
                    .iter()
                    .map(|n| n.id.clone())
                    .collect()
            });
        }
        let mut fanout = Fanout::new();
        for (node_id, docs) in per_node {
            let Some(node) = ctx.config.topology.node(&node_id) else {
                continue;
            };
            let body = serde_json::to_vec(&docs).unwrap_or_default();
            fanout.send(
                host,
                &ctx.call(node, method, path.clone(), Some(body)),
                node_id,
            );
        }
        if fanout.is_complete() {
            let replies = std::mem::take(&mut fanout.replies);
            return self.conclude(host, &replies, &shards);
        }
        self.phase = WritePhase::Documents { fanout, shards };
        Step::Wait
    }

    /// Accepts the write if a majority of every written shard's targets took it.
    fn conclude(
        &mut self,
        host: &mut dyn Host,
        replies: &[(String, Reply)],
        shards: &BTreeMap<u32, Vec<String>>,
    ) -> Step {
        let mut accepted = Vec::new();
        let mut unavailable = Vec::new();
        let mut sorted: Vec<&(String, Reply)> = replies.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (node, reply) in sorted {
            match outcome(reply) {
                Outcome::Success(_) => accepted.push(node.clone()),
                Outcome::Refused { status, body } => {
                    return Step::Answer(Answer::Relay {
                        status,
                        body: body.to_vec(),
                    })
                }
                Outcome::Unavailable(why) => unavailable.push(format!("`{node}` ({why})")),
            }
        }
        let short: Vec<u32> = shards
            .iter()
            .filter(|(_, targets)| {
                let acks = targets.iter().filter(|t| accepted.contains(t)).count();
                acks * 2 <= targets.len()
            })
            .map(|(shard, _)| *shard)
            .collect();
        if !short.is_empty() || accepted.is_empty() {
            host.count("miroir_write_quorum_failures", 1);
            return Step::Answer(
                MeiliError::unavailable(
                    "miroir_write_quorum_not_met",
                    format!(
                        "The write did not reach a majority of the owners of shard(s) {short:?}: {}. Documents may have been written to the nodes that answered; retrying the same request is safe.",
                        unavailable.join(", ")
                    ),
                )
                .into(),
            );
        }
        if !unavailable.is_empty() {
            host.log_warn(&format!(
                "write accepted by quorum; missed {}",
                unavailable.join(", ")
            ));
        }
        record_tasks(&mut self.record, replies);
        Step::Answer(enqueued_answer(host, &self.record, replies))
    }
}

fn is_index_not_found(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("code")
                .and_then(Value::as_str)
                .map(|c| c == "index_not_found")
        })
        .unwrap_or(false)
}

/// A search: one owner of every shard in one replica group, each limited to its shards.
struct Scatter {
    client: Map<String, Value>,
    pagination: Pagination,
    /// Node ids in the order the merge breaks ties with.
    nodes: Vec<String>,
    fanout: Fanout<String>,
}

impl Scatter {
    fn start(ctx: &Ctx, index: &str, host: &mut dyn Host) -> Result<(Self, Step), MeiliError> {
        let client = ctx.body_object()?;
        let pagination = search::parse_pagination(&client)?;
        let topology = &ctx.config.topology;
        let groups = topology.group_names();
        let Some(group) = groups.get((ctx.seq % groups.len().max(1) as u64) as usize) else {
            return Err(MeiliError::internal("the topology has no replica group"));
        };
        let plan = topology.covering_set(group, ctx.seq);
        if !plan.unavailable.is_empty() {
            host.count("miroir_search_shards_unavailable", 1);
            return Err(MeiliError::unavailable(
                "miroir_shard_unavailable",
                format!(
                    "No active node holds shard(s) {:?} in replica group `{group}`.",
                    plan.unavailable
                ),
            ));
        }
        let path = format!("/indexes/{index}/search");
        let mut fanout = Fanout::new();
        let mut nodes = Vec::new();
        for (node_id, shards) in &plan.assignments {
            let Some(node) = topology.node(node_id) else {
                continue;
            };
            let body = Value::Object(search::node_body(&client, pagination, shards));
            fanout.send(
                host,
                &ctx.json_call(node, "POST", path.clone(), &body),
                node_id.clone(),
            );
            nodes.push(node_id.clone());
        }
        let mut scatter = Scatter {
            client,
            pagination,
            nodes,
            fanout,
        };
        let step = scatter.merge_if_complete();
        Ok((scatter, step))
    }

    fn on_reply(&mut self, _ctx: &Ctx, token: u32, reply: Reply, _host: &mut dyn Host) -> Step {
        if !self.fanout.accept(token, reply) {
            return Step::Wait;
        }
        self.merge_if_complete()
    }

    fn merge_if_complete(&mut self) -> Step {
        if !self.fanout.is_complete() {
            return Step::Wait;
        }
        let replies = std::mem::take(&mut self.fanout.replies);
        if let Some(problem) = first_problem(&replies) {
            return Step::Answer(problem);
        }
        let mut responses = Vec::new();
        for node in &self.nodes {
            let parsed =
                replies
                    .iter()
                    .find(|(n, _)| n == node)
                    .and_then(|(_, reply)| match outcome(reply) {
                        Outcome::Success(body) => {
                            serde_json::from_slice::<Map<String, Value>>(body).ok()
                        }
                        _ => None,
                    });
            match parsed {
                Some(response) => responses.push(response),
                None => {
                    return Step::Answer(
                        MeiliError::unavailable(
                            "miroir_node_unavailable",
                            format!("Node `{node}` answered the search with an unreadable body."),
                        )
                        .into(),
                    )
                }
            }
        }
        Step::Answer(Answer::Json {
            status: 200,
            body: search::merge(&self.client, self.pagination, responses),
        })
    }
}

/// `GET /tasks/{uid}`: the node tasks behind a client task, read and aggregated.
struct TaskRead {
    uid: u32,
    record: TaskRecord,
    fanout: Fanout<String>,
}

impl TaskRead {
    fn start(ctx: &Ctx, uid: &str, host: &mut dyn Host) -> Result<(Self, Step), MeiliError> {
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

    fn on_reply(&mut self, token: u32, reply: Reply) -> Step {
        if !self.fanout.accept(token, reply) {
            return Step::Wait;
        }
        self.answer_if_complete()
    }

    fn answer_if_complete(&mut self) -> Step {
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
        Step::Answer(Answer::Json {
            status: 200,
            body: tasks::aggregate(self.uid, &self.record, &node_tasks),
        })
    }
}

#[cfg(test)]
mod tests;
