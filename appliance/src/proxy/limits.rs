//! The proxy's limits at the edge (clients) and towards backends, with their defaults.

use std::time::Duration;

/// Client connections open at once, all listeners together. Past this, new connections wait
/// in the listen backlog until one closes.
pub const MAX_CONNECTIONS: usize = 4096;
/// Longest a client may take to send a request head, counted from its first byte (or from
/// the connection's accept for the first request): the slowloris guard.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A client connection with no request in flight and no traffic for this long is closed
/// (HTTP/1.1 keep-alive, HTTP/2 without streams). Also the longest a client may pause in the
/// middle of a request body (408).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a TCP connection to a backend.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a backend's response head once the request is sent (connect included),
/// and for each next piece of its body: the body streams for as long as it takes, but a
/// backend silent this long mid-body has its response cut.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head a client may send (HTTP/1.1 read buffer, HTTP/2 header list).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Longest a TLS handshake may take from accept.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits [`super::serve`] applies. `Default` gives the constants of this module.
/// `max_connections` is at least 1; `max_header_bytes` at least 8 KiB (hyper's smallest buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_header_bytes: usize,
    pub tls_handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            response_timeout: RESPONSE_TIMEOUT,
            max_header_bytes: MAX_HEADER_BYTES,
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
        }
    }
}
