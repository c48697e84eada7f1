//! Talking to backends: the keep-alive pool (hyper-util's legacy client over HTTP/1.1), which
//! backend gets a request (round robin over the healthy ones, the next one when a connect
//! fails), the response timeout, and what a failure was.

use std::error::Error as _;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::HeaderValue;
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tracing::debug;

use super::Limits;
use super::body::{PendingBody, ProxyBody, RequestBody, Side, Stalled};
use super::forward::{self, Origin};
use super::health::Health;
use super::metrics::{BackendError, Metrics};
use super::routes::Route;
use super::upgrade::Tunnels;

/// An idle pooled connection to a backend is closed after this long. Below the 5 s keep-alive
/// of Node.js and Apache, so we do not send on a connection the backend is just closing.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Idle connections kept per backend.
pub const POOL_MAX_IDLE_PER_BACKEND: usize = 64;

/// The backend side of the proxy: one pool for all backends.
#[derive(Debug)]
pub(crate) struct Upstream {
    client: Client<HttpConnector, RequestBody>,
    response_timeout: Duration,
    /// Longest a client may keep a backend waiting mid-body (`Limits::idle_timeout`).
    client_body_timeout: Duration,
    /// Round-robin position, shared by all apps (each still sees its backends in turn).
    next: AtomicUsize,
}

/// Why a request got no response from a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Backend(BackendError),
    /// The client stopped sending its body mid-way; not the backend's fault.
    ClientStalled,
}

/// A client request, taken apart for forwarding.
pub(crate) struct Outgoing {
    pub parts: http::request::Parts,
    pub body: Incoming,
    /// The Host the client named (kept for the backend).
    pub host: HeaderValue,
    pub origin: Origin,
}

impl Upstream {
    pub(crate) fn new(limits: &Limits) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(limits.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_BACKEND)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // Our Host header, which the client keeps, is the client's.
            .set_host(false)
            .build(connector);
        Upstream {
            client,
            response_timeout: limits.response_timeout,
            client_body_timeout: limits.idle_timeout,
            next: AtomicUsize::new(0),
        }
    }

    /// Sends `request` to a backend of `route` and returns its response for the client, or why
    /// no backend answered. An upgrade the backend accepts is bridged through `tunnels`. Every
    /// failed attempt is counted in `metrics`, those failed over included.
    pub(crate) async fn forward(
        &self,
        route: &Route,
        health: &Health,
        tunnels: &Tunnels,
        metrics: &Metrics,
        request: Outgoing,
    ) -> Result<Response<ProxyBody>, Failure> {
        let failed = |kind: BackendError| {
            metrics.backend_error(kind);
            Failure::Backend(kind)
        };
        let Outgoing { mut parts, body, host, origin } = request;
        let upgrade = forward::upgrade_protocol(&parts);
        // Taken before the head is rewritten; only an upgrade request needs it.
        let client_upgrade = upgrade.as_ref().and_then(|_| parts.extensions.remove::<OnUpgrade>());
        forward::request_head(&mut parts, &host, origin, upgrade.as_ref());
        let pending = PendingBody::new(body, self.client_body_timeout);

        let candidates = self.candidates(route, health);
        if candidates.is_empty() {
            return Err(failed(BackendError::Unhealthy));
        }
        let mut failure = Failure::Backend(BackendError::Unhealthy);
        for (i, &backend) in candidates.iter().enumerate() {
            // A body partly sent to a backend cannot be sent again to another.
            let Some(body) = pending.attempt() else { break };
            let Some(uri) = forward::backend_uri(backend, &parts.uri) else {
                return Err(Failure::Backend(BackendError::Failed));
            };
            let headers = if i + 1 == candidates.len() {
                std::mem::take(&mut parts.headers)
            } else {
                parts.headers.clone()
            };
            let mut outgoing = Request::new(body);
            *outgoing.method_mut() = parts.method.clone();
            *outgoing.uri_mut() = uri;
            *outgoing.version_mut() = Version::HTTP_11;
            *outgoing.headers_mut() = headers;
            let response = match tokio::time::timeout(self.response_timeout, self.client.request(outgoing))
                .await
            {
                Ok(Ok(response)) => response,
                Ok(Err(e)) if client_stalled(&e) => {
                    debug!(app = %route.app, %backend, "client stalled sending its body");
                    return Err(Failure::ClientStalled);
                }
                Ok(Err(e)) => {
                    let kind = classify(&e);
                    debug!(app = %route.app, %backend, kind = kind.as_str(), error = %chain(&e), "backend failed");
                    failure = failed(kind);
                    if e.is_connect() {
                        continue;
                    }
                    return Err(failure);
                }
                Err(_) => {
                    debug!(app = %route.app, %backend, "backend response timed out");
                    return Err(failed(BackendError::ResponseTimeout));
                }
            };
            return respond(response, client_upgrade, tunnels, &route.app, backend, self.response_timeout)
                .map_err(failed);
        }
        Err(failure)
    }

    /// The backends to try, in order: round robin from the next position, healthy ones only.
    fn candidates(&self, route: &Route, health: &Health) -> Vec<SocketAddr> {
        let n = route.backends.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let order = route.backends.iter().cycle().skip(start).take(n).copied();
        match &route.health_check {
            Some(_) => order.filter(|b| health.is_up(&route.app, *b)).collect(),
            None => order.collect(),
        }
    }
}

/// The backend's response as the client gets it; a 101 to an upgrade request starts the tunnel.
fn respond(
    mut response: Response<Incoming>,
    client_upgrade: Option<OnUpgrade>,
    tunnels: &Tunnels,
    app: &str,
    backend: SocketAddr,
    body_timeout: Duration,
) -> Result<Response<ProxyBody>, BackendError> {
    let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if upgraded {
        let Some(client) = client_upgrade else {
            debug!(app, %backend, "backend switched protocols unasked");
            return Err(BackendError::Failed);
        };
        let backend_upgrade = hyper::upgrade::on(&mut response);
        tunnels.bridge(client, backend_upgrade, app, backend);
    }
    let (mut parts, body) = response.into_parts();
    forward::response_head(&mut parts.headers, upgraded);
    // hyper writes the version the client speaks.
    parts.version = Version::default();
    Ok(Response::from_parts(parts, ProxyBody::upstream(body, body_timeout)))
}

/// What kind of failure a client error was, from the I/O error at its root.
fn classify(e: &hyper_util::client::legacy::Error) -> BackendError {
    let mut source = e.source();
    let mut io_kind = None;
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            io_kind = Some(io.kind());
        }
        source = err.source();
    }
    match (e.is_connect(), io_kind) {
        (true, Some(io::ErrorKind::TimedOut)) => BackendError::ConnectTimeout,
        (true, _) => BackendError::Refused,
        (false, _) => BackendError::Failed,
    }
}

/// Whether the request failed because the client's body stalled (see [`Stalled`]).
fn client_stalled(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source = e.source();
    while let Some(err) = source {
        if err.downcast_ref::<Stalled>().is_some_and(|s| s.side == Side::Client) {
            return true;
        }
        source = err.source();
    }
    false
}

/// The error and its causes on one line, for logs only (never for clients).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}
