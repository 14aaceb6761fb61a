//! The cluster's default API keys: Meilisearch's four, each with one uid on every node, so a key's
//! value is the same on every node and `GET /keys` through Miroir looks like one Meilisearch's.
//! The control plane creates them; the filter tells them from each node's own defaults.

use serde_json::{json, Value};

/// One default key, as Meilisearch 1.50 makes it (`GET /keys` of a fresh node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultKey {
    pub uid: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub actions: &'static [&'static str],
}

// The uids are constants (drawn once, uuid v4), the same for every Miroir cluster, rather than
// drawn per cluster and kept in the store:
// - a uid is no secret: Meilisearch shows it to any `keys.get` key and tenant tokens carry it in
//   clear; the key's value is the secret, and it derives from the cluster's master key, so two
//   clusters still have different keys unless they share a master key (which is worth more);
// - every replica and every restart agrees on them without coordination;
// - a lost or rebuilt store changes nothing: the nodes' keys are found again (409, same body)
//   instead of a second set being made, and the keys clients embedded keep working.

/// In the order Meilisearch creates them (`createdAt`), so a node lists them as a fresh
/// Meilisearch does, newest first: Search, Admin, Read-Only Admin, Chat.
pub const DEFAULT_KEYS: [DefaultKey; 4] = [
    DefaultKey {
        uid: "5f010053-6e70-4843-8951-f60cfb3af8b5",
        name: "Default Chat API Key",
        description: "Use it to chat and search from the frontend",
        actions: &["chatCompletions", "search"],
    },
    DefaultKey {
        uid: "07c1ff27-9453-4772-8c8c-0b0fa0794ae4",
        name: "Default Read-Only Admin API Key",
        description: "Use it to read information across the whole database. Caution! Do not expose this key on a public frontend",
        actions: &["*.get", "keys.get"],
    },
    DefaultKey {
        uid: "cf2e3c9b-cba6-4e06-a436-259d5759126f",
        name: "Default Admin API Key",
        description: "Use it for anything that is not a search operation. Caution! Do not expose it on a public frontend",
        actions: &["*"],
    },
    DefaultKey {
        uid: "8918f405-788c-450b-8a3d-353cd25afbb4",
        name: "Default Search API Key",
        description: "Use it to search from the frontend",
        actions: &["search"],
    },
];

impl DefaultKey {
    /// The `POST /keys` body.
    pub fn body(&self) -> Value {
        json!({
            "uid": self.uid,
            "name": self.name,
            "description": self.description,
            "actions": self.actions,
            "indexes": ["*"],
            "expiresAt": null,
        })
    }

    /// Whether the node's key object is this key (dates and value aside).
    pub fn matches(&self, key: &Value) -> bool {
        let wanted = self.body();
        [
            "uid",
            "name",
            "description",
            "actions",
            "indexes",
            "expiresAt",
        ]
        .iter()
        .all(|field| key.get(*field).unwrap_or(&Value::Null) == &wanted[*field])
    }
}

/// Whether a key is one of a node's own default keys (a default key's name, another uid): each
/// node makes its own, which work on that node only.
pub fn is_node_default(key: &Value) -> bool {
    let name = key.get("name").and_then(Value::as_str);
    let uid = key.get("uid").and_then(Value::as_str);
    DEFAULT_KEYS
        .iter()
        .any(|d| Some(d.name) == name && Some(d.uid) != uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_own_default_keys_are_told_from_the_clusters() {
        let ours = DEFAULT_KEYS[3].body();
        assert!(!is_node_default(&ours));
        let node_own = json!({"uid": "0b3b5e4e-0000-4000-8000-000000000000", "name": "Default Search API Key"});
        assert!(is_node_default(&node_own));
        let client_key = json!({"uid": "0b3b5e4e-0000-4000-8000-000000000000", "name": "search"});
        assert!(!is_node_default(&client_key));
    }
}
