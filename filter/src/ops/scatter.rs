use serde_json::{Map, Value};

use crate::ctx::Ctx;
use crate::error::MeiliError;
use crate::exchange::Step;
use crate::fanout::{first_problem, outcome, Answer, Fanout, Outcome};
use crate::host::{Host, Reply};
use crate::search::{self, Pagination};

/// A search: one owner of every shard in one replica group, each limited to its shards.
pub(crate) struct Scatter {
    client: Map<String, Value>,
    pagination: Pagination,
    /// Node ids in the order the merge breaks ties with.
    nodes: Vec<String>,
    fanout: Fanout<String>,
}

impl Scatter {
    pub(crate) fn start(
        ctx: &Ctx,
        index: &str,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
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

    pub(crate) fn on_reply(
        &mut self,
        _ctx: &Ctx,
        token: u32,
        reply: Reply,
        _host: &mut dyn Host,
    ) -> Step {
        if !self.fanout.accept(token, reply) {
            return Step::Wait;
        }
        self.merge_if_complete()
    }

    pub(crate) fn merge_if_complete(&mut self) -> Step {
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
        Step::Answer(Answer::json(
            200,
            &search::merge(&self.client, self.pagination, responses),
        ))
    }
}
