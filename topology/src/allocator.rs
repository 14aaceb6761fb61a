//! The shard map's allocator: where every copy of every shard should be, balanced and moving as
//! little as possible.
//!
//! Each group is balanced on its own. A node's quota is its weighted share of the group's
//! `shards × rf` copies, so with equal weights every node is within one copy of the mean. The
//! copies a node already holds are kept up to its quota, so a change moves only the surplus: adding
//! a 4th node to 3 moves exactly the copies the new node needs, no copy from one old node to
//! another. Pure rendezvous hashing (the previous placement) left 16 shards over 3 nodes at 8, 6
//! and 2; it survives here only to break ties, so the result is the same on every target.

use std::collections::{BTreeMap, BTreeSet};

use xxhash_rust::xxh3::xxh3_64;

use crate::placement::weight;

/// Why a group cannot be placed.
pub(crate) type AllocError = String;

/// One group's placement: shard → the nodes holding its copies.
///
/// `nodes` are the group's nodes with their weights (0: drained, holds nothing); `current` the
/// copies held now (shard → nodes, copies being removed excluded). Copies on nodes that left or
/// weigh 0 are dropped; at most `rf` are kept per shard.
pub(crate) fn balance(
    shards: u32,
    rf: u32,
    nodes: &[(&str, u32)],
    current: &[Vec<&str>],
) -> Result<Vec<Vec<String>>, AllocError> {
    let eligible: Vec<(&str, u32)> = nodes.iter().copied().filter(|(_, w)| *w > 0).collect();
    let rf = rf as usize;
    if eligible.len() < rf {
        return Err(format!(
            "{} node(s) can hold copies, fewer than the replication factor {rf}",
            eligible.len()
        ));
    }
    let names: BTreeSet<&str> = eligible.iter().map(|(n, _)| *n).collect();
    let mut held: Vec<Vec<&str>> = (0..shards)
        .map(|shard| {
            let mut kept: Vec<&str> = Vec::new();
            for node in current.get(shard as usize).into_iter().flatten() {
                if names.contains(node) && !kept.contains(node) {
                    kept.push(node);
                }
            }
            kept
        })
        .collect();
    let mut count: BTreeMap<&str, usize> = names.iter().map(|n| (*n, 0)).collect();
    for node in held.iter().flatten() {
        if let Some(c) = count.get_mut(node) {
            *c = c.saturating_add(1);
        }
    }
    let quota = quotas(shards as usize, rf, &eligible, &count);

    // A shard with more copies than `rf` (the replication factor went down) gives up the copies
    // on the nodes furthest above their quota, so that the rest rarely has to move.
    for shard in 0..shards {
        let Some(copies) = held.get_mut(shard as usize) else {
            continue;
        };
        while copies.len() > rf {
            // Above quota first (by how far), then at or below it (the least short first).
            let surplus = |n: &str| {
                let have = count.get(n).copied().unwrap_or(0);
                let limit = quota.get(n).copied().unwrap_or(0);
                let gap = have.abs_diff(limit);
                if have > limit {
                    (true, gap)
                } else {
                    (false, usize::MAX.saturating_sub(gap))
                }
            };
            let Some(at) = (0..copies.len()).max_by_key(|i| {
                copies
                    .get(*i)
                    .map(|n| (surplus(n), std::cmp::Reverse(weight(shard, n))))
            }) else {
                break;
            };
            let node = copies.remove(at);
            if let Some(c) = count.get_mut(node) {
                *c = c.saturating_sub(1);
            }
        }
    }

    // A node above its quota gives up shards: first those that lost no other copy yet (so a
    // shard rarely needs two new copies where one node has room), then those it has the lowest
    // weight for.
    let mut lost = vec![0usize; shards as usize];
    for (node, limit) in &quota {
        let have = count.get(node).copied().unwrap_or(0);
        if have <= *limit {
            continue;
        }
        let mut mine: Vec<u32> = (0..shards)
            .filter(|s| held.get(*s as usize).is_some_and(|h| h.contains(node)))
            .collect();
        mine.sort_by_key(|s| (lost.get(*s as usize).copied(), weight(*s, node), *s));
        for shard in mine.into_iter().take(have.saturating_sub(*limit)) {
            if let Some(h) = held.get_mut(shard as usize) {
                h.retain(|n| n != node);
            }
            if let Some(l) = lost.get_mut(shard as usize) {
                *l = l.saturating_add(1);
            }
        }
        count.insert(node, *limit);
    }

    for shard in 0..shards {
        let at = shard as usize;
        while held.get(at).map_or(rf, Vec::len) < rf {
            let holds = |n: &str, held: &[Vec<&str>]| held.get(at).is_some_and(|h| h.contains(&n));
            let deficit = |n: &str, count: &BTreeMap<&str, usize>| {
                quota
                    .get(n)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(count.get(n).copied().unwrap_or(0))
            };
            let pick = names
                .iter()
                .copied()
                .filter(|n| !holds(n, &held) && deficit(n, &count) > 0)
                .max_by_key(|n| (deficit(n, &count), weight(shard, n)));
            let node = match pick {
                Some(n) => n,
                None => match swap(shard, &names, &quota, &mut held, &mut count) {
                    Some(n) => n,
                    // Unequal weights can leave no balanced choice: the least loaded node.
                    None => match names
                        .iter()
                        .copied()
                        .filter(|n| !holds(n, &held))
                        .min_by_key(|n| (count.get(n).copied().unwrap_or(0), weight(shard, n)))
                    {
                        Some(n) => n,
                        None => break,
                    },
                },
            };
            if let Some(h) = held.get_mut(at) {
                h.push(node);
            }
            let c = count.entry(node).or_default();
            *c = c.saturating_add(1);
        }
    }
    Ok(held
        .into_iter()
        .map(|h| h.into_iter().map(str::to_string).collect())
        .collect())
}

/// Every node's share of `shards × rf` copies, by weight, never more than one per shard. The
/// copies left over by rounding down go first to the nodes that already hold the most (so they
/// need not move), then to the largest remainders, then by a hash of the node id.
fn quotas<'a>(
    shards: usize,
    rf: usize,
    eligible: &[(&'a str, u32)],
    count: &BTreeMap<&'a str, usize>,
) -> BTreeMap<&'a str, usize> {
    let total = (shards as u128).saturating_mul(rf as u128);
    let sum: u128 = eligible
        .iter()
        .map(|(_, w)| u128::from(*w))
        .sum::<u128>()
        .max(1);
    let mut quota: BTreeMap<&str, usize> = BTreeMap::new();
    let mut remainder: Vec<(&str, u128)> = Vec::new();
    for (node, w) in eligible {
        let share = total.saturating_mul(u128::from(*w));
        let whole = usize::try_from(share.checked_div(sum).unwrap_or(0))
            .unwrap_or(usize::MAX)
            .min(shards);
        quota.insert(node, whole);
        remainder.push((node, share.checked_rem(sum).unwrap_or(0)));
    }
    remainder.sort_by(|(a, ra), (b, rb)| {
        let held = |n: &str| count.get(n).copied().unwrap_or(0);
        held(b)
            .cmp(&held(a))
            .then(rb.cmp(ra))
            .then(xxh3_64(b.as_bytes()).cmp(&xxh3_64(a.as_bytes())))
            .then(a.cmp(b))
    });
    let mut left = usize::try_from(total)
        .unwrap_or(usize::MAX)
        .saturating_sub(quota.values().sum());
    while left > 0 {
        let before = left;
        for (node, _) in &remainder {
            if left == 0 {
                break;
            }
            if let Some(q) = quota.get_mut(node) {
                if *q < shards {
                    *q = q.saturating_add(1);
                    left = left.saturating_sub(1);
                }
            }
        }
        if left == before {
            break;
        }
    }
    quota
}

/// When every node short of its quota already holds `shard`: a full node that lacks `shard`
/// hands one of its shards to the short node, and takes `shard` instead. Returns that full node.
fn swap<'a>(
    shard: u32,
    names: &BTreeSet<&'a str>,
    quota: &BTreeMap<&'a str, usize>,
    held: &mut [Vec<&'a str>],
    count: &mut BTreeMap<&'a str, usize>,
) -> Option<&'a str> {
    let has = |held: &[Vec<&str>], s: usize, n: &str| held.get(s).is_some_and(|h| h.contains(&n));
    let short = names
        .iter()
        .copied()
        .find(|n| count.get(n).copied().unwrap_or(0) < quota.get(n).copied().unwrap_or(0))?;
    for full in names.iter().copied() {
        if full == short || has(held, shard as usize, full) {
            continue;
        }
        let given = (0..held.len()).find(|t| has(held, *t, full) && !has(held, *t, short));
        if let Some(t) = given {
            if let Some(h) = held.get_mut(t) {
                h.retain(|n| *n != full);
                h.push(short);
            }
            let c = count.entry(short).or_default();
            *c = c.saturating_add(1);
            let c = count.entry(full).or_default();
            *c = c.saturating_sub(1);
            return Some(full);
        }
    }
    None
}

#[cfg(test)]
mod tests;
