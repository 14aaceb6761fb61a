//! Reads: from every node with their agreement checked, or from the first node that answers.

use miroir_topology::is_reserved;
use miroir_topology::keys::is_node_default;
use serde_json::{Map, Value};

use crate::host::{Call, Host, Reply};
use crate::ops::fanout::{first_problem, outcome, Answer, Fanout, Outcome};
use crate::ops::Step;
use crate::plan::calls::Ctx;
use crate::request::route::Agreement;

/// Header naming the nodes whose answer differs from the first node's.
pub(crate) const DISAGREEMENT_HEADER: &str = "x-miroir-disagreeing-nodes";

/// The same GET to every node; one answer, and any disagreement made visible.
pub(crate) struct ReadAll {
    /// The client's `offset` and `limit`, for lists Miroir paginates itself.
    window: (u64, u64),
    /// `sizeFormat=human`: sizes read in bytes, written as Meilisearch writes them.
    human: bool,
    kind: Agreement,
    config: std::rc::Rc<crate::config::FilterConfig>,
    nodes: Vec<String>,
    fanout: Fanout<String>,
}

impl ReadAll {
    pub(crate) fn start(ctx: &Ctx, kind: Agreement, host: &mut dyn Host) -> (Self, Step) {
        let mut fanout = Fanout::new();
        let mut nodes = Vec::new();
        // Keys are listed whole from every node: the page is cut from the keys they share.
        let path = match kind {
            Agreement::KeyList => "/keys?offset=0&limit=100000".to_string(),
            // Sizes are summed in bytes and written in the client's format afterwards.
            Agreement::Stats | Agreement::IndexStats if human_sizes(ctx) => {
                let pairs: Vec<(String, String)> = ctx
                    .request
                    .query_pairs()
                    .into_iter()
                    .filter(|(k, _)| k != "sizeFormat")
                    .collect();
                format!(
                    "{}?{}",
                    ctx.request.path,
                    crate::request::encode_query(&pairs)
                )
            }
            _ => ctx.path_and_query(),
        };
        let (body, window) = match kind {
            Agreement::Fields => fields_body(ctx),
            _ => {
                let param = |name: &str, default: u64| {
                    ctx.request
                        .query_param(name)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(default)
                };
                (None, (param("offset", 0), param("limit", 20)))
            }
        };
        // Statistics are summed over whole replica groups: every node. What nodes hold alike is
        // read from those that cannot have missed a change.
        let asked: Vec<&miroir_topology::Node> = match kind {
            Agreement::IndexStats | Agreement::Stats => ctx.nodes().collect(),
            _ => ctx.config.agreeing_nodes().collect(),
        };
        for node in asked {
            let call = match &body {
                Some(body) => ctx.call(node, "POST", path.clone(), Some(body.clone())),
                None => ctx.call(node, "GET", path.clone(), None),
            };
            fanout.send(host, &call, node.id.clone());
            nodes.push(node.id.clone());
        }
        let mut read = ReadAll {
            window,
            human: human_sizes(ctx),
            kind,
            config: ctx.config.clone(),
            nodes,
            fanout,
        };
        let step = read.answer_if_complete(host);
        (read, step)
    }

    pub(crate) fn on_reply(&mut self, token: u32, reply: Reply, host: &mut dyn Host) -> Step {
        if !self.fanout.accept(token, reply) {
            return Step::Wait;
        }
        self.answer_if_complete(host)
    }

    fn answer_if_complete(&mut self, host: &mut dyn Host) -> Step {
        if !self.fanout.is_complete() {
            return Step::Wait;
        }
        let replies = std::mem::take(&mut self.fanout.replies);
        let answered = replies
            .iter()
            .any(|(_, r)| matches!(outcome(r), Outcome::Success(_)));
        let refused = replies
            .iter()
            .any(|(_, r)| matches!(outcome(r), Outcome::Refused { .. }));
        let whole_groups = matches!(self.kind, Agreement::IndexStats | Agreement::Stats);
        let answering: Vec<&str> = replies
            .iter()
            .filter(|(_, r)| matches!(outcome(r), Outcome::Success(_)))
            .map(|(n, _)| n.as_str())
            .collect();
        let counting = whole_groups
            .then(|| crate::merge::stats::counting(&self.config.topology, &answering))
            .flatten();
        // A node that does not answer leaves the others' answer standing (they agree by
        // construction); statistics need the answering nodes to cover a replica group.
        if refused || !answered || (whole_groups && counting.is_none()) {
            if let Some(problem) = first_problem(&replies) {
                return Step::Answer(problem);
            }
        }
        let mut bodies: Vec<(String, Value)> = Vec::new();
        for node in &self.nodes {
            let body =
                replies
                    .iter()
                    .find(|(n, _)| n == node)
                    .and_then(|(_, r)| match outcome(r) {
                        Outcome::Success(b) => serde_json::from_slice::<Value>(b).ok(),
                        _ => None,
                    });
            if let Some(body) = body {
                bodies.push((node.clone(), body));
            }
        }
        let (answer, disagreeing) = match (self.kind, &counting) {
            (Agreement::IndexStats | Agreement::Stats, Some(counting)) => {
                let whole = self.kind == Agreement::Stats;
                (
                    crate::merge::stats::combine(counting, whole, self.human, bodies),
                    Vec::new(),
                )
            }
            (Agreement::KeyList, _) => shared_keys(bodies, self.window),
            (Agreement::Fields, _) => (fields_union(bodies, self.window), Vec::new()),
            (kind, _) => combine(kind, bodies),
        };
        let mut answer = Answer::json(200, &answer);
        if counting.as_ref().is_some_and(|c| c.estimated) {
            let silent: Vec<&str> = self
                .nodes
                .iter()
                .map(String::as_str)
                .filter(|n| !answering.contains(n))
                .collect();
            answer = answer.with_header(
                crate::ops::in_sync::DEGRADED_HEADER,
                format!("statistics estimated without {}", silent.join(",")),
            );
        }
        if !disagreeing.is_empty() {
            host.count(crate::metrics::NODE_DISAGREEMENTS, 1);
            host.log_warn(&format!(
                "nodes {} disagree with the first node",
                disagreeing.join(", ")
            ));
            answer = answer.with_header(DISAGREEMENT_HEADER, disagreeing.join(","));
        }
        Step::Answer(answer)
    }
}

/// `POST /indexes/{uid}/fields` asks each node for all its fields matching the client's
/// filter (the page is cut from their union), and the client's window. A body whose window is
/// not two integers is sent unchanged, for the nodes to refuse as one node does.
fn fields_body(ctx: &Ctx) -> (Option<Vec<u8>>, (u64, u64)) {
    let raw = (Some(ctx.request.body.clone()), (0, 20));
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&ctx.request.body) else {
        return if ctx.request.body.is_empty() {
            (Some(b"{\"offset\":0,\"limit\":100000}".to_vec()), (0, 20))
        } else {
            raw
        };
    };
    let mut window = (0, 20);
    for (field, slot) in [("offset", &mut window.0), ("limit", &mut window.1)] {
        match body.get(field) {
            None => {}
            Some(v) => match v.as_u64() {
                Some(n) => *slot = n,
                None => return raw,
            },
        }
    }
    body.insert("offset".into(), Value::from(0));
    body.insert("limit".into(), Value::from(100_000));
    (serde_json::to_vec(&body).ok(), window)
}

/// Every field any node holds (each node knows the fields of its own documents), by name as
/// Meilisearch lists them, Miroir's own left out, paginated with the client's window.
fn fields_union(bodies: Vec<(String, Value)>, (offset, limit): (u64, u64)) -> Value {
    let mut fields: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    for (_, body) in bodies {
        let Some(Value::Array(results)) = body.get("results") else {
            continue;
        };
        for field in results {
            if let Some(name) = field.get("name").and_then(Value::as_str) {
                if !is_reserved(name) {
                    fields
                        .entry(name.to_string())
                        .or_insert_with(|| field.clone());
                }
            }
        }
    }
    let total = fields.len();
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let count = usize::try_from(limit).unwrap_or(usize::MAX);
    let page: Vec<Value> = fields.into_values().skip(start).take(count).collect();
    serde_json::json!({"results": page, "offset": offset, "limit": limit, "total": total})
}

fn human_sizes(ctx: &Ctx) -> bool {
    ctx.request.query_param("sizeFormat").as_deref() == Some("human")
}

/// The answer and the nodes whose answer differs from the first one's in what must agree.
pub(crate) fn combine(kind: Agreement, mut bodies: Vec<(String, Value)>) -> (Value, Vec<String>) {
    if kind == Agreement::Settings {
        for (_, body) in &mut bodies {
            hide_reserved_fields(body);
        }
    }
    let key = |v: &Value| -> Value {
        match kind {
            Agreement::Index => identity(v),
            Agreement::IndexList => Value::Array(
                v.get("results")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().map(identity).collect())
                    .unwrap_or_default(),
            ),
            Agreement::Key => without_dates(v),
            Agreement::KeyList => Value::Array(
                v.get("results")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().map(without_dates).collect())
                    .unwrap_or_default(),
            ),
            Agreement::Settings | Agreement::IndexStats | Agreement::Stats | Agreement::Fields => {
                v.clone()
            }
        }
    };
    let mut iter = bodies.into_iter();
    let Some((_, mut first)) = iter.next() else {
        return (Value::Null, Vec::new());
    };
    let reference = key(&first);
    let mut disagreeing = Vec::new();
    for (node, body) in iter {
        if key(&body) != reference {
            disagreeing.push(node);
            continue;
        }
        // Nodes create and update an index at slightly different times: the index was created
        // when the first node created it and last updated when the last node did.
        match kind {
            Agreement::Index | Agreement::Key => merge_dates(&mut first, &body),
            Agreement::IndexList | Agreement::KeyList => {
                if let (Some(Value::Array(mine)), Some(Value::Array(theirs))) =
                    (first.get_mut("results"), body.get("results"))
                {
                    for (a, b) in mine.iter_mut().zip(theirs) {
                        merge_dates(a, b);
                    }
                }
            }
            Agreement::Settings | Agreement::IndexStats | Agreement::Stats | Agreement::Fields => {}
        }
    }
    (first, disagreeing)
}

/// A key as every node must agree on it: all but when each node created or updated it.
fn without_dates(key: &Value) -> Value {
    let mut key = key.clone();
    if let Some(fields) = key.as_object_mut() {
        fields.shift_remove("createdAt");
        fields.shift_remove("updatedAt");
    }
    key
}

fn identity(index: &Value) -> Value {
    let mut id = Map::new();
    for field in ["uid", "primaryKey"] {
        id.insert(
            field.into(),
            index.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(id)
}

fn merge_dates(into: &mut Value, other: &Value) {
    for (field, earliest) in [("createdAt", true), ("updatedAt", false)] {
        let (Some(a), Some(b)) = (
            into.get(field).and_then(Value::as_str),
            other.get(field).and_then(Value::as_str),
        ) else {
            continue;
        };
        // RFC 3339 UTC timestamps compare as strings.
        let pick = if (b < a) == earliest {
            b.to_string()
        } else {
            a.to_string()
        };
        if let Some(obj) = into.as_object_mut() {
            obj.insert(field.into(), Value::String(pick));
        }
    }
}

/// Removes Miroir's fields from a settings object or one of its attribute lists: they are
/// Miroir's, not the client's.
pub(crate) fn hide_reserved_fields(settings: &mut Value) {
    let is_reserved_entry = |v: &Value| {
        v.as_str().is_some_and(is_reserved)
            || v.get("attributePatterns")
                .and_then(Value::as_array)
                .is_some_and(|p| {
                    p.len() == 1 && p.first().and_then(Value::as_str).is_some_and(is_reserved)
                })
    };
    match settings {
        Value::Array(items) => items.retain(|v| !is_reserved_entry(v)),
        Value::Object(fields) => {
            for list in ["filterableAttributes", "displayedAttributes"] {
                if let Some(Value::Array(items)) = fields.get_mut(list) {
                    items.retain(|v| !is_reserved_entry(v));
                }
            }
        }
        _ => {}
    }
}

/// Candidates tried one after another until one answers (success or the node's own refusal).
pub(crate) struct FirstAnswer {
    candidates: Vec<(String, Call)>,
    next: usize,
    fanout: Fanout<String>,
    tried: Vec<String>,
    hide: Hide,
}

/// Which of Miroir's fields an answer relayed from one node hides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hide {
    /// The answer shows no document (`GET /version`, ...).
    Nothing,
    /// The answer is one document.
    Document,
    /// The answer is a read's (search, listing, multi-search): see [`crate::merge::hidden::hide_reserved`].
    Read,
}

impl FirstAnswer {
    pub(crate) fn start(
        candidates: Vec<(String, Call)>,
        hide: Hide,
        host: &mut dyn Host,
    ) -> (Self, Step) {
        let mut read = FirstAnswer {
            candidates,
            next: 0,
            fanout: Fanout::new(),
            tried: Vec::new(),
            hide,
        };
        let step = read.try_next(host);
        (read, step)
    }

    pub(crate) fn on_reply(&mut self, token: u32, reply: Reply, host: &mut dyn Host) -> Step {
        if !self.fanout.accept(token, reply) {
            return Step::Wait;
        }
        self.try_next(host)
    }

    fn try_next(&mut self, host: &mut dyn Host) -> Step {
        loop {
            if let Some((node, reply)) = self.fanout.replies.pop() {
                match outcome(&reply) {
                    Outcome::Success(body) => return Step::Answer(self.success(body)),
                    Outcome::Refused { status, body } => {
                        return Step::Answer(Answer::relay(status, body.to_vec()))
                    }
                    Outcome::Unavailable(why) => {
                        host.count(crate::metrics::READ_FAILOVERS, 1);
                        self.tried.push(format!("`{node}` ({why})"));
                    }
                }
            }
            if !self.fanout.is_complete() {
                return Step::Wait;
            }
            let Some((node, call)) = self.candidates.get(self.next).cloned() else {
                return Step::Answer(
                    crate::error::MeiliError::unavailable(
                        "miroir_node_unavailable",
                        format!("No node could answer: {}.", self.tried.join(", ")),
                    )
                    .into(),
                );
            };
            self.next = self.next.saturating_add(1);
            self.fanout.send(host, &call, node);
        }
    }

    fn success(&self, body: &[u8]) -> Answer {
        if self.hide == Hide::Nothing {
            return Answer::relay(200, body.to_vec());
        }
        if self.hide == Hide::Read {
            if let Some(hidden) = crate::merge::hidden::hide_reserved_in_search(body) {
                return Answer::relay(200, hidden);
            }
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut doc)) if self.hide == Hide::Document => {
                miroir_topology::reserved::strip(&mut doc);
                Answer::json(200, &Value::Object(doc))
            }
            Ok(mut answer) => {
                crate::merge::hidden::hide_reserved(&mut answer);
                Answer::json(200, &answer)
            }
            _ => Answer::relay(200, body.to_vec()),
        }
    }
}

/// The keys every node has, identically (dates aside), paginated with the client's window. Keys
/// found on some nodes only do not work through Miroir and are left out: each node makes its
/// own default keys; any other such key is reported as a disagreement.
pub(crate) fn shared_keys(
    bodies: Vec<(String, Value)>,
    (offset, limit): (u64, u64),
) -> (Value, Vec<String>) {
    let keys_of = |body: &Value| -> Vec<Value> {
        body.get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let Some((_, first)) = bodies.first() else {
        return (Value::Null, Vec::new());
    };
    let everywhere = |key: &Value| {
        bodies.iter().all(|(_, body)| {
            keys_of(body)
                .iter()
                .any(|k| without_dates(k) == without_dates(key))
        })
    };
    let mut disagreeing = Vec::new();
    for (node, body) in &bodies {
        let stray = keys_of(body)
            .iter()
            .any(|key| !is_node_default(key) && !everywhere(key));
        if stray {
            disagreeing.push(node.clone());
        }
    }
    // A node's own default keys work on that node only, even when it is the only node.
    let shared: Vec<Value> = keys_of(first)
        .into_iter()
        .filter(|key| !is_node_default(key) && everywhere(key))
        .collect();
    let total = shared.len();
    let page: Vec<Value> = shared
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    (
        serde_json::json!({"results": page, "offset": offset, "limit": limit, "total": total}),
        disagreeing,
    )
}
