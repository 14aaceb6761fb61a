//! Calls from the filter to the control plane's HTTP API (task registry, uid leases).

use miroir_topology::ControlPlaneRef;

use crate::host::Call;

pub const TOKEN_HEADER: &str = "x-miroir-token";
pub const REGISTER_PATH: &str = "/_miroir/internal/tasks";
pub const LEASE_PATH: &str = "/_miroir/internal/uid-leases";
/// Where a schema change is recorded before any node sees it (`miroir_topology::tasks::Intent`).
pub const INTENT_PATH: &str = "/_miroir/internal/intents";
/// Where a change with no task (a key's) that some nodes missed is recorded.
pub const MISSED_PATH: &str = "/_miroir/internal/missed";

/// A call to the control plane, carrying the filter's token and `headers` (a client's
/// credentials, for the task routes).
pub fn call(
    control_plane: &ControlPlaneRef,
    method: &'static str,
    path: String,
    mut headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
) -> Call {
    headers.retain(|(name, _)| name != TOKEN_HEADER);
    headers.push((TOKEN_HEADER.into(), control_plane.token.clone()));
    if body.is_some() && !headers.iter().any(|(n, _)| n == "content-type") {
        headers.push(("content-type".into(), "application/json".into()));
    }
    Call {
        cluster: control_plane.cluster.clone(),
        authority: control_plane.authority.clone(),
        method,
        path,
        headers,
        body,
        timeout_ms: control_plane.timeout_ms,
    }
}
