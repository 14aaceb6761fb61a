//! Bounded work per request: the caps of `miroir_topology::limits` as Meilisearch-shaped errors,
//! and the budget of large request bodies one VM holds at once.
//!
//! A VM serves one Envoy worker and runs single-threaded, so the budget is thread-local state of
//! the core: the glue takes a [`BodyLease`] before it copies a body into the VM and drops it with
//! the request's context. Native tests run each test on its own thread, so each has its own budget.

use std::cell::Cell;

use miroir_topology::limits::{
    binary_size, LARGE_BODY_BYTES, MAX_BUFFERED_BODY_BYTES, MAX_CSV_ROWS, MAX_DOCUMENTS_WINDOW,
    MAX_MULTI_SEARCH_QUERIES,
};

use crate::error::{ErrorType, MeiliError};

thread_local! {
    /// Bytes of large bodies admitted and not yet released on this VM.
    static BUFFERED: Cell<u64> = const { Cell::new(0) };
}

/// A large body admitted into the VM; its bytes return to the budget when it is dropped.
#[derive(Debug)]
pub struct BodyLease {
    bytes: u64,
}

impl Drop for BodyLease {
    fn drop(&mut self) {
        BUFFERED.with(|b| b.set(b.get().saturating_sub(self.bytes)));
    }
}

/// Whether a body may be copied into the VM.
#[derive(Debug)]
pub enum Admission {
    /// Go on, holding the lease (none for a small body) until the request is done.
    Admitted(Option<BodyLease>),
    /// Refused: the 503 was answered.
    Refused,
}

/// Bytes of large bodies this VM holds now.
pub fn buffered_bytes() -> u64 {
    BUFFERED.with(Cell::get)
}

/// Admits a body of `size` bytes: small bodies always (no lease), a large one while the VM's
/// budget holds it, or when no other large body is in flight. `Err` is the 503 to answer.
pub fn admit_body(size: u64) -> Result<Option<BodyLease>, MeiliError> {
    if size < LARGE_BODY_BYTES {
        return Ok(None);
    }
    BUFFERED.with(|b| {
        let held = b.get();
        if held > 0 && held.saturating_add(size) > MAX_BUFFERED_BODY_BYTES {
            return Err(too_many_large_bodies());
        }
        b.set(held.saturating_add(size));
        Ok(Some(BodyLease { bytes: size }))
    })
}

fn too_many_large_bodies() -> MeiliError {
    MeiliError::new(
        503,
        "miroir_too_many_large_bodies",
        ErrorType::System,
        format!(
            "This Envoy worker already holds {} of large request bodies (each of {} or more), its limit; try again later. Nothing was sent to the nodes.",
            binary_size(MAX_BUFFERED_BODY_BYTES),
            binary_size(LARGE_BODY_BYTES)
        ),
    )
}

/// `POST /multi-search` with more queries than Miroir runs in one request.
pub fn check_multi_search_queries(count: usize) -> Result<(), MeiliError> {
    if count <= MAX_MULTI_SEARCH_QUERIES {
        return Ok(());
    }
    Err(MeiliError::bad_request(
        "miroir_too_many_search_queries",
        format!(
            "A multi-search through Miroir holds at most {MAX_MULTI_SEARCH_QUERIES} queries, but this one holds {count}. Split it into several requests."
        ),
    ))
}

/// A document listing whose `offset + limit` is past what every node may be asked to list.
pub fn check_documents_window(offset: u64, limit: u64) -> Result<(), MeiliError> {
    let window = offset.saturating_add(limit);
    if window <= MAX_DOCUMENTS_WINDOW {
        return Ok(());
    }
    Err(MeiliError::bad_request(
        "miroir_documents_window_too_large",
        format!(
            "A document listing through Miroir reaches at most {MAX_DOCUMENTS_WINDOW} documents (`offset` + `limit`), but this one reaches {window}: every node would list that many for the merge. Narrow it with `filter`, or list in pages ending before {MAX_DOCUMENTS_WINDOW}."
        ),
    ))
}

/// A CSV payload with more rows than Miroir routes in one request.
pub fn too_many_csv_rows() -> MeiliError {
    MeiliError::new(
        413,
        "miroir_too_many_csv_rows",
        ErrorType::InvalidRequest,
        format!(
            "A CSV payload through Miroir holds at most {MAX_CSV_ROWS} rows; this one holds more. Split it into several requests. Nothing was written."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_body_waits_for_room_and_one_always_fits() {
        assert!(admit_body(10).unwrap().is_none(), "small bodies are free");
        let first = admit_body(MAX_BUFFERED_BODY_BYTES + 5).unwrap();
        assert!(first.is_some(), "one body is always admitted");
        let refused = admit_body(LARGE_BODY_BYTES).unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (503, "miroir_too_many_large_bodies")
        );
        drop(first);
        assert_eq!(buffered_bytes(), 0);
        let a = admit_body(MAX_BUFFERED_BODY_BYTES / 2).unwrap();
        let b = admit_body(MAX_BUFFERED_BODY_BYTES / 2).unwrap();
        assert!(admit_body(LARGE_BODY_BYTES).is_err());
        drop((a, b));
        assert!(admit_body(LARGE_BODY_BYTES).unwrap().is_some());
        assert_eq!(buffered_bytes(), 0);
    }
}
