//! An expired lease is reclaimed: with a pool of one address and a 10 s lease, a client that
//! vanishes without releasing keeps the address until the lease ends, then a newcomer gets it.
//! While the pool is exhausted the appliance warns once, not once per DISCOVER.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use proximity_tests::{Lab, wait};

const ONLY: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 150);
const LEASE: Duration = Duration::from_secs(10);

#[test]
fn an_expired_lease_is_reclaimed_for_a_new_client() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    let mut config = lab.config();
    config.dhcp.range = format!("{ONLY}-{ONLY}");
    config.dhcp.lease_time = "10s".into();
    lab.start_appliance(&config)?;

    // udhcpc -q exits once bound, without releasing: the client just goes away.
    let gone = lab.client(0).udhcpc().obtain()?;
    let leased_at = Instant::now();
    ensure!(gone.ip == ONLY, "{gone:?}");

    let early = lab.client(1).udhcpc().attempts(2, 1).try_obtain()?;
    ensure!(early.is_none() || leased_at.elapsed() >= LEASE, "got {early:?} before the lease ended");
    let log = lab.appliance().log();
    ensure!(log.matches("pool exhausted").count() == 1, "expected one exhaustion warning:\n{log}");

    // After the lease ends the address goes to the newcomer.
    let lease = wait::until(LEASE * 3, "the expired address to be leased again", || {
        lab.client(1).udhcpc().attempts(2, 1).try_obtain()
    })?;
    ensure!(lease.ip == ONLY, "{lease:?}");
    ensure!(
        leased_at.elapsed() >= LEASE,
        "reclaimed after {:?}, before the lease ended",
        leased_at.elapsed()
    );
    Ok(())
}
