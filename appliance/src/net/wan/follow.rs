//! The `host` and `static` modes: the WAN interface's address and default route read from the
//! kernel at start and again on every link, address or route notification, and published when
//! they change. In `static` mode the configured address and route are put on first (and again
//! whenever the interface comes back, a new NIC), idempotently as the LAN's are. A missing
//! interface is waited for, not an error: Proxmox may add the NIC after the container started.

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use rtnetlink::packet_route::route::RouteProtocol;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::state::{WanState, WanWatch};
use crate::net::error::NetError;
use crate::net::netlink::{Link, Netlink};
use crate::net::watch::{Pace, Watch};
use crate::net::{interface, route};

/// How often the interface is read again without a notification: the kernel drops
/// notifications when our socket's buffer is full, and this bounds how long one missed stays
/// unnoticed.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(30);
/// How long to wait before opening netlink again after it failed or its notifications ended.
pub const REOPEN_DELAY: Duration = Duration::from_secs(5);

/// What `static` mode puts on the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    pub address: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
}

/// Follows `interface` until `stop`, publishing its state on `wan`; with `fixed`, configures it
/// first.
pub async fn follow(interface: &str, fixed: Option<Fixed>, wan: &WanWatch, stop: &CancellationToken) {
    let mut follower = Follower { interface, fixed, configured: None, missing: false };
    let mut watch = Watch::new("wan", interface, Pace { reopen: REOPEN_DELAY, resync: RESYNC_INTERVAL });
    while let Some(netlink) = watch.next(stop).await {
        if let Some(state) = follower.read(netlink).await {
            wan.publish(state);
        }
    }
}

struct Follower<'a> {
    interface: &'a str,
    fixed: Option<Fixed>,
    /// The index of the link `fixed` was last put on; another index is a new interface.
    configured: Option<u32>,
    /// Whether the missing interface was reported already (once per absence, not per event).
    missing: bool,
}

impl Follower<'_> {
    /// The interface's state now; `None` when it cannot be read (then the last one stands).
    async fn read(&mut self, netlink: &Netlink) -> Option<WanState> {
        let interface = self.interface;
        let link = match netlink.link(interface).await {
            Ok(Some(link)) => link,
            Ok(None) => {
                if !self.missing {
                    warn!(interface, "the wan interface does not exist; waiting for it");
                    self.missing = true;
                }
                self.configured = None;
                return Some(WanState::default());
            }
            Err(e) => {
                warn!(interface, error = %e, "cannot read the wan interface");
                return None;
            }
        };
        if self.missing {
            info!(interface, "the wan interface appeared");
            self.missing = false;
        }
        if let Some(fixed) = self.fixed.filter(|_| self.configured != Some(link.index)) {
            match configure(netlink, &link, fixed).await {
                Ok(()) => self.configured = Some(link.index),
                Err(e) => {
                    warn!(interface, error = %e, "cannot configure the static wan address; trying again at the next change")
                }
            }
        }
        let prefer = self.fixed.map(|f| f.address);
        match read_state(netlink, &link, prefer).await {
            Ok(state) => Some(state),
            Err(e) => {
                warn!(interface, error = %e, "cannot read the wan interface");
                None
            }
        }
    }
}

/// What `link` carries now: its address (`prefer` when it is there, as the static address,
/// else the primary one) and the gateway of the default route through it.
pub(crate) async fn read_state(
    netlink: &Netlink,
    link: &Link,
    prefer: Option<Ipv4Net>,
) -> Result<WanState, NetError> {
    let addresses = netlink.addresses(link).await?;
    let preferred = prefer.filter(|net| addresses.iter().any(|a| a.net == *net));
    let primary = addresses.iter().find(|a| !a.secondary).or(addresses.first()).map(|a| a.net);
    let gateway = route::default_gateway(netlink, link).await?;
    Ok(WanState { address: preferred.or(primary), gateway, dns: Vec::new() })
}

/// Puts the static address (and default route) on `link`, changing only what differs.
async fn configure(netlink: &Netlink, link: &Link, fixed: Fixed) -> Result<(), NetError> {
    let (_, changes) = interface::ensure(netlink, &link.name, fixed.address).await?;
    let routed = match fixed.gateway {
        Some(gateway) => route::ensure_default(netlink, link, gateway, RouteProtocol::Static).await?,
        None => false,
    };
    if changes.any() || routed {
        info!(interface = %link.name, address = %fixed.address, gateway = ?fixed.gateway, "static wan address configured");
    } else {
        info!(interface = %link.name, address = %fixed.address, gateway = ?fixed.gateway, "static wan address already configured");
    }
    Ok(())
}
