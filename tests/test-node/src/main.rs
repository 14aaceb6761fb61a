use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match miroir_test_node::cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
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
