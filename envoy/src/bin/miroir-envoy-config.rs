//! `miroir-envoy-config render|push`: writes Envoy's bootstrap and the filter's ECDS file from a
//! topology file. `miroir-envoy-config bootstrap`: writes the bootstrap of an Envoy fed by the
//! control plane over ADS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use miroir_envoy::{
    ads_bootstrap, filter_config, filter_config_raw, render, write_atomically, write_filter_config,
    AdsBootstrapOptions, RenderOptions, BOOTSTRAP_FILE,
};
use miroir_topology::Topology;
use serde_json::{json, Value};

const ENV_HELP: &str = "\
Environment:
  MIROIR_NODE_API_KEY  render, push: the key the filter uses for its own metadata lookups
                       (`indexes.get`, `settings.get`, `documents.get`, `tasks.get`: not the master
                       key); without it they use each client's key
  MIROIR_XDS_TOKEN     bootstrap, without --xds-token-file: the control plane's xDS token
Secrets are never taken from the command line.";

/// Renders Envoy's configuration for Miroir: a static Envoy with file-based ECDS (`render`,
/// `push`), or the bootstrap of an Envoy fed by the control plane over ADS (`bootstrap`).
#[derive(Debug, Parser)]
#[command(name = "miroir-envoy-config", version, after_help = ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes DIR/envoy.json and DIR/ecds/miroir-filter.json (prints both paths).
    Render {
        #[command(flatten)]
        filter: FilterArgs,
        /// The client listener (the Meilisearch API).
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// Envoy's admin interface (a loopback address: it serves secrets).
        #[arg(long, value_name = "ADDR")]
        admin: SocketAddr,
    },
    /// Rewrites only DIR/ecds/miroir-filter.json (atomically); a running Envoy reloads it.
    Push {
        #[command(flatten)]
        filter: FilterArgs,
        /// Push even an invalid topology (to check that the filter rejects it).
        #[arg(long)]
        force: bool,
    },
    /// Writes DIR/envoy.json (stdout without --out) for an Envoy that gets its listener,
    /// clusters and filter configuration from the control plane's ADS listener (--xds).
    Bootstrap {
        /// The Envoy's `node.id`.
        #[arg(long, value_name = "ID")]
        node_id: String,
        /// The Envoy's `node.cluster`.
        #[arg(long, value_name = "NAME")]
        cluster: String,
        /// The control plane's xDS listener.
        #[arg(long, value_name = "HOST:PORT")]
        xds: String,
        /// Envoy's admin interface (a loopback address: it serves secrets).
        #[arg(long, value_name = "ADDR")]
        admin: SocketAddr,
        /// Where to write envoy.json (stdout without it).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The control plane's xDS token (else MIROIR_XDS_TOKEN), sent as `authorization:
        /// Bearer <token>` on the ADS stream; the bootstrap then holds it and is written
        /// readable by its owner only.
        #[arg(long, value_name = "FILE")]
        xds_token_file: Option<PathBuf>,
    },
}

/// What `render` and `push` read and write.
#[derive(Debug, Args)]
struct FilterArgs {
    /// The topology (JSON).
    #[arg(long, value_name = "FILE")]
    topology: PathBuf,
    /// The filter's .wasm.
    #[arg(long, value_name = "PATH")]
    wasm: PathBuf,
    /// The configuration directory (envoy.json, ecds/miroir-filter.json).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The deadline of every call to a node.
    #[arg(long, value_name = "N", default_value_t = 30_000)]
    node_timeout_ms: u64,
}

/// A secret option is refused before anything is parsed (other users see a command line), and
/// never declared to clap (whose "a similar argument exists" would suggest it).
fn refuse_secrets(args: &[String]) -> Result<(), String> {
    for flag in ["--xds-token", "--node-api-key"] {
        if args
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        {
            return Err(format!(
                "{flag}: secrets are not taken from the command line; use a file or the environment"
            ));
        }
    }
    Ok(())
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

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Render {
            filter,
            listen,
            admin,
        } => {
            let out = absolute(&filter.out)?;
            let wasm_path = absolute(&filter.wasm)?;
            let topology = read_topology(&filter.topology, false)?
                .map_err(|_| "invalid topology".to_string())?;
            if !admin.ip().is_loopback() {
                return Err(format!(
                    "--admin {admin}: the admin interface serves secrets; bind it to a loopback address"
                ));
            }
            let opts = RenderOptions {
                listen,
                admin,
                wasm_path,
                config_dir: out.clone(),
                node_timeout_ms: filter.node_timeout_ms,
                node_api_key: std::env::var("MIROIR_NODE_API_KEY").ok(),
            };
            let bootstrap = render(&topology, &opts)
                .write(&out)
                .map_err(|e| format!("cannot write to {}: {e}", out.display()))?;
            println!("{}", bootstrap.display());
            println!("{}", opts.ecds_path().display());
            Ok(())
        }
        Command::Push { filter, force } => {
            let out = absolute(&filter.out)?;
            let node_timeout_ms = filter.node_timeout_ms;
            let opts = RenderOptions {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                admin: SocketAddr::from(([127, 0, 0, 1], 0)),
                wasm_path: absolute(&filter.wasm)?,
                config_dir: out.clone(),
                node_timeout_ms,
                node_api_key: std::env::var("MIROIR_NODE_API_KEY").ok(),
            };
            let config = match read_topology(&filter.topology, force)? {
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
        Command::Bootstrap {
            node_id,
            cluster,
            xds,
            admin,
            out,
            xds_token_file,
        } => write_ads_bootstrap(
            AdsBootstrapOptions {
                node_id,
                cluster,
                xds,
                admin,
                xds_token: None,
            },
            xds_token_file,
            out,
        ),
    }
}

fn write_ads_bootstrap(
    mut opts: AdsBootstrapOptions,
    xds_token_file: Option<PathBuf>,
    out: Option<PathBuf>,
) -> Result<(), String> {
    let admin = opts.admin;
    if !admin.ip().is_loopback() {
        return Err(format!(
            "--admin {admin}: the admin interface serves secrets; bind it to a loopback address"
        ));
    }
    match opts.xds.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
        _ => return Err(format!("--xds `{}`: expected HOST:PORT", opts.xds)),
    }
    opts.xds_token = match &xds_token_file {
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
    let mut bytes = serde_json::to_vec_pretty(&ads_bootstrap(&opts)).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    match out {
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
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Err(e) = refuse_secrets(&args) {
        eprintln!("miroir-envoy-config: {e}");
        return ExitCode::from(2);
    }
    // `--help`, `--version` (exit 0) and usage errors (exit 2) end here.
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("miroir-envoy-config: {e}\n(run with --help for usage)");
            ExitCode::from(2)
        }
    }
}
