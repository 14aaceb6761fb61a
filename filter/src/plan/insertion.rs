//! Phases numbers stamped on documents when they are written (`_miroir_seq`).
//!
//! One Meilisearch node breaks exact ranking ties by internal document id, which follows insertion
//! order. Shards cannot share internal ids, so each document carries its insertion order and the
//! merge breaks ties with it. Numbers come from the clock (milliseconds since 2020, shifted to
//! leave room for a batch per millisecond) and never repeat or go back within one Envoy; between
//! Envoys they follow their clocks.

use crate::host::Host;

const NEXT_KEY: &str = "miroir/seq/next";
/// 2020-01-01T00:00:00Z in Unix milliseconds.
const EPOCH_MS: u64 = 1_577_836_800_000;
const PER_MS_SHIFT: u32 = 20;
const CAS_ATTEMPTS: usize = 64;

/// The first of `count` consecutive numbers reserved for one batch.
pub fn allocate(host: &mut dyn Host, count: u64) -> u64 {
    let clock = host.now_ms().saturating_sub(EPOCH_MS) << PER_MS_SHIFT;
    for _ in 0..CAS_ATTEMPTS {
        let (value, cas) = host.shared_get(NEXT_KEY);
        let next = value
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        let first = next.max(clock);
        let following = first.saturating_add(count);
        if host.shared_set(NEXT_KEY, following.to_string().as_bytes(), cas) {
            return first;
        }
    }
    // Contention this long is not expected; a repeated number only weakens a tie-break.
    clock
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::MockHost;

    #[test]
    fn batches_get_disjoint_increasing_ranges_even_within_one_millisecond() {
        let mut host = MockHost::default();
        let a = allocate(&mut host, 3);
        let b = allocate(&mut host, 2);
        assert!(b >= a + 3, "{a} {b}");
        assert!(a >= (host.now_ms() - EPOCH_MS) << PER_MS_SHIFT);
    }
}
