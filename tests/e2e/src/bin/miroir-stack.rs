//! `make start`: a local Miroir stack run through the control plane: 3 nodes in one replica
//! group (and a spare 4th node to add with `miroirctl`), `miroir-control-plane` with its embedded store, and one Envoy on the ADS bootstrap
//! (it knows only the control plane and gets its listener, clusters and filter over xDS).
//! The Envoy authenticates to the xDS server with a token (`MIROIR_XDS_TOKEN`, else a fresh one);
//! the filter gets a key of its own, made by the control plane with the master key.
//! Runs until SIGINT or SIGTERM; everything it started is killed on the way out (a signal's
//! default action would skip the fleet's Drop and leave the processes running).

use std::net::SocketAddr;

use clap::Parser;
use miroir_e2e::{Fleet, FleetOptions, LogLevels, Spec};

/// A local Miroir stack (`make start`): 3 nodes in one replica group and a spare 4th,
/// `miroir-control-plane` with its embedded store, and one Envoy fed by it over xDS. Runs until
/// Ctrl-C (SIGINT) or SIGTERM. The nodes are real Meilisearch with MEILISEARCH_BIN, else the
/// project's test node.
#[derive(Debug, Parser)]
#[command(
    name = "miroir-stack",
    version,
    after_help = "Secrets come from the environment only: MIROIR_MASTER_KEY (default \
                  miroir-dev-master-key), MIROIR_ADMIN_KEY (default miroir-dev-admin-key), \
                  MIROIR_XDS_TOKEN (default: a fresh one per run)."
)]
struct Cli {
    /// Envoy's client listener (the Meilisearch API) on 127.0.0.1.
    #[arg(long, env = "MIROIR_PORT", default_value_t = 7700)]
    port: u16,
}

fn main() {
    let port = Cli::parse().port;
    let key = std::env::var("MIROIR_MASTER_KEY").unwrap_or_else(|_| "miroir-dev-master-key".into());
    let admin_key =
        std::env::var("MIROIR_ADMIN_KEY").unwrap_or_else(|_| "miroir-dev-admin-key".into());
    // Envoys authenticate to the xDS server (it hands out the filter's key): a fresh token per
    // run unless given.
    let xds_token = std::env::var("MIROIR_XDS_TOKEN").ok();
    let options = FleetOptions {
        xds_token,
        envoy_listen: SocketAddr::from(([127, 0, 0, 1], port)),
        master_key: Some(key.clone()),
        admin_key: Some(admin_key.clone()),
        // Development pace: nodes are checked every second, failed after 3 missed checks.
        health: miroir_e2e::Health {
            interval_ms: 1_000,
            ..miroir_e2e::Health::default()
        },
        // Envoy's default levels, as deployed (the tests' are wasm and config at debug).
        envoy_log_levels: LogLevels::Production,
        ..FleetOptions::default()
    };
    let spec = Spec::new(&[("n0", "g0"), ("n1", "g0"), ("n2", "g0")], 64, 1);
    let mut fleet = Fleet::start("miroir-stack", spec, options);
    let members = fleet.node_ids().join(", ");
    // A 4th node, not in the cluster yet: growing the cluster is one command away.
    let spare = fleet.launch_node("n3", "g0");
    let nodes = if std::env::var_os("MEILISEARCH_BIN").is_some() {
        "Meilisearch"
    } else {
        "test (Meilisearch-compatible)"
    };
    let cp = fleet.control_plane(0);
    println!("Miroir is up. Send Meilisearch requests to:");
    println!("  URL:        {}", fleet.envoy_url(0));
    println!("  master key: {key}");
    println!("Control plane (admin API /_miroir/*, /metrics, docs/admin-api.openapi.yaml):");
    println!("  URL:        {}", cp.url());
    println!("  admin key:  {admin_key}");
    println!(
        "  page:       {}/_miroir/ui (the operator's page, docs/ui.md)",
        cp.url()
    );
    println!("  xDS (ADS):  {}", cp.xds_address());
    println!("  xDS token:  {}", fleet.xds_token());
    println!("{nodes} nodes: {members}");
    println!("A spare node, not in the cluster yet, at {spare}. Grow the cluster onto it:");
    println!(
        "  target/debug/miroirctl --url {} --admin-key {admin_key} node add n3 {spare} --group g0 --watch",
        cp.url()
    );
    println!(
        "Envoy admin: {} · logs: {}",
        fleet.envoy(0).admin_url(),
        fleet.dir().display()
    );
    println!("Ctrl-C stops the stack.");
    let (stop, stopped) = std::sync::mpsc::channel();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = stop.send(());
    }) {
        eprintln!("cannot handle signals ({e}); stop the stack with Ctrl-C in this terminal");
    }
    let _ = stopped.recv();
    drop(fleet);
    println!("Miroir stopped.");
}
