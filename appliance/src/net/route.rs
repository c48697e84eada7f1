//! The default route, idempotently: set when it is not already via the wanted gateway on the
//! wanted interface, left alone when it is (a replace of an identical route still churns the
//! kernel's notifications and anything that follows them).

use std::net::Ipv4Addr;

use rtnetlink::packet_route::route::RouteProtocol;

use super::error::NetError;
use super::netlink::{Link, Netlink};

/// Makes the default route go via `gateway` on `link`; `true` when it had to be changed.
pub async fn ensure_default(
    netlink: &Netlink,
    link: &Link,
    gateway: Ipv4Addr,
    protocol: RouteProtocol,
) -> Result<bool, NetError> {
    let routes = netlink.default_routes(link).await?;
    if routes.iter().any(|r| r.gateway == Some(gateway) && r.index == Some(link.index)) {
        return Ok(false);
    }
    netlink.replace_default_route(link, gateway, protocol).await?;
    Ok(true)
}

/// The gateway of the default route that leaves through `link`, if there is one.
pub async fn default_gateway(netlink: &Netlink, link: &Link) -> Result<Option<Ipv4Addr>, NetError> {
    let routes = netlink.default_routes(link).await?;
    Ok(routes.iter().filter(|r| r.index == Some(link.index)).find_map(|r| r.gateway))
}
