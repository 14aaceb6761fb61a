//! `POST /multi-search` without federation: every query is its own scatter, answered in input
//! order; the first query that fails fails the whole request, as on Meilisearch.

use serde_json::Value;

use crate::error::MeiliError;
use crate::host::{Host, Reply};
use crate::ops::fanout::Answer;
use crate::ops::Step;
use crate::plan::calls::Ctx;

use super::scatter::Scatter;

enum Query {
    Running {
        index: String,
        scatter: Box<Scatter>,
    },
    Done {
        index: String,
        answer: Answer,
    },
}

pub(crate) struct MultiSearch {
    queries: Vec<Query>,
}

impl MultiSearch {
    pub(crate) fn start(ctx: &Ctx, host: &mut dyn Host) -> Result<(Self, Step), MeiliError> {
        let body = ctx.body_object()?;
        let queries = match body.get("queries") {
            Some(Value::Array(queries)) => queries.clone(),
            _ => {
                return Err(MeiliError::bad_request(
                    "bad_request",
                    "Missing field `queries`",
                ))
            }
        };
        crate::request::limits::check_multi_search_queries(queries.len())?;
        let mut multi = MultiSearch {
            queries: Vec::new(),
        };
        for (i, query) in queries.into_iter().enumerate() {
            let inside = |e: MeiliError| inside_query(i, e);
            let Value::Object(mut query) = query else {
                return Err(inside(MeiliError::bad_request(
                    "bad_request",
                    "Invalid value type: expected an object",
                )));
            };
            let Some(Value::String(index)) = query.shift_remove("indexUid") else {
                return Err(inside(MeiliError::bad_request(
                    "missing_index_uid",
                    "Missing field `indexUid`",
                )));
            };
            if query.get("federationOptions").is_some() {
                return Err(inside(MeiliError::bad_request(
                    "invalid_multi_search_federation_options",
                    "Using `federationOptions` is not allowed in a non-federated search.\n - Hint: remove `federationOptions` from query #0 or add `federation` to the request.".replace("#0", &format!("#{i}")),
                )));
            }
            let (scatter, step) = Scatter::with_query(ctx, &index, query, host).map_err(inside)?;
            multi.queries.push(match step {
                Step::Answer(answer) => Query::Done { index, answer },
                // A search registers no task.
                Step::Wait | Step::Register(_) => Query::Running {
                    index,
                    scatter: Box::new(scatter),
                },
            });
        }
        let step = multi.answer_if_complete();
        Ok((multi, step))
    }

    pub(crate) fn on_reply(
        &mut self,
        ctx: &Ctx,
        token: u32,
        reply: Reply,
        host: &mut dyn Host,
    ) -> Step {
        for query in &mut self.queries {
            let Query::Running { index, scatter } = query else {
                continue;
            };
            if !scatter.owns(token) {
                continue;
            }
            if let Step::Answer(answer) = scatter.on_reply(ctx, token, reply, host) {
                *query = Query::Done {
                    index: index.clone(),
                    answer,
                };
            }
            break;
        }
        self.answer_if_complete()
    }

    fn answer_if_complete(&mut self) -> Step {
        if self
            .queries
            .iter()
            .any(|q| !matches!(q, Query::Done { .. }))
        {
            return Step::Wait;
        }
        // Each query's merged answer is spliced in as its bytes, its `indexUid` first.
        let mut body = b"{\"results\":[".to_vec();
        for (i, query) in self.queries.iter().enumerate() {
            let Query::Done { index, answer } = query else {
                return Step::Wait;
            };
            if answer.status != 200 {
                let error = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                return Step::Answer(failed_query(i, answer.status, error));
            }
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b"{\"indexUid\":");
            // A string always serializes.
            let _ = serde_json::to_writer(&mut body, index);
            match answer.body.strip_prefix(b"{") {
                Some(rest) if rest.first() != Some(&b'}') => {
                    body.push(b',');
                    body.extend_from_slice(rest);
                }
                _ => body.push(b'}'),
            }
        }
        body.extend_from_slice(b"]}");
        Step::Answer(Answer {
            status: 200,
            body,
            headers: Vec::new(),
        })
    }
}

fn inside_query(i: usize, mut error: MeiliError) -> MeiliError {
    error.message = format!("Inside `.queries[{i}]`: {}", error.message);
    error
}

/// A query's error as multi-search reports it: prefixed with its position, and a missing index
/// is a bad request here rather than a 404.
fn failed_query(i: usize, status: u16, mut body: Value) -> Answer {
    let Some(fields) = body.as_object_mut() else {
        return Answer::json(status, &body);
    };
    if let Some(Value::String(message)) = fields.get_mut("message") {
        *message = format!("Inside `.queries[{i}]`: {message}");
    }
    let status = if fields.get("code").and_then(Value::as_str) == Some("index_not_found") {
        400
    } else {
        status
    };
    Answer::json(status, &body)
}
