//! Waiting in the lab: every wait polls a condition against a deadline, never a fixed sleep.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How often a condition is checked again: short enough to add little latency to a test, long
/// enough that a dozen parallel waits do not keep two cores busy.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Calls `check` until it yields a value or `timeout` has passed; `what` names the awaited thing
/// in the error. An error from `check` ends the wait at once.
pub fn until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
