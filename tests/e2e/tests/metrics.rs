//! docs/metrics.md against what a running cluster exposes: the control plane's `/metrics` and
//! the Envoy's `/stats/prometheus`, scraped after a write, a search and errors went through
//! Envoy; and the dashboard's and alert rules' expressions against docs/metrics.md.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use miroir_e2e::paths::workspace_dir;
use miroir_e2e::prometheus::{promql_metric_names, Scrape};
use miroir_e2e::{Fleet, FleetOptions, Spec};
use serde_json::{json, Value};
use support::{corpus, create_movies, write};

/// One row of docs/metrics.md's tables.
#[derive(Debug)]
struct Documented {
    kind: String,
    labels: BTreeSet<String>,
    appears: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Filter,
    ControlPlane,
}

/// The tables of docs/metrics.md: metric → (source, row).
fn documented() -> BTreeMap<String, (Source, Documented)> {
    let path = workspace_dir().join("docs/metrics.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut source = None;
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            source = match heading {
                "The filter's metrics" => Some(Source::Filter),
                "The control plane's metrics" => Some(Source::ControlPlane),
                _ => None,
            };
            continue;
        }
        let (Some(source), Some(row)) = (source, line.strip_prefix("| `miroir_")) else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert!(
            cells.len() >= 5,
            "docs/metrics.md: a row of five cells: {line}"
        );
        let name = format!("miroir_{}", cells[0].trim_end_matches('`'));
        let labels = cells[2]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let row = Documented {
            kind: cells[1].to_string(),
            labels,
            appears: cells[3].to_string(),
        };
        assert!(
            ["always", "traffic", "event"].contains(&row.appears.as_str()),
            "docs/metrics.md: {name} appears `{}`",
            row.appears
        );
        assert!(
            rows.insert(name.clone(), (source, row)).is_none(),
            "docs/metrics.md: {name} twice"
        );
    }
    assert!(rows.len() > 20, "docs/metrics.md: tables not found");
    rows
}

/// Miroir's families of a scrape: query name → (type, labels).
fn miroir_metrics(scrape: &Scrape) -> BTreeMap<String, (String, BTreeSet<String>)> {
    scrape
        .metric_names()
        .into_iter()
        .filter(|(name, _)| name.starts_with("miroir_"))
        .map(|(name, kind)| {
            let labels = scrape.label_names(&name);
            (name, (kind, labels))
        })
        .collect()
}

/// Names follow Prometheus' conventions: counters end in `_total` and nothing else does; no
/// node, status class or route is part of a name (`requests_search`, `calls_n0`...).
fn check_conventions(
    name: &str,
    kind: &str,
    forbidden: &BTreeSet<String>,
    routes: &BTreeSet<String>,
) -> Result<(), String> {
    if (kind == "counter") != name.ends_with("_total") {
        return Err(format!(
            "{name} ({kind}): counters, and only they, end in _total"
        ));
    }
    let words: Vec<&str> = name.split('_').collect();
    if let Some(word) = words.iter().find(|w| forbidden.contains(**w)) {
        return Err(format!(
            "{name}: `{word}` is a label value, not part of a name"
        ));
    }
    for pair in words.windows(2) {
        if ["requests", "responses", "calls"].contains(&pair[0]) && routes.contains(pair[1]) {
            return Err(format!(
                "{name}: the route `{}` belongs in a label",
                pair[1]
            ));
        }
    }
    Ok(())
}

#[test]
fn every_metric_is_documented_and_every_documented_metric_exists() {
    let docs = documented();
    let fleet = Fleet::start(
        "metrics",
        Spec::new(&[("n0", "g0"), ("n1", "g0"), ("n2", "g0")], 8, 1),
        FleetOptions::default(),
    );
    let client = fleet.client(0);
    // A write (index, settings, documents), a search, and errors: a 4xx from the nodes and a
    // 5xx from the filter; a CORS preflight.
    create_movies(&client);
    write(
        &client,
        "POST",
        "/indexes/movies/documents",
        &json!(corpus(30)),
    );
    let (status, body) = client
        .post("/indexes/movies/search", &json!({"q": "mirror"}))
        .pair();
    assert_eq!(status, 200, "{body}");
    let (status, _) = client.post("/indexes/missing/search", &json!({})).pair();
    assert_eq!(status, 404);
    let (status, _) = client.send("POST", "/chats/x/settings", None).pair();
    assert_eq!(status, 501);

    // Histograms reach `/stats/prometheus` at Envoy's stats flush (5 s); the control plane's
    // health checks run on their own period.
    let (envoy, control_plane) = fleet.eventually_within(
        "every documented metric that appears with traffic to be scraped",
        Duration::from_secs(30),
        || {
            let envoy = fleet.envoy(0).prometheus()?;
            let control_plane = fleet.control_plane(0).scrape()?;
            let seen: BTreeSet<String> = miroir_metrics(&envoy)
                .into_keys()
                .chain(miroir_metrics(&control_plane).into_keys())
                .collect();
            let missing: Vec<&String> = docs
                .iter()
                .filter(|(name, (_, row))| row.appears != "event" && !seen.contains(*name))
                .map(|(name, _)| name)
                .collect();
            let unflushed = envoy.sum(
                "miroir_filter_request_duration_milliseconds_count",
                &[("route", "search")],
            ) == 0.0;
            match (missing.is_empty(), unflushed) {
                (true, false) => Ok((envoy, control_plane)),
                _ => Err(format!(
                    "missing {missing:?}, histograms flushed: {}",
                    !unflushed
                )),
            }
        },
    );

    let routes = envoy.label_values("route");
    let mut forbidden: BTreeSet<String> = fleet.node_ids().into_iter().collect();
    forbidden.extend(envoy.label_values("status"));
    forbidden.extend(["1xx", "2xx", "3xx", "4xx", "5xx"].map(String::from));
    assert!(
        routes.contains("search") && routes.contains("document_writes"),
        "{routes:?}"
    );

    let mut problems = Vec::new();
    for (source, scrape) in [
        (Source::Filter, &envoy),
        (Source::ControlPlane, &control_plane),
    ] {
        for (name, (kind, labels)) in miroir_metrics(scrape) {
            let prefixed = name.starts_with("miroir_filter_");
            if prefixed != (source == Source::Filter) {
                problems.push(format!(
                    "{name} is exposed by the {source:?}: miroir_filter_ is the filter's prefix only"
                ));
            }
            if let Err(e) = check_conventions(&name, &kind, &forbidden, &routes) {
                problems.push(e);
            }
            match docs.get(&name) {
                None => problems.push(format!("{name} ({source:?}) is not in docs/metrics.md")),
                Some((documented_source, row)) => {
                    if *documented_source != source {
                        problems.push(format!(
                            "{name}: documented under {documented_source:?}, exposed by {source:?}"
                        ));
                    }
                    if row.kind != kind {
                        problems.push(format!("{name}: documented {}, is {kind}", row.kind));
                    }
                    if !labels.is_subset(&row.labels) {
                        problems.push(format!(
                            "{name}: labels {labels:?}, documented {:?}",
                            row.labels
                        ));
                    }
                }
            }
        }
    }
    // The labels made it out of the names: Envoy's tag extraction is in the bootstrap.
    assert!(
        envoy.sum(
            "miroir_filter_requests_total",
            &[("route", "search"), ("status", "2xx")]
        ) >= 1.0,
        "{:?}",
        envoy.families.get("miroir_filter_requests_total")
    );
    assert!(
        envoy.sum(
            "miroir_filter_requests_total",
            &[("route", "unsupported"), ("status", "5xx")]
        ) >= 1.0
    );
    assert!(
        envoy.sum(
            "miroir_filter_requests_total",
            &[("route", "search"), ("status", "4xx")]
        ) >= 1.0
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        envoy.sum("miroir_filter_build_info", &[("version", version)]),
        1.0
    );
    assert_eq!(
        control_plane.sum("miroir_build_info", &[("version", version)]),
        1.0
    );
    assert!(
        envoy.sum("miroir_filter_node_calls_total", &[("node", "n0")]) >= 1.0,
        "{:?}",
        envoy.families.get("miroir_filter_node_calls_total")
    );
    assert_eq!(
        envoy.sum("miroir_filter_topology_epoch", &[]),
        control_plane.sum("miroir_topology_epoch", &[])
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every PromQL expression of the dashboard and of the alert rules.
fn expressions() -> Vec<(String, String)> {
    let dashboard_path = workspace_dir().join("deploy/grafana/miroir.json");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(&dashboard_path)
            .unwrap_or_else(|e| panic!("{dashboard_path:?}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{dashboard_path:?}: {e}"));
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {} has a target without expr", panel["title"]));
            exprs.push((format!("dashboard: {}", panel["title"]), expr.to_string()));
        }
    }
    assert!(
        exprs.len() >= 10,
        "the dashboard has {} queries",
        exprs.len()
    );

    // The rules file's `expr:` entries: one line, or a `|` / `>` block indented below it.
    let rules_path = workspace_dir().join("deploy/prometheus/miroir-alerts.yaml");
    let rules =
        std::fs::read_to_string(&rules_path).unwrap_or_else(|e| panic!("{rules_path:?}: {e}"));
    let lines: Vec<&str> = rules.lines().collect();
    let mut alert = String::new();
    let mut i = 0;
    let mut alerts = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        if let Some(name) = line.strip_prefix("- alert:") {
            alert = name.trim().to_string();
        }
        if let Some(expr) = line.strip_prefix("expr:") {
            let indent = lines[i].len() - line.len();
            let expr = expr.trim();
            let text =
                if expr == "|" || expr == ">" || expr.starts_with("|-") || expr.starts_with(">-") {
                    let mut block = Vec::new();
                    while i + 1 < lines.len()
                        && (lines[i + 1].trim().is_empty()
                            || lines[i + 1].len() - lines[i + 1].trim_start().len() > indent)
                    {
                        i += 1;
                        block.push(lines[i].trim());
                    }
                    block.join(" ")
                } else {
                    expr.trim_matches('\'').to_string()
                };
            exprs.push((format!("alert: {alert}"), text));
            alerts += 1;
        }
        i += 1;
    }
    assert!(alerts >= 8, "the rules file has {alerts} expressions");
    exprs
}

#[test]
fn every_expression_of_the_dashboard_and_alerts_names_documented_metrics() {
    let docs = documented();
    let mut problems = Vec::new();
    for (place, expr) in expressions() {
        let names = promql_metric_names(&expr);
        if names.is_empty() {
            problems.push(format!("{place}: no metric in `{expr}`"));
        }
        for name in names {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|b| docs.get(*b).is_some_and(|(_, r)| r.kind == "histogram"))
                })
                .unwrap_or(&name);
            if !docs.contains_key(base) {
                problems.push(format!(
                    "{place}: `{name}` is not in docs/metrics.md (`{expr}`)"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
