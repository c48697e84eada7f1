//! What the appliance knows of its WAN side at a moment ([`WanState`]), and [`WanWatch`], the
//! watch channels it is published on: the whole state for DNS and the admin certificate, and the
//! address alone for NAT, which re-applies its ruleset only when the address itself changes.

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use tokio::sync::watch;
use tracing::info;

/// The WAN side as it is now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WanState {
    /// The WAN interface's address with its prefix; `None` while it has none (no lease yet, the
    /// interface missing, or removed by hand in `host` mode).
    pub address: Option<Ipv4Net>,
    /// The default router out of the WAN, when there is one.
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers learned from the WAN's DHCP server (option 6); empty in the other modes. DNS
    /// forwards to them when `dns.upstreams` is empty.
    pub dns: Vec<Ipv4Addr>,
}

impl WanState {
    /// The address without its prefix.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.address.map(|net| net.addr())
    }
}

/// Where the WAN task publishes the WAN state, and where everyone else subscribes to it.
/// Cloning shares the channels.
#[derive(Debug, Clone)]
pub struct WanWatch {
    channels: Arc<Channels>,
}

#[derive(Debug)]
struct Channels {
    state: watch::Sender<WanState>,
    /// The state's address alone, changed only when the address changes (not on a new DNS list
    /// or gateway), so NAT is not re-applied for nothing.
    address: watch::Sender<Option<Ipv4Addr>>,
}

impl Default for WanWatch {
    fn default() -> Self {
        WanWatch::new()
    }
}

impl WanWatch {
    /// Channels holding the empty state (no address yet).
    pub fn new() -> Self {
        let (state, _) = watch::channel(WanState::default());
        let (address, _) = watch::channel(None);
        WanWatch { channels: Arc::new(Channels { state, address }) }
    }

    /// The whole state, the current value marked seen: `changed()` waits for the next one.
    pub fn subscribe(&self) -> watch::Receiver<WanState> {
        self.channels.state.subscribe()
    }

    /// The WAN address alone (what NAT masquerades to and port forwards arrive on), the current
    /// value marked seen.
    pub fn address(&self) -> watch::Receiver<Option<Ipv4Addr>> {
        self.channels.address.subscribe()
    }

    /// The state now.
    pub fn current(&self) -> WanState {
        self.channels.state.borrow().clone()
    }

    /// Publishes `state` if it differs from the current one; `true` when it did.
    pub fn publish(&self, state: WanState) -> bool {
        let ip = state.ip();
        let changed = self.channels.state.send_if_modified(|current| {
            if *current == state {
                return false;
            }
            let address = state.address.map_or_else(|| "none".to_owned(), |a| a.to_string());
            let gateway = state.gateway.map_or_else(|| "none".to_owned(), |g| g.to_string());
            info!(%address, %gateway, dns = ?state.dns, "wan state");
            *current = state;
            true
        });
        self.channels.address.send_if_modified(|current| {
            let differs = *current != ip;
            *current = ip;
            differs
        });
        changed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn state(address: &str, dns: &[Ipv4Addr]) -> WanState {
        WanState { address: Some(address.parse().unwrap()), gateway: None, dns: dns.to_vec() }
    }

    #[tokio::test]
    async fn the_address_channel_changes_only_with_the_address() {
        let wan = WanWatch::new();
        let (mut all, mut address) = (wan.subscribe(), wan.address());
        assert!(wan.publish(state("192.0.2.10/24", &[])));
        all.changed().await.unwrap();
        address.changed().await.unwrap();
        assert_eq!(*address.borrow_and_update(), Some(Ipv4Addr::new(192, 0, 2, 10)));

        // New DNS servers: the state changes, the address does not.
        assert!(wan.publish(state("192.0.2.10/24", &[Ipv4Addr::new(192, 0, 2, 1)])));
        assert!(all.has_changed().unwrap());
        assert!(!address.has_changed().unwrap());
        // The same state again changes nothing.
        all.borrow_and_update();
        assert!(!wan.publish(state("192.0.2.10/24", &[Ipv4Addr::new(192, 0, 2, 1)])));
        assert!(!all.has_changed().unwrap());

        assert!(wan.publish(WanState::default()));
        address.changed().await.unwrap();
        assert_eq!(*address.borrow(), None);
        assert_eq!(wan.current(), WanState::default());
    }
}
