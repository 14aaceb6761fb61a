//! Prometheus' text format as Envoy's `/stats/prometheus` and the control plane's `/metrics`
//! write it, read into families, and the metric names of PromQL expressions (docs/metrics.md).

use std::collections::{BTreeMap, BTreeSet};

/// One sample: its series name (`_total`, `_bucket`... included), labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A metric family: its `# TYPE` (`counter`, `gauge`, `histogram`...; `untyped` without one)
/// and its samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Family {
    pub kind: String,
    pub samples: Vec<Sample>,
}

/// Families by name. A counter's family is named as its `# TYPE` line names it: Envoy names it
/// with `_total` (the stat's own name), prometheus_client without (it adds `_total` to the
/// samples); [`Scrape::metric_names`] gives the names queries use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    pub families: BTreeMap<String, Family>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    families.entry(name.to_string()).or_default().kind = kind.to_string();
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let Some(sample) = parse_sample(line) else {
                continue;
            };
            let family = family_of(&families, &sample.name);
            let entry = families.entry(family).or_insert_with(|| Family {
                kind: "untyped".into(),
                samples: Vec::new(),
            });
            entry.samples.push(sample);
        }
        Scrape { families }
    }

    /// The name a query uses for each family (a counter's with `_total`), and its type.
    pub fn metric_names(&self) -> BTreeMap<String, String> {
        self.families
            .iter()
            .map(|(name, family)| {
                let query_name = if family.kind == "counter" && !name.ends_with("_total") {
                    format!("{name}_total")
                } else {
                    name.clone()
                };
                (query_name, family.kind.clone())
            })
            .collect()
    }

    /// The label names of a family's samples (`le` of histograms left out).
    pub fn label_names(&self, metric: &str) -> BTreeSet<String> {
        let family = self
            .families
            .get(metric)
            .or_else(|| self.families.get(metric.trim_end_matches("_total")));
        family
            .into_iter()
            .flat_map(|f| &f.samples)
            .flat_map(|s| s.labels.keys())
            .filter(|k| *k != "le")
            .cloned()
            .collect()
    }

    /// Every label value seen for `label`, over every family.
    pub fn label_values(&self, label: &str) -> BTreeSet<String> {
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }

    /// The sum of the samples named `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

/// The family a sample belongs to: its own name, or the histogram or counter it is part of.
fn family_of(families: &BTreeMap<String, Family>, sample: &str) -> String {
    if families.contains_key(sample) {
        return sample.to_string();
    }
    for suffix in ["_bucket", "_sum", "_count", "_total", "_created", "_info"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if families.contains_key(base) {
                return base.to_string();
            }
        }
    }
    sample.to_string()
}

/// `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => break i,
                ',' | ' ' => {}
                '=' => {
                    // A quoted value with `\"`, `\\` and `\n` escapes.
                    let (_, quote) = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        };
        inner.get(end + 1..)?
    } else {
        rest
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// PromQL words that are not metric names: aggregation operators (which may come before their
/// parenthesis: `sum by (le) (...)`), keywords, and number literals.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// The metric names a PromQL expression reads: identifiers that are neither functions (followed
/// by `(`), aggregation keywords, label names (inside `{...}` or the lists of `by`, `on`...),
/// strings, durations (`[5m]`) nor numbers. Grafana's `$__rate_interval`-style variables are
/// skipped.
pub fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let (mut i, mut braces, mut brackets) = (0usize, 0usize, 0usize);
    // Inside the parenthesis of `by (...)`, `on (...)` and the like: label names.
    let mut label_list_depth: Option<usize> = None;
    let mut parens = 0usize;
    let mut last_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                // A string: skipped whole.
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            '(' => {
                parens += 1;
                if label_list_depth.is_none()
                    && [
                        "by",
                        "without",
                        "on",
                        "ignoring",
                        "group_left",
                        "group_right",
                    ]
                    .contains(&last_word.as_str())
                {
                    label_list_depth = Some(parens);
                }
            }
            ')' => {
                if label_list_depth == Some(parens) {
                    label_list_depth = None;
                }
                parens = parens.saturating_sub(1);
            }
            '$' => {
                // A Grafana variable: `$name` or `${name}`.
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || "_{}".contains(chars[i])) {
                    i += 1;
                }
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let is_call = chars.get(next) == Some(&'(');
                let is_number_part = start > 0
                    && (chars[start - 1].is_ascii_digit() || chars[start - 1] == '.')
                    && !chars[..start]
                        .iter()
                        .rev()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                        .any(|c| c.is_ascii_alphabetic());
                let reads = braces == 0
                    && brackets == 0
                    && label_list_depth.is_none()
                    && !is_call
                    && !is_number_part
                    && !PROMQL_WORDS.contains(&word.to_ascii_lowercase().as_str());
                if reads {
                    names.insert(word.clone());
                }
                last_word = word;
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            last_word.clear();
        }
        i += 1;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_and_prometheus_client_texts_are_read_into_families() {
        let text = "\
# TYPE miroir_filter_requests_total counter
miroir_filter_requests_total{route=\"search\",status=\"2xx\"} 3
miroir_filter_requests_total{route=\"health\",status=\"2xx\"} 1
# TYPE miroir_filter_topology_epoch gauge
miroir_filter_topology_epoch{} 7
# TYPE miroir_filter_request_duration_milliseconds histogram
miroir_filter_request_duration_milliseconds_bucket{route=\"search\",le=\"0.5\"} 0
miroir_filter_request_duration_milliseconds_sum{route=\"search\"} 12.5
# HELP miroir_repairs Out-of-sync copies.
# TYPE miroir_repairs counter
miroir_repairs_total 2
# EOF
";
        let scrape = Scrape::parse(text);
        let names = scrape.metric_names();
        assert_eq!(
            names.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "miroir_filter_request_duration_milliseconds",
                "miroir_filter_requests_total",
                "miroir_filter_topology_epoch",
                "miroir_repairs_total"
            ]
        );
        assert_eq!(scrape.sum("miroir_filter_requests_total", &[]), 4.0);
        assert_eq!(
            scrape.sum("miroir_filter_requests_total", &[("route", "search")]),
            3.0
        );
        assert_eq!(scrape.sum("miroir_repairs_total", &[]), 2.0);
        assert_eq!(
            scrape
                .label_names("miroir_filter_request_duration_milliseconds")
                .into_iter()
                .collect::<Vec<_>>(),
            ["route"]
        );
        assert_eq!(scrape.label_names("miroir_repairs_total").len(), 0);
    }

    #[test]
    fn metric_names_are_read_out_of_promql() {
        let names = |e: &str| promql_metric_names(e).into_iter().collect::<Vec<_>>();
        assert_eq!(
            names(
                r#"sum by (route) (rate(miroir_filter_requests_total{status=~"5xx", route!="health"}[$__rate_interval])) / ignoring(status) sum by (route) (rate(miroir_filter_requests_total[5m]))"#
            ),
            ["miroir_filter_requests_total"]
        );
        assert_eq!(
            names(
                "histogram_quantile(0.99, sum by (le, node) (rate(miroir_filter_node_call_duration_milliseconds_bucket[5m]))) > 1e3"
            ),
            ["miroir_filter_node_call_duration_milliseconds_bucket"]
        );
        assert_eq!(
            names("max(miroir_topology_epoch) - on() group_left min(miroir_filter_topology_epoch) > 0 and miroir_leader == 1"),
            ["miroir_filter_topology_epoch", "miroir_leader", "miroir_topology_epoch"]
        );
        assert_eq!(names("count(up offset 1h) or vector(0)"), ["up"]);
    }
}
