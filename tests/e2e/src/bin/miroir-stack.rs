//! `make start`: a local Miroir stack (3 nodes in one replica group + Envoy with the filter) for
//! trying Miroir with any Meilisearch SDK. Runs until SIGINT or SIGTERM; everything it started
//! is killed on the way out (a signal's default action would skip the cluster's Drop and leave
//! the nodes and Envoy running).

use std::net::SocketAddr;

use miroir_e2e::{Cluster, Options, Spec};

fn main() {
    let port: u16 = std::env::var("MIROIR_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(7700);
    let key = std::env::var("MIROIR_MASTER_KEY").unwrap_or_else(|_| "miroir-dev-master-key".into());
    let options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        master_key: Some(key.clone()),
        ..Options::default()
    };
    let spec = Spec::new(&[("n0", "g0"), ("n1", "g0"), ("n2", "g0")], 16, 1);
    let cluster = Cluster::start_with("miroir-stack", spec, options);
    let nodes = if std::env::var_os("MEILISEARCH_BIN").is_some() {
        "Meilisearch"
    } else {
        "test (Meilisearch-compatible)"
    };
    println!("Miroir is up. Send Meilisearch requests to:");
    println!("  URL:        {}", cluster.envoy_url());
    println!("  master key: {key}");
    println!("{} nodes: {}", nodes, cluster.node_ids().join(", "));
    println!(
        "Envoy admin: {} · logs: {}",
        cluster.admin_url(),
        cluster.dir().display()
    );
    println!("Ctrl-C stops the stack.");
    let (stop, stopped) = std::sync::mpsc::channel();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = stop.send(());
    }) {
        eprintln!("cannot handle signals ({e}); stop the stack with Ctrl-C in this terminal");
    }
    let _ = stopped.recv();
    drop(cluster);
    println!("Miroir stopped.");
}
