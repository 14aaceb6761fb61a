//! Task uids handed to clients, and the records behind them kept in this Envoy.
//!
//! With a control plane (`controlPlane` in the plugin configuration) the control plane allocates
//! uids and keeps the records; this Envoy keeps only what it had to answer while the control plane
//! was unreachable: uids from a block leased in advance, their records, and the list of records
//! still to hand over. Without a control plane (a single static Envoy) uids are allocated here.
//! Everything lives in Envoy's process-wide shared data, so every worker sees it.

pub mod background;
pub mod control_plane;

use serde::{Deserialize, Serialize};

pub use miroir_topology::tasks::{aggregate, NodeTask, Registered, TaskRecord, UidLease};

use crate::host::Host;

const NEXT_KEY: &str = "miroir/tasks/next";
const LEASES_KEY: &str = "miroir/tasks/leases";
const OUTBOX_KEY: &str = "miroir/tasks/outbox";
const UNREACHABLE_KEY: &str = "miroir/tasks/control-plane-unreachable";
/// Records kept for uids allocated here (static mode); older ones are freed.
pub const RETAINED_TASKS: u32 = 100_000;
const CAS_ATTEMPTS: usize = 64;

fn task_key(uid: u32) -> String {
    format!("miroir/tasks/{uid}")
}

/// Reads a JSON value from shared data with its CAS token.
fn load<T: for<'de> Deserialize<'de> + Default>(host: &dyn Host, key: &str) -> (T, u32) {
    let (value, cas) = host.shared_get(key);
    let parsed = value
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default();
    (parsed, cas)
}

/// Applies `change` to a JSON value under CAS; `change` returns what the caller gets back.
fn update<T, R>(host: &mut dyn Host, key: &str, mut change: impl FnMut(&mut T) -> R) -> Option<R>
where
    T: Serialize + for<'de> Deserialize<'de> + Default,
{
    for _ in 0..CAS_ATTEMPTS {
        let (mut value, cas) = load::<T>(host, key);
        let result = change(&mut value);
        let bytes = serde_json::to_vec(&value).ok()?;
        if host.shared_set(key, &bytes, cas) {
            return Some(result);
        }
    }
    None
}

pub fn store(host: &mut dyn Host, uid: u32, record: &TaskRecord) -> bool {
    match serde_json::to_vec(record) {
        Ok(bytes) => host.shared_set(&task_key(uid), &bytes, 0),
        Err(_) => false,
    }
}

pub fn lookup(host: &dyn Host, uid: u32) -> Option<TaskRecord> {
    let (value, _) = host.shared_get(&task_key(uid));
    serde_json::from_slice(&value?).ok()
}

/// Static mode: the next uid of this Envoy, with its record stored under it.
pub fn register_here(host: &mut dyn Host, record: &TaskRecord) -> Option<u32> {
    let uid = update::<Option<u32>, _>(host, NEXT_KEY, |next| {
        let uid = next.unwrap_or(0);
        *next = uid.checked_add(1);
        next.map(|_| uid)
    })??;
    if !store(host, uid, record) {
        return None;
    }
    if let Some(old) = uid.checked_sub(RETAINED_TASKS) {
        // Shared data has no delete that every SDK version offers; an empty value frees the memory.
        host.shared_set(&task_key(old), b"", 0);
    }
    Some(uid)
}

/// Uids still available from leases.
pub fn leased_remaining(host: &dyn Host) -> u64 {
    let (leases, _) = load::<Vec<UidLease>>(host, LEASES_KEY);
    leases
        .iter()
        .map(|l| {
            u64::from(l.last)
                .saturating_sub(u64::from(l.first))
                .saturating_add(1)
        })
        .fold(0, u64::saturating_add)
}

pub fn add_lease(host: &mut dyn Host, lease: UidLease) -> bool {
    if lease.first > lease.last {
        return false;
    }
    update::<Vec<UidLease>, _>(host, LEASES_KEY, |leases| leases.push(lease)).is_some()
}

/// Takes the next leased uid, if any is left.
pub fn take_leased(host: &mut dyn Host) -> Option<u32> {
    update::<Vec<UidLease>, _>(host, LEASES_KEY, |leases| {
        let lease = leases.first_mut()?;
        let uid = lease.first;
        if lease.first == lease.last {
            leases.remove(0);
        } else {
            // Below `lease.last`, so this never saturates.
            lease.first = lease.first.saturating_add(1);
        }
        Some(uid)
    })?
}

/// Records answered with a leased uid and not yet handed to the control plane.
pub fn outbox(host: &dyn Host) -> Vec<u32> {
    load::<Vec<u32>>(host, OUTBOX_KEY).0
}

pub fn outbox_add(host: &mut dyn Host, uid: u32) -> bool {
    update::<Vec<u32>, _>(host, OUTBOX_KEY, |uids| uids.push(uid)).is_some()
}

pub fn outbox_remove(host: &mut dyn Host, uid: u32) {
    update::<Vec<u32>, _>(host, OUTBOX_KEY, |uids| uids.retain(|u| *u != uid));
}

/// Whether the last call to the control plane failed.
pub fn control_plane_unreachable(host: &dyn Host) -> bool {
    host.shared_get(UNREACHABLE_KEY).0.as_deref() == Some(b"1")
}

pub fn set_control_plane_unreachable(host: &mut dyn Host, unreachable: bool) {
    let value: &[u8] = if unreachable { b"1" } else { b"0" };
    host.shared_set(UNREACHABLE_KEY, value, 0);
}

#[cfg(test)]
mod tests;
