//! Issue 12: every binary's command line (clap: `--help`, `--version`), and the control plane
//! started from a TOML file with environment overrides, answering its probes.

use std::path::PathBuf;
use std::process::Command;

use miroir_e2e::wait::{try_poll, WaitError, DEFAULT_TIMEOUT};
use miroir_e2e::{free_port, paths, ChildProcess, Client};

/// A binary of the workspace (`make build` builds them all).
fn bin(name: &str) -> PathBuf {
    let path = paths::target_dir().join("debug").join(name);
    assert!(
        path.exists(),
        "{} not found (`make build` builds every binary)",
        path.display()
    );
    path
}

#[test]
fn every_binary_has_help_and_version() {
    let binaries = [
        ("miroir-control-plane", paths::control_plane_bin()),
        ("miroir-test-node", paths::test_node_bin()),
        (
            "miroir-stack",
            PathBuf::from(env!("CARGO_BIN_EXE_miroir-stack")),
        ),
        (
            "miroir-bench",
            PathBuf::from(env!("CARGO_BIN_EXE_miroir-bench")),
        ),
        ("miroirctl", bin("miroirctl")),
        ("miroir-envoy-config", bin("miroir-envoy-config")),
    ];
    for (name, path) in binaries {
        for flag in ["--help", "--version"] {
            let out = Command::new(&path)
                .arg(flag)
                .env_remove("MIROIR_PORT")
                .output()
                .unwrap_or_else(|e| panic!("{name} {flag}: {e}"));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{name} {flag}: {:?} {stdout} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let expected = match flag {
                "--help" => "Usage:".to_string(),
                _ => format!("{name} {}", env!("CARGO_PKG_VERSION")),
            };
            assert!(stdout.contains(&expected), "{name} {flag}: {stdout}");
        }
        // A mistyped option is a usage error (exit 2), not a start.
        let out = Command::new(&path)
            .arg("--no-such-option")
            .output()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.status.code(), Some(2), "{name} --no-such-option");
    }
    // A secret is refused on the command line, and not repeated.
    let out = Command::new(paths::control_plane_bin())
        .args(["--admin-key", "s3cret-value"])
        .output()
        .expect("control plane");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not taken from the command line") && !stderr.contains("s3cret-value"),
        "{stderr}"
    );
}

/// The control plane from a TOML file: the environment overrides its `httpListen` and gives the
/// admin key; `/_miroir/live` answers without a key, `/_miroir/ready` once a leader is known,
/// and the admin API takes the key from the environment.
#[test]
fn control_plane_from_toml_with_environment_overrides() {
    let dir = paths::fresh_test_dir("cli_toml");
    let (file_port, env_port) = (free_port(), free_port());
    let config = dir.join("control-plane.toml");
    std::fs::write(
        &config,
        format!(
            r#"httpListen = "127.0.0.1:{file_port}"
store = "embedded:{store}"
replicaId = "cp-toml"

[health]
intervalMs = 60000

[topology]
shards = 4
replicationFactor = 1

[[topology.nodes]]
id = "n0"
address = "127.0.0.1:1"
group = "g0"
"#,
            store = dir.join("data").display()
        ),
    )
    .expect("write the configuration");
    let mut command = Command::new(paths::control_plane_bin());
    command
        .arg("--config")
        .arg(&config)
        .current_dir(&dir)
        .env("MIROIR_HTTP_LISTEN", format!("127.0.0.1:{env_port}"))
        .env("MIROIR_ADMIN_KEY", "toml-admin-key")
        .env("RUST_LOG", "info");
    for (variable, _) in std::env::vars_os() {
        let name = variable.to_string_lossy();
        if name.starts_with("MIROIR_") && name != "MIROIR_HTTP_LISTEN" && name != "MIROIR_ADMIN_KEY"
        {
            command.env_remove(&variable);
        }
    }
    let log = dir.join("control-plane.log");
    let mut process = ChildProcess::spawn("control plane", command, &log);
    let url = format!("http://127.0.0.1:{env_port}");
    let open = Client::new(&url, None);
    let ready = try_poll(
        DEFAULT_TIMEOUT,
        || process.check_alive(),
        || {
            let live = open.try_send("GET", "/_miroir/live", None)?;
            if live.status != 200 {
                return Err(format!("live: {} {}", live.status, live.text()));
            }
            let ready = open.try_send("GET", "/_miroir/ready", None)?;
            match ready.status {
                200 => Ok(ready.json()),
                s => Err(format!("ready: {s} {}", ready.text())),
            }
        },
    );
    let ready = match ready {
        Ok(body) => body,
        Err(WaitError::TimedOut(last) | WaitError::Aborted(last)) => panic!(
            "the control plane did not become ready at {url}: {last}; see {}",
            log.display()
        ),
    };
    assert_eq!(ready["leader"], true, "{ready}");
    assert_eq!(ready["leaderId"], "cp-toml", "{ready}");
    assert_eq!(ready["epoch"], 1, "{ready}");
    assert_eq!(ready["fleet"]["converged"], true, "{ready}");
    // The file's port was overridden by the environment.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", file_port)).is_err(),
        "the file's httpListen should have been overridden"
    );
    // The admin API needs the key the environment gave.
    let reply = open
        .try_send("GET", "/_miroir/topology", None)
        .expect("topology");
    assert_eq!(reply.status, 401, "{}", reply.text());
    let admin = Client::new(&url, Some("toml-admin-key"));
    let (status, topology) = admin.get("/_miroir/topology").pair();
    assert_eq!(status, 200, "{topology}");
    assert_eq!(topology["shards"], 4, "{topology}");
    process.kill();
}
