use serde_json::json;

use super::*;

#[test]
fn canonical_json_sorts_keys_at_every_level() {
    let a = json!({"b": 1, "a": {"y": [1, {"k": 2, "j": 3}], "x": "s"}});
    let b = json!({"a": {"x": "s", "y": [1, {"j": 3, "k": 2}]}, "b": 1});
    assert_eq!(canonical_json(&a), canonical_json(&b));
    assert_eq!(
        canonical_json(&a),
        r#"{"a":{"x":"s","y":[1,{"j":3,"k":2}]},"b":1}"#
    );
}

#[test]
fn same_model_same_hash() {
    let a = hash_model(&json!({"x": 1, "y": "two"}));
    let b = hash_model(&json!({"y": "two", "x": 1}));
    assert_eq!(a, b);
    assert_eq!(a.len(), 16);
    assert_ne!(a, hash_model(&json!({"x": 2, "y": "two"})));
}

#[test]
fn type_versions_ignore_order() {
    assert_eq!(
        type_version([("a", "1"), ("b", "2")]),
        type_version([("b", "2"), ("a", "1")])
    );
    assert_ne!(
        type_version([("a", "1"), ("b", "2")]),
        type_version([("a", "2"), ("b", "1")])
    );
}

#[test]
fn ecds_versions_name_the_epoch() {
    let v = ecds_version(42, "0123456789abcdef");
    assert_eq!(v, "epoch-42-0123456789abcdef");
    assert_eq!(epoch_of(&v), Some(42));
    for junk in [
        "42",
        "epoch-x-0123456789abcdef",
        "epoch-1-short",
        "",
        "epoch-1-0123456789abcdeg",
    ] {
        assert_eq!(epoch_of(junk), None, "{junk}");
    }
}
