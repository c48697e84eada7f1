//! A client gets a working lease: dhclient and udhcpc each get an address from the pool with the
//! gateway as router and DNS server, the domain and search list, the configured lease time; the
//! address is configured and the gateway answers pings.

use std::time::Duration;

use anyhow::Result;
use proximity_tests::{GATEWAY, Lab};

use crate::support::{assert_configured, assert_lan_lease};

#[test]
fn dhclient_gets_a_lease_with_gateway_dns_and_domain() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    let mut config = lab.config();
    // Not the default, so the test sees the configured value reach the client.
    config.dhcp.lease_time = "2h".into();
    lab.start_appliance(&config)?;

    let host = lab.client(0);
    let lease = host.dhclient().obtain()?;
    assert_eq!(lease.event, "BOUND");
    assert_lan_lease(&lease, &config, Duration::from_secs(2 * 3600));
    assert_configured(host, &lease)?;
    host.ping(GATEWAY)
}

#[test]
fn udhcpc_gets_a_lease_with_gateway_dns_and_domain() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    let mut config = lab.config();
    config.dhcp.lease_time = "45m".into();
    lab.start_appliance(&config)?;

    let host = lab.client(0);
    let lease = host.udhcpc().obtain()?;
    assert_eq!(lease.event, "bound");
    assert_lan_lease(&lease, &config, Duration::from_secs(45 * 60));
    assert_configured(host, &lease)?;
    host.ping(GATEWAY)
}

#[test]
fn udhcpc_with_a_hostname_gets_a_lease() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    let config = lab.config();
    lab.start_appliance(&config)?;

    let host = lab.client(0);
    let lease = host.udhcpc().hostname("web1").obtain()?;
    assert_lan_lease(&lease, &config, Duration::from_secs(12 * 3600));
    assert_configured(host, &lease)
}
