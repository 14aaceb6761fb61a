//! Where the harness finds the workspace, the binaries under test, and where it writes logs.

use std::path::{Path, PathBuf};

pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The cargo target dir: `CARGO_TARGET_DIR` if set, else the one the running test binary was
/// built into (`<target>/debug/deps/<test>`), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            workspace_dir().join(dir)
        };
    }
    if let Ok(exe) = std::env::current_exe() {
        let deps = exe.parent();
        if deps.and_then(Path::file_name).is_some_and(|n| n == "deps") {
            if let Some(target) = deps.and_then(Path::parent).and_then(Path::parent) {
                return target.to_path_buf();
            }
        }
    }
    workspace_dir().join("target")
}

fn from_env_or(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or(default)
}

fn require(path: PathBuf, what: &str, hint: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} not found at {} ({hint})",
        path.display()
    );
    path
}

pub fn envoy_bin() -> PathBuf {
    require(
        from_env_or("ENVOY_BIN", workspace_dir().join(".venv/bin/envoy")),
        "Envoy",
        "set ENVOY_BIN or run `make setup`",
    )
}

pub fn filter_wasm() -> PathBuf {
    let path = require(
        from_env_or(
            "MIROIR_FILTER_WASM",
            target_dir().join("wasm32-wasip1/release/miroir_filter.wasm"),
        ),
        "the filter's wasm",
        "set MIROIR_FILTER_WASM or run `make test`, which builds it",
    );
    // Envoy resolves relative paths against its own cwd.
    std::path::absolute(&path).unwrap_or(path)
}

pub fn test_node_bin() -> PathBuf {
    require(
        from_env_or(
            "MIROIR_TEST_NODE_BIN",
            target_dir().join("debug/miroir-test-node"),
        ),
        "miroir-test-node",
        "set MIROIR_TEST_NODE_BIN or run `make test`, which builds it",
    )
}

pub fn control_plane_bin() -> PathBuf {
    require(
        from_env_or(
            "MIROIR_CONTROL_PLANE_BIN",
            target_dir().join("debug/miroir-control-plane"),
        ),
        "miroir-control-plane",
        "set MIROIR_CONTROL_PLANE_BIN or run `make build`, which builds it",
    )
}

/// Real Meilisearch when `MEILISEARCH_BIN` is set.
pub fn meilisearch_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("MEILISEARCH_BIN").filter(|v| !v.is_empty())?;
    Some(require(
        PathBuf::from(bin),
        "Meilisearch (MEILISEARCH_BIN)",
        "unset MEILISEARCH_BIN to use the test node",
    ))
}

/// `<target>/e2e-logs/<test>/`, wiped: every file a test leaves is from its last run.
pub fn fresh_test_dir(test: &str) -> PathBuf {
    assert!(
        !test.is_empty()
            && test
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "test name `{test}` must be non-empty [A-Za-z0-9_-]: it names a directory"
    );
    let dir = target_dir().join("e2e-logs").join(test);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot wipe {}: {e}", dir.display()),
    }
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}
