//! The control plane's inputs: task filters and list queries (`GET /tasks`, `POST
//! /tasks/cancel`, `DELETE /tasks`), webhook bodies, topology configurations and node changes
//! (`POST /_miroir/nodes`, `DELETE /_miroir/nodes/{id}`), task dates.
//!
//! Input: `<which byte><topology byte>` then NUL-separated sections, read per input kind: a query
//! string, a JSON body, then extra JSON values (tasks, the stored webhook).
#![no_main]

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use miroir_control_plane::store::Webhook;
use miroir_control_plane::tasks::query;
use miroir_control_plane::{time, webhooks};
use miroir_fuzz::{headers, sections, text, topology};
use miroir_topology::{Node, NodeState, PluginConfig, Topology};
use serde_json::Value;

fn values(parts: &[&[u8]]) -> Vec<Value> {
    parts
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect()
}

/// What the admin routes show of a valid topology: every shard's owners in every group, and the
/// covering sets a search would use.
fn placement(topology: &Topology, seq: u64) {
    for group in topology.group_names() {
        for shard in 0..topology.shards {
            let _ = topology.owners(shard, group);
        }
        let _ = topology.covering_set(group, seq);
    }
    for shard in 0..topology.shards {
        let _ = topology.write_targets(shard);
    }
    let _ = topology.shard_for_key("1");
}

fuzz_target!(|data: &[u8]| {
    let (Some(&which), Some(&choice)) = (data.first(), data.get(1)) else {
        return;
    };
    let parts = sections(&data[2..]);
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let params: Vec<(String, String)> = form_urlencoded::parse(part(0))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match which % 6 {
        0 => {
            if let Ok(filter) = query::parse_filter(&params, which & 8 != 0) {
                for task in values(parts.get(1..).unwrap_or_default()) {
                    let _ = filter.matches(&task);
                }
            }
        }
        1 => {
            if let Ok(list) = query::parse_list(&params) {
                let _ = query::page(&list, values(parts.get(1..).unwrap_or_default()));
            }
        }
        2 => {
            let mut map = HeaderMap::new();
            for (name, value) in headers(part(0)) {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    map.append(n, v);
                }
            }
            let old: Webhook = serde_json::from_slice(part(2)).unwrap_or(Webhook {
                url: "https://example.com/hook".into(),
                headers: Default::default(),
            });
            let _ = webhooks::update_view(&map, part(1), old);
        }
        3 => {
            if let Ok(config) = PluginConfig::from_json(part(1)) {
                placement(&config.topology, u64::from(choice));
                let again = PluginConfig::from_json(config.to_json().as_bytes());
                assert_eq!(
                    again.ok().as_ref(),
                    Some(&config),
                    "a valid configuration round-trips"
                );
            }
        }
        4 => {
            // `POST /_miroir/nodes` `{id, address, group}` and `DELETE /_miroir/nodes/{id}` on
            // one of the fleets; the change is kept only if the new topology is valid.
            let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(part(1)) else {
                return;
            };
            let field = |f: &str| body.get(f).and_then(Value::as_str).map(str::to_string);
            let mut next = topology(choice).topology.clone();
            if which & 8 == 0 {
                let (Some(id), Some(address), Some(group)) =
                    (field("id"), field("address"), field("group"))
                else {
                    return;
                };
                if next.node(&id).is_some() {
                    return;
                }
                next.nodes.push(Node {
                    id,
                    address,
                    group,
                    state: NodeState::Active,
                });
            } else {
                let Some(id) = field("id") else { return };
                next.nodes.retain(|n| n.id != id);
            }
            next.epoch += 1;
            if next.validate().is_ok() {
                placement(&next, u64::from(choice));
            }
        }
        _ => {
            let text = text(part(1));
            if let Some((nanos, _)) = time::parse(&text) {
                let _ = time::format(nanos);
            }
        }
    }
});
