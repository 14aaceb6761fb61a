//! Parity: every answer through Miroir equals one big node's, byte for byte as JSON values
//! except `processingTimeMs` and `requestUid`.
//!
//! One deterministic corpus (`miroir_e2e::corpus`) is indexed, the same way and in the same
//! order, into five indexes (the main one and four settings variants) on:
//! - `one_node`: one node without Envoy, the reference;
//! - `envoy_1`: Envoy + filter over one node (what the filter changes without merging);
//! - `three_nodes`: 3 nodes, one replica group, RF 1;
//! - `two_groups`: 2 replica groups × 2 nodes, RF 1 (searches alternate between groups).
//!
//! Every query of `parity/queries.rs` goes to all of them; every mismatch is collected, printed
//! with the query and the first differing path, summarized by class, written to
//! `target/parity/report.md`, and the test fails once at the end.
//!
//! `PARITY_ONLY=<family prefix>` runs one family (e.g. `PARITY_ONLY=facet`), `PARITY_DOCS=<n>`
//! changes the corpus size (default 3000), `PARITY_DEBUG=1` prints both whole answers of every
//! mismatch.

mod support;

#[path = "parity/diff.rs"]
mod diff;
#[path = "parity/queries.rs"]
mod queries;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use miroir_e2e::{corpus, paths, Client, Cluster, Spec};
use serde_json::{json, Value};

use diff::{class_of, compact, first_difference, same_hits_other_order, strip, Difference};
use queries::{Case, Request, DISTINCT_ATTR, FACETING, MAIN, PAGINATION, RULES, VECTORS};

const DEFAULT_DOCS: usize = 3000;
const BATCH: usize = 1000;

/// The settings of each index: the corpus's, plus one variant each.
fn index_settings() -> Vec<(&'static str, Value)> {
    let with = |extra: Value| {
        let mut s = corpus::settings();
        for (k, v) in extra.as_object().into_iter().flatten() {
            s[k] = v.clone();
        }
        s
    };
    vec![
        (MAIN, corpus::settings()),
        (
            RULES,
            with(json!({"rankingRules": [
                "words", "sort", "rating:desc", "typo", "proximity", "attribute", "exactness",
                "year:asc"
            ]})),
        ),
        (
            FACETING,
            with(json!({"faceting": {
                "maxValuesPerFacet": 4,
                "sortFacetValuesBy": {"*": "count", "genres": "alpha"}
            }})),
        ),
        (
            PAGINATION,
            with(json!({"pagination": {"maxTotalHits": 30}})),
        ),
        (DISTINCT_ATTR, with(json!({"distinctAttribute": "studio"}))),
        (
            VECTORS,
            with(json!({"embedders": {
                "embedding": {"source": "userProvided", "dimensions": 3}
            }})),
        ),
    ]
}

/// Creates every index with its settings and adds the corpus in batches, waiting for each task.
fn load(client: &Client, docs: &[Value]) {
    for (uid, settings) in index_settings() {
        support::write(
            client,
            "POST",
            "/indexes",
            &json!({"uid": uid, "primaryKey": "id"}),
        );
        support::write(
            client,
            "PATCH",
            &format!("/indexes/{uid}/settings"),
            &settings,
        );
        let docs: Vec<Value> = if uid == VECTORS {
            docs.iter()
                .map(|d| {
                    let mut d = d.clone();
                    let id = d["id"].as_u64().unwrap_or(0);
                    d["_vectors"] = json!({"embedding": queries::embedding(id)});
                    d
                })
                .collect()
        } else {
            docs.to_vec()
        };
        for chunk in docs.chunks(BATCH) {
            support::write(
                client,
                "POST",
                &format!("/indexes/{uid}/documents"),
                &Value::Array(chunk.to_vec()),
            );
        }
    }
}

struct Target {
    name: &'static str,
    cluster: Cluster,
}

/// Starts every target and loads the corpus, all in parallel.
fn targets(docs: &[Value]) -> (Target, Vec<Target>) {
    let shapes: Vec<(&'static str, Option<Spec>)> = vec![
        ("one_node", None),
        ("envoy_1", Some(Spec::new(&[("n0", "g")], 8, 1))),
        ("three_nodes", Some(support::three_nodes(1))),
        (
            "two_groups",
            Some(Spec::new(
                &[("a0", "g0"), ("a1", "g0"), ("b0", "g1"), ("b1", "g1")],
                8,
                1,
            )),
        ),
    ];
    let mut started: Vec<Target> = std::thread::scope(|scope| {
        let handles: Vec<_> = shapes
            .into_iter()
            .map(|(name, spec)| {
                scope.spawn(move || {
                    let test_name = format!("parity_{name}");
                    let cluster = match spec {
                        None => Cluster::single_node(&test_name),
                        Some(spec) => Cluster::start(&test_name, spec),
                    };
                    load(&cluster.client(), docs);
                    Target { name, cluster }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let reference = started.remove(0);
    (reference, started)
}

/// `(status, body)`: the body as JSON, or as a JSON string when it is not JSON.
fn send(client: &Client, case: &Case) -> (u16, Value) {
    let reply = match &case.request {
        Request::Post { path, body } => client.post(path, body),
        Request::Get { path } => client.get(path),
    };
    let body = reply
        .try_json()
        .unwrap_or_else(|| Value::String(reply.text()));
    (reply.status, strip(&body))
}

/// family → (queries, per target: (mismatching queries, of which tie order only)).
type PerFamily = BTreeMap<&'static str, (usize, BTreeMap<&'static str, (usize, usize)>)>;

struct Mismatch {
    family: &'static str,
    target: &'static str,
    query: String,
    difference: Difference,
    /// Both sides' whole hit around a difference inside one hit.
    hit: Option<(Value, Value)>,
    /// What kind of hits difference this is, if it is one (see [`Diagnosis`]).
    diagnosis: Option<Diagnosis>,
}

/// A hits mismatch, looked at again with `showRankingScoreDetails` (a second request: the
/// comparison itself is never relaxed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Diagnosis {
    /// Hit after hit, both sides have the same ranking details: only the order of hits that
    /// one node ranks equal (ties) differs, or which of them a page boundary cuts.
    TieOrder,
    /// The same hits, in another order, with different ranking details.
    SameHitsOtherOrder,
    /// The ranking details (or fields besides the hits) differ.
    Ranking,
}

impl Diagnosis {
    fn label(self) -> &'static str {
        match self {
            Diagnosis::TieOrder => " [tie order: equal ranking details hit by hit]",
            Diagnosis::SameHitsOtherOrder => " [same hits, other order, details differ]",
            Diagnosis::Ranking => " [not a tie: ranking details or other fields differ]",
        }
    }
}

impl Mismatch {
    fn label(&self) -> &'static str {
        self.diagnosis.map(Diagnosis::label).unwrap_or("")
    }

    fn class(&self) -> String {
        format!(
            "{} {}{}",
            self.family,
            class_of(&self.difference.path),
            self.label()
        )
    }

    fn render(&self, max: usize) -> String {
        let mut out = format!(
            "[{}] on {}: {}\n    first difference at {}{}\n      one node: {}\n      {}: {}",
            self.family,
            self.target,
            self.query,
            self.difference.path,
            self.label(),
            compact(self.difference.want.as_ref(), max),
            self.target,
            compact(self.difference.got.as_ref(), max),
        );
        if let Some((want, got)) = &self.hit {
            let _ = write!(
                out,
                "\n    the whole hit:\n      one node: {}\n      {}: {}",
                compact(Some(want), 2 * max),
                self.target,
                compact(Some(got), 2 * max)
            );
        }
        out
    }
}

/// The distinct attribute a case searches with, if any: the `distinct` parameter (of the body, a
/// GET query string, any query of a multi-search, or `federation.distinct`) or the index's
/// `distinctAttribute`.
fn distinct_of(case: &Case) -> Option<String> {
    let (path, body) = match &case.request {
        Request::Post { path, body } => (path.as_str(), Some(body)),
        Request::Get { path } => (path.as_str(), None),
    };
    let from_query = path.split_once('?').and_then(|(_, query)| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("distinct="))
            .map(str::to_string)
    });
    let from_body = body.and_then(|body| {
        let queries = body["queries"].as_array().cloned().unwrap_or_default();
        std::iter::once(body.clone())
            .chain(queries)
            .chain(std::iter::once(body["federation"].clone()))
            .find_map(|b| b["distinct"].as_str().map(str::to_string))
    });
    let index_level = (path.contains(&format!("/indexes/{DISTINCT_ATTR}/"))
        || body.is_some_and(|b| b.to_string().contains(&format!("\"{DISTINCT_ATTR}\""))))
    .then(|| "studio".to_string());
    from_query.or(from_body).or(index_level)
}

/// The fields of a merged answer left out of the comparison, where docs/api-compatibility.md
/// documents that they may differ from one node's. Only merged answers qualify: Envoy over one
/// node must equal the node in every case.
fn documented_difference(case: &Case, target: &str) -> Option<&'static [&'static str]> {
    if target == "envoy_1" {
        return None;
    }
    // With distinct, one Meilisearch node derives `estimatedTotalHits` (offset/limit) and facet
    // counts from the candidates its ranking walked through, an estimate that depends on the
    // ranking, not on the index alone.
    if distinct_of(case).is_some() {
        return Some(&["estimatedTotalHits", "facetDistribution", "facetStats"]);
    }
    // A ranking score threshold removes from one node's estimate only the documents its ranking
    // walked through before the page was full; `frequency` drops query words by how frequent
    // they are in the whole index, which each shard judges by its own documents.
    let body = match &case.request {
        Request::Post { body, .. } => body.to_string(),
        Request::Get { path } => path.clone(),
    };
    let estimated = [
        "rankingScoreThreshold",
        "\"frequency\"",
        "matchingStrategy=frequency",
    ];
    estimated
        .iter()
        .any(|needle| body.contains(needle))
        .then_some(&["estimatedTotalHits"][..])
}

/// With `matchingStrategy: frequency` each shard drops query words by their frequency in its
/// own documents (docs/api-compatibility.md), so a merged answer may score a hit otherwise than
/// one node: a difference the diagnosis shows as ranking details that differ is that, not a merge
/// error. Tie-order differences and any difference with equal details still count.
fn scored_by_shard(case: &Case, target: &str, diagnosis: Option<Diagnosis>) -> bool {
    let body = match &case.request {
        Request::Post { body, .. } => body.to_string(),
        Request::Get { path } => path.clone(),
    };
    target != "envoy_1"
        && (body.contains("\"frequency\"") || body.contains("matchingStrategy=frequency"))
        && diagnosis == Some(Diagnosis::Ranking)
}

/// `value` without the `fields` at its top level and in each result of a multi-search.
fn without(value: &Value, fields: &[&str]) -> Value {
    let mut value = value.clone();
    let mut strip_fields = |v: &mut Value| {
        if let Some(map) = v.as_object_mut() {
            for field in fields {
                map.remove(*field);
            }
        }
    };
    strip_fields(&mut value);
    if let Some(results) = value.get_mut("results").and_then(Value::as_array_mut) {
        results.iter_mut().for_each(&mut strip_fields);
    }
    value
}

/// The path of the hit holding `path` (`.results[0].hits[3]` for `.results[0].hits[3].id`),
/// when the difference lies deeper than the hit itself.
fn hit_path(path: &str) -> Option<&str> {
    let start = path.rfind("hits[")?;
    let end = start + path[start..].find(']')? + 1;
    (end < path.len() && path[end..].starts_with('.')).then(|| &path[..end])
}

/// The case again with `showRankingScoreDetails` (on every query of a multi-search), for a
/// search whose hits differ; `None` for other requests.
fn with_details(case: &Case) -> Option<Case> {
    let request = match &case.request {
        Request::Post { path, body } if path.ends_with("/search") || path.ends_with("/similar") => {
            let mut body = body.clone();
            body["showRankingScoreDetails"] = json!(true);
            Request::Post {
                path: path.clone(),
                body,
            }
        }
        Request::Post { path, body } if path == "/multi-search" => {
            let mut body = body.clone();
            for query in body["queries"].as_array_mut().into_iter().flatten() {
                query["showRankingScoreDetails"] = json!(true);
            }
            Request::Post {
                path: path.clone(),
                body,
            }
        }
        Request::Get { path } if path.contains("/search") || path.contains("/similar") => {
            Request::Get {
                path: format!(
                    "{path}{}showRankingScoreDetails=true",
                    if path.contains('?') { '&' } else { '?' }
                ),
            }
        }
        _ => return None,
    };
    Some(Case {
        family: case.family,
        request,
    })
}

/// Every hit replaced by its ranking details.
fn details_only(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("hits", Value::Array(hits)) => Value::Array(
                            hits.iter()
                                .map(|h| h["_rankingScoreDetails"].clone())
                                .collect(),
                        ),
                        _ => details_only(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(details_only).collect()),
        other => other.clone(),
    }
}

fn diagnose(
    case: &Case,
    reference: &Client,
    target: &Client,
    want: &Value,
    got: &Value,
    path: &str,
) -> Option<Diagnosis> {
    if !path.contains("hits[") {
        return None;
    }
    let tie = with_details(case).is_some_and(|again| {
        let (ws, w) = send(reference, &again);
        let (gs, g) = send(target, &again);
        ws == gs && details_only(&w) == details_only(&g)
    });
    if tie {
        Some(Diagnosis::TieOrder)
    } else if order_only(want, got, path) {
        Some(Diagnosis::SameHitsOtherOrder)
    } else {
        Some(Diagnosis::Ranking)
    }
}

/// The value at `path` (`.results[0].hits`), if any.
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for index in indices.split(']').filter(|s| !s.is_empty()) {
            current = current.get(index.trim_start_matches('[').parse::<usize>().ok()?)?;
        }
    }
    Some(current)
}

/// Whether the difference lies in a `hits` array holding the same hits in another order.
fn order_only(want: &Value, got: &Value, path: &str) -> bool {
    let Some(end) = path.rfind("hits[") else {
        return false;
    };
    let prefix = &path[..end + "hits".len()];
    match (at(want, prefix), at(got, prefix)) {
        (Some(w), Some(g)) => same_hits_other_order(w, g),
        _ => false,
    }
}

// Not yet green (issue 3 is open): the mismatch classes it still finds are listed in
// target/parity/report.md and in the issue's note. `make parity` runs it; `make test` will
// again once every class is fixed or documented.
#[test]
fn every_answer_through_miroir_equals_one_nodes() {
    let n = std::env::var("PARITY_DOCS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_DOCS);
    let only = std::env::var("PARITY_ONLY").unwrap_or_default();
    let cases: Vec<Case> = queries::all()
        .into_iter()
        .filter(|c| c.family.starts_with(only.as_str()))
        .collect();
    assert!(!cases.is_empty(), "no case in family `{only}`");

    let started = std::time::Instant::now();
    let docs = corpus::documents(n);
    let (reference, clusters) = targets(&docs);
    let setup = started.elapsed();
    let reference_client = reference.cluster.client();
    let clients: Vec<(&'static str, Client)> = clusters
        .iter()
        .map(|t| (t.name, t.cluster.client()))
        .collect();

    let mut mismatches: Vec<Mismatch> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let mut per_family: PerFamily = BTreeMap::new();
    for case in &cases {
        // The reference and every cluster at once: the nodes work in parallel.
        let (reference_reply, replies) = std::thread::scope(|scope| {
            let handles: Vec<_> = clients
                .iter()
                .map(|(_, client)| scope.spawn(move || send(client, case)))
                .collect();
            let reference_reply = send(&reference_client, case);
            let replies: Vec<(u16, Value)> = handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect();
            (reference_reply, replies)
        });
        let (want_status, want) = reference_reply;
        if case.family != "errors" && !(200..300).contains(&want_status) {
            refused.push(format!(
                "[{}] {}: {want_status} {want}",
                case.family,
                case.describe()
            ));
        }
        let entry = per_family.entry(case.family).or_default();
        entry.0 += 1;
        for ((target, client), (got_status, got)) in clients.iter().zip(replies) {
            let documented = documented_difference(case, target);
            let difference = if got_status != want_status {
                Some(Difference {
                    path: "(status)".into(),
                    want: Some(json!({"status": want_status, "body": want})),
                    got: Some(json!({"status": got_status, "body": got})),
                })
            } else {
                match documented {
                    Some(fields) => {
                        first_difference(&without(&want, fields), &without(&got, fields))
                    }
                    None => first_difference(&want, &got),
                }
            };
            if let Some(difference) = difference {
                if std::env::var_os("PARITY_DEBUG").is_some() {
                    eprintln!("DEBUG {}\n want {want}\n got {got}", target);
                }
                let hit = hit_path(&difference.path)
                    .and_then(|p| Some((at(&want, p)?.clone(), at(&got, p)?.clone())));
                let mismatch = Mismatch {
                    family: case.family,
                    target,
                    query: case.describe(),
                    diagnosis: diagnose(
                        case,
                        &reference_client,
                        client,
                        &want,
                        &got,
                        &difference.path,
                    ),
                    hit,
                    difference,
                };
                if scored_by_shard(case, target, mismatch.diagnosis) {
                    println!(
                        "DOCUMENTED (per-shard word frequency) {}",
                        mismatch.render(400)
                    );
                    continue;
                }
                let counts = entry.1.entry(target).or_default();
                counts.0 += 1;
                if mismatch.diagnosis == Some(Diagnosis::TieOrder) {
                    counts.1 += 1;
                }
                println!("MISMATCH {}", mismatch.render(400));
                mismatches.push(mismatch);
            }
        }
    }

    let report = report(&cases, &clients, &per_family, &mismatches, &refused, n);
    println!("\n{report}");
    println!(
        "(setup {:.1}s, queries {:.1}s)",
        setup.as_secs_f64(),
        (started.elapsed() - setup).as_secs_f64()
    );
    let dir = paths::target_dir().join("parity");
    let file = dir.join("report.md");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&file, &report))
        .map(|()| format!("written to {}", file.display()))
        .unwrap_or_else(|e| format!("cannot write {}: {e}", file.display()));
    println!("{written}");

    assert!(
        refused.is_empty(),
        "{} non-error cases were refused by the reference (see above): the suite is wrong",
        refused.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches over {} queries × {} clusters ({} classes); every one is printed above; \
         {written}",
        mismatches.len(),
        cases.len(),
        clients.len(),
        mismatches
            .iter()
            .map(Mismatch::class)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
}

/// Markdown: queries and mismatches per family and cluster, then every class with its first
/// example, then every mismatch.
fn report(
    cases: &[Case],
    clients: &[(&'static str, Client)],
    per_family: &PerFamily,
    mismatches: &[Mismatch],
    refused: &[String],
    docs: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Parity with one node: {} queries, {docs} documents\n",
        cases.len()
    );
    let names: Vec<&str> = clients.iter().map(|(n, _)| *n).collect();
    let _ = writeln!(
        out,
        "Cells: mismatching queries (of which only the order of tied hits differs).\n"
    );
    let _ = writeln!(out, "| family | queries | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|---|{}", "---|".repeat(names.len()));
    let mut total = vec![(0usize, 0usize); names.len()];
    let cell = |(m, t): (usize, usize)| format!("{m} ({t})");
    for (family, (count, by_target)) in per_family {
        let cells: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let m = by_target.get(n).copied().unwrap_or((0, 0));
                total[i].0 += m.0;
                total[i].1 += m.1;
                cell(m)
            })
            .collect();
        let _ = writeln!(out, "| {family} | {count} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        out,
        "| **all** | {} | {} |\n",
        cases.len(),
        total.into_iter().map(cell).collect::<Vec<_>>().join(" | ")
    );
    if !refused.is_empty() {
        let _ = writeln!(out, "## Cases the reference refused (suite bugs)\n");
        for r in refused {
            let _ = writeln!(out, "- {r}");
        }
        out.push('\n');
    }
    let mut classes: BTreeMap<String, (usize, Vec<&str>, &Mismatch)> = BTreeMap::new();
    for m in mismatches {
        let entry = classes.entry(m.class()).or_insert((0, Vec::new(), m));
        entry.0 += 1;
        if !entry.1.contains(&m.target) {
            entry.1.push(m.target);
        }
    }
    let _ = writeln!(out, "## Mismatch classes ({})\n", classes.len());
    for (class, (count, targets, example)) in &classes {
        let _ = writeln!(
            out,
            "- **{class}**: {count} (on {})\n  ```\n  {}\n  ```",
            targets.join(", "),
            example.render(300).replace('\n', "\n  ")
        );
    }
    if !mismatches.is_empty() {
        let _ = writeln!(out, "\n## Every mismatch\n\n```");
        for m in mismatches {
            let _ = writeln!(out, "{}", m.render(300));
        }
        let _ = writeln!(out, "```");
    }
    out
}
