//! Talking to backends: which backend gets a request (round robin over the healthy ones, the
//! next one when a connect fails), the exchange on a pooled connection ([`pool`](super::pool)),
//! the response timeout, and what a failure was.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::HeaderValue;
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tokio::time::Instant;
use tracing::debug;

use super::Limits;
use super::body::{PendingBody, ProxyBody, RequestBody, Side, Stalled};
use super::forward::{self, Origin};
use super::health::Health;
use super::metrics::{BackendError, Metrics};
use super::pool::{ConnectError, Lease, Pool, Sent};
use super::routes::Route;
use super::upgrade::Tunnels;
use crate::errors::chain;

/// The backend side of the proxy: one pool for all backends.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub pool: Arc<Pool>,
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

/// Why one backend gave no response.
enum Attempt {
    /// No connection could be made: the next backend may take the request.
    Connect(BackendError),
    Failed(BackendError),
    ClientStalled,
}

impl Upstream {
    pub(crate) fn new(limits: &Limits, metrics: Arc<Metrics>) -> Self {
        Upstream {
            pool: Arc::new(Pool::new(limits.connect_timeout, metrics)),
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
        forward::request_head(&mut parts, &host, &origin, upgrade.as_ref());
        let Some(uri) = forward::origin_form(&parts.uri) else {
            return Err(failed(BackendError::Failed));
        };
        let pending = PendingBody::new(body, self.client_body_timeout);

        let mut candidates = self.candidates(route, health).peekable();
        let mut failure = Failure::Backend(BackendError::Unhealthy);
        if candidates.peek().is_none() {
            return Err(failed(BackendError::Unhealthy));
        }
        while let Some(backend) = candidates.next() {
            // A body partly sent to a backend cannot be sent again to another.
            let Some(body) = pending.attempt() else { break };
            let headers = match candidates.peek() {
                None => std::mem::take(&mut parts.headers),
                Some(_) => parts.headers.clone(),
            };
            let mut outgoing = Request::new(body);
            *outgoing.method_mut() = parts.method.clone();
            *outgoing.uri_mut() = uri.clone();
            *outgoing.version_mut() = Version::HTTP_11;
            *outgoing.headers_mut() = headers;
            let (response, lease) = match self.exchange(backend, outgoing, upgrade.is_some()).await {
                Ok(exchanged) => exchanged,
                Err(Attempt::ClientStalled) => {
                    debug!(app = %route.app, %backend, "client stalled sending its body");
                    return Err(Failure::ClientStalled);
                }
                Err(Attempt::Connect(kind)) => {
                    debug!(app = %route.app, %backend, kind = kind.as_str(), "backend connect failed");
                    failure = failed(kind);
                    continue;
                }
                Err(Attempt::Failed(kind)) => {
                    debug!(app = %route.app, %backend, kind = kind.as_str(), "backend failed");
                    return Err(failed(kind));
                }
            };
            return respond(
                response,
                lease,
                client_upgrade,
                tunnels,
                &route.app,
                backend,
                self.response_timeout,
            )
            .map_err(failed);
        }
        Err(failure)
    }

    /// One request to one backend, on a pooled connection or a new one: its response head
    /// within the response timeout, and the connection its body comes on.
    async fn exchange(
        &self,
        backend: SocketAddr,
        mut request: Request<RequestBody>,
        upgrade: bool,
    ) -> Result<(Response<Incoming>, Lease), Attempt> {
        let deadline = Instant::now() + self.response_timeout;
        loop {
            let pooled = self.pool.checkout(backend);
            let reused = pooled.is_some();
            let conn = match pooled {
                Some(conn) => conn,
                None => self.pool.connect(backend).await.map_err(|e| {
                    Attempt::Connect(match e {
                        ConnectError::TimedOut => BackendError::ConnectTimeout,
                        ConnectError::Failed(e) => {
                            debug!(%backend, error = %e, "backend connect");
                            BackendError::Refused
                        }
                    })
                })?,
            };
            let sent = conn.send(request, upgrade);
            match tokio::time::timeout_at(deadline, sent).await {
                Err(_) => return Err(Attempt::Failed(BackendError::ResponseTimeout)),
                Ok(Sent::Response(response, conn)) => {
                    return Ok((response, Lease::new(conn, self.pool.clone())));
                }
                // Closed by the backend while idle, before any of the request went out: once
                // more on another. A new connection closed unused is a backend that refuses.
                Ok(Sent::Unsent(unsent)) if reused => request = unsent,
                Ok(Sent::Unsent(_)) => return Err(Attempt::Connect(BackendError::Refused)),
                Ok(Sent::Failed(e)) if client_stalled(&e) => return Err(Attempt::ClientStalled),
                Ok(Sent::Failed(e)) => {
                    debug!(%backend, error = %chain(&e), "backend exchange failed");
                    return Err(Attempt::Failed(BackendError::Failed));
                }
            }
        }
    }

    /// The backends to try, in order: round robin from the next position, healthy ones only.
    fn candidates<'r>(&self, route: &'r Route, health: &'r Health) -> impl Iterator<Item = SocketAddr> + 'r {
        let n = route.backends.len();
        let start = if n > 1 { self.next.fetch_add(1, Ordering::Relaxed) % n } else { 0 };
        let checked = route.health_check.is_some();
        let order = route.backends.iter().cycle().skip(start).take(n).copied();
        order.filter(move |b| !checked || health.is_up(&route.app, *b))
    }
}

/// The backend's response as the client gets it; a 101 to an upgrade request starts the tunnel.
fn respond(
    mut response: Response<Incoming>,
    lease: Lease,
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
    Ok(Response::from_parts(parts, ProxyBody::upstream(body, lease, body_timeout)))
}

/// Whether the request failed because the client's body stalled (see [`Stalled`]).
fn client_stalled(e: &hyper::Error) -> bool {
    let mut source = e.source();
    while let Some(err) = source {
        if err.downcast_ref::<Stalled>().is_some_and(|s| s.side == Side::Client) {
            return true;
        }
        source = err.source();
    }
    false
}
