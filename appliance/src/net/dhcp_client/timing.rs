//! When the client sends again (RFC 2131 4.1 and 4.4.5): retransmission backoff with jitter,
//! the pace of renewing and rebinding, the delay before starting over, and the small random
//! source behind transaction ids and jitter.

use std::time::{Duration, Instant};

/// The first retransmission's delay (RFC 2131 4.1), doubled for each next one up to
/// [`MAX_RETRANSMIT`], each moved by up to [`JITTER`] either way so clients that started
/// together do not stay in step.
pub const FIRST_RETRANSMIT: Duration = Duration::from_secs(4);
pub const MAX_RETRANSMIT: Duration = Duration::from_secs(64);
pub const JITTER: Duration = Duration::from_millis(JITTER_MS);
const JITTER_MS: u64 = 1000;
/// The shortest wait between REQUESTs while renewing or rebinding (RFC 2131 4.4.5).
pub const MIN_EXTEND_RETRANSMIT: Duration = Duration::from_secs(60);
/// The wait before starting over after a NAK (or an offer nobody acknowledged), doubled after
/// each one in a row up to [`MAX_RETRANSMIT`]: a server that NAKs everything is not flooded.
pub const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);

/// The wait after the `sent`th transmission: 4 s, 8 s, ... 64 s, each within a second either way.
pub fn retransmit_delay(sent: u32, rng: &mut Rng) -> Duration {
    let doublings = sent.saturating_sub(1).min(4);
    let base = (FIRST_RETRANSMIT * (1 << doublings)).min(MAX_RETRANSMIT);
    let jitter_ms = u64::from(rng.next_u32()) % (2 * JITTER_MS + 1);
    (base + Duration::from_millis(jitter_ms)).saturating_sub(JITTER)
}

/// The wait before the `restarts`th start-over in a row: 1 s, 2 s, 4 s, ... 64 s.
pub fn restart_delay(restarts: u32) -> Duration {
    let doublings = restarts.saturating_sub(1).min(6);
    (FIRST_RESTART_DELAY * (1 << doublings)).min(MAX_RETRANSMIT)
}

/// The next REQUEST while extending a lease until `until` (T2 or the expiry): half the time
/// left, at least [`MIN_EXTEND_RETRANSMIT`], never past `until`.
pub fn extend_next(now: Instant, until: Instant) -> Instant {
    let half = until.saturating_duration_since(now) / 2;
    (now + half.max(MIN_EXTEND_RETRANSMIT)).min(until)
}

/// xorshift64*: transaction ids and jitter need to differ between clients, not to be secret.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Never zero, which xorshift would never leave.
        Rng(seed | 1)
    }

    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_double_up_to_a_minute_and_a_bit() {
        let secs: Vec<u64> = (1..=9).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 64, 64]);
    }

    #[test]
    fn jitter_stays_within_a_second_and_varies() {
        let mut rng = Rng::new(7);
        let delays: Vec<Duration> = (0..100).map(|_| retransmit_delay(2, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_secs(7) && *d <= Duration::from_secs(9)));
        assert!(delays.iter().any(|d| *d != delays[0]), "jitter varies");
    }
}
