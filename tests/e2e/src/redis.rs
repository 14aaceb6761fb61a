//! A throwaway `redis-server` for one test: loopback, a free port, its own directory, no
//! persistence, SIGKILLed on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ports::free_port;
use crate::process::ChildProcess;
use crate::wait::{try_poll, WaitError, DEFAULT_TIMEOUT};

/// `REDIS_SERVER_BIN`, else `redis-server` on `PATH` (`make setup` installs it).
pub fn redis_server_bin() -> PathBuf {
    std::env::var_os("REDIS_SERVER_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

#[derive(Debug)]
pub struct Redis {
    process: ChildProcess,
    port: u16,
}

impl Redis {
    /// Starts `redis-server` in `dir` (created) and waits until it accepts connections.
    pub fn start(dir: &Path) -> Redis {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let log = dir.join("redis.log");
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut command = Command::new(redis_server_bin());
            command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .arg("--dir")
                .arg(dir)
                .current_dir(dir);
            let mut process = ChildProcess::spawn("redis-server", command, &log);
            let up = try_poll(
                DEFAULT_TIMEOUT,
                || process.check_alive(),
                || {
                    TcpStream::connect(("127.0.0.1", port))
                        .map(|_| ())
                        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))
                },
            );
            match up {
                Ok(()) => return Redis { process, port },
                // The port was taken between picking and binding it: try another.
                Err(WaitError::Aborted(why)) if why.to_ascii_lowercase().contains("in use") => {
                    last = why
                }
                Err(WaitError::Aborted(why)) => panic!(
                    "redis-server did not start ({}; `make setup` installs it): {why}",
                    redis_server_bin().display()
                ),
                Err(WaitError::TimedOut(why)) => panic!(
                    "timed out waiting for redis-server on port {port}: {why}; see {}",
                    log.display()
                ),
            }
        }
        panic!("redis-server did not start: its port was taken 3 times in a row; last: {last}")
    }

    /// `redis://127.0.0.1:<port>`, the control plane's `store`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }
}
