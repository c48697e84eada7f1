//! In-process tests of the reverse proxy: the proxy on 127.0.0.1:0 in front of real hyper
//! backends started here, real clients (hyper, tokio-rustls, raw TCP).
//!
//! - [`routing`]: routing by host, 404/502/503/504 pages, failover, health checks, metrics.
//! - [`headers`]: `X-Forwarded-*`, Host, hop-by-hop headers both ways, absolute-form targets.
//! - [`streaming`]: 64 MiB each way, upgraded connections, keep-alive to the backend.
//! - [`tls`]: HTTP/2 over TLS (ALPN), HTTP/1.1 over TLS, h2c, TLS configuration errors.
//! - [`server`]: route publishing under load, connection cap, slowloris, idle, stopping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod headers;
mod routing;
mod server;
mod streaming;
mod support;
mod tls;
