//! Making an interface up with one IPv4 address, idempotently: what is already right is left as
//! it is (no flap of the link, no address removed and added again), what is missing is added,
//! and the interface's other addresses are left alone.

use ipnet::Ipv4Net;
use tracing::warn;

use super::error::NetError;
use super::netlink::{Link, Netlink};

/// What [`ensure`] had to change; all `false` when the interface was already right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changes {
    /// The link was down and was set up.
    pub set_up: bool,
    /// The address was missing and was added.
    pub added: bool,
}

impl Changes {
    pub fn any(&self) -> bool {
        self.set_up || self.added
    }
}

/// Makes the interface `name` up with `net` on it.
///
/// Other addresses stay: the appliance does not own the interface alone (an operator may have
/// put a management address on it, and removing one could cut off the very session that is
/// fixing things). The same address with another prefix is worth a warning, since it means
/// two views of the subnet.
pub async fn ensure(netlink: &Netlink, name: &str, net: Ipv4Net) -> Result<(Link, Changes), NetError> {
    let link = netlink.require_link(name).await?;
    let mut changes = Changes::default();
    if !link.up {
        netlink.set_up(&link).await?;
        changes.set_up = true;
    }
    let present = netlink.addresses(&link).await?;
    if !present.iter().any(|a| a.net == net) {
        for other in present.iter().filter(|a| a.net.addr() == net.addr()) {
            warn!(interface = name, present = %other.net, wanted = %net, "the interface has our address with another prefix; adding ours beside it");
        }
        netlink.add_address(&link, net).await?;
        changes.added = true;
    }
    Ok((link, changes))
}
