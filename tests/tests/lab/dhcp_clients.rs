//! A client gets a working lease: dhclient, udhcpc and dhcpcd each get an address from the pool
//! with the gateway as router and DNS server, the domain and search list, the configured lease
//! time; the address is configured and the gateway answers pings.

use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use proximity_tests::process::run;
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

#[test]
fn dhcpcd_gets_a_lease_with_gateway_dns_and_domain() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    let mut config = lab.config();
    config.dhcp.lease_time = "90m".into();
    lab.start_appliance(&config)?;
    let machine_before = machine_state()?;

    let host = lab.client(0);
    // Stock dhcpcd, ARP probe of the offered address included.
    let lease = host.dhcpcd().obtain()?;
    assert_eq!(lease.event, "BOUND");
    assert_lan_lease(&lease, &config, Duration::from_secs(90 * 60));
    assert_configured(host, &lease)?;
    host.ping(GATEWAY)?;
    // All of dhcpcd's state stayed in the host's directory and its namespace.
    assert_eq!(machine_state()?, machine_before, "dhcpcd changed the machine outside the lab");
    assert!(
        host.dir().join(format!("dhcpcd-db/{}.lease", host.iface())).is_file(),
        "no lease file in the host's dir"
    );
    Ok(())
}

/// What dhcpcd would change on the machine itself if it escaped the lab.
#[derive(Debug, PartialEq, Eq)]
struct MachineState {
    resolv_conf: String,
    resolv_conf_modified: Option<SystemTime>,
    /// The files in dhcpcd's stock state directory (leases, DUID).
    dhcpcd_state: Vec<String>,
    /// The machine's own IPv4 addresses and routes.
    network: String,
}

fn machine_state() -> Result<MachineState> {
    let mut dhcpcd_state: Vec<String> = std::fs::read_dir("/var/lib/dhcpcd")
        .map(|dir| dir.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    dhcpcd_state.sort();
    Ok(MachineState {
        resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        resolv_conf_modified: std::fs::metadata("/etc/resolv.conf").and_then(|m| m.modified()).ok(),
        dhcpcd_state,
        network: run(Command::new("ip").args(["-4", "-br", "addr"]))?
            + &run(Command::new("ip").args(["-4", "route"]))?,
    })
}
