//! A read that one node can answer alone: the replica group picked for it has a single node
//! holding every shard. That node gets the client's request unchanged (no shard restriction, no
//! widened window, no follow-up rounds), so the answer is one Meilisearch's own, estimates and
//! tie order included; only Miroir's fields are hidden from it.
//!
//! A restriction naming every shard would select every document anyway, but it is not free: it
//! changes how Meilisearch walks its candidates (vector stores search filtered sets another way)
//! and what its estimates count.

use crate::host::Call;
use crate::plan::calls::Ctx;

/// The nodes that can answer this read alone, best first: the node of the group a scatter would
/// pick, then those of other single-node groups. `None` when the picked group needs a merge.
pub(crate) fn candidates(ctx: &Ctx) -> Option<Vec<(String, Call)>> {
    let nodes = ctx.config.sole_holders(ctx.turn)?;
    Some(
        nodes
            .into_iter()
            .map(|node| (node.id.clone(), forward(ctx, node)))
            .collect(),
    )
}

/// The client's request as it came, for `node`.
pub(crate) fn forward(ctx: &Ctx, node: &miroir_topology::Node) -> Call {
    let content_type = ctx.request.header("content-type");
    match (ctx.raw_body(), content_type) {
        (Some(body), Some(content_type)) => ctx.call_with(
            node,
            ctx.request_method(),
            ctx.path_and_query(),
            content_type,
            body,
        ),
        (body, _) => ctx.call(node, ctx.request_method(), ctx.path_and_query(), body),
    }
}
