//! Reservations: a client whose MAC is reserved gets its fixed address (from the reserved range,
//! with the same options as everyone), and a client without one still gets a pool address.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Result;
use proximity_config::raw::RawReservation;
use proximity_tests::{GATEWAY, Lab};

use crate::support::{assert_configured, assert_lan_lease, assert_lan_options};

#[test]
fn reserved_macs_get_their_fixed_addresses() -> Result<()> {
    let lab = Lab::builder().clients(3).build()?;
    let nas = Ipv4Addr::new(10, 20, 0, 10);
    let printer = Ipv4Addr::new(10, 20, 0, 11);
    let mut config = lab.config();
    config.dhcp.reservations = vec![
        RawReservation::new(lab.client(0).mac(), nas, Some("nas")),
        RawReservation::new(lab.client(1).mac(), printer, Some("printer")),
    ];
    lab.start_appliance(&config)?;
    let lease_time = Duration::from_secs(12 * 3600);

    let lease = lab.client(0).dhclient().obtain()?;
    assert_eq!(lease.ip, nas, "dhclient with a reserved MAC");
    assert_lan_options(&lease, lease_time);
    assert_configured(lab.client(0), &lease)?;
    lab.client(0).ping(GATEWAY)?;

    let lease = lab.client(1).udhcpc().obtain()?;
    assert_eq!(lease.ip, printer, "udhcpc with a reserved MAC");
    assert_lan_options(&lease, lease_time);

    let lease = lab.client(2).udhcpc().obtain()?;
    assert_lan_lease(&lease, &config, lease_time);
    Ok(())
}
