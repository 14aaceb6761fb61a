//! Sizes the Envoy configuration (static or pushed over xDS) and the filter must agree on.

const MIB: u64 = 1024 * 1024;

/// Meilisearch's default `--http-payload-size-limit` (100 MB): the largest body a client may send.
/// Above it the filter answers Meilisearch's 413 `payload_too_large` before buffering more.
pub const PAYLOAD_LIMIT_BYTES: u64 = 100_000_000;

/// The filter buffers whole bodies, so the listener must hold the largest accepted one plus
/// headers and pipelined bytes; otherwise Envoy answers its own plain-text 413 first.
pub const LISTENER_BUFFER_LIMIT_BYTES: u64 = PAYLOAD_LIMIT_BYTES + 4 * MIB;

// Envoy's field is a u32.
const _: () = assert!(LISTENER_BUFFER_LIMIT_BYTES <= u32::MAX as u64);

/// Caps on the work one request may ask of the filter (a VM per Envoy worker, up to 1 GiB of
/// linear memory under Envoy's V8) and of the nodes. Each is refused with a Meilisearch-shaped
/// error naming the limit; none is configurable yet (see docs/api-compatibility.md, "Limits").
///
/// Queries in one `POST /multi-search` (federated or not). Each query of a non-federated request
/// is its own search over one replica group: Q queries make Q x nodes calls.
pub const MAX_MULTI_SEARCH_QUERIES: usize = 100;

/// `offset + limit` of a document listing (`GET /documents`, `POST /documents/fetch`): every node
/// of the group lists that many documents for the merge. Searches need no such cap: Meilisearch
/// clamps `offset + limit` to `pagination.maxTotalHits` (1000 by default).
pub const MAX_DOCUMENTS_WINDOW: u64 = 10_000;

/// Rows of one CSV payload, counted while parsing (a 100 MB body of one-byte rows would be 50
/// million parsed records).
pub const MAX_CSV_ROWS: usize = 1_000_000;

/// Follow-up rounds after a scattered search's first answers (exact facet counts, distinct
/// hits). Each kind of round stops earlier on its own; past this the merge answers with what it
/// has, as when those rounds run out.
pub const MAX_FOLLOW_UP_ROUNDS: u32 = 8;

/// Bodies at least this large are "large": admitted only within [`MAX_BUFFERED_BODY_BYTES`].
pub const LARGE_BODY_BYTES: u64 = MIB;

/// Large request bodies one VM (one Envoy worker) holds at once. A body is copied into the VM and
/// parsed, so each costs several times its size there; past this, a new large body is refused
/// with 503 and `Retry-After: 10` until others finish. One body is always admitted, so the largest
/// accepted payload ([`PAYLOAD_LIMIT_BYTES`]) still goes through an idle worker.
pub const MAX_BUFFERED_BODY_BYTES: u64 = 2 * PAYLOAD_LIMIT_BYTES;

/// A size in Meilisearch's wording (its `byte-unit` "appropriate binary unit"):
/// `100_000_000` → `95.367431640625 MiB`.
pub fn binary_size(bytes: u64) -> String {
    let mut value = bytes as f64;
    let mut unit = "B";
    for larger in ["KiB", "MiB", "GiB", "TiB", "PiB"] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = larger;
    }
    format!("{value} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_meilisearch() {
        assert_eq!(binary_size(PAYLOAD_LIMIT_BYTES), "95.367431640625 MiB");
        assert_eq!(binary_size(10 * MIB), "10 MiB");
        assert_eq!(binary_size(3), "3 B");
    }
}
