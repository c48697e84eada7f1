//! The WAN address NAT follows (for its hairpin rules).
//!
//! For now it is read once at start from the WAN interface; the netlink watcher of the WAN
//! interface will feed the same channel with every change. Merging it means replacing
//! [`wan_address_watch`] with that watcher's receiver, nothing else.

use std::net::Ipv4Addr;

use tokio::sync::watch;
use tracing::{debug, warn};

/// The WAN interface's address now, on a channel whose sender is already gone (so NAT sees no
/// change until the watcher replaces this). `None` when the interface has no IPv4 address yet.
pub(super) fn wan_address_watch(interface: &str) -> watch::Receiver<Option<Ipv4Addr>> {
    let address = current_address(interface);
    debug!(interface, address = ?address, "wan address at start");
    watch::channel(address).1
}

/// The first IPv4 address of `interface` (getifaddrs: no netlink socket for one lookup).
fn current_address(interface: &str) -> Option<Ipv4Addr> {
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => addrs
            .filter(|a| a.interface_name == interface)
            .find_map(|a| a.address?.as_sockaddr_in().map(|v4| v4.ip())),
        Err(e) => {
            warn!(error = %e, interface, "cannot list addresses; the WAN address is taken as unknown");
            None
        }
    }
}
