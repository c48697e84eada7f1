//! A LAN NIC replaced while the appliance runs, as Proxmox does when a user edits net1 of a
//! running container (bridge, MAC, firewall flag): the veth is deleted and a new one with the
//! same name appears. The appliance puts the gateway back on it and serves DHCP and DNS on it
//! again, with no restart, and the leases given before stay.

use std::time::Duration;

use anyhow::Result;
use proximity_tests::dns::query;
use proximity_tests::{GATEWAY, LAN_PREFIX, Lab, wait};

/// How long the appliance may take to follow a replaced LAN interface.
const REPLUG_DEADLINE: Duration = Duration::from_secs(30);
/// One DHCP attempt inside the deadline: short, so a failed try is retried soon.
const ATTEMPT: Duration = Duration::from_secs(5);
/// The bridge port of the new veth (in the switch namespace, where names are the lab's own).
const NEW_PORT: &str = "pxhotplug";
/// The zone the appliance is authoritative for (the default `dns.domain`).
const DOMAIN: &str = "prox.local";

#[test]
fn a_replaced_lan_interface_gets_the_gateway_dhcp_and_dns_back() -> Result<()> {
    let lab = Lab::builder().clients(2).gateway_by_harness(false).build()?;
    let (ns, lan) = (lab.appliance_netns(), lab.lan_iface());
    let appliance = lab.start_appliance(&lab.config())?;
    let first = lab.client(0).dhclient().obtain()?;
    assert_eq!(first.routers, [GATEWAY]);

    // Deleting one end of a veth deletes both; the new pair has the same name on our side.
    ns.ip(&["link", "del", lan])?;
    let switch = lab.switch_netns();
    switch.ip(&["link", "add", NEW_PORT, "type", "veth", "peer", "name", lan, "netns", ns.name()])?;
    switch.ip(&["link", "set", NEW_PORT, "master", lab.bridge(), "up"])?;
    ns.ip(&["link", "set", lan, "up"])?;

    wait::until(REPLUG_DEADLINE, "the gateway address back on the new LAN interface", || {
        Ok(ns.ipv4_addrs(lan)?.contains(&(GATEWAY, LAN_PREFIX)).then_some(()))
    })?;
    let client = lab.client(1);
    let lease = wait::until(REPLUG_DEADLINE, "a lease on the new LAN interface", || {
        client.dhclient().timeout(ATTEMPT).try_obtain()
    })
    .map_err(|e| e.context(appliance.log()))?;
    assert_eq!(lease.routers, [GATEWAY], "the gateway is the router again");
    assert_ne!(lease.ip, first.ip, "a second client, a second address");
    let reply = query(client, GATEWAY, DOMAIN, "SOA").run()?;
    assert_eq!(reply.status, "NOERROR", "DNS at the gateway answers: {reply}");
    // The leases stay: the first client, rebooted, is given its address again.
    lab.client(0).dhclient().stop()?;
    let again = lab.client(0).dhclient().obtain()?;
    assert_eq!(again.ip, first.ip, "the first client keeps its lease across the replacement");
    let log = appliance.log();
    assert!(log.contains("lan interface replaced"), "the appliance says it followed the LAN:\n{log}");
    Ok(())
}
