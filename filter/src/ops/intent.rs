//! The calls that record a schema change with the control plane before any node sees it, and
//! close the record after (docs/control-plane.md, "Intents"). Shared by the changes sent to
//! every node ([`super::broadcast`]) and the API key changes ([`super::keys`]).

use miroir_topology::tasks::{Intent, IntentRecorded};
use miroir_topology::ControlPlaneRef;

use crate::host::{Call, Reply};
use crate::plan::calls::Ctx;
use crate::tasks::control_plane;

/// `POST /_miroir/internal/intents` with the client's credentials: the control plane records
/// the change only for a key that may make it.
pub(crate) fn record(ctx: &Ctx, control_plane: &ControlPlaneRef, intent: &Intent) -> Call {
    let mut headers = ctx.request.trace_headers();
    if let Some(auth) = ctx.request.header("authorization") {
        headers.push(("authorization".into(), auth.to_string()));
    }
    control_plane::call(
        control_plane,
        "POST",
        control_plane::INTENT_PATH.into(),
        headers,
        serde_json::to_vec(intent).ok(),
    )
}

/// The record's id; `None` when it was not recorded (the control plane unreachable, or the key
/// may not make the change): the change is sent all the same.
pub(crate) fn recorded(reply: &Reply) -> Option<u64> {
    match reply {
        Reply::Response {
            status: 201, body, ..
        } => serde_json::from_slice::<IntentRecorded>(body)
            .ok()
            .and_then(|r| r.intent),
        _ => None,
    }
}

/// `DELETE /_miroir/internal/intents/{id}`: the nodes answered a change no task registration
/// closes.
pub(crate) fn close(ctx: &Ctx, control_plane: &ControlPlaneRef, id: u64) -> Call {
    control_plane::call(
        control_plane,
        "DELETE",
        format!("{}/{id}", control_plane::INTENT_PATH),
        ctx.request.trace_headers(),
        None,
    )
}
