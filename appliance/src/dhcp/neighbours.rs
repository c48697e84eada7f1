//! Unicast to a client that has no address yet. RFC 2131 4.1 asks for OFFER and ACK to go to
//! chaddr/yiaddr when the client did not set the broadcast bit; the kernel cannot resolve an
//! address nobody answers ARP for, so we tell it the client's MAC first (a neighbour entry over
//! rtnetlink, as dnsmasq does with SIOCSARP). If that fails the caller broadcasts instead.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use proximity_config::MacAddr;
use rtnetlink::packet_route::neighbour::NeighbourState;
use tokio_util::sync::CancellationToken;

/// Why a neighbour entry could not be set.
#[derive(Debug, thiserror::Error)]
pub enum NeighbourError {
    #[error("interface {0:?} not found")]
    NoInterface(String),
    #[error("netlink: {0}")]
    Netlink(#[from] std::io::Error),
    #[error("netlink request failed: {0}")]
    Request(#[from] rtnetlink::Error),
}

/// A netlink handle for the LAN interface's neighbour table.
#[derive(Debug, Clone)]
pub struct Neighbours {
    handle: rtnetlink::Handle,
    /// The LAN interface's index, shared by the clones: a replaced interface has a new one.
    index: Arc<AtomicU32>,
}

impl Neighbours {
    /// Opens a netlink connection, served by a task that ends with `stop`.
    pub fn open(interface: &str, stop: CancellationToken) -> Result<Self, NeighbourError> {
        let index = nix::net::if_::if_nametoindex(interface)
            .map_err(|_| NeighbourError::NoInterface(interface.to_owned()))?;
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(async move {
            tokio::select! {
                () = connection => {}
                () = stop.cancelled() => {}
            }
        });
        Ok(Neighbours { handle, index: Arc::new(AtomicU32::new(index)) })
    }

    /// Points this and every clone at the LAN interface `index` (a replaced one).
    pub fn set_index(&self, index: u32) {
        self.index.store(index, Ordering::Relaxed);
    }

    /// Maps `ip` to `mac` on the LAN interface, replacing any entry for `ip`.
    pub async fn teach(&self, ip: Ipv4Addr, mac: MacAddr) -> Result<(), NeighbourError> {
        self.handle
            .neighbours()
            .add(self.index.load(Ordering::Relaxed), IpAddr::V4(ip))
            .link_layer_address(&mac.0)
            .state(NeighbourState::Reachable)
            .replace()
            .execute()
            .await?;
        Ok(())
    }
}
