//! One Envoy running the rendered configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::http::Client;
use crate::paths;
use crate::process::ChildProcess;
use crate::wait::{try_poll, WaitError, DEFAULT_TIMEOUT};

/// Envoy's log levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogLevels {
    /// `-l warn --component-log-level wasm:debug,config:debug`: the tests', whose failures are
    /// read in the filter's and the configuration's debug lines.
    #[default]
    Test,
    /// `-l info`, Envoy's default and what a deployment runs with: nothing is logged per
    /// request (the filter logs a line per accepted configuration and its warnings). For
    /// `make start` and `make bench`.
    Production,
}

impl LogLevels {
    fn args(self) -> &'static [&'static str] {
        match self {
            LogLevels::Test => &[
                "-l",
                "warn",
                "--component-log-level",
                "wasm:debug,config:debug",
            ],
            LogLevels::Production => &["-l", "info"],
        }
    }
}

#[derive(Debug)]
pub struct Envoy {
    process: ChildProcess,
    admin: String,
    listener: String,
}

impl Envoy {
    /// Starts Envoy on `bootstrap` (rendered with port 0 for the listener and the admin, so
    /// the OS picks both and nothing can race us for them) and waits until it is LIVE.
    /// With the tests' log levels ([`LogLevels::Test`]).
    pub fn start(bootstrap: &Path, dir: &Path) -> Envoy {
        Self::launch(bootstrap, dir, true, LogLevels::Test)
    }

    /// [`Envoy::start`] with other log levels.
    pub fn start_with_log_levels(bootstrap: &Path, dir: &Path, levels: LogLevels) -> Envoy {
        Self::launch(bootstrap, dir, true, levels)
    }

    /// [`Envoy::start`] without waiting for a listener: for an Envoy that is expected to get
    /// none (its [`Envoy::url`] is then empty).
    pub fn start_without_listener(bootstrap: &Path, dir: &Path) -> Envoy {
        Self::launch(bootstrap, dir, false, LogLevels::Test)
    }

    fn launch(bootstrap: &Path, dir: &Path, wait_for_listener: bool, levels: LogLevels) -> Envoy {
        let admin_address_path = dir.join("envoy-admin-address");
        let log = dir.join("envoy.log");
        let mut command = Command::new(paths::envoy_bin());
        command
            .arg("-c")
            .arg(bootstrap)
            .arg("--admin-address-path")
            .arg(&admin_address_path)
            // Hot restart state lives in /dev/shm and is leaked by every SIGKILL; tests never
            // hot-restart. The dynamic base id keeps parallel Envoys apart regardless.
            .args(["--use-dynamic-base-id", "--disable-hot-restart"])
            .args(["--concurrency", "2"])
            .args(levels.args())
            .current_dir(dir);
        let mut process = ChildProcess::spawn("envoy", command, &log);
        let hint = format!("see {}", log.display());
        let fail = |what: &str, e: WaitError| -> ! {
            match e {
                WaitError::Aborted(why) => panic!("{why}"),
                WaitError::TimedOut(last) => panic!(
                    "timed out after {DEFAULT_TIMEOUT:?} waiting for {what}; last: {last}; {hint}"
                ),
            }
        };

        let admin = match try_poll(
            DEFAULT_TIMEOUT,
            || process.check_alive(),
            || read_admin_address(&admin_address_path),
        ) {
            Ok(admin) => format!("http://{admin}"),
            Err(e) => fail("Envoy's admin address file", e),
        };
        let admin_client = Client::new(&admin, None);
        let ready = try_poll(
            DEFAULT_TIMEOUT,
            || process.check_alive(),
            || {
                let reply = admin_client.try_send("GET", "/ready", None)?;
                match reply.status {
                    200 => Ok(()),
                    s => Err(format!("GET /ready: {s} {}", reply.text().trim())),
                }
            },
        );
        if let Err(e) = ready {
            fail("Envoy's admin /ready", e);
        }
        if !wait_for_listener {
            return Envoy {
                process,
                admin,
                listener: String::new(),
            };
        }
        let listener = match try_poll(
            DEFAULT_TIMEOUT,
            || process.check_alive(),
            || listener_address(&admin_client),
        ) {
            Ok(addr) => format!("http://{addr}"),
            Err(e) => fail("Envoy's listener address on admin /listeners", e),
        };
        Envoy {
            process,
            admin,
            listener,
        }
    }

    pub fn url(&self) -> &str {
        &self.listener
    }

    pub fn admin_url(&self) -> &str {
        &self.admin
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    pub fn process(&mut self) -> &mut ChildProcess {
        &mut self.process
    }

    /// Envoy is LIVE once the filter config was processed, accepted or not; a request through
    /// the listener tells which: the filter answers `/health` itself.
    pub fn wait_for_filter(&mut self, master_key: &str) {
        let client = Client::new(&self.listener, Some(master_key));
        let result = try_poll(
            DEFAULT_TIMEOUT,
            || self.process.check_alive(),
            || {
                let reply = client.try_send("GET", "/health", None)?;
                match reply.status {
                    200 => Ok(()),
                    503 if reply.text().contains("miroir_filter_unavailable") => {
                        Err("503 from the guard route: the filter did not take the request".into())
                    }
                    500 if reply.body.is_empty() => Err(
                        "500 with an empty body: the filter has no config (rejected at start?)"
                            .into(),
                    ),
                    s => Err(format!("{s} {}", reply.text())),
                }
            },
        );
        match result {
            Ok(()) => {}
            Err(WaitError::Aborted(why)) => panic!("{why}"),
            Err(WaitError::TimedOut(last)) => panic!(
                "timed out after {DEFAULT_TIMEOUT:?} waiting for GET {}/health to return 200 \
                 through the filter; last: {last}; see {}",
                self.listener,
                self.log_path().display()
            ),
        }
    }

    /// `GET /stats/prometheus`, parsed ([`crate::prometheus`]).
    pub fn prometheus(&self) -> Result<crate::prometheus::Scrape, String> {
        let reply = Client::new(&self.admin, None).try_send("GET", "/stats/prometheus", None)?;
        match reply.status {
            200 => Ok(crate::prometheus::Scrape::parse(&reply.text())),
            status => Err(format!("GET /stats/prometheus: {status} {}", reply.text())),
        }
    }

    /// Every stat: counters and gauges as numbers, text readouts as strings.
    pub fn stats(&self) -> Result<Vec<(String, Value)>, String> {
        let reply = Client::new(&self.admin, None).try_send("GET", "/stats?format=json", None)?;
        let body = reply
            .try_json()
            .ok_or_else(|| format!("GET /stats?format=json: {} {}", reply.status, reply.text()))?;
        Ok(body["stats"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s["name"].as_str()?.to_string(), s.get("value")?.clone())))
            .collect())
    }
}

fn read_admin_address(path: &PathBuf) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        Err(format!("{} is empty", path.display()))
    } else {
        Ok(text.to_string())
    }
}

fn listener_address(admin: &Client) -> Result<String, String> {
    let reply = admin.try_send("GET", "/listeners?format=json", None)?;
    let body = reply.try_json().unwrap_or(Value::Null);
    body["listener_statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["name"] == "miroir")
        .and_then(|l| {
            let socket = &l["local_address"]["socket_address"];
            let port = socket["port_value"].as_u64().filter(|p| *p != 0)?;
            Some(format!("{}:{port}", socket["address"].as_str()?))
        })
        .ok_or_else(|| format!("GET /listeners: {} {}", reply.status, reply.text()))
}
