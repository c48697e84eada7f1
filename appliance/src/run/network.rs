//! The appliance's own network at start and while it runs: the LAN interface made ready before
//! anything binds to it and followed when it is replaced (the DHCP server rebound to the new
//! one; DNS, the proxy and the admin API listen on 0.0.0.0 and need nothing), the WAN task that
//! owns the WAN address, and what follows the WAN address (DNS's upstreams learned from the
//! WAN's DHCP server, the admin API's certificate).
//! Other followers of the WAN (NAT) take their receiver from `Shared::wan` the same way.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use anyhow::Context;
use proximity_config::Config;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::services::spawn;
use super::{Services, Shared};
use crate::dhcp::{self, socket::Rebind};
use crate::dns::forward::Forwarder;
use crate::net::netlink::Link;
use crate::net::{self, WanSetup, WanState};
use crate::shutdown::Stop;
use crate::tls::AdminCertificate;

/// The DNS port of an upstream learned from DHCP (option 6 carries addresses only).
const DNS_PORT: u16 = 53;

/// Makes the LAN interface up with the gateway address, before the DHCP server binds to it.
pub(super) async fn prepare_lan(config: &Config) -> anyhow::Result<Link> {
    net::lan::prepare(&config.lan)
        .await
        .with_context(|| format!("cannot prepare the lan interface {:?}", config.lan.interface))
}

/// Follows the LAN interface (task `lan`, first seen as `index`): a replaced one gets the gateway
/// address again, and the DHCP server (when `rebinds` leads to it) a socket bound to it.
pub(super) fn follow_lan(
    shared: &Shared,
    index: u32,
    rebinds: Option<mpsc::Sender<Rebind>>,
    services: &mut Services,
) {
    let (lan, stop) = (shared.config.lan.clone(), shared.stop.token().clone());
    services.spawn(async move {
        let rebind = |link: &Link| {
            let Some(rebinds) = &rebinds else { return };
            let socket = match dhcp::socket::bind(&lan.interface, dhcp::SERVER_PORT) {
                Ok(socket) => socket,
                Err(e) => {
                    warn!(interface = %lan.interface, error = %e, "cannot open the dhcp socket on the replaced lan interface; dhcp is deaf until a restart");
                    return;
                }
            };
            match rebinds.try_send(Rebind { socket, index: link.index }) {
                Ok(()) => info!(interface = %lan.interface, index = link.index, "lan interface replaced; dhcp rebound"),
                Err(e) => warn!(interface = %lan.interface, error = %e, "the dhcp server takes no new socket"),
            }
        };
        net::lan::follow(&lan, index, rebind, &stop).await;
        ("lan", Ok(()))
    });
}

/// Publishes the WAN interface's state as it is now, before the services that follow it start.
pub(super) async fn prime_wan(shared: &Shared) {
    net::wan::prime(&shared.config.wan, &shared.wan).await;
}

/// Starts the WAN task (service `wan`), which owns the WAN interface's address and publishes it
/// on `shared.wan`.
pub(super) fn start_wan(shared: &Shared, services: &mut Services) {
    let setup = WanSetup {
        config: shared.config.wan.clone(),
        state_dir: shared.config.state.dir.clone(),
        lan: Some(shared.config.lan.address.trunc()),
    };
    let serving = net::wan::serve(setup, shared.wan.clone(), shared.stop.token().clone());
    spawn(shared, services, "wan", serving);
}

/// While `dns.upstreams` is empty, DNS forwards to the DNS servers the WAN's DHCP server gave
/// (none: no forwarding, as before).
pub(super) fn follow_wan_dns(forwarder: Arc<Forwarder>, shared: &Shared, services: &mut Services) {
    let following = forward_to_wan_dns(forwarder, shared.wan.subscribe(), shared.stop.clone());
    services.spawn(async move {
        following.await;
        ("wan-dns", Ok(()))
    });
}

/// Points `forwarder` at the DNS servers of each WAN state until `stop`.
async fn forward_to_wan_dns(forwarder: Arc<Forwarder>, mut wan: watch::Receiver<WanState>, stop: Stop) {
    loop {
        let dns = wan.borrow_and_update().dns.clone();
        set_upstreams(&forwarder, &dns);
        tokio::select! {
            () = stop.cancelled() => break,
            changed = wan.changed() => if changed.is_err() { break },
        }
    }
}

/// Points `forwarder` at `dns` port 53, when that is a change.
fn set_upstreams(forwarder: &Forwarder, dns: &[Ipv4Addr]) {
    let upstreams: Vec<_> = dns.iter().map(|ip| (IpAddr::V4(*ip), DNS_PORT).into()).collect();
    if forwarder.upstreams() == upstreams {
        return;
    }
    match forwarder.set_upstreams(&upstreams) {
        Ok(()) => info!(upstreams = ?upstreams, "dns forwards to the wan's dns servers"),
        Err(e) => warn!(error = %e, "cannot forward to the wan's dns servers"),
    }
}

/// Issues the admin API's certificate again whenever the WAN address changes, so
/// `https://<new wan address>:9090` verifies against the CA.
pub(super) fn follow_wan_in_admin_certificate(
    certificate: Arc<AdminCertificate>,
    shared: &Shared,
    services: &mut Services,
) {
    let (mut wan, stop, config) = (shared.wan.address(), shared.stop.clone(), shared.config.clone());
    services.spawn(async move {
        loop {
            let address = *wan.borrow_and_update();
            let ips = admin_addresses(&config, address);
            // Issuing takes about 100 µs: no need to leave the runtime for it.
            match certificate.reissue(&ips) {
                Ok(true) => info!(addresses = ?ips, "admin api certificate issued for the new addresses"),
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "cannot issue the admin api certificate again; the old one stays")
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                changed = wan.changed() => if changed.is_err() { break },
            }
        }
        ("admin-certificate", Ok(()))
    });
}

/// Every address clients may reach the admin API by: the gateway, loopback, the listen
/// addresses, the WAN address, and whatever else the appliance has now (link-local IPv6 aside).
pub(super) fn admin_addresses(config: &Config, wan: Option<Ipv4Addr>) -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::V4(config.lan.gateway()), IpAddr::V4(Ipv4Addr::LOCALHOST)];
    ips.extend(config.admin.listen.iter().map(|a| a.ip()).filter(|ip| !ip.is_unspecified()));
    ips.extend(wan.map(IpAddr::V4));
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => ips.extend(addrs.filter_map(|a| {
            let addr = a.address?;
            addr.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })),
        Err(e) => {
            warn!(error = %e, "cannot list the appliance's addresses; the admin certificate names the gateway and the wan address only")
        }
    }
    ips.retain(|ip| {
        !ip.is_unspecified() && !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
    });
    ips.sort();
    ips.dedup();
    ips
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::net::WanWatch;

    #[tokio::test]
    async fn dns_follows_the_wan_dns_servers() {
        let forwarder = Arc::new(Forwarder::new(&[], Duration::from_secs(1), 16).unwrap());
        let (wan, stop) = (WanWatch::new(), Stop::manual());
        let task = tokio::spawn(forward_to_wan_dns(forwarder.clone(), wan.subscribe(), stop.clone()));
        let learned = WanState {
            address: Some("192.0.2.10/24".parse().unwrap()),
            gateway: None,
            dns: vec![Ipv4Addr::new(192, 0, 2, 53), Ipv4Addr::new(192, 0, 2, 54)],
        };
        wan.publish(learned);
        let expected: Vec<SocketAddr> =
            vec!["192.0.2.53:53".parse().unwrap(), "192.0.2.54:53".parse().unwrap()];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while forwarder.upstreams() != expected {
            assert!(tokio::time::Instant::now() < deadline, "upstreams: {:?}", forwarder.upstreams());
            tokio::task::yield_now().await;
        }
        wan.publish(WanState::default());
        while forwarder.has_upstreams() {
            assert!(tokio::time::Instant::now() < deadline, "upstreams: {:?}", forwarder.upstreams());
            tokio::task::yield_now().await;
        }
        stop.request(false);
        task.await.unwrap();
    }
}
