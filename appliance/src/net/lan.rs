//! The LAN interface at start: up, with the gateway address of `lan.address` (clients get it as
//! their router and DNS server), before the DHCP server binds to it. Changes nothing when it is
//! already right, as on every start after the first and when Proxmox set `ip=10.20.0.1/24` on
//! the container's net1 itself.

use proximity_config::LanConfig;
use tracing::info;

use super::error::NetError;
use super::interface;
use super::netlink::Netlink;

/// Makes `lan.interface` up with `lan.address`. A missing interface, or one the appliance may
/// not change when it needs changing, is an error: the LAN is what the appliance is for.
pub async fn prepare(lan: &LanConfig) -> Result<(), NetError> {
    let netlink = Netlink::open()?;
    let (link, changes) = interface::ensure(&netlink, &lan.interface, lan.address).await?;
    if changes.any() {
        info!(interface = %link.name, address = %lan.address, set_up = changes.set_up, added = changes.added, "lan interface configured");
    } else {
        info!(interface = %link.name, address = %lan.address, "lan interface already configured");
    }
    Ok(())
}
