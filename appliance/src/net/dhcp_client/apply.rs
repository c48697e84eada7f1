//! A lease on the WAN interface: its address with the lease's prefix and the default route via
//! its router, put on and taken off over rtnetlink, changing only what differs (a renewal that
//! changes nothing touches nothing).

use rtnetlink::packet_route::route::RouteProtocol;

use super::lease::Lease;
use crate::net::error::NetError;
use crate::net::netlink::{Link, Netlink};
use crate::net::route;

/// Puts `lease` on `link`; `previous`'s address comes off when the new one differs, after the
/// new one is on, so the interface is never without an address in between.
pub(super) async fn bind(
    netlink: &Netlink,
    link: &Link,
    lease: &Lease,
    previous: Option<&Lease>,
) -> Result<(), NetError> {
    let present = netlink.addresses(link).await?;
    if !present.iter().any(|a| a.net == lease.address) {
        netlink.add_address(link, lease.address).await?;
    }
    if let Some(previous) = previous.filter(|p| p.address != lease.address) {
        netlink.remove_address(link, previous.address).await?;
    }
    // Removing the old address may have taken the old default route with it: set it after.
    if let Some(router) = lease.router {
        route::ensure_default(netlink, link, router, RouteProtocol::Dhcp).await?;
    }
    Ok(())
}

/// Takes `lease`'s default route and address off `link` (what is already gone is no error).
pub(super) async fn unbind(netlink: &Netlink, link: &Link, lease: &Lease) -> Result<(), NetError> {
    if let Some(router) = lease.router {
        netlink.remove_default_route(link, router).await?;
    }
    netlink.remove_address(link, lease.address).await?;
    Ok(())
}
