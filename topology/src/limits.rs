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

/// A size in Meilisearch's wording (its `byte-unit` "appropriate binary unit"):
/// `100_000_000` → `95.367431640625 MiB`.
pub fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
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
