//! Issue 14 end to end: topology changes are jobs that move shard copies while clients write and
//! search. Every scenario runs a real control plane (embedded store; two replicas on Redis for the
//! leader change), an Envoy on the ADS bootstrap and the nodes, and asserts what a user sees:
//! every write acknowledged, every search answered, complete and without duplicates while the job
//! runs; afterwards each document stored once per replica group, on the node `/_miroir/shards`
//! names for its shard.
//!
//! `MIROIR_ELASTIC_DOCS` sets the corpus of the add and drain scenarios (`make test-elastic-full`
//! runs them with 20,000); unset, they stay quick enough for `make test`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use miroir_e2e::{Fleet, FleetOptions, Spec, StoreKind};
use serde_json::{json, Value};
use support::load::*;
use support::write;

/// `documentsCopied` may exceed the documents the new copies hold by this much.
const COPY_SLACK: f64 = 1.05;

fn one_group(nodes: &[&str], group: &str) -> Spec {
    let pairs: Vec<(&str, &str)> = nodes.iter().map(|n| (*n, group)).collect();
    Spec::new(&pairs, SHARDS, 1)
}

fn start(name: &str, spec: Spec) -> Fleet {
    Fleet::start(name, spec, FleetOptions::default())
}

/// The options of a test that acts in the middle of a copy: one unit at a time, at a pace that
/// leaves seconds between units whatever the machine (a job's copy is otherwise over in one).
fn slow_copy() -> FleetOptions {
    FleetOptions {
        copy_concurrency: 1,
        copy_documents_per_second: 500,
        ..FleetOptions::default()
    }
}

/// Every node of `group` owns between ⌊64/n⌋ and ⌈64/n⌉ shards.
fn assert_balanced(holdings: &Holdings, group: &str, nodes: &[&str]) {
    let n = nodes.len() as u32;
    let (low, high) = (SHARDS / n, SHARDS.div_ceil(n));
    for node in nodes {
        let owned = holdings.map.shards_of(group, node).len() as u32;
        assert!(
            (low..=high).contains(&owned),
            "{node} owns {owned} shards of {group}, expected {low}..={high}: {}",
            holdings.map.raw
        );
    }
}

/// `documentsCopied` against the least a job could copy (`optimum`), both printed.
fn assert_copied_near_optimum(job: &Value, optimum: usize) {
    let copied = job["documentsCopied"].as_u64().unwrap_or(0);
    println!(
        "documents copied {copied}, optimum {optimum} (ratio {:.3})",
        copied as f64 / optimum.max(1) as f64
    );
    assert!(copied > 0, "the job copied nothing: {job:#}");
    assert!(
        copied as f64 <= COPY_SLACK * optimum as f64,
        "the job copied {copied} documents, the optimum is {optimum}: {job:#}"
    );
}

fn add_node(fleet: &Fleet, id: &str, address: &str, group: &str) -> String {
    let reply = admin(fleet).post(
        "/_miroir/nodes",
        &json!({"id": id, "address": address, "group": group}),
    );
    job_started(fleet, &format!("POST /_miroir/nodes {id}"), &reply)
}

/// After the load: one last search sees exactly the acknowledged documents.
fn assert_search_sees(fleet: &Fleet, acked: &BTreeMap<u64, String>) {
    let hits = search_every_id(&fleet.client(0)).unwrap_or_else(|e| panic!("{e}"));
    let expected: BTreeSet<u64> = acked.keys().copied().collect();
    check_hits(&hits, &expected).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hits.len(), acked.len(), "documents nobody acknowledged");
}

// ---------------------------------------------------------------------------------------------

/// The moved shards' documents that were there before the change (ids below `docs`): what the
/// job had to copy at least (writes during the change reach the new copies by themselves), next
/// to what it copied.
fn print_preloaded_share(job: &Value, holdings: &Holdings, shards: &BTreeSet<u32>, docs: u64) {
    let share = holdings
        .stored
        .values()
        .flatten()
        .filter(|d| d.id < docs && d.shard.is_some_and(|s| shards.contains(&s)))
        .count();
    let copied = job["documentsCopied"].as_u64().unwrap_or(0);
    println!(
        "documents copied {copied}; preloaded documents of the {} moved shards {share} \
         (ratio {:.3})",
        shards.len(),
        copied as f64 / share.max(1) as f64
    );
}

/// What a scenario over [`elastic_docs`] documents wrote, and how long it took.
fn print_corpus(fleet: &Fleet, docs: u64, acked: usize, started: Instant) {
    let (new, updates) = batch_shape(docs);
    println!(
        "{} corpus: {docs} documents preloaded, then {LOAD_BATCHES} batches of {new} new and \
         {updates} updated documents; {acked} acknowledged documents in the end; the scenario \
         took {:?}",
        label(fleet),
        started.elapsed()
    );
}

/// Scenario 1: a fourth node joins while a client writes and searches; it gets a quarter of the
/// shards, copied from their old owners, and nothing is lost, duplicated or copied twice.
#[test]
fn adding_a_fourth_node_under_load_loses_nothing() {
    let started = Instant::now();
    let docs = elastic_docs();
    let mut fleet = start("elastic_add_node", one_group(&["n0", "n1", "n2"], "g0"));
    let ledger = prepare(&fleet, docs);
    let load = Load::start(&fleet, &ledger, scaled_load(docs));
    std::thread::sleep(Duration::from_millis(500));

    let address = fleet.launch_node("n3", "g0");
    let began = Instant::now();
    let job = add_node(&fleet, "n3", &address, "g0");
    let done = wait_job_succeeded(&fleet, &job);
    let ended = Instant::now();
    println!("job {job} took {:?}: {}", ended - began, progress(&done));
    assert_eq!(done["kind"], "addNode", "{done:#}");
    assert_no_errors(&done);
    load.finish(&fleet, (began, ended));

    let acked = ledger.snapshot();
    assert_search_sees(&fleet, &acked);
    let holdings = check_holdings(&fleet, &acked);
    assert_balanced(&holdings, "g0", &["n0", "n1", "n2", "n3"]);
    assert_copied_near_optimum(&done, holdings.count("n3"));
    let moved = holdings.map.shards_of("g0", "n3");
    print_preloaded_share(&done, &holdings, &moved, docs);
    print_corpus(&fleet, docs, acked.len(), started);
}

/// Scenario 2: a node drained under load gives its copies to the others; it cannot be removed
/// before, and can be after.
#[test]
fn draining_and_removing_a_node_under_load() {
    let started = Instant::now();
    let docs = elastic_docs();
    let fleet = start("elastic_drain", one_group(&["n0", "n1", "n2", "n3"], "g0"));
    let ledger = prepare(&fleet, docs);
    let before = shard_map(&fleet);
    let n1_shards = before.shards_of("g0", "n1");
    assert!(!n1_shards.is_empty(), "{}", before.raw);

    let not_drained = |when: &str| {
        let (status, body) = admin(&fleet).delete("/_miroir/nodes/n1").pair();
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("miroir_node_not_drained")),
            "DELETE /_miroir/nodes/n1 {when}: {body}"
        );
    };
    not_drained("before a drain");

    let load = Load::start(&fleet, &ledger, scaled_load(docs));
    std::thread::sleep(Duration::from_millis(500));
    let began = Instant::now();
    let reply = admin(&fleet).send("POST", "/_miroir/nodes/n1/drain", None);
    let job = job_started(&fleet, "POST /_miroir/nodes/n1/drain", &reply);
    // While it drains (unless it is already done).
    let (status, body) = admin(&fleet).delete("/_miroir/nodes/n1").pair();
    let removed_early = status == 200;
    if removed_early {
        let state = try_job(&fleet, &job).map(|j| j["state"].clone());
        assert_eq!(
            state,
            Ok(json!("succeeded")),
            "DELETE /_miroir/nodes/n1 answered 200 while the drain ran: {body}"
        );
        println!("the drain was over before the DELETE during it");
    } else {
        // Refused as undrained, or as a topology change while a job runs.
        assert!(
            status == 409
                && matches!(
                    body["code"].as_str(),
                    Some("miroir_node_not_drained" | "miroir_job_running")
                ),
            "DELETE /_miroir/nodes/n1 during the drain: {status} {body}"
        );
    }
    let done = wait_job_succeeded(&fleet, &job);
    let ended = Instant::now();
    println!("job {job} took {:?}: {}", ended - began, progress(&done));
    assert_eq!(done["kind"], "drainNode", "{done:#}");
    assert_no_errors(&done);
    assert!(
        !shard_map(&fleet).mentions("n1"),
        "n1 still holds copies after its drain: {}",
        shard_map(&fleet).raw
    );
    if !removed_early {
        let (status, body) = admin(&fleet).delete("/_miroir/nodes/n1").pair();
        assert_eq!(status, 200, "DELETE /_miroir/nodes/n1 once drained: {body}");
    }
    assert!(
        !topology_nodes(&fleet).contains_key("n1"),
        "{}",
        topology(&fleet)
    );
    load.finish(&fleet, (began, ended));

    let acked = ledger.snapshot();
    assert_search_sees(&fleet, &acked);
    let holdings = check_holdings(&fleet, &acked);
    assert!(
        !holdings.map.mentions("n1"),
        "n1 in the shard map: {}",
        holdings.map.raw
    );
    assert_balanced(&holdings, "g0", &["n0", "n2", "n3"]);
    let left_on_n1 = stored_on(&fleet, "n1");
    assert!(
        left_on_n1.is_empty(),
        "n1 still stores {} documents after its drain, e.g. {:?}",
        left_on_n1.len(),
        &left_on_n1[..left_on_n1.len().min(10)]
    );
    assert_copied_near_optimum(&done, holdings.in_shards(&n1_shards));
    print_preloaded_share(&done, &holdings, &n1_shards, docs);
    print_corpus(&fleet, docs, acked.len(), started);
}

/// `upstream_rq_total` of each node's Envoy cluster (requests Envoy sent it; not its health
/// checks).
fn requests_to(fleet: &Fleet, nodes: &[&str]) -> u64 {
    nodes
        .iter()
        .map(|n| fleet.envoy_stat(0, &format!("cluster.miroir-node-{n}.upstream_rq_total")))
        .sum()
}

/// Runs `n` searches that must each see every acknowledged document.
fn searches_see_everything(fleet: &Fleet, ledger: &Ledger, n: usize) {
    let expected = ledger.ids();
    for i in 0..n {
        let hits = search_every_id(&fleet.client(0)).unwrap_or_else(|e| panic!("search {i}: {e}"));
        check_hits(&hits, &expected).unwrap_or_else(|e| panic!("search {i}: {e}"));
    }
}

/// Scenario 3: a second replica group is filled under load and serves reads only once complete;
/// then the first group is deleted and reads stop going to it at once.
#[test]
fn a_new_group_serves_reads_only_once_complete() {
    let mut fleet = start("elastic_new_group", one_group(&["n0", "n1"], "g0"));
    let ledger = prepare(&fleet, PRELOAD);
    let load = Load::start(&fleet, &ledger, load_batches(PRELOAD, PRELOAD));
    std::thread::sleep(Duration::from_millis(500));

    let n2 = fleet.launch_node("n2", "g1");
    let n3 = fleet.launch_node("n3", "g1");
    let began = Instant::now();
    let reply = admin(&fleet).post(
        "/_miroir/groups",
        &json!({"name": "g1", "nodes": [{"id": "n2", "address": n2}, {"id": "n3", "address": n3}]}),
    );
    let job = job_started(&fleet, "POST /_miroir/groups g1", &reply);
    // Until the job cuts over, no copy of g1 is active (so no read goes to it).
    let mut snapshots = 0;
    let done = loop {
        let map = try_shard_map(&fleet);
        let current = try_job(&fleet, &job).unwrap_or_else(|e| panic!("{e}"));
        if let Ok(map) = map {
            snapshots += 1;
            let phase = current["phase"].as_str().unwrap_or("?");
            let before_cut_over = matches!(phase, "prepare" | "stage" | "copy");
            let active: Vec<String> = map
                .copies
                .iter()
                .filter(|((g, _), _)| g == "g1")
                .flat_map(|((_, s), cs)| {
                    cs.iter()
                        .filter(|(_, state)| state == "active")
                        .map(move |(n, _)| format!("{s}@{n}"))
                })
                .collect();
            assert!(
                !before_cut_over || active.is_empty(),
                "g1 copies {active:?} are active while the job is in its {phase} phase: {}\n{current:#}",
                map.raw
            );
        }
        match current["state"].as_str() {
            Some("succeeded") => break current,
            Some("failed") | Some("canceled") => panic!(
                "job {job} ended: {current:#}\ncontrol plane log:\n{}",
                log_tail(&fleet)
            ),
            _ => {}
        }
        assert!(
            began.elapsed() < job_timeout(),
            "job {job} still {}\ncontrol plane log:\n{}",
            progress(&current),
            log_tail(&fleet)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(done["state"], "succeeded");
    let done = wait_job_succeeded(&fleet, &job);
    let ended = Instant::now();
    println!(
        "job {job}: {snapshots} shard maps read while it ran; {}",
        progress(&done)
    );
    assert_eq!(done["kind"], "addGroup", "{done:#}");
    assert_no_errors(&done);
    load.finish(&fleet, (began, ended));

    let acked = ledger.snapshot();
    let holdings = check_holdings(&fleet, &acked);
    assert_eq!(
        holdings.map.groups(),
        BTreeSet::from(["g0".to_string(), "g1".to_string()])
    );
    assert_balanced(&holdings, "g1", &["n2", "n3"]);
    assert_copied_near_optimum(&done, holdings.count("n2") + holdings.count("n3"));

    // Both groups answer searches now (Envoy sends nothing else to the nodes meanwhile).
    let before = (
        requests_to(&fleet, &["n0", "n1"]),
        requests_to(&fleet, &["n2", "n3"]),
    );
    searches_see_everything(&fleet, &ledger, 30);
    let after = (
        requests_to(&fleet, &["n0", "n1"]),
        requests_to(&fleet, &["n2", "n3"]),
    );
    println!("requests to g0, g1 over 30 searches: {before:?} → {after:?}");
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "both groups should answer searches: requests to (g0, g1) {before:?} → {after:?}"
    );

    let (status, body) = admin(&fleet).delete("/_miroir/groups/g0").pair();
    assert_eq!(
        status,
        200,
        "DELETE /_miroir/groups/g0: {body}\ncontrol plane log:\n{}",
        log_tail(&fleet)
    );
    let map = shard_map(&fleet);
    assert_eq!(
        map.groups(),
        BTreeSet::from(["g1".to_string()]),
        "{}",
        map.raw
    );
    // Reads stop at once: the answer came once the fleet serves the new epoch.
    let g0_before = requests_to(&fleet, &["n0", "n1"]);
    searches_see_everything(&fleet, &ledger, 20);
    let g0_after = requests_to(&fleet, &["n0", "n1"]);
    assert!(
        g0_after <= g0_before,
        "g0 got {} requests after its deletion",
        g0_after - g0_before
    );
    fleet.wait_envoys_at_epoch(map.epoch);
    assert_search_sees(&fleet, &acked);
}

/// Documents for the scenarios that act in the middle of a copy: enough that it lasts.
const LARGE_PRELOAD: u64 = 12_000;

/// Scenario 4: the control plane is killed in the middle of a job's copy and restarted on its
/// store; the job resumes and completes, searches and writes carry on throughout.
#[test]
fn a_job_survives_a_control_plane_restart() {
    let mut fleet = Fleet::start(
        "elastic_cp_restart",
        one_group(&["n0", "n1", "n2"], "g0"),
        slow_copy(),
    );
    let ledger = prepare(&fleet, LARGE_PRELOAD);
    let batches = load_batches(LARGE_PRELOAD, LARGE_PRELOAD);
    let load = Load::start_with(&fleet, &ledger, batches, true);

    let address = fleet.launch_node("n3", "g0");
    let began = Instant::now();
    let job = add_node(&fleet, "n3", &address, "g0");
    let copying = wait_mid_copy(&fleet, &job, 2);
    fleet.control_plane_mut(0).kill();
    println!(
        "control plane killed during the copy: {}",
        progress(&copying)
    );
    std::thread::sleep(Duration::from_secs(2));
    fleet.control_plane_mut(0).restart();
    let resumed = try_job(&fleet, &job).unwrap_or_else(|e| panic!("after the restart: {e}"));
    println!("after the restart: {}", progress(&resumed));
    assert_ne!(resumed["state"], "failed", "{resumed:#}");
    // Resumed, not started over: the shards copied before the restart stay copied.
    assert!(
        resumed["shardsDone"].as_u64() >= copying["shardsDone"].as_u64(),
        "before the restart {}, after {}",
        progress(&copying),
        progress(&resumed)
    );
    let done = wait_job_succeeded(&fleet, &job);
    let ended = Instant::now();
    println!("job {job} took {:?}: {}", ended - began, progress(&done));
    load.finish(&fleet, (began, ended));

    let acked = ledger.snapshot();
    assert_search_sees(&fleet, &acked);
    let holdings = check_holdings(&fleet, &acked);
    assert_balanced(&holdings, "g0", &["n0", "n1", "n2", "n3"]);
    let copied = done["documentsCopied"].as_u64().unwrap_or(0);
    println!(
        "documents copied {copied}, n3 holds {} (a resumed copy may redo a shard)",
        holdings.count("n3")
    );
}

/// Scenario 5: the node a job copies to dies mid-copy: the job pauses saying why, and completes
/// once the node is back. Searches never go to the new node meanwhile, so they all succeed.
#[test]
fn a_dead_target_pauses_the_job_then_it_completes() {
    let mut fleet = Fleet::start(
        "elastic_dead_target",
        one_group(&["n0", "n1", "n2"], "g0"),
        slow_copy(),
    );
    let ledger = prepare(&fleet, LARGE_PRELOAD);
    let searcher = Searcher::start(fleet.client(0), ledger.clone());

    let address = fleet.launch_node("n3", "g0");
    let job = add_node(&fleet, "n3", &address, "g0");
    wait_mid_copy(&fleet, &job, 2);
    fleet.kill_node("n3");
    let paused = watch_job(&fleet, &job, "paused", job_timeout(), |j| {
        j["state"] == "paused"
    });
    let reason = paused["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("n3"),
        "the reason does not name n3: {paused:#}"
    );
    // It stays paused while n3 is down.
    std::thread::sleep(Duration::from_secs(2));
    let still = try_job(&fleet, &job).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(still["state"], "paused", "{still:#}");

    fleet.restart_node("n3");
    let done = wait_job_succeeded(&fleet, &job);
    println!(
        "job {job}: {}, errors met: {}",
        progress(&done),
        done["errors"]
    );
    searcher.wait_for_more(&fleet, 3);
    assert_searches_ok(&searcher.finish());

    // A write after the job reaches the new placement too.
    let late: Vec<Value> = (0..50).map(|i| document(LARGE_PRELOAD + i, 0)).collect();
    write(
        &fleet.client(0),
        "POST",
        "/indexes/movies/documents",
        &json!(late),
    );
    ledger.ack(&late);
    let acked = ledger.snapshot();
    assert_search_sees(&fleet, &acked);
    let holdings = check_holdings(&fleet, &acked);
    assert_balanced(&holdings, "g0", &["n0", "n1", "n2", "n3"]);
}

/// The control planes that say they lead (`None` if one does not answer).
fn leaders(fleet: &Fleet) -> Result<Vec<usize>, String> {
    let mut leaders = Vec::new();
    for i in 0..fleet.control_plane_count() {
        match fleet.control_plane(i).is_leader() {
            Some(true) => leaders.push(i),
            Some(false) => {}
            None => return Err(format!("control plane {i} did not answer")),
        }
    }
    Ok(leaders)
}

/// Scenario 6: two control-plane replicas on Redis; the leader is killed in the middle of a job's
/// copy. The other takes the lease, reads the job from the store and completes it; its Envoy moves
/// to the survivor (its bootstrap knows both), and searches and writes carry on throughout.
#[test]
fn a_job_survives_a_leader_change_on_redis() {
    let mut fleet = Fleet::start(
        "elastic_leader_change",
        one_group(&["n0", "n1", "n2"], "g0"),
        FleetOptions {
            store: StoreKind::Redis,
            control_planes: 2,
            // Started below, connected to the leader first: a job's rollouts wait for the Envoys
            // of the replica driving it.
            envoys: 0,
            ..slow_copy()
        },
    );
    let leader = fleet.eventually("exactly one leader", || match leaders(&fleet)?.as_slice() {
        [one] => Ok(*one),
        other => Err(format!("leaders: {other:?}")),
    });
    let survivor = 1 - leader;
    let envoy = fleet.start_failover_envoy(&[leader, survivor]);
    assert_eq!(envoy, 0);
    fleet.wait_fleet_acked(leader, 1);
    println!("control plane {leader} leads; the Envoy is connected to it");

    let ledger = prepare(&fleet, LARGE_PRELOAD);
    let batches = load_batches(LARGE_PRELOAD, LARGE_PRELOAD);
    let load = Load::start_with(&fleet, &ledger, batches, true);

    let address = fleet.launch_node("n3", "g0");
    let began = Instant::now();
    let job = add_node(&fleet, "n3", &address, "g0");
    let copying = wait_mid_copy(&fleet, &job, 2);
    assert_eq!(
        leaders(&fleet),
        Ok(vec![leader]),
        "the leader changed before the kill"
    );
    let killed_at = Instant::now();
    fleet.control_plane_mut(leader).kill();
    println!(
        "leader (control plane {leader}) killed during the copy: {}",
        progress(&copying)
    );
    assert_eq!(fleet.first_started_control_plane(), survivor);
    fleet.eventually_within(
        "the surviving replica to take the lease",
        Duration::from_secs(120),
        || match fleet.control_plane(survivor).is_leader() {
            Some(true) => Ok(()),
            other => Err(format!("leader: {other:?}")),
        },
    );
    println!(
        "control plane {survivor} leads {:?} after the kill",
        killed_at.elapsed()
    );
    // Read through the survivor (the only one left): resumed, not started over.
    let resumed = try_job(&fleet, &job).unwrap_or_else(|e| panic!("after the takeover: {e}"));
    println!("after the takeover: {}", progress(&resumed));
    assert_ne!(resumed["state"], "failed", "{resumed:#}");
    assert!(
        resumed["shardsDone"].as_u64() >= copying["shardsDone"].as_u64(),
        "before the takeover {}, after {}",
        progress(&copying),
        progress(&resumed)
    );
    let done = wait_job_succeeded(&fleet, &job);
    let ended = Instant::now();
    println!("job {job} took {:?}: {}", ended - began, progress(&done));
    assert_eq!(done["kind"], "addNode", "{done:#}");
    load.finish(&fleet, (began, ended));

    // The Envoy follows the survivor now.
    let map = shard_map(&fleet);
    let view = fleet.wait_fleet_acked(survivor, map.epoch);
    println!(
        "the survivor's fleet at epoch {}: {}",
        map.epoch, view["fleet"]
    );
    fleet.wait_envoys_at_epoch(map.epoch);

    let acked = ledger.snapshot();
    assert_search_sees(&fleet, &acked);
    let holdings = check_holdings(&fleet, &acked);
    assert_balanced(&holdings, "g0", &["n0", "n1", "n2", "n3"]);
    println!(
        "documents copied {}, n3 holds {} (a resumed copy may redo a shard)",
        done["documentsCopied"],
        holdings.count("n3")
    );
}

/// `miroirctl`: `MIROIRCTL_BIN`, else `<target>/debug/miroirctl` (`make build` builds it).
fn miroirctl_bin() -> std::path::PathBuf {
    let path = std::env::var_os("MIROIRCTL_BIN")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| miroir_e2e::paths::target_dir().join("debug/miroirctl"));
    assert!(
        path.exists(),
        "miroirctl not found at {} (set MIROIRCTL_BIN or run `make build`, which builds it)",
        path.display()
    );
    path
}

/// util-linux `script` on `PATH` (it runs a command in a pseudo-terminal).
fn script_bin() -> std::path::PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("script"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("util-linux `script` not found on PATH (apt-get install bsdutils)")
        })
}

/// `text` without its ANSI escape sequences (CSI `ESC [ … final`, and other `ESC x` pairs).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // A CSI runs to its final byte; any other escape is two characters.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// Every `<done>/<total> shards` a line of the terminal shows for `job`.
fn bar_frames(screen: &str, job: &str) -> Vec<(u64, u64, String)> {
    screen
        .split(['\r', '\n'])
        .filter(|line| line.contains(job))
        .filter_map(|line| {
            let before = &line[..line.find(" shards")?];
            let counts = before.rsplit(' ').next()?;
            let (done, total) = counts.split_once('/')?;
            Some((
                done.parse().ok()?,
                total.parse().ok()?,
                line.trim().to_string(),
            ))
        })
        .collect()
}

/// A child process SIGKILLed if the test ends before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Scenario 7: an operator watches a job with `miroirctl jobs watch <id>` in a terminal: a progress
/// bar names the job and counts its shards up to the total, and the command exits 0 once the job
/// succeeded.
#[test]
fn miroirctl_jobs_watch_shows_progress() {
    let (ctl, script) = (miroirctl_bin(), script_bin());
    let mut fleet = start("elastic_ctl_watch", one_group(&["n0", "n1", "n2"], "g0"));
    let ledger = prepare(&fleet, LARGE_PRELOAD);
    let address = fleet.launch_node("n3", "g0");
    let job = add_node(&fleet, "n3", &address, "g0");

    // As typed in a terminal of 120 columns.
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let cp = fleet.control_plane(0);
    let command = format!(
        "stty cols 120 rows 40; exec {} --url {} --admin-key {} jobs watch {}",
        quote(&ctl.to_string_lossy()),
        quote(&cp.url()),
        quote(fleet.admin_key()),
        quote(&job)
    );
    let typescript = fleet.dir().join("miroirctl-watch.typescript");
    let stdout = fleet.dir().join("miroirctl-watch.out");
    let out = std::fs::File::create(&stdout).expect("miroirctl-watch.out");
    let err = out.try_clone().expect("miroirctl-watch.out");
    let mut child = KillOnDrop(
        std::process::Command::new(&script)
            .arg("-qefc")
            .arg(&command)
            .arg(&typescript)
            .env("TERM", "xterm-256color")
            .env_remove("MIROIR_URL")
            .env_remove("MIROIR_ADMIN_KEY")
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", script.display())),
    );
    let status =
        fleet.eventually_within(
            "`miroirctl jobs watch` to exit",
            job_timeout(),
            || match child.0.try_wait() {
                Ok(Some(status)) => Ok(status),
                Ok(None) => Err(format!("still running; job: {:?}", try_job(&fleet, &job))),
                Err(e) => Err(e.to_string()),
            },
        );
    let raw = std::fs::read_to_string(&typescript).unwrap_or_default();
    let screen = strip_ansi(&raw);
    let done = wait_job_succeeded(&fleet, &job);
    let frames = bar_frames(&screen, &job);
    println!(
        "miroirctl jobs watch {job}: {status}, {} progress frames, last: {:?}",
        frames.len(),
        frames.last().map(|f| &f.2)
    );
    let context = format!("terminal ({}):\n{screen}", typescript.display());
    assert!(status.success(), "miroirctl exited {status}; {context}");
    let total = done["shardsTotal"].as_u64().unwrap_or(0);
    assert!(total > 0, "{done:#}");
    assert!(
        frames
            .iter()
            .all(|(d, t, line)| *t == total && *d <= total && line.contains('[')),
        "a progress line with another total than {total}, or no bar; {context}"
    );
    let shown: BTreeSet<u64> = frames.iter().map(|(d, _, _)| *d).collect();
    assert!(
        shown.len() >= 2 && shown.first() < Some(&total) && shown.last() == Some(&total),
        "the bar should count shards up to {total}, it showed {shown:?}; {context}"
    );
    assert!(
        frames.windows(2).all(|w| w[0].0 <= w[1].0),
        "the shard count went back; {context}"
    );
    let last = &frames[frames.len() - 1].2;
    assert!(
        last.contains("addNode") && last.contains("succeeded"),
        "the last progress line does not say the job succeeded: `{last}`; {context}"
    );

    // The job it watched did what it says.
    let acked = ledger.snapshot();
    let holdings = check_holdings(&fleet, &acked);
    assert_balanced(&holdings, "g0", &["n0", "n1", "n2", "n3"]);
}
