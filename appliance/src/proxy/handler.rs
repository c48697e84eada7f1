//! One request, start to response head: find its route by host, pass it to a backend, turn a
//! failure into one of our pages, count it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::HeaderValue;
use http::{Method, Request, Response, Version};
use hyper::body::Incoming;
use tracing::debug;

use super::activity::Activity;
use super::body::ProxyBody;
use super::forward::{self, Origin};
use super::health::Health;
use super::metrics::{BackendError, Metrics};
use super::pages::Page;
use super::routes::Routes;
use super::upgrade::Tunnels;
use super::upstream::{Failure, Outgoing, Upstream};

/// What every request shares.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub routes: Arc<Routes>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub upstream: Upstream,
    pub tunnels: Tunnels,
}

/// The client connection a request came on.
#[derive(Debug)]
pub(crate) struct Client {
    pub peer: SocketAddr,
    /// What backends are told of it.
    pub origin: Origin,
    pub activity: Arc<Activity>,
}

impl Proxy {
    /// Answers one request. Never fails: what goes wrong becomes a page. Owns its handles so
    /// that its future is the connection's service future as it is, not moved into another.
    pub(crate) async fn handle(
        self: Arc<Self>,
        client: Arc<Client>,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let in_flight = client.activity.begin(request.version() == Version::HTTP_2);
        let mut response = self.route(&client, request).await;
        response.body_mut().hold(in_flight);
        Ok(response)
    }

    async fn route(&self, client: &Client, request: Request<Incoming>) -> Response<ProxyBody> {
        let (parts, body) = request.into_parts();
        let host = forward::requested_host(&parts);
        let route = host.and_then(|h| self.routes.load().route_shared(h));
        let (Some(host), Some(route)) = (host, route) else {
            self.metrics.unknown_host();
            debug!(peer = %client.peer, host = host.unwrap_or(""), "no route for host");
            return Page::UnknownHost.response();
        };
        let Ok(host) = HeaderValue::from_str(host) else {
            self.metrics.unknown_host();
            return Page::UnknownHost.response();
        };
        let start = Instant::now();
        let response = if parts.method == Method::CONNECT {
            Page::NotAllowed.response()
        } else {
            let outgoing = Outgoing { parts, body, host, origin: client.origin.clone() };
            match self.upstream.forward(&route, &self.health, &self.tunnels, &self.metrics, outgoing).await {
                Ok(response) => response,
                Err(Failure::Backend(kind)) => page(kind).response(),
                Err(Failure::ClientStalled) => {
                    self.metrics.body_timeout();
                    Page::RequestTimeout.response()
                }
            }
        };
        self.metrics.request(&route.app, response.status().as_u16(), start.elapsed());
        response
    }
}

fn page(kind: BackendError) -> Page {
    match kind {
        BackendError::Refused | BackendError::Failed => Page::BadGateway,
        BackendError::ConnectTimeout | BackendError::ResponseTimeout => Page::GatewayTimeout,
        BackendError::Unhealthy => Page::Unavailable,
    }
}
