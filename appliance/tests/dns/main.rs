//! In-process protocol tests of the DNS server: a real server on 127.0.0.1:0 (and [::1]:0),
//! real packets built with hickory-proto, over UDP and TCP.
//!
//! - [`zone`]: our zones from the LAN: A, PTR, SOA, NS, NXDOMAIN vs NODATA, case, live changes.
//! - [`views`]: the WAN view (a classifier that makes loopback WAN): names hidden, nothing forwarded.
//! - [`protocol`]: EDNS0, ANY, FORMERR, NOTIMP, BADVERS, refusals, hostile datagrams.
//! - [`forward`]: forwarding to a fake upstream: answers, cache, negatives, truncation, failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod forward;
mod protocol;
mod support;
mod upstream;
mod views;
mod zone;
