//! The LAN interface: made ready at start (up, with the gateway address of `lan.address`, which
//! clients get as their router and DNS server) before the DHCP server binds to it, and followed
//! while the appliance runs. Proxmox replaces a container's NIC when a user edits it on a running
//! container (bridge, MAC, firewall flag): the veth is deleted and a new one with the same name
//! appears, without the address (with `ostype=unmanaged` nobody else puts it back) and unknown
//! to sockets bound to the old one. Changes nothing when the interface is already right, as on
//! every start after the first and when Proxmox set `ip=10.20.0.1/24` on net1 itself.

use std::time::Duration;

use proximity_config::LanConfig;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::error::NetError;
use super::interface;
use super::netlink::{Link, Netlink};
use super::watch::{Pace, Watch};

/// How long to wait before opening netlink again after it failed.
const REOPEN_DELAY: Duration = Duration::from_secs(1);
/// How often the interface is read even without a notification, so a replacement whose
/// configuration failed is tried again.
const RESYNC_INTERVAL: Duration = Duration::from_secs(5);

/// Makes `lan.interface` up with `lan.address` and returns it. A missing interface, or one the
/// appliance may not change when it needs changing, is an error: the LAN is what the appliance
/// is for.
pub async fn prepare(lan: &LanConfig) -> Result<Link, NetError> {
    let netlink = Netlink::open()?;
    let (link, changes) = interface::ensure(&netlink, &lan.interface, lan.address).await?;
    if changes.any() {
        info!(interface = %link.name, address = %lan.address, set_up = changes.set_up, added = changes.added, "lan interface configured");
    } else {
        info!(interface = %link.name, address = %lan.address, "lan interface already configured");
    }
    Ok(link)
}

/// Follows `lan.interface` (first seen as `index`) until `stop`: when a link of that name with
/// another index appears, puts `lan.address` on it and hands it to `replaced`, which rebinds
/// what was bound to the old one.
pub async fn follow(lan: &LanConfig, index: u32, mut replaced: impl FnMut(&Link), stop: &CancellationToken) {
    let mut known = index;
    let mut watch = Watch::new("lan", &lan.interface, Pace { reopen: REOPEN_DELAY, resync: RESYNC_INTERVAL });
    while let Some(netlink) = watch.next(stop).await {
        if let Some(link) = replacement(netlink, lan, known).await {
            known = link.index;
            replaced(&link);
        }
    }
}

/// The LAN interface, configured, when it is there under another index than `known`.
async fn replacement(netlink: &Netlink, lan: &LanConfig, known: u32) -> Option<Link> {
    let name = lan.interface.as_str();
    match netlink.link(name).await {
        Ok(Some(link)) if link.index != known => {}
        Ok(_) => return None,
        Err(e) => {
            warn!(interface = name, error = %e, "cannot read the lan interface");
            return None;
        }
    }
    match interface::ensure(netlink, name, lan.address).await {
        Ok((link, changes)) => {
            info!(interface = name, index = link.index, previous = known, address = %lan.address, set_up = changes.set_up, added = changes.added, "lan interface replaced; configured again");
            Some(link)
        }
        Err(e) => {
            warn!(interface = name, address = %lan.address, error = %e, "cannot configure the replaced lan interface; trying again");
            None
        }
    }
}
