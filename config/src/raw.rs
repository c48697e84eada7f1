//! The configuration file as a user writes it. Every field has a default equal to the network
//! model in DESIGN.md, so an empty file is a working config. Unknown keys are errors.

use serde::{Deserialize, Serialize};

use crate::types::MacAddr;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub lan: RawLan,
    pub wan: RawWan,
    pub dhcp: RawDhcp,
    pub dns: RawDns,
    pub proxy: RawProxy,
    pub admin: RawAdmin,
    pub nat: RawNat,
    pub state: RawState,
}

/// `[lan]`: the app bridge side, where the appliance is the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLan {
    /// The interface facing the app bridge; DHCP binds to it and to nothing else.
    pub interface: String,
    /// The gateway address with its prefix; the LAN subnet is derived from it.
    pub address: String,
}

impl Default for RawLan {
    fn default() -> Self {
        RawLan { interface: "eth1".into(), address: "10.20.0.1/24".into() }
    }
}

/// `[wan]`: the management side (Proxmox `vmbr0`), where the appliance is a client of the
/// user's network and the LAN's way out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWan {
    /// The interface facing the management network. Inside the appliance container this is eth0.
    pub interface: String,
    /// How the interface gets its address: `dhcp` (the appliance's own DHCP client), `static`
    /// (`address` and `gateway` below) or `host` (set from outside, e.g. by Proxmox; followed).
    pub mode: String,
    /// `static` only: the address with its prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `static` only: the default router, inside `address`'s subnet. Absent: no default route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

impl Default for RawWan {
    fn default() -> Self {
        RawWan { interface: "eth0".into(), mode: "dhcp".into(), address: None, gateway: None }
    }
}

/// `[nat]`: the LAN's way out (masquerade behind the WAN address) and port forwards in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNat {
    /// Route and masquerade LAN traffic out of the WAN interface, with the appliance's firewall.
    pub enabled: bool,
    /// Ports of the WAN address forwarded to LAN hosts; the admin API adds more at run time.
    pub forwards: Vec<RawForward>,
}

impl Default for RawNat {
    fn default() -> Self {
        RawNat { enabled: true, forwards: Vec::new() }
    }
}

/// One port forward: `protocol` `port` on the WAN address goes to `to` on the LAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port on the WAN side.
    pub port: u32,
    /// The LAN host and port it goes to (`10.20.0.50:22`).
    pub to: String,
}

/// `[dhcp]`: the DHCPv4 server on the LAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDhcp {
    pub enabled: bool,
    /// Addresses handed to clients that have no reservation (`first-last`).
    pub range: String,
    /// Addresses kept for reservations and static hosts; never handed out dynamically.
    pub reserved: String,
    /// How long a lease lasts; clients renew at half of it (T1) and rebind at 7/8 (T2).
    pub lease_time: String,
    /// How long an address a client declined (found in use) is kept out of the pool.
    pub decline_probation: String,
    /// How long an offered address is kept from being offered to another client. Offers never
    /// lock an address: the first REQUEST wins, so DISCOVER floods take nothing.
    pub offer_hold: String,
    pub reservations: Vec<RawReservation>,
}

impl Default for RawDhcp {
    fn default() -> Self {
        RawDhcp {
            enabled: true,
            range: "10.20.0.100-10.20.0.250".into(),
            reserved: "10.20.0.2-10.20.0.99".into(),
            lease_time: "12h".into(),
            decline_probation: "10m".into(),
            offer_hold: "30s".into(),
            reservations: Vec::new(),
        }
    }
}

/// `[[dhcp.reservations]]`: a fixed address (and name) for one MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReservation {
    pub mac: String,
    pub ip: String,
    /// Host name the address is known by; owned by this reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `[dns]`: the DNS server: authoritative for the domain and the LAN's reverse zone, forwarding
/// the rest for LAN clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDns {
    pub enabled: bool,
    /// The domain the appliance is authoritative for; given to DHCP clients as domain and search list.
    pub domain: String,
    /// Servers that LAN clients' other queries are forwarded to (`ip` or `ip:port`), tried in
    /// order. Empty: the DNS servers the WAN's DHCP server gives (`wan.mode = "dhcp"`); without
    /// those nothing is forwarded, and LAN clients get SERVFAIL for other names.
    pub upstreams: Vec<String>,
    /// TTL of the records we serve. Short, because names follow leases and apps live.
    pub ttl: String,
    /// Addresses to serve on, UDP and TCP (`ip:port`). `0.0.0.0:53` serves on every address of
    /// the appliance; who may ask what is decided by the client's address, not by the socket.
    pub listen: Vec<String>,
    /// How long to wait for an upstream before answering SERVFAIL.
    pub upstream_timeout: String,
    /// Most forwarded answers kept in the cache.
    pub cache_size: u32,
}

impl Default for RawDns {
    fn default() -> Self {
        RawDns {
            enabled: true,
            domain: "prox.local".into(),
            upstreams: Vec::new(),
            ttl: "30s".into(),
            listen: vec!["0.0.0.0:53".into()],
            upstream_timeout: "2s".into(),
            cache_size: 4096,
        }
    }
}

/// `[proxy]`: the reverse proxy that serves apps by name (`http://web.prox.local/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProxy {
    pub enabled: bool,
    /// Plain HTTP listeners (`ip:port`); empty turns plain HTTP off.
    pub http_listen: Vec<String>,
    /// TLS listeners, with certificates from the appliance's CA; empty turns HTTPS off.
    pub https_listen: Vec<String>,
    /// Most client connections open at once; beyond it new ones wait in the kernel backlog, so a
    /// flood of clients cannot exhaust memory or file descriptors.
    pub max_connections: u32,
    /// How long a client has to send a request's headers; closes slowloris connections.
    pub header_read_timeout: String,
    /// How long an idle keep-alive client connection is kept open.
    pub idle_timeout: String,
    /// How long to wait for a backend to accept a connection before answering 502.
    pub connect_timeout: String,
    /// How long to wait for a backend's response headers before answering 504.
    pub response_timeout: String,
    /// Largest request header block accepted; larger ones get 431.
    pub max_header_bytes: u32,
}

impl Default for RawProxy {
    fn default() -> Self {
        RawProxy {
            enabled: true,
            http_listen: vec!["0.0.0.0:80".into()],
            https_listen: vec!["0.0.0.0:443".into()],
            max_connections: 4096,
            header_read_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            connect_timeout: "5s".into(),
            response_timeout: "60s".into(),
            max_header_bytes: 65536,
        }
    }
}

/// `[admin]`: the admin API (apps, leases, reservations) and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    pub enabled: bool,
    /// Addresses the API listens on (`ip:port`).
    pub listen: Vec<String>,
    /// File holding the bearer token clients must send. Absent: `admin.token` in `state.dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// SHA-256 of the bearer token (64 hex digits), for a deployment whose token is kept by the
    /// provisioner: the secret never enters the template, and no token file is made or read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// Serve the API over TLS with the appliance's CA. `false` is for debugging only: the token
    /// would cross the network in clear text.
    pub tls: bool,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            enabled: true,
            listen: vec!["0.0.0.0:9090".into()],
            token_file: None,
            token_sha256: None,
            tls: true,
        }
    }
}

/// `[state]`: where the durable store lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawState {
    /// Directory of the store; on Proxmox a mount point so upgrades keep it.
    pub dir: String,
}

impl Default for RawState {
    fn default() -> Self {
        RawState { dir: "/var/lib/proximity".into() }
    }
}

impl RawConfig {
    /// The file form, for writing a config the daemon will read back unchanged.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

impl RawReservation {
    pub fn new(mac: MacAddr, ip: std::net::Ipv4Addr, name: Option<&str>) -> Self {
        RawReservation { mac: mac.to_string(), ip: ip.to_string(), name: name.map(str::to_owned) }
    }
}
