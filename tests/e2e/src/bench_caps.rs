//! `make bench`: Envoy's memory for the worst case each request cap allows (docs/api-compatibility.md
//! § Limits), each on a fresh Envoy over 3 nodes so its peak (VmHWM) is that case's alone.
//! Reported against the Envoy's own resident memory before the case (a ratio), never asserted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use miroir_e2e::{Client, Cluster, LogLevels, Options, Spec};
use miroir_topology::limits::{
    MAX_BUFFERED_BODY_BYTES, MAX_CSV_ROWS, MAX_DOCUMENTS_WINDOW, MAX_MULTI_SEARCH_QUERIES,
};
use serde_json::{json, Value};

use super::{envoy_process, mib, proc_status_bytes, write};

pub struct CapMemory {
    pub case: String,
    /// The statuses the case's requests got, e.g. `200` or `202×2 503×2`.
    pub statuses: String,
    pub rss_before: u64,
    pub hwm_after: u64,
    pub rss_peak_sampled: u64,
}

/// The documents every case's index holds: `n` small ones with a facet of many values.
fn documents(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": i, "title": format!("title {i} word{}", i % 97), "tag": format!("t{}", i % 5000)}))
        .collect()
}

fn loaded_cluster(name: &str, docs: usize, levels: LogLevels) -> Cluster {
    let cluster = Cluster::start_with(
        name,
        Spec::new(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 8, 1),
        Options {
            envoy_log_levels: levels,
            ..Options::default()
        },
    );
    let client = cluster.client();
    write(
        &client,
        "POST",
        "/indexes",
        &json!({"uid": "caps", "primaryKey": "id"}),
    );
    write(
        &client,
        "PATCH",
        "/indexes/caps/settings",
        &json!({"filterableAttributes": ["tag"], "faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "count"}}}),
    );
    for chunk in documents(docs).chunks(5000) {
        write(
            &client,
            "POST",
            "/indexes/caps/documents",
            &Value::Array(chunk.to_vec()),
        );
    }
    cluster
}

/// Runs `action` (which returns the statuses it saw) while Envoy's memory is sampled.
fn measure(case: &str, cluster: &Cluster, action: impl FnOnce(&Client) -> String) -> CapMemory {
    let (pid, _) = envoy_process(cluster.envoy_pid());
    let read = |f: &str| proc_status_bytes(pid, f).unwrap_or(0);
    let rss_before = read("VmRSS:");
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(proc_status_bytes(pid, "VmRSS:").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let statuses = action(&cluster.client());
    stop.store(true, Ordering::Relaxed);
    let rss_peak_sampled = sampler.join().unwrap_or(0);
    println!("caps: {case}: {statuses}");
    CapMemory {
        case: case.to_string(),
        statuses,
        rss_before,
        hwm_after: read("VmHWM:"),
        rss_peak_sampled,
    }
}

/// The answer's status, with the error code when it is an error (`503 miroir_…`).
fn status_of(client: &Client, method: &str, path: &str, body: Option<(&str, &[u8])>) -> String {
    match client.try_send(method, path, body) {
        Ok(r) if r.status < 400 => r.status.to_string(),
        Ok(r) => {
            let code = r
                .try_json()
                .and_then(|v| v["code"].as_str().map(str::to_string));
            format!("{} {}", r.status, code.unwrap_or_default())
        }
        Err(e) => format!("transport error ({e})"),
    }
}

/// Every cap's worst case.
pub fn run(docs: usize, levels: LogLevels) -> Vec<CapMemory> {
    let mut results = Vec::new();

    let cluster = loaded_cluster("bench_caps_multi_search", docs, levels);
    let queries: Vec<Value> = (0..MAX_MULTI_SEARCH_QUERIES)
        .map(|i| json!({"indexUid": "caps", "q": format!("word{}", i % 97), "limit": 1000, "facets": ["tag"]}))
        .collect();
    let body = serde_json::to_vec(&json!({"queries": queries})).unwrap_or_default();
    results.push(measure(
        &format!("multi-search, {MAX_MULTI_SEARCH_QUERIES} queries of 1000 hits with facets"),
        &cluster,
        |c| {
            status_of(
                c,
                "POST",
                "/multi-search",
                Some(("application/json", &body)),
            )
            .to_string()
        },
    ));
    drop(cluster);

    let cluster = loaded_cluster("bench_caps_documents_window", docs, levels);
    let limit = MAX_DOCUMENTS_WINDOW;
    results.push(measure(
        &format!("document listing, offset+limit {limit} over 3 nodes"),
        &cluster,
        |c| {
            let body =
                serde_json::to_vec(&json!({"offset": 0, "limit": limit})).unwrap_or_default();
            status_of(
                c,
                "POST",
                "/indexes/caps/documents/fetch",
                Some(("application/json", &body)),
            )
            .to_string()
        },
    ));
    results.push(measure(
        "search facets in count order (follow-up rounds), 5000 values, 100 listed",
        &cluster,
        |c| {
            let body = serde_json::to_vec(&json!({"q": "", "facets": ["tag"], "limit": 0}))
                .unwrap_or_default();
            status_of(
                c,
                "POST",
                "/indexes/caps/search",
                Some(("application/json", &body)),
            )
            .to_string()
        },
    ));
    drop(cluster);

    let cluster = loaded_cluster("bench_caps_csv", 0, levels);
    let mut csv = String::from("id,title\n");
    for i in 0..MAX_CSV_ROWS {
        csv.push_str(&format!("{i},r\n"));
    }
    results.push(measure(
        &format!(
            "CSV batch of {MAX_CSV_ROWS} rows ({:.1} MiB)",
            mib(csv.len() as u64)
        ),
        &cluster,
        |c| {
            status_of(
                c,
                "POST",
                "/indexes/caps/documents",
                Some(("text/csv", csv.as_bytes())),
            )
            .to_string()
        },
    ));
    drop(cluster);

    // Large bodies at once: four of a quarter of the budget plus one more.
    let cluster = loaded_cluster("bench_caps_large_bodies", 0, levels);
    let each = usize::try_from(MAX_BUFFERED_BODY_BYTES / 4)
        .unwrap_or(usize::MAX)
        .min(99_000_000);
    let line = b"{\"id\":\"0000000000\",\"title\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n";
    let body: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(each / line.len() * line.len())
        .collect();
    results.push(measure(
        &format!(
            "5 concurrent NDJSON bodies of {:.0} MiB (budget {:.0} MiB per worker)",
            mib(body.len() as u64),
            mib(MAX_BUFFERED_BODY_BYTES)
        ),
        &cluster,
        |c| {
            let statuses: Vec<String> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..5)
                    .map(|_| {
                        let body = &body;
                        scope.spawn(move || {
                            status_of(
                                c,
                                "POST",
                                "/indexes/caps/documents",
                                Some(("application/x-ndjson", body)),
                            )
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| "panicked".into()))
                    .collect()
            });
            let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
            for s in statuses {
                *counts.entry(s).or_default() += 1;
            }
            counts
                .iter()
                .map(|(s, n)| format!("{s}×{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        },
    ));
    results
}

/// The Markdown table and JSON values of the cases.
pub fn report(results: &[CapMemory]) -> (String, Value) {
    let mut md = String::from(
        "### Envoy memory at each cap's worst case (fresh Envoy over 3 nodes each)\n\n\
         | case | answers | VmRSS before (MiB) | VmHWM after (MiB) | VmRSS peak sampled (MiB) | peak / before |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut values = Vec::new();
    for r in results {
        let ratio = r.hwm_after as f64 / (r.rss_before.max(1)) as f64;
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.2}× |\n",
            r.case,
            r.statuses,
            mib(r.rss_before),
            mib(r.hwm_after),
            mib(r.rss_peak_sampled),
            ratio
        ));
        values.push(json!({"case": r.case, "answers": r.statuses, "rssBefore": r.rss_before, "hwmAfter": r.hwm_after, "rssPeakSampled": r.rss_peak_sampled}));
    }
    (md, Value::Array(values))
}
