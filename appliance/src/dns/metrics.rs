//! Counters of the DNS server: replies by view and response code, what was dropped, and how
//! forwarding went. Read by the log summary now and by `/metrics` once the admin API exists.

use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::ResponseCode;

use super::view::View;

/// The response codes counted apart; everything else is `other`.
const RCODES: [(&str, Option<ResponseCode>); 7] = [
    ("noerror", Some(ResponseCode::NoError)),
    ("nxdomain", Some(ResponseCode::NXDomain)),
    ("servfail", Some(ResponseCode::ServFail)),
    ("refused", Some(ResponseCode::Refused)),
    ("formerr", Some(ResponseCode::FormErr)),
    ("notimp", Some(ResponseCode::NotImp)),
    ("other", None),
];
const VIEWS: [View; 2] = [View::Lan, View::Wan];

/// Monotonic counters; every field is a Prometheus counter with the same name.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Replies sent, by view (LAN, WAN) and response code (in [`RCODES`] order).
    replies: [[AtomicU64; RCODES.len()]; VIEWS.len()],
    /// UDP replies cut to the question with TC=1; the client asks again over TCP.
    pub truncated: AtomicU64,
    /// Datagrams and TCP messages that were not a DNS query header: no reply.
    pub dropped_malformed: AtomicU64,
    /// Messages with QR=1 (responses) sent to us: never answered, so no reflection loops.
    pub dropped_responses: AtomicU64,
    /// Forwarded questions answered from the cache.
    pub cache_hits: AtomicU64,
    /// Forwarded questions sent upstream.
    pub forwarded: AtomicU64,
    /// Forwarded questions no upstream answered in time (SERVFAIL).
    pub upstream_failed: AtomicU64,
    /// Forwarded questions refused because too many were in flight (SERVFAIL).
    pub forward_overload: AtomicU64,
    pub tcp_connections: AtomicU64,
    /// TCP connections closed for idling past the limit.
    pub tcp_idle_closed: AtomicU64,
    pub send_failed: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts one reply sent to a client of `view`.
    pub fn replied(&self, view: View, rcode: ResponseCode) {
        let row = usize::from(view == View::Wan);
        let col = RCODES.iter().position(|(_, code)| *code == Some(rcode)).unwrap_or(RCODES.len() - 1);
        if let Some(counter) = self.replies.get(row).and_then(|r| r.get(col)) {
            bump(counter);
        }
    }

    /// Replies sent to `view` with `rcode` (`None`: the codes not counted apart).
    pub fn replies(&self, view: View, rcode: Option<ResponseCode>) -> u64 {
        let row = usize::from(view == View::Wan);
        let col = RCODES.iter().position(|(_, code)| *code == rcode).unwrap_or(RCODES.len() - 1);
        self.replies.get(row).and_then(|r| r.get(col)).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every counter with its Prometheus name and labels.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = Vec::new();
        for (view, row) in VIEWS.iter().zip(&self.replies) {
            for ((rcode, _), counter) in RCODES.iter().zip(row) {
                out.push((
                    format!("dns_replies_total{{view=\"{}\",rcode=\"{rcode}\"}}", view.as_str()),
                    get(counter),
                ));
            }
        }
        for (name, counter) in [
            ("dns_truncated_total", &self.truncated),
            ("dns_dropped_malformed_total", &self.dropped_malformed),
            ("dns_dropped_responses_total", &self.dropped_responses),
            ("dns_cache_hits_total", &self.cache_hits),
            ("dns_forwarded_total", &self.forwarded),
            ("dns_upstream_failed_total", &self.upstream_failed),
            ("dns_forward_overload_total", &self.forward_overload),
            ("dns_tcp_connections_total", &self.tcp_connections),
            ("dns_tcp_idle_closed_total", &self.tcp_idle_closed),
            ("dns_send_failed_total", &self.send_failed),
        ] {
            out.push((name.to_owned(), get(counter)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_counted_by_view_and_code() {
        let m = Metrics::default();
        m.replied(View::Lan, ResponseCode::NXDomain);
        m.replied(View::Wan, ResponseCode::Refused);
        m.replied(View::Wan, ResponseCode::BADVERS);
        assert_eq!(m.replies(View::Lan, Some(ResponseCode::NXDomain)), 1);
        assert_eq!(m.replies(View::Wan, Some(ResponseCode::Refused)), 1);
        assert_eq!(m.replies(View::Wan, None), 1);
        assert_eq!(m.replies(View::Lan, Some(ResponseCode::Refused)), 0);
        let snapshot = m.snapshot();
        assert!(snapshot.contains(&("dns_replies_total{view=\"wan\",rcode=\"refused\"}".to_owned(), 1)));
    }
}
