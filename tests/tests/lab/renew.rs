//! Renewing keeps the address: a udhcpc renew (SIGUSR1, unicast REQUEST) and a dhclient restart
//! from its lease file (INIT-REBOOT) both get the same address back.

use std::time::Duration;

use anyhow::Result;
use proximity_tests::{GATEWAY, Lab};

use crate::support::{assert_configured, assert_lan_lease};

#[test]
fn udhcpc_renew_keeps_the_address() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    let config = lab.config();
    lab.start_appliance(&config)?;

    let host = lab.client(0);
    let daemon = host.udhcpc().spawn()?;
    let first = daemon.lease()?;
    let renewed = daemon.renew()?;
    assert_eq!(renewed.event, "renew", "SIGUSR1 in BOUND must renew, not rediscover: {renewed:?}");
    assert_eq!(renewed.ip, first.ip, "renew changed the address");
    assert_lan_lease(&renewed, &config, Duration::from_secs(12 * 3600));
    assert_configured(host, &renewed)?;
    host.ping(GATEWAY)
}

#[test]
fn dhclient_init_reboot_keeps_the_address() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    let config = lab.config();
    lab.start_appliance(&config)?;

    let host = lab.client(0);
    let dhclient = host.dhclient();
    let first = dhclient.obtain()?;
    dhclient.stop()?;
    let again = dhclient.obtain()?;
    assert_eq!(
        again.event, "REBOOT",
        "a restart with a lease file must be answered in INIT-REBOOT: {again:?}"
    );
    assert_eq!(again.ip, first.ip, "INIT-REBOOT changed the address");
    assert_lan_lease(&again, &config, Duration::from_secs(12 * 3600));
    assert_configured(host, &again)
}
