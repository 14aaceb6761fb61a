//! Bounded polling: every wait has a deadline and says what it waited for.

use std::time::{Duration, Instant};

/// Default bound of every wait in the harness.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Why a wait ended without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed; the last probe error.
    TimedOut(String),
    /// Waiting became pointless (e.g. the process died).
    Aborted(String),
}

/// Calls `probe` until it returns `Ok`, `alive` returns `Err`, or `timeout` passes.
pub fn try_poll<T>(
    timeout: Duration,
    mut alive: impl FnMut() -> Result<(), String>,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, WaitError> {
    let deadline = Instant::now() + timeout;
    loop {
        alive().map_err(WaitError::Aborted)?;
        match probe() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => return Err(WaitError::TimedOut(last)),
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// Calls `probe` until it returns `Ok(value)`; on timeout panics with `what`, the last error
/// and `hint` (e.g. where the logs are).
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    hint: &str,
    probe: impl FnMut() -> Result<T, String>,
) -> T {
    match try_poll(timeout, || Ok(()), probe) {
        Ok(value) => value,
        Err(WaitError::TimedOut(last) | WaitError::Aborted(last)) => {
            panic!("timed out after {timeout:?} waiting for {what}; last: {last}; {hint}")
        }
    }
}
