//! The reverse proxy: HTTP/1.1 and HTTP/2 on `proxy.http_listen` and `proxy.https_listen`,
//! routing by Host through a route table swapped atomically, to the apps' backends.
//!
//! - [`routes`]: the route table by host, and [`Routes`], the live one (`publish` to change it).
//! - [`server`]: accept loops, the connection cap, TLS handshakes, each connection's service.
//! - [`activity`]: a connection's traffic and requests, for its head and idle timeouts.
//! - [`handler`]: one request: route by host, forward, our page on failure, metrics.
//! - [`upstream`]: backend choice and failover, the exchange with one, response timeout.
//! - [`pool`]: keep-alive connections to backends, driven by the requests they carry.
//! - [`forward`]: header rewriting both ways (hop-by-hop, `X-Forwarded-*`, Host, upgrade).
//! - [`upgrade`]: bridging upgraded connections (WebSocket).
//! - [`health`]: active health checks and the up/down state the request path reads.
//! - [`pages`]: our fixed error pages (404, 502, 503, 504, 405).
//! - [`metrics`]: counters and the Prometheus text rendering.
//! - [`limits`]: [`Limits`] and its defaults.
//!
//! Clients speak HTTP/1.1 or HTTP/2 on either listener (h2 over TLS by ALPN, h2c by prior
//! knowledge); backends get HTTP/1.1 over a keep-alive pool. Bodies stream both ways.
//!
//! # What a request goes through
//! - The host is the URI's authority (HTTP/2 `:authority`, HTTP/1.1 absolute-form) or else
//!   the Host header; no host or an unknown one is a 404. The route table is read once per
//!   request, so a `publish` affects only later requests.
//! - The backend gets the host as the client sent it (Host), `X-Forwarded-For` (appended),
//!   `X-Forwarded-Proto`, `X-Forwarded-Host`; no `Via`. Hop-by-hop headers, and the headers
//!   `Connection` names, are removed both ways; an upgrade keeps its `Upgrade`/`Connection`.
//! - Backends: round robin over those passing their health check (all, without one); a failed
//!   connect moves on to the next backend, the body still unread. None healthy: 503 with
//!   `Retry-After`; refused or broken: 502; connect or response-head timeout: 504. Our pages
//!   name nothing internal. A backend silent mid-body past `response_timeout` has its response
//!   cut; a client silent mid-body past `idle_timeout` gets a 408.
//! - Timeouts of client connections are ours (see [`activity`]): a request head must arrive
//!   within `header_read_timeout` of its first byte (of accept, for the first request); a
//!   connection with nothing in flight closes after `idle_timeout`.

mod activity;
mod body;
mod forward;
mod handler;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod pages;
mod pool;
pub mod routes;
mod server;
mod upgrade;
mod upstream;

use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

pub use body::ProxyBody;
pub use forward::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
pub use health::Health;
pub use limits::Limits;
pub use metrics::{BackendError, Metrics};
pub use pool::{POOL_IDLE_TIMEOUT, POOL_MAX_IDLE_PER_BACKEND};
pub use routes::{HealthCheck, Route, RouteTable, Routes};

use crate::accept::{drain_connections, join_loops};
use crate::shutdown::Stop;
use handler::Proxy;
use server::Server;
use upgrade::Tunnels;
use upstream::Upstream;

/// Serves the proxy on the bound listeners (`https` ones with `tls`) until `stop` fires; then
/// stops accepting, lets requests in flight (and open tunnels) finish within the stop's drain
/// limit, cuts what is left and returns. Errors at once when `https` listeners come without
/// `tls`, and otherwise only when a listening socket dies (the others are then stopped too).
pub async fn serve(
    http: Vec<TcpListener>,
    https: Vec<TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    routes: Arc<Routes>,
    metrics: Arc<Metrics>,
    limits: Limits,
    stop: Stop,
) -> io::Result<()> {
    if tls.is_none() && !https.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "https listeners need a tls configuration"));
    }
    // Cancelled by the stop, or by us when a socket dies.
    let cancel = stop.token().child_token();
    let health = Arc::new(Health::default());
    metrics.watch_health(health.clone());
    let proxy = Arc::new(Proxy {
        routes: routes.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
        upstream: Upstream::new(&limits, metrics.clone()),
        tunnels: Tunnels::new(metrics.clone()),
    });
    let server = Arc::new(Server::new(proxy.clone(), limits, cancel.clone()));
    let checker = tokio::spawn(health::run(routes, health, cancel.clone()));
    let sweeper = tokio::spawn(proxy.upstream.pool.clone().sweep_until(cancel.clone()));

    let mut loops: JoinSet<io::Result<()>> = JoinSet::new();
    for listener in http {
        loops.spawn(server.clone().listen(listener, None));
    }
    let acceptor = tls.map(TlsAcceptor::from);
    for listener in https {
        loops.spawn(server.clone().listen(listener, acceptor.clone()));
    }
    let result = join_loops(loops, &cancel, "proxy").await;
    // With no listeners at all there is nothing to do but wait for the stop.
    cancel.cancelled().await;

    let deadline = tokio::time::Instant::now() + stop.drain_limit();
    drain_connections(&server.connections, &server.cut, deadline, "proxy").await;
    proxy.tunnels.drain(deadline.saturating_duration_since(tokio::time::Instant::now())).await;
    if let Err(e) = checker.await {
        debug!(error = %e, "health checker ended abnormally");
    }
    if let Err(e) = sweeper.await {
        debug!(error = %e, "backend pool sweeper ended abnormally");
    }
    info!(open = metrics.open_connections(), "proxy stopped");
    result
}
