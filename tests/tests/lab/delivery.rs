//! How replies reach a client that has no address yet (RFC 2131 4.1): broadcast when it sets
//! the broadcast flag, otherwise unicast to its MAC, which the appliance makes possible by
//! adding a neighbour entry for the offered address.

use anyhow::{Result, ensure};
use proximity_tests::Lab;

#[test]
fn a_client_asking_for_broadcast_replies_gets_a_lease() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    lab.start_appliance(&lab.config())?;
    let lease = lab.client(0).udhcpc().broadcast().obtain()?;
    ensure!(lease.ip.octets()[3] >= 100, "{lease:?}");
    Ok(())
}

#[test]
fn a_client_without_the_broadcast_flag_is_answered_by_unicast() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    lab.start_appliance(&lab.config())?;
    let host = lab.client(0);
    let lease = host.udhcpc().obtain()?;
    // The appliance taught its kernel the client's MAC for the offered address before sending.
    let neigh = lab.appliance_netns().ip(&["neigh", "show", &lease.ip.to_string()])?;
    let mac = host.mac().to_string();
    ensure!(neigh.contains(&mac), "no neighbour entry {} -> {mac} in the appliance: {neigh:?}", lease.ip);
    Ok(())
}
