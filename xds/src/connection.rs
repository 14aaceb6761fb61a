//! One Envoy's ADS stream (state of the world) as a state machine without I/O.
//!
//! Inputs: the Envoy's `DiscoveryRequest`s and cache updates. Outputs: the
//! `DiscoveryResponse`s to send and [`Event`]s (ACK, NACK, ...) for the fleet view. Per type it
//! tracks what was last sent (version, nonce, names), what the Envoy holds, and what it
//! rejected, following go-control-plane's `sotw` server:
//! - a request carrying a nonce other than the last one sent for its type is stale and ignored;
//! - a request is answered when the snapshot's version differs from the one the Envoy holds (or
//!   the Envoy asks for other names); until then the request waits (a "watch");
//! - a NACK (a request with `error_detail`) asks again for the version the Envoy holds. The
//!   rejected version is not sent again unless the cache sets that type again.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use crate::cache::Snapshot;
use crate::{CLUSTER_TYPE_URL, LISTENER_TYPE_URL};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub cluster: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The stream's first request named its node.
    Identified(NodeInfo),
    /// The Envoy asked for a type (or changed the names it wants).
    Subscribed {
        type_url: String,
        names: Vec<String>,
    },
    /// The Envoy no longer wants anything of this type.
    Unsubscribed { type_url: String },
    Sent {
        type_url: String,
        version: String,
        nonce: String,
    },
    /// The Envoy holds `version`: it accepted what was sent, or it says so when it (re)connects.
    Ack { type_url: String, version: String },
    /// The Envoy rejected `version` with `message` and keeps what it had.
    Nack {
        type_url: String,
        version: String,
        message: String,
    },
    /// A request answering an older response; ignored.
    StaleNonce { type_url: String, nonce: String },
}

#[derive(Debug, Default, PartialEq)]
pub struct Output {
    pub responses: Vec<DiscoveryResponse>,
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    version: String,
    nonce: String,
    names: Vec<String>,
    /// The cache generation of the type when it was sent.
    generation: u64,
}

#[derive(Clone, Debug, Default)]
struct Subscription {
    names: Vec<String>,
    /// The version the Envoy holds (its last request's `version_info`).
    held_version: String,
    /// A request is waiting for an answer.
    waiting: bool,
    last_sent: Option<Sent>,
    /// A rejected (version, generation), not to be sent again while the cache still has it.
    rejected: Option<(String, u64)>,
    /// The Envoy wants resources of this type.
    active: bool,
}

/// One ADS stream.
#[derive(Debug, Default)]
pub struct Connection {
    node: Option<NodeInfo>,
    subscriptions: BTreeMap<String, Subscription>,
    nonce: u64,
}

/// LDS and CDS treat an empty name list as "everything"; other types as "nothing".
fn is_wildcard(type_url: &str, names: &[String]) -> bool {
    names.iter().any(|n| n == "*")
        || (names.is_empty() && (type_url == CLUSTER_TYPE_URL || type_url == LISTENER_TYPE_URL))
}

impl Connection {
    pub fn new() -> Self {
        Connection::default()
    }

    pub fn node(&self) -> Option<&NodeInfo> {
        self.node.as_ref()
    }

    /// The node group whose snapshot answers `request`: the connection's, else the one the
    /// request names (the first request carries the node).
    pub fn group_for(&self, request: &DiscoveryRequest) -> String {
        match (&self.node, &request.node) {
            (Some(node), _) => node.cluster.clone(),
            (None, Some(node)) => node.cluster.clone(),
            (None, None) => String::new(),
        }
    }

    pub fn handle_request(
        &mut self,
        request: DiscoveryRequest,
        snapshot: Option<&Snapshot>,
    ) -> Output {
        let mut out = Output::default();
        if self.node.is_none() {
            if let Some(node) = &request.node {
                let info = NodeInfo {
                    id: node.id.clone(),
                    cluster: node.cluster.clone(),
                };
                self.node = Some(info.clone());
                out.events.push(Event::Identified(info));
            }
        }
        let type_url = request.type_url;
        if type_url.is_empty() {
            return out;
        }
        let mut names = request.resource_names;
        names.sort();
        names.dedup();

        let sub = self.subscriptions.entry(type_url.clone()).or_default();
        let nonce = request.response_nonce;
        if !nonce.is_empty() {
            match &sub.last_sent {
                Some(sent) if sent.nonce == nonce => match request.error_detail {
                    Some(status) => {
                        sub.rejected = Some((sent.version.clone(), sent.generation));
                        out.events.push(Event::Nack {
                            type_url: type_url.clone(),
                            version: sent.version.clone(),
                            message: status.message,
                        });
                    }
                    None => {
                        sub.rejected = None;
                        out.events.push(Event::Ack {
                            type_url: type_url.clone(),
                            version: request.version_info.clone(),
                        });
                    }
                },
                _ => {
                    out.events.push(Event::StaleNonce { type_url, nonce });
                    return out;
                }
            }
        } else if !request.version_info.is_empty() {
            // A (re)connecting Envoy says what it already runs: that counts as held.
            out.events.push(Event::Ack {
                type_url: type_url.clone(),
                version: request.version_info.clone(),
            });
        }

        let wildcard = is_wildcard(&type_url, &names);
        if !wildcard && names.is_empty() {
            sub.waiting = false;
            sub.active = false;
            sub.names.clear();
            out.events.push(Event::Unsubscribed { type_url });
            return out;
        }
        if !sub.active || sub.names != names {
            out.events.push(Event::Subscribed {
                type_url: type_url.clone(),
                names: names.clone(),
            });
        }
        sub.active = true;
        sub.names = names;
        sub.held_version = request.version_info;
        sub.waiting = true;
        self.respond(&type_url, snapshot, &mut out);
        out
    }

    /// The cache changed: answer every waiting request whose type changed.
    pub fn handle_snapshot(&mut self, snapshot: Option<&Snapshot>) -> Output {
        let mut out = Output::default();
        let types: Vec<String> = self.subscriptions.keys().cloned().collect();
        for type_url in types {
            self.respond(&type_url, snapshot, &mut out);
        }
        out
    }

    fn respond(&mut self, type_url: &str, snapshot: Option<&Snapshot>, out: &mut Output) {
        let Some(sub) = self.subscriptions.get_mut(type_url) else {
            return;
        };
        if !sub.waiting {
            return;
        }
        let Some(snapshot) = snapshot else {
            return;
        };
        let Some(resources) = snapshot.get(type_url) else {
            return;
        };
        let version = resources.version();
        let generation = snapshot.generation(type_url);
        let names_changed = sub
            .last_sent
            .as_ref()
            .is_some_and(|sent| sent.names != sub.names);
        if !names_changed {
            if version == sub.held_version {
                return;
            }
            if sub
                .rejected
                .as_ref()
                .is_some_and(|(v, g)| v == version && *g == generation)
            {
                return;
            }
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let wildcard = is_wildcard(type_url, &sub.names);
        let body = resources.select(&sub.names, wildcard);
        sub.waiting = false;
        sub.last_sent = Some(Sent {
            version: version.to_string(),
            nonce: nonce.clone(),
            names: sub.names.clone(),
            generation,
        });
        out.responses.push(DiscoveryResponse {
            version_info: version.to_string(),
            resources: body,
            type_url: type_url.to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        });
        out.events.push(Event::Sent {
            type_url: type_url.to_string(),
            version: version.to_string(),
            nonce,
        });
    }
}

#[cfg(test)]
mod tests;
