//! `miroirctl`: the operators' CLI over Miroir's admin REST API. See `miroirctl --help`.

mod cli;
mod client;
mod commands;
mod model;
mod out;
mod render;
mod watch;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
