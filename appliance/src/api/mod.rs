//! The admin API: apps, leases, reservations, DNS records, health and metrics over HTTP/1.1 and
//! HTTP/2 (TLS from the local CA), JSON in and out, a bearer token on everything but the few
//! endpoints a client needs before it has one.
//!
//! - [`router`]: the routes and handlers as an axum [`Router`], testable without a socket.
//! - [`serve`] (`server`): accept loops, connection cap, TLS, timeouts, graceful stop.
//! - `apps`: `/v1/apps`: validated, committed to the store, then published through the
//!   [`Directory`], one mutation at a time (as are those of reservations and forwards).
//! - `reservations`: `/v1/reservations`; `forwards`: `/v1/forwards`, published to NAT.
//! - `views`: the read-only endpoints (health, leases, reservations, DNS records, CA, OpenAPI).
//! - `metrics`: `/metrics`, the Prometheus text of every service.
//! - [`token`]: the bearer token, its file or its hash, and the constant-time check.
//! - [`proof`]: the `proximity-ca-proof` header that lets a token holder trust `/v1/ca.crt`.
//! - `error`: `ApiError` (the `{"error": {...}}` answers) and the JSON body extractor.
//!
//! Built on axum (over the same hyper the proxy uses) for its router: path parameters, 405 vs
//! 404, and handlers that are plain async functions; the connection handling stays ours.

mod apps;
mod error;
mod forwards;
mod metrics;
pub mod proof;
mod reservations;
mod server;
pub mod token;
mod views;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use http::header;
use ipnet::Ipv4Net;
use proximity_config::{Config, Ipv4Range, Protocol};
use tokio_util::task::TaskTracker;

use crate::dns::zone::Zones;
use crate::names::Directory;
use crate::nat::Forwards;
use crate::state::{Lease, Store, StoreError};
use error::ApiError;
pub use proof::ca_proof;
pub use server::serve;
pub use token::{Token, TokenError};

/// Largest request body accepted (an app is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most client connections open at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest a client may take to send a request head (HTTP/1.1; it also ends idle keep-alive).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no byte either way for this long is closed (gracefully).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (HTTP/1.1 buffer, HTTP/2 header list).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most concurrent HTTP/2 streams on one connection.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 16;

/// The OpenAPI 3.1 description of every route, served at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// Paths served without a token. `/v1/health` is what the provisioner and monitors poll.
/// `/v1/ca.crt` is public by nature (a certificate) and a client needs it *before* it can trust
/// our TLS, so before it would send a token over it. `/v1/openapi.json` describes the API's
/// shape only, nothing of this appliance.
pub const OPEN_PATHS: [&str; 3] = ["/v1/health", "/v1/ca.crt", "/v1/openapi.json"];

/// The DHCP server as the API sees it. Implemented by the DHCP side (run.rs wires it).
pub trait LeaseAdmin: Send + Sync + std::fmt::Debug {
    /// Every lease record (active, released, declined).
    fn leases(&self) -> Vec<Lease>;
    /// Ends the active lease of `ip` durably; `false` when `ip` had no active lease.
    fn release(&self, ip: Ipv4Addr) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + '_>>;
    /// Replaces the reservations the DHCP server honours (the config's and the API's).
    fn set_reservations(&self, reservations: &[proximity_config::Reservation]);
}

/// The state of each service (`dhcp`, `dns`, `proxy`, `admin`, `nat`), as `run` (and NAT
/// itself) sets it: `starting`, `running`, `stopped`, `failed` or `disabled`. Read by `/v1/health`.
#[derive(Debug, Default)]
pub struct ServiceStates {
    states: Mutex<BTreeMap<String, String>>,
}

impl ServiceStates {
    pub fn set(&self, name: &str, state: &str) {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states.insert(name.to_owned(), state.to_owned());
    }

    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.states.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Everything the handlers use. Build it with [`ApiState::new`], then set the optional parts
/// (leases, CA, metrics) that the enabled services provide.
#[derive(Debug)]
pub struct ApiState {
    /// Lower-case, no trailing dot: apps are `<name>.<domain>`.
    pub domain: String,
    /// The gateway address with the LAN prefix; app backends must be on it.
    pub lan: Ipv4Net,
    /// The DHCP pool, for `proximity_dhcp_leases_free`; `None` when DHCP is off.
    pub pool: Option<Ipv4Range>,
    /// `dhcp.reserved`: where reservations may be; `None` when DHCP is off (then anywhere on the LAN).
    pub reserved: Option<Ipv4Range>,
    pub store: Store,
    pub directory: Arc<Directory>,
    /// `None` when DHCP is off: no leases to list or release.
    pub leases: Option<Arc<dyn LeaseAdmin>>,
    /// The port forwards; starts with the config's alone, `run` gives the one NAT follows.
    pub forwards: Arc<Forwards>,
    /// The ports the appliance serves itself, which a forward may not take.
    own_ports: Vec<(Protocol, u16, &'static str)>,
    pub token: Token,
    /// The CA certificate served at `/v1/ca.crt`; `None`: no CA (404).
    pub ca_pem: Option<String>,
    pub dns_metrics: Option<Arc<crate::dns::Metrics>>,
    pub dhcp_metrics: Option<Arc<crate::dhcp::Metrics>>,
    pub proxy_metrics: Option<Arc<crate::proxy::Metrics>>,
    pub services: Arc<ServiceStates>,
    /// For the uptime in `/v1/health`.
    pub started: Instant,
    /// The zones DNS serves, to show their SOA and NS as DNS does.
    zones: Option<Zones>,
    /// Held across an app mutation's check, commit and publish, so mutations serialise and a
    /// check is still true when its change is committed.
    mutations: tokio::sync::Mutex<()>,
    /// Mutations run as tasks of their own so a client hanging up cannot cancel one between its
    /// commit and its publish; `serve` waits for them when stopping.
    tasks: TaskTracker,
    /// Responses by status, for `proximity_admin_requests_total`.
    responses: Mutex<BTreeMap<u16, u64>>,
}

impl ApiState {
    /// The state for `config` (domain, LAN, DHCP pool, DNS TTL); the optional parts start unset.
    pub fn new(
        config: &Config,
        store: Store,
        directory: Arc<Directory>,
        token: Token,
        services: Arc<ServiceStates>,
    ) -> Self {
        let ttl = u32::try_from(config.dns.ttl.as_secs()).unwrap_or(u32::MAX);
        ApiState {
            domain: config.dns.domain.clone(),
            lan: config.lan.address,
            pool: config.dhcp.enabled.then_some(config.dhcp.range),
            reserved: config.dhcp.enabled.then_some(config.dhcp.reserved),
            store,
            directory,
            leases: None,
            forwards: Arc::new(Forwards::new(config.nat.forwards.clone(), Vec::new())),
            own_ports: config.own_ports(),
            token,
            ca_pem: None,
            dns_metrics: None,
            dhcp_metrics: None,
            proxy_metrics: None,
            services,
            started: Instant::now(),
            zones: Zones::new(&config.dns.domain, config.lan.address, ttl).ok(),
            mutations: tokio::sync::Mutex::new(()),
            tasks: TaskTracker::new(),
            responses: Mutex::new(BTreeMap::new()),
        }
    }

    fn count_response(&self, status: u16) {
        let mut responses = self.responses.lock().unwrap_or_else(PoisonError::into_inner);
        *responses.entry(status).or_default() += 1;
    }

    fn responses(&self) -> BTreeMap<u16, u64> {
        self.responses.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

type Shared = Arc<ApiState>;

/// Every route: method, path, handler. The router is built from this table and nothing else,
/// so the OpenAPI test can check the document against exactly what is served.
fn routes() -> Vec<(&'static str, &'static str, MethodRouter<Shared>)> {
    vec![
        ("GET", "/v1/health", get(views::health)),
        ("GET", "/v1/apps", get(apps::list)),
        ("POST", "/v1/apps", post(apps::create)),
        ("GET", "/v1/apps/{name}", get(apps::show)),
        ("PUT", "/v1/apps/{name}", put(apps::replace)),
        ("DELETE", "/v1/apps/{name}", delete(apps::remove)),
        ("GET", "/v1/leases", get(views::leases)),
        ("DELETE", "/v1/leases/{ip}", delete(views::release_lease)),
        ("GET", "/v1/reservations", get(reservations::list)),
        ("POST", "/v1/reservations", post(reservations::create)),
        ("DELETE", "/v1/reservations/{mac}", delete(reservations::remove)),
        ("GET", "/v1/forwards", get(forwards::list)),
        ("POST", "/v1/forwards", post(forwards::create)),
        ("DELETE", "/v1/forwards/{protocol}/{port}", delete(forwards::remove)),
        ("GET", "/v1/dns/records", get(views::dns_records)),
        ("GET", "/v1/ca.crt", get(views::ca_certificate)),
        ("GET", "/v1/openapi.json", get(views::openapi)),
        ("GET", "/metrics", get(metrics::render)),
    ]
}

/// The API as an axum router: every route of [`routes`], the token check, JSON 404 and 405,
/// and the response counter.
pub fn router(state: Arc<ApiState>) -> Router {
    let router =
        routes().into_iter().fold(Router::new(), |router, (_, path, route)| router.route(path, route));
    router
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// The authorization scheme and its separating space (the scheme is case-insensitive).
const BEARER: &[u8] = b"Bearer ";

/// Lets a request through when its path is open or it carries the token. Unknown paths need the
/// token too, so a client without one learns nothing about which paths exist.
async fn authorize(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().split_at_checked(BEARER.len()))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(BEARER))
        .map(|(_, token)| token.trim_ascii());
    match presented {
        Some(token) if state.token.matches(token) => next.run(request).await,
        _ => {
            error::discard(request.into_body()).await;
            ApiError::Unauthorized.into_response()
        }
    }
}

/// Counts every response by status.
async fn count(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    state.count_response(response.status().as_u16());
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
