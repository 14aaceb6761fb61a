#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;

use super::*;

/// A node holding one value per document: what it answers, cut to `k` by count (ties by value).
fn answer(node: &BTreeMap<&str, u64>, k: usize, keep: impl Fn(&str) -> bool) -> Vec<(String, u64)> {
    let mut list: Vec<(String, u64)> = node
        .iter()
        .filter(|(v, c)| **c > 0 && keep(v))
        .map(|(v, c)| (v.to_string(), *c))
        .collect();
    list.sort_by(|(a, ca), (b, cb)| cb.cmp(ca).then(a.cmp(b)));
    list.truncate(k);
    list
}

/// Runs every round against nodes holding these counts; returns the merged top `k`.
fn refined(nodes: &[BTreeMap<&str, u64>], k: usize) -> (Vec<(String, u64)>, usize) {
    let lists: Vec<Option<Vec<(String, u64)>>> =
        nodes.iter().map(|n| Some(answer(n, k, |_| true))).collect();
    let mut race = Race::new(k, &lists);
    let mut asked = 0;
    loop {
        let probes = race.probes();
        if probes.is_empty() {
            break;
        }
        for (node, probe) in probes {
            asked += 1;
            let list = match &probe {
                Probe::Count(values) => answer(&nodes[node], k, |v| values.iter().any(|x| x == v)),
                Probe::Next(values) => answer(&nodes[node], k, |v| !values.iter().any(|x| x == v)),
            };
            race.accept(node, &probe, Some(&list));
        }
    }
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for list in lists.iter().flatten() {
        for (v, c) in list {
            *sums.entry(v.clone()).or_default() += c;
        }
    }
    for (_, v, c) in race.learned() {
        *sums.entry(v).or_default() += c;
    }
    let mut top: Vec<(String, u64)> = sums.into_iter().collect();
    top.sort_by(|(a, ca), (b, cb)| cb.cmp(ca).then(a.cmp(b)));
    top.truncate(k);
    (top, asked)
}

fn truth(nodes: &[BTreeMap<&str, u64>], k: usize) -> Vec<(String, u64)> {
    let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
    for node in nodes {
        for (v, c) in node {
            *sums.entry(v).or_default() += c;
        }
    }
    answer(&sums, k, |_| true)
}

fn node(pairs: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
    pairs.iter().copied().collect()
}

#[test]
fn a_value_every_node_cut_is_found_and_counted() {
    // `c` is third on every node, first overall.
    let nodes = [
        node(&[("a", 10), ("b", 9), ("c", 8)]),
        node(&[("d", 10), ("e", 9), ("c", 8)]),
        node(&[("f", 10), ("g", 9), ("c", 8)]),
    ];
    let (top, _) = refined(&nodes, 2);
    assert_eq!(top, truth(&nodes, 2));
    assert_eq!(top[0], ("c".to_string(), 24));
}

#[test]
fn counts_a_node_cut_are_added() {
    let nodes = [
        node(&[("x", 30), ("y", 20), ("z", 1)]),
        node(&[("x", 2), ("w", 9), ("v", 8), ("y", 7)]),
    ];
    let (top, _) = refined(&nodes, 2);
    assert_eq!(top, vec![("x".to_string(), 32), ("y".to_string(), 27)]);
    assert_eq!(top, truth(&nodes, 2));
}

#[test]
fn uniform_counts_over_many_values_come_out_as_one_node_counts_them() {
    // 40 values over 3 nodes with close counts: the hardest case for cut lists.
    let counts: Vec<Vec<u64>> = (0..3u64)
        .map(|n| (0..40u64).map(|v| 20 + (v * 7 + n * 13) % 11).collect())
        .collect();
    let names: Vec<String> = (0..40).map(|v| format!("studio-{v:02}")).collect();
    let nodes: Vec<BTreeMap<&str, u64>> = counts
        .iter()
        .map(|c| names.iter().zip(c).map(|(n, c)| (n.as_str(), *c)).collect())
        .collect();
    for k in [1, 4, 10] {
        assert_eq!(refined(&nodes, k).0, truth(&nodes, k), "k = {k}");
    }
}

#[test]
fn nothing_is_asked_when_no_node_cut_its_list() {
    let nodes = [node(&[("a", 3), ("b", 1)]), node(&[("a", 1)])];
    let (top, asked) = refined(&nodes, 4);
    assert_eq!(top, truth(&nodes, 4));
    assert_eq!(asked, 0);
}

#[test]
fn a_value_below_the_last_place_is_not_asked_for() {
    // `z` cannot reach `a` (50) whatever the first node holds: at most 5 + 40.
    let nodes = [
        node(&[("a", 50), ("b", 40), ("z", 2)]),
        node(&[("c", 60), ("z", 5)]),
    ];
    let lists: Vec<Option<Vec<(String, u64)>>> =
        nodes.iter().map(|n| Some(answer(n, 2, |_| true))).collect();
    let mut race = Race::new(2, &lists);
    let probes = race.probes();
    assert!(!probes.is_empty());
    assert!(probes
        .iter()
        .all(|(_, p)| !matches!(p, Probe::Count(v) if v.contains(&"z".to_string()))));
    assert_eq!(refined(&nodes, 2).0, truth(&nodes, 2));
}

#[test]
fn an_answer_cut_by_other_values_is_asked_again_alone() {
    // One value per document is not given: `other` crowds the asked values out of a cut answer.
    let mut race = Race::new(
        1,
        &[Some(vec![("a".into(), 5)]), Some(vec![("b".into(), 5)])],
    );
    let probes = race.probes();
    let (node, probe) = probes
        .iter()
        .find(|(n, p)| *n == 0 && matches!(p, Probe::Count(_)))
        .cloned()
        .unwrap();
    race.accept(node, &probe, Some(&[("other".to_string(), 9)]));
    let again = race.probes();
    assert!(again.contains(&(0, Probe::Count(vec!["b".to_string()]))));
}

#[test]
fn values_are_matched_as_meilisearch_normalizes_them() {
    let mut race = Race::new(
        1,
        &[
            Some(vec![("Drama".into(), 5)]),
            Some(vec![("comedy".into(), 6)]),
        ],
    );
    let probes = race.probes();
    assert!(probes.contains(&(1, Probe::Count(vec!["Drama".to_string()]))));
    race.accept(
        1,
        &Probe::Count(vec!["Drama".into()]),
        Some(&[("drama".to_string(), 4)]),
    );
    assert!(race.learned().contains(&(1, "Drama".to_string(), 4)));
}

#[test]
fn probe_filters_quote_any_text() {
    assert_eq!(
        probe_filter(
            "director.name",
            &Probe::Count(vec!["Ada \"A\" Moss".into(), r"back\slash".into()])
        ),
        r#""director.name" IN ["Ada \"A\" Moss", "back\\slash"]"#
    );
    assert_eq!(
        probe_filter("year", &Probe::Next(vec!["1990".into()])),
        r#""year" NOT IN ["1990"]"#
    );
}
