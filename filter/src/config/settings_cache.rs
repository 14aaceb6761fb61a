//! An index's settings as searches need them (faceting, distinct attribute), kept briefly in
//! Envoy's shared data so that most searches do not read them first.
//!
//! A change made through this Envoy drops the entry at once; one made through another Envoy is
//! seen within [`TTL_MS`].

use serde_json::{json, Value};

use crate::host::Host;

pub const TTL_MS: u64 = 2_000;

fn key(index: &str) -> String {
    format!("miroir/settings/{index}")
}

pub fn get(host: &dyn Host, index: &str) -> Option<Value> {
    let bytes = host.shared_get(&key(index)).0?;
    let entry: Value = serde_json::from_slice(&bytes).ok()?;
    let at = entry.get("at")?.as_u64()?;
    (host.now_ms().saturating_sub(at) < TTL_MS).then(|| entry.get("settings").cloned())?
}

/// The settings a search follows; the rest (synonyms, stop words, embedders…) is not kept, so
/// that every search parses only these.
const FOLLOWED: &[&str] = &[
    "displayedAttributes",
    "distinctAttribute",
    "faceting",
    "filterableAttributes",
    "pagination",
    "rankingRules",
];

pub fn put(host: &mut dyn Host, index: &str, settings: &Value) {
    let followed: serde_json::Map<String, Value> = FOLLOWED
        .iter()
        .filter_map(|k| Some(((*k).to_string(), settings.get(*k)?.clone())))
        .collect();
    let entry = json!({"at": host.now_ms(), "settings": followed});
    if let Ok(bytes) = serde_json::to_vec(&entry) {
        host.shared_set(&key(index), &bytes, 0);
    }
}

pub fn forget(host: &mut dyn Host, index: &str) {
    host.shared_set(&key(index), b"", 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::MockHost;

    #[test]
    fn entries_are_served_until_forgotten() {
        let mut host = MockHost::default();
        assert_eq!(get(&host, "movies"), None);
        put(&mut host, "movies", &json!({"distinctAttribute": "family"}));
        assert_eq!(
            get(&host, "movies"),
            Some(json!({"distinctAttribute": "family"}))
        );
        forget(&mut host, "movies");
        assert_eq!(get(&host, "movies"), None);
    }
}
