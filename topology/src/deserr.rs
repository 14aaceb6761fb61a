//! Meilisearch's (deserr's) words for a query parameter or body field a route does not take,
//! so the filter and the control plane refuse them as one Meilisearch does.

/// `Unknown parameter `x`: did you mean `y`? expected one of `a`, `b`` (`kind` is `parameter`
/// or `field`), the accepted names in the order the route declares them.
pub fn unknown(kind: &str, received: &str, expected: &[&str]) -> String {
    format!(
        "Unknown {kind} `{received}`: {}expected one of {}",
        did_you_mean(received, expected),
        quoted(expected)
    )
}

/// `` `a`, `b` ``.
pub fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// deserr's suggestion: the closest expected name (Damerau-Levenshtein) within a typo budget
/// that grows with the length (in bytes) of what was received; the first of equally close names
/// wins.
pub fn did_you_mean(received: &str, expected: &[&str]) -> String {
    let budget = match received.len() {
        0..=3 => return String::new(),
        4..=7 => 1,
        8..=12 => 2,
        13..=17 => 3,
        18..=24 => 4,
        _ => 5,
    };
    expected
        .iter()
        .map(|e| (e, strsim::damerau_levenshtein(received, e)))
        .filter(|(_, distance)| *distance <= budget)
        .min_by_key(|(_, distance)| *distance)
        .map(|(e, _)| format!("did you mean `{e}`? "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_name_is_suggested_before_every_accepted_one() {
        let accepted = ["q", "filter", "sort", "attributesToHighlight"];
        assert_eq!(
            unknown("parameter", "filler", &accepted),
            "Unknown parameter `filler`: did you mean `filter`? expected one of `q`, `filter`, `sort`, `attributesToHighlight`"
        );
        assert_eq!(
            unknown("field", "x", &accepted),
            "Unknown field `x`: expected one of `q`, `filter`, `sort`, `attributesToHighlight`"
        );
    }
}
