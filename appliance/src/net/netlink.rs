//! The appliance's one way to the kernel's links, IPv4 addresses and routes: an rtnetlink
//! connection and the few requests the appliance makes on it, each answering in our own types
//! and failing with a [`NetError`] that names the interface. Optionally the connection also
//! carries the kernel's change notifications ([`Events`]), as `ip monitor` does.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use ipnet::Ipv4Net;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use rtnetlink::sys::SocketAddr;
use rtnetlink::{AddressMessageBuilder, LinkUnspec, MulticastGroup, RouteMessageBuilder};
use tokio::task::JoinHandle;

use super::error::{NetError, errno};

/// No such device: the kernel's answer for a link name it does not know.
const ENODEV: i32 = 19;
/// No such process: the answer for a route that is not there.
const ESRCH: i32 = 3;
/// The address is not on the interface.
const EADDRNOTAVAIL: i32 = 99;
/// The address (or route) is there already.
const EEXIST: i32 = 17;

/// A network interface as the appliance needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    /// Administratively up (`ip link set up`).
    pub up: bool,
    /// The hardware address, when the link has an Ethernet one (what DHCP identifies us by).
    pub mac: Option<[u8; 6]>,
}

/// One IPv4 address of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub net: Ipv4Net,
    /// A second address in a subnet the interface already has an address in; the first one is
    /// the source the kernel picks, so it is "the" address of the interface.
    pub secondary: bool,
}

/// A default route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRoute {
    pub gateway: Option<Ipv4Addr>,
    pub index: Option<u32>,
}

/// An rtnetlink connection, served by a task that ends when this is dropped.
#[derive(Debug)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    task: JoinHandle<()>,
}

/// The kernel's notifications of link, IPv4 address and IPv4 route changes, from
/// [`Netlink::monitor`].
pub struct Events {
    messages: BoxStream<'static, (NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Netlink {
    /// A connection for requests only.
    pub fn open() -> Result<Netlink, NetError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetError::Open)?;
        Ok(Netlink { handle, task: tokio::spawn(connection) })
    }

    /// A connection for requests that also receives the kernel's link, IPv4 address and IPv4
    /// route notifications (RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE).
    pub fn monitor() -> Result<(Netlink, Events), NetError> {
        let groups = [MulticastGroup::Link, MulticastGroup::Ipv4Ifaddr, MulticastGroup::Ipv4Route];
        let (connection, handle, messages) =
            rtnetlink::new_multicast_connection(&groups).map_err(NetError::Open)?;
        Ok((Netlink { handle, task: tokio::spawn(connection) }, Events { messages: messages.boxed() }))
    }

    /// The link named `name`; `None` when there is none.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, NetError> {
        let mut links = self.handle.link().get().match_name(name.to_owned()).execute();
        let message = match links.try_next().await {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(None),
            Err(e) if errno(&e) == Some(ENODEV) => return Ok(None),
            Err(e) => return Err(NetError::request(name, "read the link", e)),
        };
        let mut link = Link {
            name: name.to_owned(),
            index: message.header.index,
            up: message.header.flags.contains(LinkFlags::Up),
            mac: None,
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(n) => link.name.clone_from(n),
                LinkAttribute::Address(bytes) => link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                _ => {}
            }
        }
        Ok(Some(link))
    }

    /// The link named `name`, or [`NetError::NoInterface`].
    pub async fn require_link(&self, name: &str) -> Result<Link, NetError> {
        self.link(name).await?.ok_or_else(|| NetError::NoInterface(name.to_owned()))
    }

    /// Sets `link` administratively up.
    pub async fn set_up(&self, link: &Link) -> Result<(), NetError> {
        let message = LinkUnspec::new_with_index(link.index).up().build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| NetError::request(&link.name, "set the link up", e))
    }

    /// The IPv4 addresses of `link`, primary ones first as the kernel lists them.
    pub async fn addresses(&self, link: &Link) -> Result<Vec<InterfaceAddress>, NetError> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::request(&link.name, "read the addresses", e))?;
        Ok(messages.iter().filter_map(interface_address).collect())
    }

    /// Adds `net` to `link`; an address that is there already is no error.
    pub async fn add_address(&self, link: &Link, net: Ipv4Net) -> Result<(), NetError> {
        let added = self.handle.address().add(link.index, IpAddr::V4(net.addr()), net.prefix_len()).execute();
        match added.await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(NetError::request(&link.name, format!("add address {net}"), e)),
        }
    }

    /// Removes `net` from `link`; `false` when it was not there.
    pub async fn remove_address(&self, link: &Link, net: Ipv4Net) -> Result<bool, NetError> {
        let message = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(link.index)
            .address(net.addr(), net.prefix_len())
            .build();
        match self.handle.address().del(message).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(NetError::request(&link.name, format!("remove address {net}"), e)),
        }
    }

    /// The default routes (0.0.0.0/0) of the main table.
    pub async fn default_routes(&self, link: &Link) -> Result<Vec<DefaultRoute>, NetError> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let messages: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::request(&link.name, "read the routes", e))?;
        Ok(messages.iter().filter_map(default_route).collect())
    }

    /// Makes the default route go via `gateway` on `link`, replacing the one there (the
    /// appliance has one way out: its WAN).
    pub async fn replace_default_route(
        &self,
        link: &Link,
        gateway: Ipv4Addr,
        protocol: RouteProtocol,
    ) -> Result<(), NetError> {
        let message = RouteMessageBuilder::<Ipv4Addr>::new()
            .output_interface(link.index)
            .gateway(gateway)
            .protocol(protocol)
            .build();
        self.handle
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(|e| NetError::request(&link.name, format!("set the default route via {gateway}"), e))
    }

    /// Removes the default route via `gateway` on `link`; `false` when there was none.
    pub async fn remove_default_route(&self, link: &Link, gateway: Ipv4Addr) -> Result<bool, NetError> {
        let message =
            RouteMessageBuilder::<Ipv4Addr>::new().output_interface(link.index).gateway(gateway).build();
        match self.handle.route().del(message).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(ESRCH) => Ok(false),
            Err(e) => {
                Err(NetError::request(&link.name, format!("remove the default route via {gateway}"), e))
            }
        }
    }
}

impl Events {
    /// Waits for the next change of a link, an IPv4 address or an IPv4 route (anywhere: the
    /// caller reads again what it cares about). `false` when the connection has ended.
    pub async fn changed(&mut self) -> bool {
        while let Some((message, _)) = self.messages.next().await {
            if let NetlinkPayload::InnerMessage(inner) = message.payload {
                if matches!(
                    inner,
                    RouteNetlinkMessage::NewLink(_)
                        | RouteNetlinkMessage::DelLink(_)
                        | RouteNetlinkMessage::NewAddress(_)
                        | RouteNetlinkMessage::DelAddress(_)
                        | RouteNetlinkMessage::NewRoute(_)
                        | RouteNetlinkMessage::DelRoute(_)
                ) {
                    return true;
                }
            }
        }
        false
    }

    /// Takes every notification already queued, so a burst of them costs one read.
    pub fn drain(&mut self) {
        while let Some(Some(_)) = self.messages.next().now_or_never() {}
    }
}

/// An IPv4 address from an address message (the local one: for a point-to-point link `Address`
/// is the peer).
fn interface_address(message: &AddressMessage) -> Option<InterfaceAddress> {
    let mut local = None;
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(IpAddr::V4(ip)) => local = Some(*ip),
            AddressAttribute::Address(IpAddr::V4(ip)) => address = Some(*ip),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    let net = Ipv4Net::new(ip, message.header.prefix_len).ok()?;
    Some(InterfaceAddress { net, secondary: message.header.flags.contains(AddressHeaderFlags::Secondary) })
}

/// A default route of the main table from a route message.
fn default_route(message: &RouteMessage) -> Option<DefaultRoute> {
    if message.header.destination_prefix_length != 0 {
        return None;
    }
    let mut route = DefaultRoute { gateway: None, index: None };
    let mut table = u32::from(message.header.table);
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Gateway(RouteAddress::Inet(gateway)) => route.gateway = Some(*gateway),
            RouteAttribute::Oif(index) => route.index = Some(*index),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    (table == u32::from(RouteHeader::RT_TABLE_MAIN)).then_some(route)
}
