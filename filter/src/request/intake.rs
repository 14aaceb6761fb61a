//! A request's body on its way in: refused once it is known to be above Meilisearch's payload
//! limit or above what this VM may hold, before the rest of it is buffered; once refused, the
//! rest is ignored. The glue asks at the headers (the announced `content-length`) and at every
//! body chunk (the size buffered so far).

use crate::config::FilterConfig;
use crate::exchange::Exchange;
use crate::host::Host;
use crate::request::limits::{Admission, BodyLease};

#[derive(Default)]
pub struct Intake {
    /// Answered 413 (or 503) before the body was complete.
    refused: bool,
    /// This request's large body, counted against the VM's budget until the request is dropped.
    lease: Option<BodyLease>,
}

impl Intake {
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
        if Exchange::refuse_oversized(config, size, host) {
            self.refused = true;
            return false;
        }
        // The budget is taken once, when the whole size is known.
        if self.lease.is_some() || !known {
            return true;
        }
        match Exchange::admit_body(config, size, host) {
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
