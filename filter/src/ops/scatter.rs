//! A search over one owner of every shard, failing over to another owner of a node's shards when
//! that node does not answer.

use std::collections::{BTreeMap, BTreeSet};

use miroir_topology::{Node, UnavailableShards};

use crate::config::FilterConfig;
use serde_json::{Map, Value};

use crate::error::MeiliError;
use crate::host::{Host, Reply};
use crate::merge::documents as documents_list;
use crate::merge::facets::{self, Faceting};
use crate::merge::follow_up::{FollowUp, Kind};
use crate::merge::hits::{Hit, NodeAnswer};
use crate::merge::{federated, search, similar};
use crate::ops::fanout::{outcome, Answer, Fanout, Outcome};
use crate::ops::Step;
use crate::plan::calls::Ctx;
use crate::plan::scatter::{scatter_plan, ScatterPlan, Unplannable};
use crate::plan::search_body;
use crate::request::search_params::{self, Pagination};

use super::follow_up::Rounds;

/// One node asked for some shards. Slots keep their creation order, which the merge's tie order
/// follows.
struct Slot {
    node: String,
    shards: Vec<u32>,
    response: Option<Answered>,
}

/// A page's hits, when they are kept apart from its fields.
type KeptHits = Option<Vec<Hit>>;

/// A node's answer: a search's with its hits kept as the node wrote them (unless the search is
/// distinct: its follow-up rounds read the hits' values), any other as values.
enum Answered {
    Page(NodeAnswer),
    Values(Map<String, Value>),
}

impl Answered {
    /// Every field but the hits of a page.
    fn fields(&self) -> &Map<String, Value> {
        match self {
            Answered::Page(page) => &page.fields,
            Answered::Values(fields) => fields,
        }
    }

    /// The fields, and the hits when they are kept apart.
    fn split(self) -> (Map<String, Value>, KeptHits) {
        match self {
            Answered::Page(page) => (page.fields, Some(page.hits)),
            Answered::Values(fields) => (fields, None),
        }
    }
}

pub(crate) struct Scatter {
    index: String,
    group: String,
    client: Map<String, Value>,
    mode: Mode,
    slots: Vec<Slot>,
    /// Nodes that did not answer during this request: never asked again.
    failed: BTreeSet<String>,
    fanout: Fanout<usize>,
    /// The index's settings the merge needs, read before the nodes are asked unless cached.
    settings: SettingsRead,
    faceting: Faceting,
    /// A federated search's settings, by index.
    faceting_by_index: BTreeMap<String, Faceting>,
    /// Rounds after the first answers (exact facet counts, distinct totals).
    follow: Option<Rounds>,
    /// The index ranks by document values, or its settings are unknown: hits need their ranking
    /// details ([`search_body::needs_details`]).
    ranked_by_values: bool,
    /// Shards no in-sync copy answered for, left out under `unavailableShards: partial`.
    missing: Vec<u32>,
}

/// What is scattered: a search (merged into one page) or a facet search (values summed).
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    Search(Pagination),
    FacetSearch,
    /// `GET /documents` and `POST /documents/fetch`.
    Documents,
    /// `POST /multi-search` with `federation`: the whole request to every node. `None` when its
    /// pagination is invalid: sent unchanged, for the nodes to refuse.
    Federated(Option<Pagination>),
    /// `/similar`: every shard but the target's searched by the target's embedding.
    Similar(similar::Window),
}

enum SettingsRead {
    /// The reads (by index), and the nodes to ask once they answered.
    Pending(Fanout<String>, BTreeMap<String, Vec<u32>>),
    Known,
}

impl Scatter {
    /// A search whose parameters are the client's JSON body.
    pub(crate) fn start(
        ctx: &Ctx,
        index: &str,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        Self::with_query(ctx, index, ctx.body_object()?, host)
    }

    /// A search with these parameters (Meilisearch's POST body form).
    pub(crate) fn with_query(
        ctx: &Ctx,
        index: &str,
        client: Map<String, Value>,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        let mode = Mode::Search(search_params::parse_pagination(&client)?);
        Self::begin(ctx, index, client, mode, None, host)
    }

    /// `/similar`: `answered` is the target's shard's own `/similar` answer; the other shards
    /// are searched with `search`.
    pub(crate) fn similar(
        ctx: &Ctx,
        index: &str,
        search: Map<String, Value>,
        window: similar::Window,
        answered: Map<String, Value>,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        let mode = Mode::Similar(window);
        Self::begin(ctx, index, search, mode, Some(answered), host)
    }

    /// `POST /indexes/{uid}/facet-search`: each shard's facet values, summed.
    pub(crate) fn facet_search(
        ctx: &Ctx,
        index: &str,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        Self::begin(
            ctx,
            index,
            ctx.body_object()?,
            Mode::FacetSearch,
            None,
            host,
        )
    }

    /// A federated multi-search; `client` is the whole request.
    pub(crate) fn federated(
        ctx: &Ctx,
        client: Map<String, Value>,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        if let Some(Value::Array(queries)) = client.get("queries") {
            crate::request::limits::check_multi_search_queries(queries.len())?;
        }
        let pagination = federated::pagination(&client);
        Self::begin(ctx, "", client, Mode::Federated(pagination), None, host)
    }

    /// A document listing; `client` is the fetch body (the GET form already converted).
    pub(crate) fn documents(
        ctx: &Ctx,
        index: &str,
        client: Map<String, Value>,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        let (offset, limit) = documents_list::window(&client);
        crate::request::limits::check_documents_window(offset, limit)?;
        Self::begin(ctx, index, client, Mode::Documents, None, host)
    }

    fn begin(
        ctx: &Ctx,
        index: &str,
        client: Map<String, Value>,
        mode: Mode,
        answered: Option<Map<String, Value>>,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        let topology = &ctx.config.topology;
        // A listing by ids only needs the shards those ids hash to; a shard already answered
        // (`/similar`'s target) is not asked again.
        let ids: Option<BTreeSet<u32>> = match (mode, client.get("ids")) {
            (Mode::Documents, Some(Value::Array(ids))) => Some(
                ids.iter()
                    .filter_map(miroir_topology::canonical_key)
                    .map(|id| topology.shard_for_key(&id))
                    .collect(),
            ),
            _ => None,
        };
        let answered_shard = match mode {
            Mode::Similar(window) if answered.is_some() => Some(window.shard),
            _ => None,
        };
        let wanted =
            |s: u32| ids.as_ref().is_none_or(|w| w.contains(&s)) && Some(s) != answered_shard;
        let ScatterPlan {
            group,
            assignments,
            unavailable,
        } = match scatter_plan(&ctx.config, ctx.turn, wanted) {
            Ok(plan) => plan,
            Err(Unplannable::NoGroup) => {
                return Err(MeiliError::internal("the topology has no replica group"))
            }
        };
        if !unavailable.is_empty() && !partial(ctx) {
            return Err(shard_unavailable(host, &unavailable));
        }
        let mut scatter = Scatter {
            index: index.to_string(),
            group,
            client,
            mode,
            slots: Vec::new(),
            failed: BTreeSet::new(),
            fanout: Fanout::new(),
            settings: SettingsRead::Known,
            faceting: Faceting::default(),
            faceting_by_index: BTreeMap::new(),
            follow: None,
            ranked_by_values: true,
            missing: unavailable,
        };
        // The answered shard merges first.
        if let (Some(shard), Some(answered)) = (answered_shard, answered) {
            scatter.slots.push(Slot {
                node: String::new(),
                shards: vec![shard],
                response: Some(Answered::Values(answered)),
            });
        }
        // Facet values are ordered and cut with the index's faceting settings, and hits are made
        // distinct by its distinct attribute.
        // A federated search orders and cuts each index's facets with that index's settings.
        let indexes = match mode {
            Mode::Search(_) | Mode::FacetSearch | Mode::Similar(_) => vec![index.to_string()],
            Mode::Federated(_) => federated::faceted_indexes(&scatter.client),
            Mode::Documents => Vec::new(),
        };
        let mut read = Fanout::new();
        let mut reading = false;
        for index in indexes {
            match crate::config::settings_cache::get(host, &index) {
                Some(settings) => scatter.apply_settings(&index, &settings),
                None => {
                    if let Some(node) = assignments.keys().next().and_then(|id| topology.node(id)) {
                        let path = format!("/indexes/{index}/settings");
                        read.send(host, &ctx.lookup_call(node, path), index);
                        reading = true;
                    }
                }
            }
        }
        if reading {
            scatter.settings = SettingsRead::Pending(read, assignments);
            let step = scatter.settings_progress(ctx, host);
            return Ok((scatter, step));
        }
        for (node, shards) in assignments {
            scatter.ask(ctx, host, node, shards);
        }
        let step = scatter.progress(ctx, host);
        Ok((scatter, step))
    }

    fn apply_settings(&mut self, index: &str, settings: &Value) {
        let faceting = Faceting::from_index_settings(settings);
        self.ranked_by_values = search_body::ranks_by_values(settings);
        if let Mode::Federated(_) = self.mode {
            self.faceting_by_index.insert(index.to_string(), faceting);
            return;
        }
        self.faceting = faceting;
        // The index's distinct attribute, made explicit: nodes apply it all the same, and the
        // merge drops duplicates across shards by it. A query's `distinct` must be filterable;
        // another one the nodes apply alone, each to its shards.
        if let (Mode::Search(_), Some(attr)) = (
            self.mode,
            settings.get("distinctAttribute").and_then(Value::as_str),
        ) {
            if !self.client.contains_key("distinct") && search_body::is_filterable(settings, attr) {
                self.client.insert("distinct".into(), Value::from(attr));
            }
        }
    }

    /// The settings the merge follows for an index.
    fn faceting_of(&self, index: &str) -> Faceting {
        match self.mode {
            Mode::Federated(_) => self
                .faceting_by_index
                .get(index)
                .cloned()
                .unwrap_or_default(),
            _ => self.faceting.clone(),
        }
    }

    /// Once the settings read answered: apply them (defaults if the node failed; its refusal, an
    /// unknown index say, is the answer) and ask the nodes.
    fn settings_progress(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        let SettingsRead::Pending(read, _) = &mut self.settings else {
            return Step::Wait;
        };
        if !read.is_complete() {
            return Step::Wait;
        }
        let replies = std::mem::take(&mut read.replies);
        let SettingsRead::Pending(_, assignments) =
            std::mem::replace(&mut self.settings, SettingsRead::Known)
        else {
            return Step::Wait;
        };
        for (index, reply) in replies {
            match outcome(&reply) {
                Outcome::Success(body) => {
                    if let Ok(settings) = serde_json::from_slice::<Value>(body) {
                        crate::config::settings_cache::put(host, &index, &settings);
                        self.apply_settings(&index, &settings);
                    }
                }
                // A federated search's nodes word an unknown index in their own terms.
                Outcome::Refused { status, body } if !matches!(self.mode, Mode::Federated(_)) => {
                    return Step::Answer(Answer::relay(status, body.to_vec()))
                }
                _ => host.log_warn("could not read the index settings; merging with the defaults"),
            }
        }
        for (node, shards) in assignments {
            self.ask(ctx, host, node, shards);
        }
        self.progress(ctx, host)
    }

    /// Whether a reply with this token belongs to this search.
    pub(crate) fn owns(&self, token: u32) -> bool {
        self.fanout.owns(token)
            || matches!(&self.settings, SettingsRead::Pending(read, _) if read.owns(token))
            || self.follow.as_ref().is_some_and(|f| f.owns(token))
    }

    pub(crate) fn on_reply(
        &mut self,
        ctx: &Ctx,
        token: u32,
        reply: Reply,
        host: &mut dyn Host,
    ) -> Step {
        if let SettingsRead::Pending(read, _) = &mut self.settings {
            if read.owns(token) {
                read.accept(token, reply);
                return self.settings_progress(ctx, host);
            }
        }
        if self.follow.as_ref().is_some_and(|f| f.owns(token)) {
            let nodes = self.answered_nodes();
            let done = self
                .follow
                .as_mut()
                .is_none_or(|f| f.on_reply(ctx, host, token, reply, &nodes));
            return if done { self.answer() } else { Step::Wait };
        }
        if !self.fanout.accept(token, reply) {
            return Step::Wait;
        }
        self.progress(ctx, host)
    }

    fn ask(&mut self, ctx: &Ctx, host: &mut dyn Host, node_id: String, shards: Vec<u32>) {
        let slot = self.slots.len();
        if let Some(node) = ctx.config.topology.node(&node_id) {
            let (body, route) = match self.mode {
                Mode::Search(pagination) => (
                    search_body::search_node_body(
                        &self.client,
                        pagination,
                        &shards,
                        self.ranked_by_values,
                    ),
                    "search",
                ),
                Mode::FacetSearch => (
                    search_body::facet_node_body(&self.client, &shards),
                    "facet-search",
                ),
                Mode::Documents => (
                    documents_list::node_body(&self.client, &shards),
                    "documents/fetch",
                ),
                Mode::Federated(pagination) => {
                    (federated::node_body(&self.client, pagination, &shards), "")
                }
                Mode::Similar(window) => {
                    (similar::node_body(&self.client, window, &shards), "search")
                }
            };
            let path = match self.mode {
                Mode::Federated(_) => "/multi-search".to_string(),
                _ => format!("/indexes/{}/{route}", self.index),
            };
            let call = ctx.json_call(node, "POST", path, &Value::Object(body));
            self.slots.push(Slot {
                node: node_id,
                shards,
                response: None,
            });
            self.fanout.send(host, &call, slot);
        }
    }

    /// Another active owner of `shard` that has not failed: in this group first, then in others.
    fn replacement<'c>(&self, config: &'c FilterConfig, shard: u32) -> Option<&'c Node> {
        config.replacement(shard, &self.group, |n| !self.failed.contains(&n.id))
    }

    /// Handles the replies so far: a node's refusal is the answer, a silent node's shards go to
    /// other owners, and once every shard answered the pages are merged.
    fn progress(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        let replies = std::mem::take(&mut self.fanout.replies);
        let pages = self.reads_pages();
        let mut orphaned = Vec::new();
        for (slot, reply) in replies {
            let Some(entry) = self.slots.get_mut(slot) else {
                continue;
            };
            match outcome(&reply) {
                Outcome::Success(body) => {
                    let answered = match pages {
                        true => NodeAnswer::parse(body).map(Answered::Page),
                        false => serde_json::from_slice(body).ok().map(Answered::Values),
                    };
                    match answered {
                        Some(response) => entry.response = Some(response),
                        None => {
                            self.failed.insert(entry.node.clone());
                            orphaned.extend(entry.shards.iter().copied());
                        }
                    }
                }
                Outcome::Refused { status, body } => {
                    return Step::Answer(Answer::relay(status, body.to_vec()))
                }
                Outcome::Unavailable(why) => {
                    host.log_warn(&format!(
                        "search on `{}` failed ({why}); asking other owners",
                        entry.node
                    ));
                    host.count(crate::metrics::SEARCH_FAILOVERS, 1);
                    self.failed.insert(entry.node.clone());
                    orphaned.extend(entry.shards.iter().copied());
                }
            }
        }
        if !orphaned.is_empty() {
            let mut reassigned: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            let mut lost = Vec::new();
            for shard in orphaned {
                match self.replacement(&ctx.config, shard) {
                    Some(node) => reassigned.entry(node.id.clone()).or_default().push(shard),
                    None => lost.push(shard),
                }
            }
            if !lost.is_empty() {
                lost.sort_unstable();
                if !partial(ctx) {
                    return Step::Answer(shard_unavailable(host, &lost).into());
                }
                self.missing.extend(lost);
            }
            for (node, shards) in reassigned {
                self.ask(ctx, host, node, shards);
            }
            // A dispatch that failed at once is already a reply: handle it now.
            if !self.fanout.replies.is_empty() {
                return self.progress(ctx, host);
            }
        }
        if !self.fanout.is_complete() || matches!(self.settings, SettingsRead::Pending(..)) {
            return Step::Wait;
        }
        if self.follow.is_none() {
            self.follow = self.follow_up(ctx, host);
            if self.follow.as_ref().is_some_and(Rounds::pending) {
                return Step::Wait;
            }
        }
        self.answer()
    }

    /// Whether answers are read as pages ([`NodeAnswer`]): a search's, unless distinct.
    fn reads_pages(&self) -> bool {
        matches!(self.mode, Mode::Search(_)) && !self.client.contains_key("distinct")
    }

    /// The nodes that answered, in slot order (the order of the merged answers).
    fn answered_nodes(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|s| s.response.is_some())
            .map(|s| s.node.clone())
            .collect()
    }

    /// The rounds this search needs after its first answers, started.
    fn follow_up(&self, ctx: &Ctx, host: &mut dyn Host) -> Option<Rounds> {
        let kind = match self.mode {
            Mode::Search(pagination) => Kind::Search(pagination),
            Mode::FacetSearch => Kind::FacetSearch,
            Mode::Federated(Some(_)) => Kind::Federated,
            _ => return None,
        };
        let answered: Vec<(&[u32], &Map<String, Value>)> = self
            .slots
            .iter()
            .filter_map(|s| Some((s.shards.as_slice(), s.response.as_ref()?.fields())))
            .collect();
        let faceting = |index: &str| self.faceting_of(index);
        let logic = FollowUp::start(kind, &self.index, &self.client, &faceting, &answered);
        Some(Rounds::start(ctx, host, logic, &self.answered_nodes()))
    }

    /// The merged answer, saying which shards it lacks if some had no copy to answer.
    fn answer(&mut self) -> Step {
        let step = self.merged();
        if self.missing.is_empty() {
            return step;
        }
        match step {
            Step::Answer(answer) if answer.status == 200 => {
                self.missing.sort_unstable();
                self.missing.dedup();
                Step::Answer(answer.with_header(
                    crate::ops::in_sync::DEGRADED_HEADER,
                    format!(
                        "unavailable shards: {}",
                        crate::ops::in_sync::ranges(&self.missing)
                    ),
                ))
            }
            other => other,
        }
    }

    /// Merges the answers into the client's.
    fn merged(&mut self) -> Step {
        let (mut responses, hits): (Vec<Map<String, Value>>, Vec<KeptHits>) = self
            .slots
            .iter_mut()
            .filter_map(|s| s.response.take())
            .map(Answered::split)
            .unzip();
        let distinct_total = self.follow.take().and_then(|f| f.finish(&mut responses));
        let faceting = &self.faceting;
        let merged = match self.mode {
            Mode::Search(pagination) => {
                let answers = responses
                    .into_iter()
                    .zip(hits)
                    .map(|(fields, hits)| match hits {
                        Some(hits) => NodeAnswer { fields, hits },
                        None => NodeAnswer::from_map(fields),
                    })
                    .collect();
                let body =
                    search::merge(&self.client, pagination, answers, faceting, distinct_total);
                return Step::Answer(Answer {
                    status: 200,
                    body,
                    headers: Vec::new(),
                });
            }
            Mode::FacetSearch => facets::merge_facet_hits(&self.client, responses, faceting),
            Mode::Documents => documents_list::merge(&self.client, responses),
            Mode::Federated(pagination) => federated::merge(
                &self.client,
                pagination.unwrap_or(Pagination::Offset {
                    offset: 0,
                    limit: 20,
                }),
                responses,
                &self.faceting_by_index,
            ),
            Mode::Similar(window) => {
                match similar::merge(window, responses, faceting.max_total_hits) {
                    Ok(merged) => merged,
                    Err(e) => return Step::Answer(e.into()),
                }
            }
        };
        Step::Answer(Answer::json(200, &merged))
    }
}

/// Whether the cluster answers a search some shards of which no copy answered
/// (`unavailableShards: partial`).
fn partial(ctx: &Ctx) -> bool {
    ctx.config.topology.shard_map.unavailable_shards == Some(UnavailableShards::Partial)
}

fn shard_unavailable(host: &mut dyn Host, shards: &[u32]) -> MeiliError {
    host.count(crate::metrics::SEARCH_SHARDS_UNAVAILABLE, 1);
    MeiliError::unavailable(
        "miroir_shard_unavailable",
        format!("No node could answer for shard(s) {shards:?}: every owner is down or failed."),
    )
}
