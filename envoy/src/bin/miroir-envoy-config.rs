//! `miroir-envoy-config render|push`: writes Envoy's bootstrap and the filter's ECDS file from a
//! topology file. `miroir-envoy-config bootstrap`: writes the bootstrap of an Envoy fed by the
//! control plane over ADS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miroir_envoy::{
    ads_bootstrap, filter_config, filter_config_raw, render, write_atomically, write_filter_config,
    AdsBootstrapOptions, RenderOptions, BOOTSTRAP_FILE,
};
use miroir_topology::Topology;
use serde_json::{json, Value};

const USAGE: &str = "\
usage:
  miroir-envoy-config render --topology FILE --wasm PATH --listen ADDR --admin ADDR --out DIR [--node-timeout-ms N]
  miroir-envoy-config push   --topology FILE --wasm PATH --out DIR [--node-timeout-ms N] [--force]
  miroir-envoy-config bootstrap --node-id ID --cluster NAME --xds HOST:PORT --admin ADDR [--out DIR] [--xds-token-file FILE]

render  writes DIR/envoy.json and DIR/ecds/miroir-filter.json
push    rewrites only DIR/ecds/miroir-filter.json (atomically); a running Envoy reloads it
--force push even an invalid topology (to check that the filter rejects it)
bootstrap  writes DIR/envoy.json (stdout without --out) for an Envoy that gets its listener,
           clusters and filter configuration from the control plane's ADS listener (--xds)
           --xds-token-file FILE (or MIROIR_XDS_TOKEN in the environment): the control plane's
           xDS token, sent as `authorization: Bearer <token>` on the ADS stream; the bootstrap
           then holds it and is written readable by its owner only
MIROIR_NODE_API_KEY (environment): the key the filter uses for its own metadata lookups
  (`indexes.get`, `settings.get`, `documents.get`, `tasks.get`: not the master key); without
  it they use each client's key
Secrets are never taken from the command line.";

const DEFAULT_NODE_TIMEOUT_MS: u64 = 30_000;

#[derive(Default)]
struct Args {
    topology: Option<PathBuf>,
    wasm: Option<PathBuf>,
    listen: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    out: Option<PathBuf>,
    node_timeout_ms: Option<u64>,
    force: bool,
    node_id: Option<String>,
    cluster: Option<String>,
    xds: Option<String>,
    xds_token_file: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args::default();
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        if flag == "--force" {
            parsed.force = true;
            continue;
        }
        let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let addr = |v: &str| {
            v.parse::<SocketAddr>()
                .map_err(|e| format!("{flag} `{v}`: {e} (expected IP:PORT)"))
        };
        match flag.as_str() {
            "--topology" => parsed.topology = Some(PathBuf::from(value)),
            "--wasm" => parsed.wasm = Some(PathBuf::from(value)),
            "--out" => parsed.out = Some(PathBuf::from(value)),
            "--listen" => parsed.listen = Some(addr(value)?),
            "--admin" => parsed.admin = Some(addr(value)?),
            "--node-id" => parsed.node_id = Some(value.clone()),
            "--cluster" => parsed.cluster = Some(value.clone()),
            "--xds" => parsed.xds = Some(value.clone()),
            "--xds-token-file" => parsed.xds_token_file = Some(PathBuf::from(value)),
            "--xds-token" | "--node-api-key" => {
                return Err(format!(
                    "{flag}: secrets are not taken from the command line; use a file or the environment"
                ))
            }
            "--node-timeout-ms" => {
                let ms = value
                    .parse::<u64>()
                    .map_err(|e| format!("--node-timeout-ms `{value}`: {e}"))?;
                parsed.node_timeout_ms = Some(ms);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(parsed)
}

fn required<T>(value: Option<T>, flag: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("missing {flag}"))
}

/// Envoy resolves relative paths against its own working directory, not ours.
fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_topology(path: &Path, force: bool) -> Result<Result<Topology, Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read topology {}: {e}", path.display()))?;
    let invalid = |why: String| {
        if force {
            eprintln!("warning: pushing an invalid topology ({why})");
            Ok(())
        } else {
            Err(format!("invalid topology {}: {why}", path.display()))
        }
    };
    match serde_json::from_str::<Topology>(&text) {
        Ok(topology) => {
            if let Err(e) = topology.validate() {
                invalid(e.to_string())?;
            }
            Ok(Ok(topology))
        }
        Err(e) => {
            invalid(e.to_string())?;
            // Keep what we can so the filter sees the malformed topology itself.
            let raw = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
            Ok(Err(raw))
        }
    }
}

fn run(argv: &[String]) -> Result<(), String> {
    let (command, rest) = argv.split_first().ok_or("missing command")?;
    let args = parse(rest)?;
    if command == "bootstrap" {
        return write_ads_bootstrap(args);
    }
    if args.node_id.is_some()
        || args.cluster.is_some()
        || args.xds.is_some()
        || args.xds_token_file.is_some()
    {
        return Err(
            "--node-id, --cluster, --xds and --xds-token-file are only accepted by bootstrap"
                .into(),
        );
    }
    let out = absolute(&required(args.out, "--out")?)?;
    let wasm_path = absolute(&required(args.wasm, "--wasm")?)?;
    let node_timeout_ms = args.node_timeout_ms.unwrap_or(DEFAULT_NODE_TIMEOUT_MS);
    let topology_path = required(args.topology, "--topology")?;
    match command.as_str() {
        "render" => {
            if args.force {
                return Err("--force is only accepted by push".into());
            }
            let topology = read_topology(&topology_path, false)?
                .map_err(|_| "invalid topology".to_string())?;
            let admin = required(args.admin, "--admin")?;
            if !admin.ip().is_loopback() {
                return Err(format!(
                    "--admin {admin}: the admin interface serves secrets; bind it to a loopback address"
                ));
            }
            let opts = RenderOptions {
                listen: required(args.listen, "--listen")?,
                admin,
                wasm_path,
                config_dir: out.clone(),
                node_timeout_ms,
                node_api_key: std::env::var("MIROIR_NODE_API_KEY").ok(),
            };
            let bootstrap = render(&topology, &opts)
                .write(&out)
                .map_err(|e| format!("cannot write to {}: {e}", out.display()))?;
            println!("{}", bootstrap.display());
            println!("{}", opts.ecds_path().display());
            Ok(())
        }
        "push" => {
            if args.listen.is_some() || args.admin.is_some() {
                return Err("push only rewrites the filter config: drop --listen/--admin".into());
            }
            let opts = RenderOptions {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                admin: SocketAddr::from(([127, 0, 0, 1], 0)),
                wasm_path,
                config_dir: out.clone(),
                node_timeout_ms,
                node_api_key: std::env::var("MIROIR_NODE_API_KEY").ok(),
            };
            let config = match read_topology(&topology_path, args.force)? {
                Ok(topology) => filter_config(&topology, &opts),
                Err(raw) => {
                    let version = raw
                        .get("epoch")
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "invalid".into());
                    let plugin = json!({"topology": raw, "nodeTimeoutMs": node_timeout_ms});
                    filter_config_raw(&version, &plugin.to_string(), &opts.wasm_path)
                }
            };
            let path = write_filter_config(&opts.ecds_dir(), &config)
                .map_err(|e| format!("cannot write to {}: {e}", opts.ecds_dir().display()))?;
            println!("{}", path.display());
            Ok(())
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`")),
    }
}

fn write_ads_bootstrap(args: Args) -> Result<(), String> {
    if args.topology.is_some() || args.wasm.is_some() || args.listen.is_some() || args.force {
        return Err(
            "bootstrap takes no topology, wasm or listener: the control plane sends them".into(),
        );
    }
    let admin = required(args.admin, "--admin")?;
    if !admin.ip().is_loopback() {
        return Err(format!(
            "--admin {admin}: the admin interface serves secrets; bind it to a loopback address"
        ));
    }
    let xds = required(args.xds, "--xds")?;
    match xds.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
        _ => return Err(format!("--xds `{xds}`: expected HOST:PORT")),
    }
    let xds_token = match &args.xds_token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--xds-token-file {}: {e}", path.display()))?;
            Some(text.trim().to_string()).filter(|t| !t.is_empty())
        }
        None => std::env::var("MIROIR_XDS_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()),
    };
    let opts = AdsBootstrapOptions {
        node_id: required(args.node_id, "--node-id")?,
        cluster: required(args.cluster, "--cluster")?,
        xds,
        admin,
        xds_token,
    };
    let mut bytes = serde_json::to_vec_pretty(&ads_bootstrap(&opts)).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    match args.out {
        Some(dir) => {
            let dir = absolute(&dir)?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let path = dir.join(BOOTSTRAP_FILE);
            write_atomically(&path, &bytes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("{}", path.display());
        }
        None => print!("{}", String::from_utf8_lossy(&bytes)),
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("miroir-envoy-config: {e}\n(run with --help for usage)");
            ExitCode::from(2)
        }
    }
}
