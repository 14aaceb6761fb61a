//! The labels of the filter's metrics, as Envoy's tag extraction sees them: the filter encodes a
//! label in its stat's name as Istio encodes its own (`<name>.<label>=.=<value>;.;`), and every
//! Envoy bootstrap Miroir renders carries one `stats_tags` entry per label ([`regex`]), so
//! `/stats/prometheus` shows `miroir_filter_requests_total{route="search",status="2xx"}`
//! (docs/metrics.md). Shared by the filter, which encodes, and the bootstraps, which decode.

/// Every label the filter puts on a metric.
pub const LABELS: &[&str] = &["route", "status", "node", "version"];

/// Envoy's tag extraction regex of `label`: the first group is cut from the stat's name, the
/// second is the value. The regex Istio generates for an `extraStatTags` entry, so Istio needs
/// only `extraStatTags` (docs/istio.md).
pub fn regex(label: &str) -> String {
    format!("({label}=\\.=(.*?);\\.;)")
}

/// How a stat's name carries its labels: `name.label=.=value;.;...`, or `name` alone.
pub fn encode(name: &str, labels: &[(&str, &str)]) -> String {
    let mut stat = String::from(name);
    if !labels.is_empty() {
        stat.push('.');
        for (label, value) in labels {
            stat.push_str(label);
            stat.push_str("=.=");
            stat.push_str(value);
            stat.push_str(";.;");
        }
    }
    stat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_encoded_as_the_regexes_decode_them() {
        assert_eq!(
            encode(
                "miroir_filter_requests_total",
                &[("route", "search"), ("status", "2xx")]
            ),
            "miroir_filter_requests_total.route=.=search;.;status=.=2xx;.;"
        );
        assert_eq!(
            encode("miroir_filter_topology_epoch", &[]),
            "miroir_filter_topology_epoch"
        );
        assert_eq!(regex("node"), r"(node=\.=(.*?);\.;)");
    }
}
