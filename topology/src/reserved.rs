//! The fields Miroir stamps on every stored document, and how their values are written.
//!
//! Values are strings made only of separator characters. Meilisearch's tokenizer makes no word of
//! them, so a query never matches them (a number would be indexed as a word, and `3` or `1*` would
//! find documents by their shard), while filters still compare them exactly as facet strings.
//! Each value has a fixed width; values are decoded before they are compared.

/// The shard a document was hashed to; searches keep each node to its shards with it.
pub const SHARD_FIELD: &str = "_miroir_shard";
/// When the document was first written, cluster-wide order: breaks exact ties between shards the
/// way one node breaks them (by insertion order).
pub const SEQ_FIELD: &str = "_miroir_seq";
/// The write that made the document what it is, cluster-wide order (restamped by every write,
/// partial updates too): copies that applied two writes of one id in different orders converge
/// on the later one (anti-entropy, docs/architecture.md "Replication").
pub const VERSION_FIELD: &str = "_miroir_version";
/// Every field Miroir manages: refused in client documents, hidden from every response.
pub const RESERVED_FIELDS: [&str; 3] = [SHARD_FIELD, SEQ_FIELD, VERSION_FIELD];

/// Eight separators of Meilisearch's default set that need no escaping inside a quoted filter
/// value. An index must not declare them `nonSeparatorTokens`.
const DIGITS: [char; 8] = ['.', ',', ';', '!', '?', '(', ')', '|'];
const SHARD_WIDTH: usize = 4; // 8^4 = 4096 = MAX_SHARDS
const SEQ_WIDTH: usize = 22; // 8^22 > u64::MAX

/// Each reserved field and the stand-in a client filter naming it is sent with (same length, so
/// a node's error quotes it at the same positions; no document holds it, no setting may name it).
pub const STAND_INS: [(&str, &str); 3] = [
    (SHARD_FIELD, "_miroir-shard"),
    (SEQ_FIELD, "_miroir-seq"),
    (VERSION_FIELD, "_miroir-version"),
];

/// A node's message with the stand-ins written back as the reserved names the client wrote;
/// `None` when it holds none.
pub fn restore_stand_ins(message: &str) -> Option<String> {
    if !STAND_INS
        .iter()
        .any(|(_, stand_in)| message.contains(stand_in))
    {
        return None;
    }
    Some(
        STAND_INS
            .iter()
            .fold(message.to_string(), |t, (field, stand_in)| {
                t.replace(stand_in, field)
            }),
    )
}

pub fn is_reserved(field: &str) -> bool {
    RESERVED_FIELDS.contains(&field)
}

/// Removes Miroir's fields from a document, a hit or a field distribution.
pub fn strip(fields: &mut serde_json::Map<String, serde_json::Value>) {
    for field in RESERVED_FIELDS {
        fields.shift_remove(field);
    }
}

/// The sequence number stamped on a document or hit, if any.
pub fn seq_of(doc: &serde_json::Value) -> Option<u64> {
    doc.get(SEQ_FIELD)
        .and_then(serde_json::Value::as_str)
        .and_then(decode_seq)
}

/// The version stamped on a stored document, if any (documents written before versions: none).
pub fn version_of(doc: &serde_json::Value) -> Option<u64> {
    doc.get(VERSION_FIELD)
        .and_then(serde_json::Value::as_str)
        .and_then(decode_seq)
}

fn encode(mut value: u64, width: usize) -> String {
    let mut digits = vec!['.'; width];
    for slot in digits.iter_mut().rev() {
        *slot = DIGITS.get((value % 8) as usize).copied().unwrap_or('.');
        value /= 8;
    }
    digits.into_iter().collect()
}

fn decode(text: &str, width: usize) -> Option<u64> {
    if text.chars().count() != width {
        return None;
    }
    text.chars().try_fold(0u64, |acc, c| {
        let digit = DIGITS.iter().position(|d| *d == c)? as u64;
        acc.checked_mul(8)?.checked_add(digit)
    })
}

pub fn encode_shard(shard: u32) -> String {
    encode(u64::from(shard), SHARD_WIDTH)
}

pub fn decode_shard(text: &str) -> Option<u32> {
    decode(text, SHARD_WIDTH).and_then(|v| u32::try_from(v).ok())
}

pub fn encode_seq(seq: u64) -> String {
    encode(seq, SEQ_WIDTH)
}

pub fn decode_seq(text: &str) -> Option<u64> {
    decode(text, SEQ_WIDTH)
}

/// The filter that keeps a node to the shards it was picked for.
pub fn shard_filter(shards: &[u32]) -> String {
    let list: Vec<String> = shards
        .iter()
        .map(|s| format!("\"{}\"", encode_shard(*s)))
        .collect();
    format!("{SHARD_FIELD} IN [{}]", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_keep_numeric_order_as_strings() {
        for shard in [0, 1, 7, 8, 63, 4095] {
            assert_eq!(decode_shard(&encode_shard(shard)), Some(shard));
        }
        for seq in [0, 1, 1 << 40, u64::MAX - 1, u64::MAX] {
            assert_eq!(decode_seq(&encode_seq(seq)), Some(seq));
        }
        assert_eq!(encode_shard(0), "....");
        assert_eq!(encode_shard(9), "..,,");
    }

    #[test]
    fn values_hold_no_word_characters() {
        for v in [encode_shard(4095), encode_seq(u64::MAX)] {
            assert!(v
                .chars()
                .all(|c| !c.is_alphanumeric() && c != '"' && c != '\\'));
        }
    }

    #[test]
    fn the_shard_filter_quotes_every_value() {
        assert_eq!(
            shard_filter(&[0, 9]),
            r#"_miroir_shard IN ["....", "..,,"]"#
        );
    }
}
