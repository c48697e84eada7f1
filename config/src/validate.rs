//! From the file to a config that cannot be invalid. Every problem is collected with its field
//! path (`dhcp.range: 10.20.1.5 is outside lan.address 10.20.0.1/24`) and reported together.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::raw::{RawConfig, RawDhcp, RawDns, RawReservation};
use crate::types::{Ipv4Range, MacAddr, check_domain, check_label, is_reserved_label};

mod gateway;
mod http;

pub use gateway::{NatConfig, ServedPort, WanConfig, WanMode, own_ports};
pub use http::{
    AdminConfig, DEFAULT_TOKEN_FILE, MAX_HEADER_BYTES, MAX_HTTP_TIMEOUT, MAX_PROXY_CONNECTIONS,
    MIN_HEADER_BYTES, ProxyConfig, TOKEN_SHA256_BYTES,
};

/// Shortest lease accepted; shorter ones make clients chatter without benefit.
pub const MIN_LEASE_TIME: Duration = Duration::from_secs(10);
/// Longest lease accepted; the DHCP option carries seconds in 32 bits and 0xffffffff means "infinite".
pub const MAX_LEASE_TIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub lan: LanConfig,
    pub wan: WanConfig,
    pub dhcp: DhcpConfig,
    pub dns: DnsConfig,
    pub proxy: ProxyConfig,
    pub admin: AdminConfig,
    pub nat: NatConfig,
    pub state: StateConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanConfig {
    pub interface: String,
    /// The gateway address and the LAN subnet (`10.20.0.1/24`).
    pub address: Ipv4Net,
}

impl LanConfig {
    pub fn gateway(&self) -> Ipv4Addr {
        self.address.addr()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    pub enabled: bool,
    pub range: Ipv4Range,
    pub reserved: Ipv4Range,
    pub lease_time: Duration,
    pub decline_probation: Duration,
    pub offer_hold: Duration,
    pub reservations: Vec<Reservation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// Lower-case host label.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    pub enabled: bool,
    /// Lower-case, without a trailing dot.
    pub domain: String,
    pub upstreams: Vec<SocketAddr>,
    pub ttl: Duration,
    pub listen: Vec<SocketAddr>,
    pub upstream_timeout: Duration,
    pub cache_size: u32,
}

/// Longest TTL accepted for our own records: names move with leases.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    pub dir: PathBuf,
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field (`dhcp.reservations[2].ip`), or `(file)` for a syntax error.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a config, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<FieldError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{} in the config", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    pub(crate) fn parse(e: &toml::de::Error) -> Self {
        let message = e.to_string().trim_end().replace('\n', "\n    ");
        ConfigErrors(vec![FieldError { path: "(file)".into(), message }])
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }
}

/// Collects problems while fields are checked one by one.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<FieldError>);

impl Problems {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { path: path.into(), message: message.into() });
    }

    /// Records a parse failure and yields the value when there was none.
    pub(crate) fn check<T, E: fmt::Display>(&mut self, path: &str, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| self.add(path, e.to_string())).ok()
    }

    /// `value` when no problem was recorded; every problem otherwise.
    pub(crate) fn finish<T>(self, value: Option<T>) -> Result<T, ConfigErrors> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(ConfigErrors(self.0)),
        }
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); write it like \"12h\", \"30m\" or \"90s\""))
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigErrors;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigErrors> {
        let mut p = Problems::default();

        let interface = raw.lan.interface.clone();
        if let Err(why) = check_interface_name(&interface) {
            p.add("lan.interface", why);
        }
        let lan_net = p.check("lan.address", parse_lan_address(&raw.lan.address));
        let wan = gateway::check_wan(&raw.wan, &raw, &mut p);

        let dhcp = check_dhcp(&raw.dhcp, lan_net, &mut p);

        let dns = check_dns(&raw.dns, &mut p);
        let proxy = http::check_proxy(&raw.proxy, &raw.dns, &mut p);
        let state_dir = PathBuf::from(&raw.state.dir);
        let admin = http::check_admin(&raw.admin, &state_dir, &raw.proxy, &raw.dns, &mut p);
        let nat = gateway::check_nat(&raw.nat, &raw, lan_net, &mut p);
        if raw.state.dir.trim().is_empty() {
            p.add("state.dir", "is empty; give the directory where the store lives");
        }

        let config = match (lan_net, wan, dhcp, dns, proxy, admin) {
            (Some(address), Some(wan), Some(dhcp), Some(dns), Some(proxy), Some(admin)) => Some(Config {
                lan: LanConfig { interface, address },
                wan,
                dhcp,
                dns,
                proxy,
                admin,
                nat,
                state: StateConfig { dir: state_dir },
            }),
            _ => None,
        };
        p.finish(config)
    }
}

fn check_dns(raw: &RawDns, p: &mut Problems) -> Option<DnsConfig> {
    let before = p.0.len();
    let domain = raw.domain.trim_end_matches('.').to_ascii_lowercase();
    if let Err(e) = check_domain(&domain) {
        p.add("dns.domain", format!("{:?} is not a domain name: {e}", raw.domain));
    }
    let upstreams: Vec<SocketAddr> = raw
        .upstreams
        .iter()
        .enumerate()
        .filter_map(|(i, text)| p.check(&format!("dns.upstreams[{i}]"), parse_server(text, 53)))
        .collect();
    let listen: Vec<SocketAddr> = raw
        .listen
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            p.check(
                &format!("dns.listen[{i}]"),
                text.parse::<SocketAddr>()
                    .map_err(|_| format!("{text:?} is not an address:port like \"0.0.0.0:53\"")),
            )
        })
        .collect();
    let ttl = p.check("dns.ttl", parse_duration(&raw.ttl));
    if ttl.is_some_and(|t| t > MAX_TTL) {
        p.add("dns.ttl", format!("{:?} is longer than {}", raw.ttl, humantime::format_duration(MAX_TTL)));
    }
    let upstream_timeout = p.check("dns.upstream_timeout", parse_duration(&raw.upstream_timeout));
    if upstream_timeout.is_some_and(|t| t < Duration::from_millis(100) || t > Duration::from_secs(30)) {
        p.add("dns.upstream_timeout", format!("{:?} must be between 100ms and 30s", raw.upstream_timeout));
    }
    if raw.cache_size > 1_000_000 {
        p.add("dns.cache_size", format!("{} is more than 1000000 entries", raw.cache_size));
    }
    (p.0.len() == before).then_some(DnsConfig {
        enabled: raw.enabled,
        domain,
        upstreams,
        ttl: ttl?,
        listen,
        upstream_timeout: upstream_timeout?,
        cache_size: raw.cache_size,
    })
}

/// `ip` or `ip:port` (IPv6 as `[ip]:port`), with `default_port` when none is given.
fn parse_server(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, default_port)))
        .map_err(|_| format!("{text:?} is not an address like \"192.0.2.53\" or \"192.0.2.53:5353\""))
}

pub(crate) fn check_interface_name(name: &str) -> Result<(), String> {
    // Linux IFNAMSIZ is 16 including the terminating NUL.
    if name.is_empty() || name.len() > 15 {
        return Err(format!("{name:?} must be 1 to 15 characters long"));
    }
    if name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err(format!("{name:?} may not contain '/', ':' or spaces"));
    }
    Ok(())
}

fn parse_lan_address(text: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net =
        text.parse().map_err(|_| format!("{text:?} is not an address with prefix, like \"10.20.0.1/24\""))?;
    if net.prefix_len() > 30 {
        return Err(format!("{net}: the prefix must be /30 or shorter to leave room for clients"));
    }
    if net.addr() == net.network() || net.addr() == net.broadcast() {
        return Err(format!("{net}: the gateway cannot be the network or broadcast address"));
    }
    Ok(net)
}

/// Checks a range against the LAN: inside it, and clear of the network, broadcast and gateway addresses.
fn check_range(path: &str, text: &str, lan: Option<Ipv4Net>, p: &mut Problems) -> Option<Ipv4Range> {
    let range: Ipv4Range = p.check(path, text.parse())?;
    let Some(lan) = lan else { return Some(range) };
    let before = p.0.len();
    for end in [range.first(), range.last()] {
        if !lan.contains(&end) {
            p.add(path, format!("{end} is outside lan.address {lan}"));
        }
    }
    if range.contains(lan.network()) || range.contains(lan.broadcast()) {
        p.add(path, format!("{range} includes the network or broadcast address of {lan}"));
    }
    if range.contains(lan.addr()) {
        p.add(path, format!("{range} includes the gateway {}", lan.addr()));
    }
    (p.0.len() == before).then_some(range)
}

fn check_dhcp(raw: &RawDhcp, lan: Option<Ipv4Net>, p: &mut Problems) -> Option<DhcpConfig> {
    let range = check_range("dhcp.range", &raw.range, lan, p);
    let reserved = check_range("dhcp.reserved", &raw.reserved, lan, p);
    if let (Some(range), Some(reserved)) = (range, reserved) {
        if range.overlaps(&reserved) {
            p.add("dhcp.range", format!("{range} overlaps dhcp.reserved {reserved}"));
        }
    }

    let mut duration = |path: &str, text: &str, min: Duration, max: Duration| {
        let d = p.check(path, parse_duration(text))?;
        if d < min || d > max {
            p.add(
                path,
                format!(
                    "{text:?} must be between {} and {}",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            );
            return None;
        }
        Some(d)
    };
    let lease_time = duration("dhcp.lease_time", &raw.lease_time, MIN_LEASE_TIME, MAX_LEASE_TIME);
    let decline_probation =
        duration("dhcp.decline_probation", &raw.decline_probation, Duration::ZERO, MAX_LEASE_TIME);
    let offer_hold =
        duration("dhcp.offer_hold", &raw.offer_hold, Duration::from_secs(1), Duration::from_secs(600));

    let reservations = check_reservations(&raw.reservations, reserved, p);

    Some(DhcpConfig {
        enabled: raw.enabled,
        range: range?,
        reserved: reserved?,
        lease_time: lease_time?,
        decline_probation: decline_probation?,
        offer_hold: offer_hold?,
        reservations: reservations?,
    })
}

fn check_reservations(
    raw: &[RawReservation],
    reserved: Option<Ipv4Range>,
    p: &mut Problems,
) -> Option<Vec<Reservation>> {
    let before = p.0.len();
    let mut out = Vec::with_capacity(raw.len());
    let mut macs: HashMap<MacAddr, usize> = HashMap::new();
    let mut ips: HashMap<Ipv4Addr, usize> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, r) in raw.iter().enumerate() {
        let at = |field: &str| format!("dhcp.reservations[{i}].{field}");
        let mac = p.check(&at("mac"), r.mac.parse::<MacAddr>());
        let ip = p.check(
            &at("ip"),
            r.ip.parse::<Ipv4Addr>().map_err(|_| format!("{:?} is not an IPv4 address", r.ip)),
        );
        let name = r.name.as_ref().map(|n| n.to_ascii_lowercase());
        if let Some(n) = &name {
            if let Err(e) = check_label(n) {
                p.add(at("name"), format!("{n:?} is not a valid host name: {e}"));
            } else if is_reserved_label(n) {
                p.add(at("name"), format!("{n:?} is the appliance's own name server; choose another name"));
            } else if let Some(j) = names.insert(n.clone(), i) {
                p.add(at("name"), format!("{n:?} is already used by dhcp.reservations[{j}]"));
            }
        }
        if let Some(mac) = mac {
            if let Some(j) = macs.insert(mac, i) {
                p.add(at("mac"), format!("{mac} is already reserved by dhcp.reservations[{j}]"));
            }
        }
        if let Some(ip) = ip {
            if let Some(reserved) = reserved {
                if !reserved.contains(ip) {
                    p.add(at("ip"), format!("{ip} is outside dhcp.reserved {reserved}"));
                }
            }
            if let Some(j) = ips.insert(ip, i) {
                p.add(at("ip"), format!("{ip} is already reserved by dhcp.reservations[{j}]"));
            }
        }
        if let (Some(mac), Some(ip)) = (mac, ip) {
            out.push(Reservation { mac, ip, name });
        }
    }
    (p.0.len() == before).then_some(out)
}

#[cfg(test)]
mod tests;
