//! Counters of the DHCP server: what came in, what went out, and what was dropped and why.
//! Read by the log summary now and by `/metrics` once the admin API exists.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dhcproto::v4::MessageType;

use super::engine::Ignored;

/// Monotonic counters; every field is a Prometheus counter with the same name.
#[derive(Debug, Default)]
pub struct Metrics {
    pub received_discover: AtomicU64,
    pub received_request: AtomicU64,
    pub received_decline: AtomicU64,
    pub received_release: AtomicU64,
    pub received_inform: AtomicU64,
    pub received_other: AtomicU64,
    pub sent_offer: AtomicU64,
    pub sent_ack: AtomicU64,
    pub sent_nak: AtomicU64,
    /// Datagrams that did not decode as DHCP.
    pub dropped_malformed: AtomicU64,
    /// Messages not meant for us (BOOTP, replies, other servers' clients, foreign relays).
    pub dropped_not_for_us: AtomicU64,
    /// Messages missing what their type needs, or releasing/declining what the client lacks.
    pub dropped_invalid: AtomicU64,
    /// Dropped because too many commits were in flight; the client retransmits.
    pub dropped_overload: AtomicU64,
    /// DISCOVERs that found no free address.
    pub pool_exhausted: AtomicU64,
    /// Commits that failed: the client got no ACK.
    pub commit_failed: AtomicU64,
    pub send_failed: AtomicU64,
    /// Set while the pool is exhausted, so the warning is logged once per episode.
    pub exhausted_now: AtomicBool,
    /// Set while requests are being shed, so the warning is logged once per episode.
    pub overloaded_now: AtomicBool,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub fn received(&self, kind: Option<MessageType>) {
        bump(match kind {
            Some(MessageType::Discover) => &self.received_discover,
            Some(MessageType::Request) => &self.received_request,
            Some(MessageType::Decline) => &self.received_decline,
            Some(MessageType::Release) => &self.received_release,
            Some(MessageType::Inform) => &self.received_inform,
            _ => &self.received_other,
        });
    }

    pub fn sent(&self, kind: MessageType) {
        match kind {
            MessageType::Offer => bump(&self.sent_offer),
            MessageType::Ack => bump(&self.sent_ack),
            MessageType::Nak => bump(&self.sent_nak),
            _ => {}
        }
    }

    pub fn ignored(&self, why: Ignored) {
        bump(match why {
            Ignored::NotForUs | Ignored::ForeignRelay | Ignored::OtherServer => &self.dropped_not_for_us,
            Ignored::Incomplete | Ignored::NothingToDo | Ignored::Unencodable => &self.dropped_invalid,
            Ignored::PoolExhausted => &self.pool_exhausted,
        });
    }

    pub fn malformed(&self) {
        bump(&self.dropped_malformed);
    }

    pub fn overloaded(&self) {
        bump(&self.dropped_overload);
    }

    pub fn commit_failed(&self) {
        bump(&self.commit_failed);
    }

    pub fn send_failed(&self) {
        bump(&self.send_failed);
    }

    /// Every counter with its name, for exposition.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("dhcp_received_discover_total", get(&self.received_discover)),
            ("dhcp_received_request_total", get(&self.received_request)),
            ("dhcp_received_decline_total", get(&self.received_decline)),
            ("dhcp_received_release_total", get(&self.received_release)),
            ("dhcp_received_inform_total", get(&self.received_inform)),
            ("dhcp_received_other_total", get(&self.received_other)),
            ("dhcp_sent_offer_total", get(&self.sent_offer)),
            ("dhcp_sent_ack_total", get(&self.sent_ack)),
            ("dhcp_sent_nak_total", get(&self.sent_nak)),
            ("dhcp_dropped_malformed_total", get(&self.dropped_malformed)),
            ("dhcp_dropped_not_for_us_total", get(&self.dropped_not_for_us)),
            ("dhcp_dropped_invalid_total", get(&self.dropped_invalid)),
            ("dhcp_dropped_overload_total", get(&self.dropped_overload)),
            ("dhcp_pool_exhausted_total", get(&self.pool_exhausted)),
            ("dhcp_commit_failed_total", get(&self.commit_failed)),
            ("dhcp_send_failed_total", get(&self.send_failed)),
        ]
    }
}
