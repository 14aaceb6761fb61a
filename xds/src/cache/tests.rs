use envoy_types::pb::google::protobuf::Any;

use super::*;

fn res(name: &str, version: &str) -> Resource {
    Resource {
        name: name.into(),
        version: version.into(),
        body: Any {
            type_url: "t".into(),
            value: format!("{name}@{version}").into_bytes(),
        },
    }
}

#[test]
fn type_version_ignores_build_order() {
    let a = TypeResources::new([res("a", "1"), res("b", "2")]);
    let b = TypeResources::new([res("b", "2"), res("a", "1")]);
    assert_eq!(a.version(), b.version());
    let c = TypeResources::new([res("a", "1"), res("b", "3")]);
    assert_ne!(a.version(), c.version());
}

#[test]
fn union_keeps_old_and_takes_newer_on_collision() {
    let old = TypeResources::new([res("a", "1"), res("b", "1")]);
    let new = TypeResources::new([res("b", "2"), res("c", "1")]);
    let union = old.union(&new);
    assert_eq!(union.names().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(union.get("b").map(|r| r.version.as_str()), Some("2"));
    assert_eq!(
        union.version(),
        TypeResources::new([res("a", "1"), res("b", "2"), res("c", "1")]).version()
    );
}

#[test]
fn select_by_names_or_wildcard() {
    let all = TypeResources::new([res("a", "1"), res("b", "1")]);
    assert_eq!(all.select(&[], true).len(), 2);
    assert_eq!(all.select(&["b".into(), "zz".into()], false).len(), 1);
    assert!(all.select(&[], false).is_empty());
}

#[test]
fn generations_move_only_with_versions() {
    let mut cache = SnapshotCache::new();
    assert!(cache.snapshot("any").is_none());
    let s1 = cache.set_default(
        Snapshot::new()
            .with("cds", TypeResources::new([res("a", "1")]))
            .with("lds", TypeResources::new([res("l", "1")])),
    );
    let r1 = cache.revision();
    let s2 = cache.set_default(
        Snapshot::new()
            .with("cds", TypeResources::new([res("a", "2")]))
            .with("lds", TypeResources::new([res("l", "1")])),
    );
    assert!(cache.revision() > r1);
    assert_eq!(s1.generation("lds"), s2.generation("lds"));
    assert_ne!(s1.generation("cds"), s2.generation("cds"));
    // Back to the first version: a new generation, not the old one.
    let s3 = cache.set_default(
        Snapshot::new()
            .with("cds", TypeResources::new([res("a", "1")]))
            .with("lds", TypeResources::new([res("l", "1")])),
    );
    assert!(s3.same_content(&s1));
    assert_ne!(s3.generation("cds"), s1.generation("cds"));
    assert_ne!(s3.generation("cds"), s2.generation("cds"));
}

#[test]
fn groups_fall_back_to_the_default() {
    let mut cache = SnapshotCache::new();
    cache.set_default(Snapshot::new().with("cds", TypeResources::new([res("d", "1")])));
    cache.set_snapshot(
        node_group("canary"),
        Snapshot::new().with("cds", TypeResources::new([res("c", "1")])),
    );
    let names = |cache: &SnapshotCache, group: &str| {
        cache
            .snapshot(group)
            .unwrap()
            .get("cds")
            .unwrap()
            .names()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&cache, "canary"), ["c"]);
    assert_eq!(names(&cache, "miroir"), ["d"]);
    cache.clear_snapshot("canary");
    assert_eq!(names(&cache, "canary"), ["d"]);
}
