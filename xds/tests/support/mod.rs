//! A real Envoy for the integration tests: spawned on an ADS bootstrap in a per-test directory,
//! SIGKILLed on drop; and a tiny HTTP/1.1 client for its admin and listener.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn envoy_bin() -> PathBuf {
    match std::env::var_os("ENVOY_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => repo_root().join(".venv/bin/envoy"),
    }
}

pub fn filter_wasm() -> PathBuf {
    match std::env::var_os("MIROIR_FILTER_WASM") {
        Some(path) => PathBuf::from(path),
        // Where cargo builds it: `CARGO_TARGET_DIR` when set, as `make wasm` honours it.
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
            .join("wasm32-wasip1/release/miroir_filter.wasm"),
    }
}

/// A fresh directory for one test, kept after the test for its logs.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = repo_root()
        .join("target/xds-it")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::path::absolute(dir).unwrap()
}

pub struct Envoy {
    child: Child,
    pub admin: SocketAddr,
    pub log: PathBuf,
}

impl Envoy {
    /// Starts Envoy on `bootstrap` and waits for its admin address (not for LIVE: an
    /// ADS-fed Envoy is not ready before the control plane sent it something).
    pub fn start(bootstrap: &Path, dir: &Path) -> Envoy {
        let admin_path = dir.join("admin-address");
        let log = dir.join("envoy.log");
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(bootstrap)
            .arg("--admin-address-path")
            .arg(&admin_path)
            // Hot restart state in /dev/shm would leak with every SIGKILL.
            .args(["--use-dynamic-base-id", "--disable-hot-restart"])
            .args(["--concurrency", "2", "-l", "warn"])
            .args([
                "--component-log-level",
                "wasm:debug,config:debug,upstream:info",
            ])
            .args(["--drain-time-s", "1"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", envoy_bin().display()));
        let mut envoy = Envoy {
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let admin = envoy.poll("Envoy's admin address", Duration::from_secs(30), |_| {
            let text = std::fs::read_to_string(&admin_path).map_err(|e| e.to_string())?;
            text.trim().parse::<SocketAddr>().map_err(|e| e.to_string())
        });
        envoy.admin = admin;
        envoy
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(6000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    /// Polls `f` until it succeeds; panics with the last error and the end of the log.
    pub fn poll<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Envoy) -> Result<T, String>,
    ) -> T {
        let start = Instant::now();
        loop {
            let last = match f(self) {
                Ok(value) => return value,
                Err(e) => e,
            };
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "Envoy exited ({status}) while waiting for {what}; log:\n{}",
                    self.log_tail()
                );
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out waiting for {what}; last: {last}; log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn admin_get(&self, path: &str) -> Result<(u16, String), String> {
        http_get(self.admin, path)
    }

    pub fn admin_json(&self, path: &str) -> Result<Value, String> {
        let (status, body) = self.admin_get(path)?;
        if status != 200 {
            return Err(format!("GET {path}: {status} {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}"))
    }

    /// Where the listener `miroir` is bound (it was configured with port 0).
    pub fn listener(&self) -> Result<SocketAddr, String> {
        let body = self.admin_json("/listeners?format=json")?;
        body["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == "miroir")
            .and_then(|l| {
                let socket = &l["local_address"]["socket_address"];
                let port = socket["port_value"].as_u64().filter(|p| *p != 0)?;
                format!("{}:{port}", socket["address"].as_str()?)
                    .parse()
                    .ok()
            })
            .ok_or_else(|| format!("no bound listener `miroir` in {body}"))
    }

    /// Names of the clusters Envoy has, from admin `/clusters`.
    pub fn clusters(&self) -> Result<Vec<String>, String> {
        let body = self.admin_json("/clusters?format=json")?;
        let mut names: Vec<String> = body["cluster_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The version of the filter config `miroir` Envoy runs: the stat `version_text`.
    /// `/config_dump`'s ECDS section is no proof: it shows the last config received, even one
    /// Envoy rejected.
    pub fn ecds_version(&self) -> Result<String, String> {
        let stat = "extension_config_discovery.http_filter.miroir.version_text";
        let (status, body) = self.admin_get(&format!("/stats?filter=^{stat}$"))?;
        body.lines()
            .find_map(|line| line.strip_prefix(stat)?.strip_prefix(": "))
            .map(|v| v.trim().trim_matches('"').to_string())
            .ok_or_else(|| format!("GET /stats: {status} {body}"))
    }

    /// `update_rejected` of the filter config `miroir`.
    pub fn ecds_rejections(&self) -> Result<u64, String> {
        let stat = "extension_config_discovery.http_filter.miroir.update_rejected";
        let (status, body) = self.admin_get(&format!("/stats?filter=^{stat}$"))?;
        body.lines()
            .find_map(|line| line.strip_prefix(stat)?.strip_prefix(": "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("GET /stats: {status} {body}"))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTP/1.1 with `Connection: close`; decodes a chunked body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head}"))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("chunk size `{size_text}`: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
