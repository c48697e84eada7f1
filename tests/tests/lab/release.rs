//! Releasing frees the address: with a pool of one address, a second client gets nothing until
//! the first releases, and then gets exactly that address.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Result;
use proximity_config::RawConfig;
use proximity_tests::Lab;

/// The only address of the pool in these tests.
const ONLY: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 150);

fn one_address_pool(lab: &Lab) -> RawConfig {
    let mut config = lab.config();
    config.dhcp.range = format!("{ONLY}-{ONLY}");
    config
}

#[test]
fn udhcpc_release_frees_the_only_address() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    lab.start_appliance(&one_address_pool(&lab))?;

    let holder = lab.client(0).udhcpc().spawn()?;
    assert_eq!(holder.lease()?.ip, ONLY);

    // Short attempts: this one is expected to fail.
    let late = lab.client(1).udhcpc().attempts(2, 1).try_obtain()?;
    assert_eq!(late, None, "the pool has one address and it is leased, yet a second client got one");

    holder.release()?;
    let lease = lab.client(1).udhcpc().obtain()?;
    assert_eq!(lease.ip, ONLY, "the released address should go to the waiting client");
    Ok(())
}

#[test]
fn dhclient_release_frees_the_only_address() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    lab.start_appliance(&one_address_pool(&lab))?;

    let holder = lab.client(0).dhclient();
    assert_eq!(holder.obtain()?.ip, ONLY);

    let late = lab.client(1).dhclient().timeout(Duration::from_secs(4)).try_obtain()?;
    assert_eq!(late, None, "the pool has one address and it is leased, yet a second client got one");

    holder.release()?;
    let lease = lab.client(1).dhclient().obtain()?;
    assert_eq!(lease.ip, ONLY, "the released address should go to the waiting client");
    Ok(())
}
