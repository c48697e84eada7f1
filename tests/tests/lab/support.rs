//! Assertions shared by the lab tests: what every client of the appliance must be given, and
//! what must then be configured on its machine.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};
use proximity_config::{Ipv4Range, RawConfig};
use proximity_tests::{GATEWAY, Host, LAN_PREFIX, Lease};

/// The domain the lab's configs keep (the default).
pub(crate) const DOMAIN: &str = "prox.local";

/// The configured dynamic pool.
pub(crate) fn pool(config: &RawConfig) -> Ipv4Range {
    config.dhcp.range.parse().unwrap_or_else(|e| panic!("test config has a bad dhcp.range: {e}"))
}

/// A lease carries everything the appliance promises: an address from the pool (or `fixed`),
/// the gateway as router, DNS server and server id, the domain as name and search list, and the
/// configured lease time.
pub(crate) fn assert_lan_lease(lease: &Lease, config: &RawConfig, lease_time: Duration) {
    assert!(
        pool(config).contains(lease.ip),
        "{} is outside the pool {}: {lease:?}",
        lease.ip,
        config.dhcp.range
    );
    assert_lan_options(lease, lease_time);
}

/// [`assert_lan_lease`] without the pool check (reserved addresses live outside the pool).
pub(crate) fn assert_lan_options(lease: &Lease, lease_time: Duration) {
    assert_eq!(lease.prefix_len, LAN_PREFIX, "netmask: {lease:?}");
    assert_eq!(lease.routers, [GATEWAY], "router: {lease:?}");
    assert_eq!(lease.dns_servers, [GATEWAY], "DNS servers: {lease:?}");
    assert_eq!(lease.domain, DOMAIN, "domain name: {lease:?}");
    assert_eq!(lease.search, [DOMAIN], "domain search list: {lease:?}");
    assert_eq!(lease.lease_time, lease_time, "lease time: {lease:?}");
    assert_eq!(lease.server_id, Some(GATEWAY), "server identifier: {lease:?}");
}

/// The host has the leased address (and only it) and a default route via the gateway.
pub(crate) fn assert_configured(host: &Host, lease: &Lease) -> Result<()> {
    let addrs = host.ipv4_addrs().with_context(|| format!("addresses of {}", host.label()))?;
    assert_eq!(addrs, [(lease.ip, LAN_PREFIX)], "addresses on {} after {lease:?}", host.label());
    assert_eq!(host.default_gateway()?, Some(GATEWAY), "default route on {}", host.label());
    Ok(())
}

/// Panics unless all addresses differ.
pub(crate) fn assert_distinct(ips: &[Ipv4Addr]) {
    for (i, a) in ips.iter().enumerate() {
        assert!(!ips[i + 1..].contains(a), "{a} was leased twice: {ips:?}");
    }
}
