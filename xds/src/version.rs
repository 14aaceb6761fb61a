//! Versions derived from the model, never from encoded protobuf bytes: envoy-types holds proto
//! maps in `HashMap`s, so the same resource does not always encode to the same bytes.

use serde::Serialize;
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

/// Bumped when the way resources are built changes, so a new control plane binary with the same
/// model still pushes its different resources.
const BUILD_SCHEMA: u32 = 1;

/// JSON with object keys sorted at every level and no whitespace: one text per value whatever
/// the field order of the structs (serde_json here preserves insertion order).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// 16 hex digits of XXH3-64 over the canonical JSON of `model`.
pub fn hash_model<T: Serialize + ?Sized>(model: &T) -> String {
    let value = serde_json::to_value(model).unwrap_or(Value::Null);
    let text = canonical_json(&serde_json::json!({"schema": BUILD_SCHEMA, "model": value}));
    format!("{:016x}", xxh3_64(text.as_bytes()))
}

/// The version of a whole type: a hash over its resources' (name, version) pairs, sorted by name.
pub fn type_version<'a>(resources: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = resources.into_iter().collect();
    pairs.sort();
    hash_model(&pairs)
}

/// ECDS versions name the epoch, so the epoch an Envoy runs is read off its ACK.
pub fn ecds_version(epoch: u64, hash16: &str) -> String {
    format!("epoch-{epoch}-{hash16}")
}

/// The epoch in an ECDS version made by [`ecds_version`].
pub fn epoch_of(ecds_version: &str) -> Option<u64> {
    let rest = ecds_version.strip_prefix("epoch-")?;
    let (epoch, hash) = rest.split_once('-')?;
    if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    epoch.parse().ok()
}

#[cfg(test)]
mod tests;
