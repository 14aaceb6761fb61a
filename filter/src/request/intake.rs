//! A request's body on its way in: refused once it is known to be above Meilisearch's payload
//! limit or above what this VM may hold, before the rest of it is buffered; once refused, the
//! rest is ignored. The glue asks at the headers (the announced `content-length`) and at every
//! body chunk (the size buffered so far).

use miroir_topology::limits::PAYLOAD_LIMIT_BYTES;

use crate::config::FilterConfig;
use crate::error::MeiliError;
use crate::host::Host;
use crate::request::cors::Cors;
use crate::request::limits::{self, Admission, BodyLease};

#[derive(Default)]
pub struct Intake {
    /// Answered 413 (or 503) before the body was complete.
    refused: bool,
    /// This request's large body, counted against the VM's budget until the request is dropped.
    lease: Option<BodyLease>,
    /// What a refusal carries for browsers (the request's `Origin`).
    cors: Cors,
}

impl Intake {
    /// Set from the request's headers before any body is admitted.
    pub fn set_cors(&mut self, cors: Cors) {
        self.cors = cors;
    }

    /// Whether a body of `size` bytes (announced, or buffered so far) may go on; false once the
    /// client was answered. `known`: `size` is the whole body's (announced, or complete).
    pub fn admit(
        &mut self,
        config: Option<&FilterConfig>,
        size: u64,
        known: bool,
        host: &mut dyn Host,
    ) -> bool {
        if self.refused {
            return false;
        }
        let Some(config) = config else {
            return true;
        };
        if refuse_oversized_with(config, size, self.cors, host) {
            self.refused = true;
            return false;
        }
        // The budget is taken once, when the whole size is known.
        if self.lease.is_some() || !known {
            return true;
        }
        match admit_body_with(config, size, self.cors, host) {
            Admission::Admitted(lease) => {
                self.lease = lease;
                true
            }
            Admission::Refused => {
                self.refused = true;
                false
            }
        }
    }
}

/// Refuses a request whose body (announced by `content-length`, or buffered so far) is above
/// Meilisearch's payload limit, before the rest of it is buffered. True when it answered.
pub fn refuse_oversized(config: &FilterConfig, size: u64, host: &mut dyn Host) -> bool {
    refuse_oversized_with(config, size, Cors::default(), host)
}

fn refuse_oversized_with(
    config: &FilterConfig,
    size: u64,
    cors: Cors,
    host: &mut dyn Host,
) -> bool {
    if size <= PAYLOAD_LIMIT_BYTES {
        return false;
    }
    host.count(crate::metrics::PAYLOAD_TOO_LARGE, 1);
    refuse(
        config,
        &MeiliError::payload_too_large(PAYLOAD_LIMIT_BYTES),
        &[],
        cors,
        host,
    );
    true
}

/// Admits a body of `size` bytes into this VM (see [`limits::admit_body`]): the lease to hold
/// until the request is done, or `Refused` once the 503 (with `Retry-After: 10`) that refuses
/// it was answered.
pub fn admit_body(config: &FilterConfig, size: u64, host: &mut dyn Host) -> Admission {
    admit_body_with(config, size, Cors::default(), host)
}

fn admit_body_with(config: &FilterConfig, size: u64, cors: Cors, host: &mut dyn Host) -> Admission {
    match limits::admit_body(size) {
        Ok(lease) => Admission::Admitted(lease),
        Err(refusal) => {
            host.count(crate::metrics::LARGE_BODIES_REFUSED, 1);
            refuse(config, &refusal, &[("retry-after", "10")], cors, host);
            Admission::Refused
        }
    }
}

fn refuse(
    config: &FilterConfig,
    error: &MeiliError,
    extra: &[(&str, &str)],
    cors: Cors,
    host: &mut dyn Host,
) {
    let body = serde_json::to_vec(&error.to_json()).unwrap_or_default();
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-miroir-topology-epoch", config.epoch_text.as_str()),
    ];
    headers.extend_from_slice(extra);
    headers.extend_from_slice(cors.headers());
    host.respond(error.status, &headers, &body);
}
