//! The admin API's JSON: what `POST /v1/apps` and friends accept, how they are validated, and what
//! the API answers. Shared by the appliance (server) and the provisioner (client), so it is serde
//! types and pure checks, no I/O.
//!
//! Requests are validated like the config file: every problem at once, each with its field path
//! (`backend.ip: 10.30.0.5 is outside the LAN 10.20.0.0/24`), as [`ConfigErrors`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::types::MacAddr;
use crate::validate::ConfigErrors;

mod app;
mod forward;
mod reservation;
#[cfg(test)]
mod tests;

pub use app::{
    App, Backend, DEFAULT_HEALTH_INTERVAL, HealthCheck, MAX_HEALTH_INTERVAL, MAX_HEALTH_PATH_LEN,
    MIN_HEALTH_INTERVAL, RawApp, RawBackend, RawHealthCheck,
};
pub use forward::{ForwardRequest, ForwardView};

/// The header of `GET /v1/ca.crt` that proves the CA came from the holder of the admin token:
/// lowercase hex of HMAC-SHA256 over the body, keyed with the raw SHA-256 of the token. The
/// appliance sends it; the provisioner checks it before pinning the CA.
pub const CA_PROOF_HEADER: &str = "proximity-ca-proof";
pub use reservation::{ApiReservation, ReservationRequest};

/// An app as `GET /v1/apps[/{name}]` shows it: the stored [`App`] and where it points now.
/// What GET returns can be PUT back: [`RawApp`] ignores the read-only fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppView {
    pub name: String,
    pub backend: Backend,
    pub port: u16,
    pub health_check: Option<HealthCheck>,
    /// `http://<name>.<domain>/` and `https://<name>.<domain>/`.
    pub urls: Vec<String>,
    /// The address the proxy sends requests to now; `None` while a mac or hostname backend has no lease.
    pub backend_address: Option<Ipv4Addr>,
    /// Whether the proxy can reach a backend address now (false while it has none).
    pub live: bool,
}

impl AppView {
    /// The view of `app`, whose backend is at `backend_address` now (`None`: not known).
    pub fn new(app: &App, domain: &str, backend_address: Option<Ipv4Addr>) -> Self {
        AppView {
            name: app.name.clone(),
            backend: app.backend.clone(),
            port: app.port,
            health_check: app.health_check.clone(),
            urls: app.urls(domain).into(),
            backend_address,
            live: backend_address.is_some(),
        }
    }

    /// The stored app this view shows.
    pub fn app(&self) -> App {
        App {
            name: self.name.clone(),
            backend: self.backend.clone(),
            port: self.port,
            health_check: self.health_check.clone(),
        }
    }
}

/// A DHCP lease as `GET /v1/leases` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    /// The host name the client sent, as sent.
    pub hostname: Option<String>,
    /// The DNS label the lease holds under the domain; `None` when another owner has the name.
    pub name: Option<String>,
    /// `active`, `released` or `declined` (the store's lease states, lower-case).
    pub state: String,
    /// Unix seconds.
    pub starts: u64,
    /// Unix seconds.
    pub ends: u64,
}

/// A reservation as `GET /v1/reservations` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationView {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub name: Option<String>,
    /// `config` (the file's `[[dhcp.reservations]]`, read-only over the API) or `api`.
    pub source: String,
}

/// A record the DNS server answers with, as `GET /v1/dns/records` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecordView {
    /// Fully qualified, without the final dot.
    pub name: String,
    /// `A`, `PTR`, `NS`, `SOA`...
    #[serde(rename = "type")]
    pub r#type: String,
    /// The record's data in presentation form (`10.20.0.5`).
    pub value: String,
    /// Who gets this answer: `lan`, `wan` or `both` (split horizon).
    pub view: String,
    /// Where the record comes from: `lease`, `reservation`, `app`, `appliance`.
    pub source: String,
}

/// `GET /v1/health`, the only endpoint open without a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthView {
    /// `ok`, or `degraded` when a service is not running.
    pub status: String,
    pub version: String,
    pub uptime_secs: u64,
    /// Each service (`dhcp`, `dns`, `proxy`...) and its state (`running`, `disabled`, `failed`).
    pub services: BTreeMap<String, String>,
}

/// The body of every 4xx/5xx answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable and machine-readable (`not_found`, `invalid_request`, `unauthorized`...).
    pub code: String,
    /// For people; never internal error text.
    pub message: String,
}

impl ErrorBody {
    /// The `code` of a request that failed validation.
    pub const INVALID_REQUEST: &str = "invalid_request";

    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody { error: ErrorDetail { code: code.into(), message: message.into() } }
    }

    /// A request that failed validation: every problem, `path: reason`, separated by `; `.
    pub fn invalid(errors: &ConfigErrors) -> Self {
        let message: Vec<String> = errors.iter().map(ToString::to_string).collect();
        ErrorBody::new(Self::INVALID_REQUEST, message.join("; "))
    }
}

/// Checks that `ip` can be a host on `lan`: inside it, and not its network, broadcast or gateway
/// address.
fn check_lan_host(ip: Ipv4Addr, lan: &Ipv4Net) -> Result<Ipv4Addr, String> {
    let subnet = lan.trunc();
    if !lan.contains(&ip) {
        Err(format!("{ip} is outside the LAN {subnet}"))
    } else if ip == lan.network() {
        Err(format!("{ip} is the network address of the LAN {subnet}"))
    } else if ip == lan.broadcast() {
        Err(format!("{ip} is the broadcast address of the LAN {subnet}"))
    } else if ip == lan.addr() {
        Err(format!("{ip} is the appliance itself (the LAN gateway)"))
    } else {
        Ok(ip)
    }
}

/// Parses an IPv4 address and checks it with [`check_lan_host`].
fn parse_lan_host(text: &str, lan: &Ipv4Net) -> Result<Ipv4Addr, String> {
    let ip = text.parse::<Ipv4Addr>().map_err(|_| format!("{text:?} is not an IPv4 address"))?;
    check_lan_host(ip, lan)
}

/// Checks that a MAC can be a client's: unicast and not all zeros.
fn parse_host_mac(text: &str) -> Result<MacAddr, String> {
    let mac = text.parse::<MacAddr>().map_err(|e| e.to_string())?;
    if mac.0[0] & 1 == 1 {
        Err(format!("{mac} is a multicast address; give the host's own hardware address"))
    } else if mac.0 == [0; 6] {
        Err(format!("{mac} is not a host's hardware address"))
    } else {
        Ok(mac)
    }
}
