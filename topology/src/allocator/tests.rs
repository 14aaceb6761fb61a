#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeMap;

use super::balance;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

fn load(placed: &[Vec<String>]) -> BTreeMap<String, usize> {
    let mut load = BTreeMap::new();
    for node in placed.iter().flatten() {
        *load.entry(node.clone()).or_default() += 1;
    }
    load
}

fn place(shards: u32, rf: u32, nodes: &[(&str, u32)], current: &[Vec<String>]) -> Vec<Vec<String>> {
    let current: Vec<Vec<&str>> = current
        .iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    balance(shards, rf, nodes, &current).expect("placeable")
}

fn equal(ids: &[String]) -> Vec<(&str, u32)> {
    ids.iter().map(|n| (n.as_str(), 1)).collect()
}

/// Copies that are on a node now and were not before: what a change makes a job copy.
fn moved(before: &[Vec<String>], after: &[Vec<String>]) -> usize {
    after
        .iter()
        .zip(before)
        .map(|(a, b)| a.iter().filter(|n| !b.contains(n)).count())
        .sum()
}

fn assert_valid(placed: &[Vec<String>], shards: u32, rf: u32) {
    assert_eq!(placed.len(), shards as usize);
    for (shard, copies) in placed.iter().enumerate() {
        assert_eq!(copies.len(), rf as usize, "shard {shard}: {copies:?}");
        let mut unique = copies.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), copies.len(), "shard {shard} twice on a node");
    }
}

#[test]
fn every_node_is_within_one_copy_of_the_mean() {
    for nodes in 1..=9usize {
        for rf in 1..=3u32.min(nodes as u32) {
            for shards in [1u32, 7, 16, 64, 100] {
                let ids = names(nodes);
                let placed = place(shards, rf, &equal(&ids), &[]);
                assert_valid(&placed, shards, rf);
                let load = load(&placed);
                let max = load.values().max().copied().unwrap_or(0);
                let min = if load.len() < nodes {
                    0
                } else {
                    load.values().min().copied().unwrap_or(0)
                };
                assert!(
                    max - min <= 1,
                    "{nodes} nodes, rf {rf}, {shards} shards: {load:?}"
                );
            }
        }
    }
}

#[test]
fn sixteen_shards_over_three_nodes_is_six_five_five() {
    let placed = place(16, 1, &equal(&names(3)), &[]);
    let mut counts: Vec<usize> = load(&placed).into_values().collect();
    counts.sort();
    assert_eq!(counts, [5, 5, 6]);
}

#[test]
fn a_fourth_node_takes_exactly_its_share_and_nothing_else_moves() {
    for rf in [1u32, 2, 3] {
        let three = place(64, rf, &equal(&names(3)), &[]);
        let four = place(64, rf, &equal(&names(4)), &three);
        assert_valid(&four, 64, rf);
        // The optimum: the new node's quota, every copy of it new; nothing else moves.
        let optimum = (64 * rf as usize) / 4;
        assert_eq!(moved(&three, &four), optimum, "rf {rf}");
        assert!(four
            .iter()
            .zip(&three)
            .all(|(a, b)| a.iter().filter(|n| !b.contains(n)).all(|n| n == "n3")));
        let load = load(&four);
        assert!(load.values().all(|c| *c == optimum), "{load:?}");
    }
}

#[test]
fn draining_a_node_moves_only_its_copies() {
    let ids = names(4);
    let before = place(64, 2, &equal(&ids), &[]);
    let drained: Vec<(&str, u32)> = ids
        .iter()
        .map(|n| (n.as_str(), u32::from(n != "n1")))
        .collect();
    let after = place(64, 2, &drained, &before);
    assert_valid(&after, 64, 2);
    let held_by_n1 = load(&before)["n1"];
    assert_eq!(moved(&before, &after), held_by_n1);
    assert!(!load(&after).contains_key("n1"));
    let load = load(&after);
    assert!(
        load.values().max().unwrap() - load.values().min().unwrap() <= 1,
        "{load:?}"
    );
}

#[test]
fn a_balanced_map_is_left_alone() {
    let ids = names(5);
    let placed = place(64, 2, &equal(&ids), &[]);
    assert_eq!(place(64, 2, &equal(&ids), &placed), placed);
}

#[test]
fn the_same_inputs_give_the_same_map() {
    let ids = names(6);
    assert_eq!(
        place(64, 3, &equal(&ids), &[]),
        place(64, 3, &equal(&ids), &[])
    );
}

#[test]
fn weights_share_copies_in_proportion() {
    let nodes = [("big", 2), ("a", 1), ("b", 1)];
    let load = load(&place(64, 1, &nodes, &[]));
    assert_eq!(load["big"], 32);
    assert_eq!(load["a"] + load["b"], 32);
}

#[test]
fn a_raised_replication_factor_only_adds_copies() {
    let ids = names(4);
    let one = place(64, 1, &equal(&ids), &[]);
    let two = place(64, 2, &equal(&ids), &one);
    assert_valid(&two, 64, 2);
    assert!(two
        .iter()
        .zip(&one)
        .all(|(a, b)| b.iter().all(|n| a.contains(n))));
    assert_eq!(moved(&one, &two), 64);
}

#[test]
fn fewer_nodes_than_copies_is_refused() {
    let ids = names(2);
    let nodes = [(ids[0].as_str(), 1), (ids[1].as_str(), 0)];
    assert!(balance(8, 2, &nodes, &[]).is_err());
}

#[test]
fn a_lowered_replication_factor_mostly_drops_copies() {
    for nodes in [3usize, 4, 5] {
        let ids = names(nodes);
        let two = place(64, 2, &equal(&ids), &[]);
        let one = place(64, 1, &equal(&ids), &two);
        assert_valid(&one, 64, 1);
        // The drop is greedy, shard by shard: at most a copy or two still moves to rebalance.
        assert!(
            moved(&two, &one) <= 2,
            "{nodes} nodes: {} moved",
            moved(&two, &one)
        );
        let load = load(&one);
        assert!(
            load.values().max().unwrap() - load.values().min().unwrap() <= 1,
            "{load:?}"
        );
    }
}
