use serde_json::json;

use super::*;

fn node(id: &str, group: &str) -> Node {
    Node {
        id: id.into(),
        address: "127.0.0.1:7700".into(),
        group: group.into(),
        state: NodeState::Active,
    }
}

fn topo(shards: u32, rf: u32, nodes: &[(&str, &str)]) -> Topology {
    Topology {
        epoch: 1,
        shards,
        shard_map: Default::default(),
        replication_factor: rf,
        nodes: nodes.iter().map(|(id, g)| node(id, g)).collect(),
    }
}

fn owner_ids(t: &Topology, shard: u32, group: &str) -> Vec<String> {
    t.owners(shard, group)
        .iter()
        .map(|n| n.id.clone())
        .collect()
}

/// Pinned values: the wasm32 build runs this same test (`make test-wasm`), so a target-dependent
/// hash or integer width fails on one of the two targets.
#[test]
fn pinned_vectors() {
    let shards: Vec<u32> = ["A", "B", "C", "1", "42", "movie-7"]
        .iter()
        .map(|k| shard_for_key(k, 16))
        .collect();
    assert_eq!(shards, [5, 3, 0, 8, 1, 9]);
    // The XXH3 test vector of Meilisearch's own sharding, to pin the hash function itself.
    assert_eq!(xxh3_64(b"ms0\xffA\xff"), 0x9a94_2012_b4bc_45bc);

    let t = topo(8, 2, &[("n0", "g"), ("n1", "g"), ("n2", "g"), ("n3", "g")]);
    let owners: Vec<Vec<String>> = (0..8).map(|s| owner_ids(&t, s, "g")).collect();
    let expected = [
        ["n2", "n1"],
        ["n3", "n0"],
        ["n3", "n0"],
        ["n1", "n2"],
        ["n2", "n1"],
        ["n3", "n0"],
        ["n2", "n1"],
        ["n0", "n3"],
    ];
    assert_eq!(
        owners,
        expected.map(|p| p.map(String::from).to_vec()).to_vec()
    );
}

#[test]
fn integer_and_string_ids_are_the_same_document() {
    assert_eq!(canonical_key(&json!(1)).as_deref(), Some("1"));
    assert_eq!(canonical_key(&json!("1")).as_deref(), Some("1"));
    assert_eq!(canonical_key(&json!(-7)).as_deref(), Some("-7"));
    assert_eq!(
        canonical_key(&json!(u64::MAX)).as_deref(),
        Some("18446744073709551615")
    );
    assert_eq!(canonical_key(&json!(1.5)), None);
    assert_eq!(canonical_key(&json!(null)), None);
    assert_eq!(canonical_key(&json!({"a": 1})), None);
}

#[test]
fn shards_spread_uniformly_over_nodes() {
    let t = topo(64, 1, &[("n0", "g"), ("n1", "g"), ("n2", "g")]);
    let mut counts = std::collections::BTreeMap::new();
    for shard in 0..64 {
        for owner in t.owners(shard, "g") {
            *counts.entry(owner.id.clone()).or_insert(0u32) += 1;
        }
    }
    // Within one shard of the mean (64 / 3).
    let mut held: Vec<u32> = counts.into_values().collect();
    held.sort_unstable();
    assert_eq!(held, [21, 21, 22]);
}

#[test]
fn keys_spread_uniformly_over_shards() {
    let mut counts = [0u32; 16];
    for i in 0..16_000 {
        let shard = shard_for_key(&format!("doc-{i}"), 16) as usize;
        if let Some(c) = counts.get_mut(shard) {
            *c += 1;
        }
    }
    for (shard, count) in counts.iter().enumerate() {
        assert!(
            (800..=1200).contains(count),
            "shard {shard} got {count} of 16000 keys"
        );
    }
}

fn pairs(t: &Topology) -> std::collections::BTreeSet<(u32, String)> {
    (0..t.shards)
        .flat_map(|s| {
            t.write_targets(s)
                .into_iter()
                .map(move |n| (s, n.id.clone()))
        })
        .collect()
}

/// `t` with its map recorded, then changed by `change` and rebalanced from that record.
fn rebalanced(t: &Topology, change: impl FnOnce(&mut Topology)) -> Topology {
    let mut next = t.clone().with_explicit_map().expect("placeable");
    change(&mut next);
    next.shard_map = next.balanced().expect("placeable");
    next
}

#[test]
fn adding_a_node_moves_only_its_share() {
    for rf in [1, 2] {
        let before = topo(64, rf, &[("n0", "g"), ("n1", "g"), ("n2", "g")]);
        let after = rebalanced(&before, |t| t.nodes.push(node("n3", "g")));
        let (b, a) = (pairs(&before), pairs(&after));
        // The optimum: a quarter of the copies, all of them onto the new node.
        assert_eq!(a.difference(&b).count(), b.len() / 4, "rf={rf}");
        for (shard, node) in a.difference(&b) {
            assert_eq!(node, "n3", "shard {shard} moved to old node {node}");
        }
    }
}

#[test]
fn removing_a_node_moves_only_its_shards() {
    for rf in [1, 2] {
        let before = topo(
            64,
            rf,
            &[("n0", "g"), ("n1", "g"), ("n2", "g"), ("n3", "g")],
        );
        let after = rebalanced(&before, |t| t.nodes.retain(|n| n.id != "n2"));
        for (shard, node) in pairs(&before).difference(&pairs(&after)) {
            assert_eq!(node, "n2", "shard {shard} left {node}, which stayed");
        }
    }
}

#[test]
fn copies_being_filled_or_replaced_take_writes_but_serve_no_reads() {
    let mut t = topo(4, 1, &[("n0", "g"), ("n1", "g")])
        .with_explicit_map()
        .expect("placeable");
    let owner = owner_ids(&t, 0, "g")[0].clone();
    let other = if owner == "n0" { "n1" } else { "n0" };
    let copies = &mut t.shard_map.groups.get_mut("g").expect("group")[0];
    copies[0].state = CopyState::Leaving;
    copies.push(ShardCopy {
        node: other.into(),
        state: CopyState::Copying,
    });
    assert!(t.validate().is_ok());
    assert!(t.owners(0, "g").is_empty());
    assert!(!t.is_complete("g"));
    let targets: Vec<&str> = t.write_targets(0).iter().map(|n| n.id.as_str()).collect();
    assert_eq!(targets, [owner.as_str(), other]);
    assert!(t.covering_set("g", 0).unavailable.contains(&0));

    let json = serde_json::to_string(&t).expect("json");
    let back: Topology = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, t);
}

#[test]
fn a_recorded_map_must_name_the_groups_nodes() {
    let t = topo(4, 1, &[("n0", "g"), ("n1", "g")])
        .with_explicit_map()
        .expect("placeable");
    let mut twice = t.clone();
    twice.shard_map.groups.get_mut("g").expect("group")[1] =
        vec![ShardCopy::active("n0"), ShardCopy::active("n0")];
    assert!(twice.validate().is_err());
    let mut none = t.clone();
    none.shard_map.groups.get_mut("g").expect("group")[2].clear();
    assert!(none.validate().is_err());
    let mut stranger = t.clone();
    stranger.shard_map.groups.get_mut("g").expect("group")[3] = vec![ShardCopy::active("x")];
    assert!(stranger.validate().is_err());
    let mut short = t;
    short.shard_map.groups.get_mut("g").expect("group").pop();
    assert!(short.validate().is_err());
}

#[test]
fn write_targets_cover_every_group() {
    let t = topo(
        8,
        1,
        &[("a0", "ga"), ("a1", "ga"), ("b0", "gb"), ("b1", "gb")],
    );
    for shard in 0..8 {
        let groups: Vec<String> = t
            .write_targets(shard)
            .iter()
            .map(|n| n.group.clone())
            .collect();
        assert_eq!(groups, ["ga", "gb"]);
    }
}

#[test]
fn covering_set_picks_one_active_owner_per_shard_and_rotates() {
    let mut t = topo(16, 2, &[("n0", "g"), ("n1", "g"), ("n2", "g")]);
    let first = t.covering_set("g", 0);
    let second = t.covering_set("g", 1);
    for set in [&first, &second] {
        let mut shards: Vec<u32> = set.assignments.values().flatten().copied().collect();
        shards.sort_unstable();
        assert_eq!(shards, (0..16).collect::<Vec<_>>());
        assert!(set.unavailable.is_empty());
    }
    assert_ne!(
        first, second,
        "successive searches should rotate over replicas"
    );

    t.nodes[1].state = NodeState::Failed;
    let set = t.covering_set("g", 0);
    assert!(!set.assignments.contains_key("n1"));
    assert_eq!(set.assignments.values().map(Vec::len).sum::<usize>(), 16);

    let single = topo(4, 1, &[("n0", "g")]);
    let mut failed = single.clone();
    failed.nodes[0].state = NodeState::Failed;
    assert_eq!(failed.covering_set("g", 0).unavailable, vec![0, 1, 2, 3]);
}

#[test]
fn rotation_is_the_remainder_and_wraps_with_the_counter() {
    assert_eq!(rotation(7, 3), 1);
    assert_eq!(rotation(7, 0), 0);
    assert_eq!(rotation(u64::MAX, 1), 0);
    // RF 2: 2^64 is even, so the pick for `u64::MAX` plus a shard wraps to the pick for 1 plus it.
    let t = topo(16, 2, &[("n0", "g"), ("n1", "g"), ("n2", "g")]);
    assert_eq!(t.covering_set("g", u64::MAX), t.covering_set("g", 1));
}
