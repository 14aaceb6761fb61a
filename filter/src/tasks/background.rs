//! Work of the root context, on a timer: keep a block of leased task uids ready for when the
//! control plane is unreachable, and hand over the records of tasks answered meanwhile.
//!
//! Every worker's VM runs this; shared data keeps them from doing the same work twice only
//! approximately (a lease taken twice is harmless, a hand-over is idempotent).

use std::collections::BTreeMap;

use crate::config::FilterConfig;
use miroir_topology::tasks::TaskRegistration;
use serde_json::json;

use crate::host::{Host, Reply};
use crate::metrics::Calls;
use crate::tasks::control_plane;
use crate::tasks::{self, UidLease};

/// Leased uids kept in reserve; a new lease is asked for below this.
pub const LEASE_LOW_WATER: u64 = 200;
pub const LEASE_SIZE: u64 = 1000;
/// Hand-overs in flight at once.
const HANDOVER_BATCH: usize = 32;

enum Job {
    Lease,
    Handover(u32),
}

pub struct Background {
    envoy_id: String,
    in_flight: BTreeMap<u32, Job>,
    /// The calls in flight, timed ([`crate::metrics`]).
    calls: Calls,
}

impl Background {
    pub fn new(envoy_id: String) -> Self {
        Background {
            envoy_id,
            in_flight: BTreeMap::new(),
            calls: Calls::default(),
        }
    }

    /// Envoy's node id may not be readable yet when the plugin is configured; it is asked again.
    pub fn ensure_envoy_id(&mut self, read: impl FnOnce() -> String) {
        if self.envoy_id.is_empty() {
            self.envoy_id = read();
        }
    }

    pub fn tick(&mut self, config: &FilterConfig, host: &mut dyn Host) {
        let mut calls = std::mem::take(&mut self.calls);
        self.send(config, &mut calls.timing(host));
        self.calls = calls;
    }

    fn send(&mut self, config: &FilterConfig, host: &mut dyn Host) {
        let Some(cp) = &config.control_plane else {
            return;
        };
        let leasing = self.in_flight.values().any(|j| matches!(j, Job::Lease));
        if !leasing && tasks::leased_remaining(host) < LEASE_LOW_WATER {
            let body = json!({"envoy": self.envoy_id, "count": LEASE_SIZE});
            let call = control_plane::call(
                cp,
                "POST",
                control_plane::LEASE_PATH.into(),
                Vec::new(),
                serde_json::to_vec(&body).ok(),
            );
            if let Ok(token) = host.dispatch(&call) {
                self.in_flight.insert(token, Job::Lease);
            }
        }
        let busy: Vec<u32> = self
            .in_flight
            .values()
            .filter_map(|j| match j {
                Job::Handover(uid) => Some(*uid),
                Job::Lease => None,
            })
            .collect();
        for uid in tasks::outbox(host)
            .into_iter()
            .filter(|u| !busy.contains(u))
            .take(HANDOVER_BATCH.saturating_sub(busy.len()))
        {
            let Some(record) = tasks::lookup(host, uid) else {
                tasks::outbox_remove(host, uid);
                continue;
            };
            let body = TaskRegistration {
                task_uid: Some(uid),
                record,
                missed: None,
            };
            let call = control_plane::call(
                cp,
                "POST",
                control_plane::REGISTER_PATH.into(),
                Vec::new(),
                serde_json::to_vec(&body).ok(),
            );
            if let Ok(token) = host.dispatch(&call) {
                self.in_flight.insert(token, Job::Handover(uid));
            }
        }
    }

    pub fn on_reply(&mut self, token: u32, reply: Reply, host: &mut dyn Host) {
        self.calls.finish(token, &reply, host);
        let Some(job) = self.in_flight.remove(&token) else {
            return;
        };
        let body = match reply {
            Reply::Response { status, body, .. } if (200..300).contains(&status) => body,
            _ => {
                tasks::set_control_plane_unreachable(host, true);
                return;
            }
        };
        tasks::set_control_plane_unreachable(host, false);
        match job {
            Job::Lease => match serde_json::from_slice::<UidLease>(&body) {
                Ok(lease) => {
                    tasks::add_lease(host, lease);
                    host.count(crate::metrics::UID_LEASES, 1);
                }
                Err(_) => host.log_warn("the control plane answered a lease with no lease"),
            },
            Job::Handover(uid) => {
                tasks::outbox_remove(host, uid);
                host.count(crate::metrics::TASK_HANDOVERS, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use miroir_topology::CONTROL_PLANE_CLUSTER;

    use crate::host::mock::{json_reply, one_node, with_control_plane, MockHost};

    fn config() -> Rc<FilterConfig> {
        with_control_plane(one_node(1))
    }

    #[test]
    fn a_lease_is_kept_in_reserve_and_records_are_handed_over() {
        let config = config();
        let mut host = MockHost::default();
        let mut background = Background::new("envoy-1".into());
        tasks::store(&mut host, 7, &tasks::TaskRecord::new(None, "indexCreation"));
        tasks::outbox_add(&mut host, 7);

        background.tick(&config, &mut host);
        background.tick(&config, &mut host);
        assert_eq!(
            host.in_flight.len(),
            2,
            "one lease and one hand-over, not repeated"
        );
        while let Some((token, call)) = host.in_flight.pop() {
            assert_eq!(call.cluster, CONTROL_PLANE_CLUSTER);
            let reply = if call.path == control_plane::LEASE_PATH {
                json_reply(200, json!({"first": 1000, "last": 1999}))
            } else {
                let sent: TaskRegistration =
                    serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
                assert_eq!(sent.task_uid, Some(7));
                json_reply(201, json!({"taskUid": 7}))
            };
            background.on_reply(token, reply, &mut host);
        }
        assert_eq!(tasks::leased_remaining(&host), 1000);
        assert!(tasks::outbox(&host).is_empty());
        background.tick(&config, &mut host);
        assert!(
            host.in_flight.is_empty(),
            "enough in reserve, nothing to hand over"
        );
    }

    #[test]
    fn a_failed_hand_over_is_retried() {
        let config = config();
        let mut host = MockHost::default();
        tasks::add_lease(
            &mut host,
            UidLease {
                first: 1,
                last: 500,
            },
        );
        let mut background = Background::new("envoy-1".into());
        tasks::store(&mut host, 3, &tasks::TaskRecord::new(None, "indexCreation"));
        tasks::outbox_add(&mut host, 3);
        background.tick(&config, &mut host);
        let (token, _) = host.in_flight.pop().unwrap();
        background.on_reply(token, Reply::Failed, &mut host);
        assert!(tasks::control_plane_unreachable(&host));
        assert_eq!(tasks::outbox(&host), [3]);
        background.tick(&config, &mut host);
        assert_eq!(host.in_flight.len(), 1, "tried again");
    }
}
