use std::process::ExitCode;

use clap::Parser;
use miroir_test_node::cli::{Cli, Config};

#[tokio::main]
async fn main() -> ExitCode {
    // `--help`, `--version` (exit 0) and usage errors (exit 2) end here.
    let config = Config::from(Cli::parse());
    let listener = match tokio::net::TcpListener::bind(config.http_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("miroir-test-node: cannot bind {}: {e}", config.http_addr);
            return ExitCode::FAILURE;
        }
    };
    match miroir_test_node::serve(listener, config.master_key).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("miroir-test-node: {e}");
            ExitCode::FAILURE
        }
    }
}
