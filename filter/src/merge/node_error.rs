//! A node's error worded as one Meilisearch node holding the whole index would word it. Nodes
//! know two things a client must not see: `_miroir_shard` is filterable on every node (so nodes
//! list it among the filterable attributes), and each node's filter ends with the shard
//! restriction Miroir ANDed to the client's (so a filter error may quote it).

use miroir_topology::{is_reserved, SHARD_FIELD};
use serde_json::{Map, Value};

/// The body a client gets for a node's error body: the node's bytes unless the message had to be
/// reworded.
pub fn scrub(body: Vec<u8>) -> Vec<u8> {
    let Ok(mut error) = serde_json::from_slice::<Map<String, Value>>(&body) else {
        return body;
    };
    let Some(Value::String(message)) = error.get_mut("message") else {
        return body;
    };
    let Some(clean) = scrub_message(message) else {
        return body;
    };
    *message = clean;
    serde_json::to_vec(&error).unwrap_or(body)
}

/// The message one node would have written, or `None` when the node's needs no change.
pub fn scrub_message(message: &str) -> Option<String> {
    let without_restriction = drop_shard_restriction(message);
    let text = without_restriction.as_deref().unwrap_or(message);
    let scrubbed = hide_reserved_in_lists(text).or(without_restriction);
    // A client filter naming a reserved field was sent with stand-ins (`reserved_refs`).
    let text = scrubbed.as_deref().unwrap_or(message);
    crate::request::reserved_refs::restore(text).or(scrubbed)
}

/// A filter error ends with a line `start:end filter` quoting the node's whole filter, which
/// (as Meilisearch renders an array filter) is the client's filter, then ` AND ` and the shard
/// restriction. One node would quote the client's filter alone; a client filter that was one
/// `AND`/`OR` group is then not wrapped in parentheses either, so positions move back by one.
fn drop_shard_restriction(message: &str) -> Option<String> {
    let (head, start, end, filter) = position_line(message)?;
    let client = strip_restriction(filter)?;
    let (client, shift) = match unwrap_group(client) {
        Some(inner) => (inner, 1),
        None => (client, 0),
    };
    // A span beyond the client's filter points into the restriction: not the client's error.
    if end
        > client
            .chars()
            .count()
            .saturating_add(shift)
            .saturating_add(1)
    {
        return None;
    }
    let (start, end) = (start.checked_sub(shift)?, end.checked_sub(shift)?);
    Some(format!("{head}\n{start}:{end} {client}"))
}

/// Splits `head\nstart:end filter` at the first line break followed by such a position.
fn position_line(message: &str) -> Option<(&str, usize, usize, &str)> {
    message.match_indices('\n').find_map(|(at, _)| {
        let head = message.get(..at)?;
        let line = message.get(at.saturating_add(1)..)?;
        let (span, filter) = line.split_once(' ')?;
        let (start, end) = span.split_once(':')?;
        Some((head, start.parse().ok()?, end.parse().ok()?, filter))
    })
}

/// The filter without a trailing ` AND _miroir_shard IN [...]` (attribute quoted or not, the
/// restriction in parentheses as Meilisearch 1.50 renders each element of an array filter, or
/// bare), if it has one. Shard values are quoted separator characters, which never include `]`.
fn strip_restriction(filter: &str) -> Option<&str> {
    [
        (format!(" AND (\"{SHARD_FIELD}\" IN ["), "])"),
        (format!(" AND \"{SHARD_FIELD}\" IN ["), "]"),
        (format!(" AND {SHARD_FIELD} IN ["), "]"),
    ]
    .iter()
    .find_map(|(marker, close)| {
        let at = filter.rfind(marker.as_str())?;
        let values = filter
            .get(at.saturating_add(marker.len())..)?
            .strip_suffix(close)?;
        values
            .chars()
            .all(|c| c == '"' || c == ' ' || ".,;!?()|".contains(c))
            .then(|| filter.get(..at))
            .flatten()
    })
}

/// The inside of `(...)` when the parenthesis opening the text is the one closing it.
fn unwrap_group(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let mut depth = 0usize;
    let mut quote = None;
    let mut escaped = false;
    for c in inner.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' => depth = depth.saturating_add(1),
                // The opening parenthesis closes inside: `(a) AND (b)` is not one group.
                ')' => depth = depth.checked_sub(1)?,
                _ => {}
            },
        }
    }
    (depth == 0 && quote.is_none()).then_some(inner)
}

/// Removes Miroir's fields from the attribute lists of messages (`... are: `a`, `b`.` or
/// `... are: `a, b`.`). A list left empty reads as one node says it has none.
fn hide_reserved_in_lists(message: &str) -> Option<String> {
    const INTRO: &str = " are: ";
    let mut out = String::new();
    let mut rest = message;
    let mut changed = false;
    while let Some(at) = rest.find(INTRO) {
        let (before, after) = rest.split_at(at.saturating_add(INTRO.len()));
        let Some(list) = AttributeList::parse(after) else {
            out.push_str(before);
            rest = after;
            continue;
        };
        let after_list = after.get(list.len..).unwrap_or_default();
        if !list.items.iter().any(|item| is_reserved(item)) {
            out.push_str(before);
            out.push_str(after.get(..list.len).unwrap_or_default());
            rest = after_list;
            continue;
        }
        changed = true;
        let kept: Vec<&str> = list
            .items
            .iter()
            .copied()
            .filter(|item| !is_reserved(item))
            .collect();
        let sentence_start = before.rfind("Available ");
        let none = sentence_start
            .and_then(|s| before.get(s.saturating_add("Available ".len())..at))
            .and_then(no_attributes_sentence);
        match (kept.iter().all(|k| *k == HIDDEN), none, sentence_start) {
            (true, Some(none), Some(s)) if after_list.starts_with('.') => {
                out.push_str(before.get(..s).unwrap_or_default());
                out.push_str(none);
                rest = after_list.get(1..).unwrap_or_default();
            }
            _ => {
                out.push_str(before);
                out.push_str(&list.render(&kept));
                rest = after_list;
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Meilisearch's marker for filterable attributes the key may not see.
const HIDDEN: &str = "<..hidden-attributes>";

/// What one node says instead of `Available <what> are: ...` when it has none.
fn no_attributes_sentence(what: &str) -> Option<&'static str> {
    match what {
        "filterable attribute patterns" | "filterable attributes patterns" => {
            Some("This index does not have configured filterable attributes.")
        }
        "facet-searchable attributes patterns" => {
            Some("This index does not have configured facet-searchable attributes.")
        }
        "sortable attributes" => Some("This index does not have configured sortable attributes."),
        _ => None,
    }
}

/// A list of attribute names in backticks: each quoted (`` `a`, `b` ``), or all in one
/// (`` `a, b` ``).
struct AttributeList<'a> {
    items: Vec<&'a str>,
    quoted_each: bool,
    /// Bytes of the message the list spans.
    len: usize,
}

impl<'a> AttributeList<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let mut spans = Vec::new();
        let mut at = 0;
        loop {
            let open = text.get(at..)?.strip_prefix('`')?;
            let close = open.find('`')?;
            spans.push(open.get(..close)?);
            // Past the list item and the two backticks around it.
            at = at.saturating_add(close).saturating_add(2);
            match text.get(at..) {
                Some(next) if next.starts_with(", `") => at = at.saturating_add(2),
                _ => break,
            }
        }
        Some(AttributeList {
            quoted_each: spans.len() > 1,
            items: spans.iter().flat_map(|s| s.split(", ")).collect(),
            len: at,
        })
    }

    fn render(&self, items: &[&str]) -> String {
        if self.quoted_each {
            let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
            return quoted.join(", ");
        }
        // Meilisearch appends the marker after the names, even when there are none.
        let names: Vec<&str> = items.iter().copied().filter(|i| *i != HIDDEN).collect();
        let hidden = if items.contains(&HIDDEN) {
            format!(", {HIDDEN}")
        } else {
            String::new()
        };
        format!("`{}{hidden}`", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clean(message: &str) -> String {
        scrub_message(message).unwrap_or_else(|| message.to_string())
    }

    #[test]
    fn a_filter_error_quotes_the_clients_filter_only() {
        let node = "Index `movies`: Attribute `overview` is not filterable. Available filterable attribute patterns are: `_miroir_shard`, `available`, `year`.\n2:10 \"overview\" = \"storm\" AND \"_miroir_shard\" IN [\"....\", \"..,(\", \"..)|\"]";
        assert_eq!(
            clean(node),
            "Index `movies`: Attribute `overview` is not filterable. Available filterable attribute patterns are: `available`, `year`.\n2:10 \"overview\" = \"storm\""
        );
    }

    #[test]
    fn meilisearch_1_50s_rendering_of_an_array_filter_is_undone() {
        // Recorded from Meilisearch 1.50: each element of the array filter in parentheses.
        let node = "Index `movies`: Attribute `overview` is not filterable. Available filterable attribute patterns are: `_miroir_shard`, `available`, `year`.\n3:11 (\"overview\" = \"storm\") AND (\"_miroir_shard\" IN [\"....\", \"...,\", \"...?\"])";
        assert_eq!(
            clean(node),
            "Index `movies`: Attribute `overview` is not filterable. Available filterable attribute patterns are: `available`, `year`.\n2:10 \"overview\" = \"storm\""
        );
    }

    #[test]
    fn a_group_wrapped_only_because_of_the_restriction_is_unwrapped() {
        // One node renders `a OR b` bare; ANDed with the restriction it is parenthesized.
        let node = "Attribute `b` is not filterable. This index does not have configured filterable attributes.\n16:17 (\"a\" = \"1\" OR \"b\" = \"2\") AND \"_miroir_shard\" IN [\"....\"]";
        assert_eq!(
            clean(node),
            "Attribute `b` is not filterable. This index does not have configured filterable attributes.\n15:16 \"a\" = \"1\" OR \"b\" = \"2\""
        );
        // Groups that are not the whole filter keep their parentheses and positions.
        let node = "Attribute `c` is not filterable.\n32:33 (\"a\" = \"1\" OR \"b\" = \"(\") AND (\"c\" = \"3\" OR \"d\" = \")\") AND \"_miroir_shard\" IN [\"....\"]";
        assert_eq!(
            clean(node),
            "Attribute `c` is not filterable.\n32:33 (\"a\" = \"1\" OR \"b\" = \"(\") AND (\"c\" = \"3\" OR \"d\" = \")\")"
        );
    }

    #[test]
    fn messages_without_miroirs_traces_are_left_as_they_are() {
        for message in [
            "Was expecting a value but instead got nothing.\n7:7 year >",
            "Index `movies`: Attribute `title` is not filterable. Available filterable attribute patterns are: `director`, `genres`.\n2:7 \"title\" = \"Carol\"",
            "Attribute `x` is not sortable. Available sortable attributes are: `a, b`.",
            // A client filtering on a reserved field gets the node's word for it.
            "Attribute `_miroir_seq` is not filterable. Available filterable attribute patterns are: `a`.\n2:12 \"_miroir_seq\" = \"1\"",
        ] {
            assert_eq!(scrub_message(message), None, "{message}");
        }
    }

    #[test]
    fn reserved_fields_leave_every_kind_of_attribute_list() {
        assert_eq!(
            clean("Index `movies`: Invalid facet distribution: Attribute `overview` is not filterable. Available filterable attributes patterns are: `_miroir_shard, available, year`."),
            "Index `movies`: Invalid facet distribution: Attribute `overview` is not filterable. Available filterable attributes patterns are: `available, year`."
        );
        assert_eq!(
            clean("Index `movies`: Attribute `overview` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `genres, year, _miroir_shard`."),
            "Index `movies`: Attribute `overview` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `genres, year`."
        );
        assert_eq!(
            clean("Attribute `x` is not searchable. Available searchable attributes are: `_miroir_seq, _miroir_shard, title, <..hidden-attributes>`."),
            "Attribute `x` is not searchable. Available searchable attributes are: `title, <..hidden-attributes>`."
        );
    }

    #[test]
    fn a_list_of_reserved_fields_only_reads_as_no_attributes() {
        assert_eq!(
            clean("Index `m`: Attribute `a` is not filterable. Available filterable attribute patterns are: `_miroir_shard`.\n2:3 \"a\" = \"1\" AND \"_miroir_shard\" IN [\"....\"]"),
            "Index `m`: Attribute `a` is not filterable. This index does not have configured filterable attributes.\n2:3 \"a\" = \"1\""
        );
        assert_eq!(
            clean("Index `m`: Attribute `a` is not facet-searchable. Available facet-searchable attributes patterns are: `_miroir_shard`. To make it facet-searchable add it to the `filterableAttributes` index settings."),
            "Index `m`: Attribute `a` is not facet-searchable. This index does not have configured facet-searchable attributes. To make it facet-searchable add it to the `filterableAttributes` index settings."
        );
        assert_eq!(
            clean("Index `m`: Attribute `a` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `_miroir_shard, <..hidden-attributes>`."),
            "Index `m`: Attribute `a` is not filterable and thus, cannot be used as distinct attribute. This index does not have configured filterable attributes."
        );
    }

    #[test]
    fn a_body_is_rewritten_only_when_its_message_changes() {
        let untouched = br#"{"message":"Index `x` not found.","code":"index_not_found","type":"invalid_request","link":"https://docs.meilisearch.com/errors#index_not_found"}"#.to_vec();
        assert_eq!(scrub(untouched.clone()), untouched);
        assert_eq!(scrub(b"not json".to_vec()), b"not json".to_vec());
        let node = json!({
            "message": "Inside `.queries[1]`: Index `m`: Invalid facet distribution: Attribute `o` is not filterable. Available filterable attributes patterns are: `_miroir_shard, a`.",
            "code": "invalid_search_facets",
            "type": "invalid_request",
            "link": "https://docs.meilisearch.com/errors#invalid_search_facets"
        });
        let body = scrub(serde_json::to_vec(&node).unwrap_or_default());
        assert_eq!(
            String::from_utf8_lossy(&body),
            r#"{"message":"Inside `.queries[1]`: Index `m`: Invalid facet distribution: Attribute `o` is not filterable. Available filterable attributes patterns are: `a`.","code":"invalid_search_facets","type":"invalid_request","link":"https://docs.meilisearch.com/errors#invalid_search_facets"}"#
        );
    }
}
