//! Calls in flight for one phase of a request, and what their replies mean.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::MeiliError;
use crate::host::{Call, Host, Reply};

/// One phase: calls sent together, each tagged (usually with the node it went to).
pub struct Fanout<T> {
    pending: BTreeMap<u32, T>,
    /// Replies in arrival order; a call that could not even start is recorded as `Failed`.
    pub replies: Vec<(T, Reply)>,
}

impl<T> Default for Fanout<T> {
    fn default() -> Self {
        Fanout {
            pending: BTreeMap::new(),
            replies: Vec::new(),
        }
    }
}

impl<T: Clone> Fanout<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn send(&mut self, host: &mut dyn Host, call: &Call, tag: T) {
        match host.dispatch(call) {
            Ok(token) => {
                self.pending.insert(token, tag);
            }
            Err(reason) => {
                // An unknown or not yet warmed cluster: the node is unreachable from this Envoy.
                // Counted in `miroir_filter_node_calls_total{status="failed"}` ([`crate::metrics`]).
                host.log_warn(&format!("dispatch to {} failed: {reason}", call.cluster));
                self.replies.push((tag, Reply::Failed));
            }
        }
    }

    /// Records a reply; false if the token is not one of this phase's.
    pub fn accept(&mut self, token: u32, reply: Reply) -> bool {
        match self.pending.remove(&token) {
            Some(tag) => {
                self.replies.push((tag, reply));
                true
            }
            None => false,
        }
    }

    pub fn owns(&self, token: u32) -> bool {
        self.pending.contains_key(&token)
    }

    pub fn is_complete(&self) -> bool {
        self.pending.is_empty()
    }
}

/// How a node's reply reads.
pub enum Outcome<'a> {
    /// 2xx with its body.
    Success(&'a [u8]),
    /// The node refused the request (4xx): relayed to the client unchanged.
    Refused { status: u16, body: &'a [u8] },
    /// No usable answer: reset, timeout (Envoy's 504), connect failure (Envoy's 503), or a 5xx.
    Unavailable(String),
}

pub fn outcome(reply: &Reply) -> Outcome<'_> {
    match reply {
        Reply::Failed => Outcome::Unavailable("connection reset or response too large".into()),
        Reply::Response { status, body, .. } if (200..300).contains(status) => {
            Outcome::Success(body)
        }
        // A 4xx is the node's verdict on the request (Meilisearch's errors, or its bodiless 405
        // for a wrong verb): the client gets it as is.
        Reply::Response { status, body, .. } if *status < 500 => Outcome::Refused {
            status: *status,
            body,
        },
        Reply::Response { status, body, .. } => {
            let text = String::from_utf8_lossy(body);
            Outcome::Unavailable(format!(
                "HTTP {status}: {}",
                text.chars().take(120).collect::<String>()
            ))
        }
    }
}

/// What the client gets back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// Beyond `content-type` and the topology epoch, which every answer carries.
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub fn json(status: u16, body: &Value) -> Self {
        Answer {
            status,
            body: serde_json::to_vec(body).unwrap_or_default(),
            headers: Vec::new(),
        }
    }

    /// A node's own answer, byte for byte; an error reworded where the node's words give Miroir
    /// away (`node_error`). Every node error a client sees comes through here.
    pub fn relay(status: u16, body: Vec<u8>) -> Self {
        let body = if status >= 400 {
            crate::merge::node_error::scrub(body)
        } else {
            body
        };
        Answer {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<MeiliError> for Answer {
    fn from(e: MeiliError) -> Self {
        Answer::json(e.status, &e.to_json())
    }
}

/// The first refusal (in tag order, so the answer does not depend on arrival order) or, failing
/// that, an error naming every unavailable node. `None` when every reply succeeded.
pub fn first_problem(replies: &[(String, Reply)]) -> Option<Answer> {
    let mut sorted: Vec<&(String, Reply)> = replies.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut unavailable = Vec::new();
    for (node, reply) in &sorted {
        match outcome(reply) {
            Outcome::Success(_) => {}
            Outcome::Refused { status, body } => return Some(Answer::relay(status, body.to_vec())),
            Outcome::Unavailable(why) => unavailable.push(format!("`{node}` ({why})")),
        }
    }
    if unavailable.is_empty() {
        None
    } else {
        Some(
            MeiliError::unavailable(
                "miroir_node_unavailable",
                format!("Node(s) {} did not answer.", unavailable.join(", ")),
            )
            .into(),
        )
    }
}
