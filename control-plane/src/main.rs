//! `miroir-control-plane`: see `--help` and docs/control-plane.md.

use std::process::ExitCode;

use clap::Parser;
use miroir_control_plane::{config, server, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Err(message) = config::refuse_secret_flags(&args) {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    // `--help`, `--version` (exit 0) and usage errors (exit 2) end here.
    let cli = config::Cli::parse();
    let config = match config::load(cli, |name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = match telemetry::init(config.otlp_endpoint.as_deref()) {
        Ok(t) => t,
        Err(message) => {
            eprintln!("miroir-control-plane: {message}");
            return ExitCode::FAILURE;
        }
    };
    match server::run(config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("miroir-control-plane: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
