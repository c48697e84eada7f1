//! The appliance's own DHCP client on the WAN interface (`wan.mode = "dhcp"`), on dhcproto:
//! DISCOVER, OFFER, REQUEST, ACK; RENEW at T1 (unicast to the server), REBIND at T2
//! (broadcast), the address removed at expiry or on a NAK; INIT-REBOOT after a restart from the
//! lease kept in the state directory. Each lease is put on the interface (address, default route)
//! and published on the [`WanWatch`] with its DNS servers.
//!
//! - [`machine`]: the protocol decisions, pure and unit-tested.
//! - [`messages`]: the requests we build and the replies we read (checked, never trusted).
//! - [`lease`]: the lease's timers, and its file.
//! - [`timing`]: retransmission backoff and jitter, the pace of renewals and restarts.
//! - `apply`: the lease on the interface over rtnetlink.
//! - here: the driver, the socket and the netlink connection, and waiting for the interface.
//!
//! The socket is the DHCP server's kind ([`crate::dhcp::socket::bind`]): UDP on 0.0.0.0:68 bound
//! to the WAN interface (SO_BINDTODEVICE) with SO_BROADCAST, sending from 0.0.0.0 before we
//! have an address. Replies reach it because our requests set the BROADCAST flag while we have
//! no address (RFC 2131 4.1), so the server broadcasts instead of unicasting to an address the
//! kernel does not have yet. A packet socket would also take replies unicast to a
//! not-yet-configured address and works with strict reverse-path filtering, but needs
//! CAP_NET_RAW and hand-built IP and UDP headers; servers honour the flag (RFC 2131 requires
//! it), and a container's fresh namespace has `rp_filter` off, so UDP is enough.
//!
//! A graceful stop sends no RELEASE and leaves the address on: a stop is what an upgrade does
//! before Proxmox replaces the container, and users reach their apps at that address, so the
//! next start asks for it again (INIT-REBOOT, from the lease file on the state mount point).
//! Releasing would invite the server to give it to someone else in between. The lease simply
//! ends at the server if the appliance never comes back.

pub mod lease;
pub mod machine;
pub mod messages;
pub mod timing;

mod apply;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use dhcproto::v4::Message;
use ipnet::Ipv4Net;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use self::lease::{Lease, LeaseFile, Saved, SavedLease};
use self::machine::{Action, Client, Destination, Now};
use self::messages::Identity;
use super::netlink::{Link, Netlink};
use super::wan::follow::{REOPEN_DELAY, RESYNC_INTERVAL};
use super::wan::{WanState, WanWatch};
use super::watch::sleep_or_stop;
use crate::dhcp;

/// The DHCP client port, which we listen on.
pub const CLIENT_PORT: u16 = 68;
/// The DHCP server port, which we send to.
pub const SERVER_PORT: u16 = 67;
/// Largest datagram read; a reply longer than this is not one we asked for (option 57).
const RECV_BUF: usize = 4096;
/// How often a lease whose configuration failed is tried again.
pub const REAPPLY_INTERVAL: Duration = Duration::from_secs(5);
/// No such device: the socket's interface is gone.
const ENODEV: i32 = 19;

/// What the client needs from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interface: String,
    /// Where the lease file lives (the state directory).
    pub state_dir: PathBuf,
    /// The LAN subnet: offers overlapping it are refused.
    pub lan: Option<Ipv4Net>,
    /// Sent as option 12.
    pub hostname: Option<String>,
}

/// Runs the client until `stop`, never giving up: a missing interface, a socket that cannot be
/// bound, a server that does not answer are logged and tried again.
pub async fn run(settings: Settings, wan: &WanWatch, stop: &CancellationToken) {
    let file = LeaseFile::in_dir(&settings.state_dir);
    let saved = match file.load() {
        Ok(saved) => saved,
        Err(e) => {
            warn!(error = %e, "wan dhcp: ignoring the lease file; no saved lease to ask for");
            None
        }
    };
    // Made once the interface's MAC is known, and kept when the socket is opened again, so a
    // lease survives an interface that went away for a moment.
    let mut client: Option<Client> = None;
    loop {
        let Some(link) = wait_for_link(&settings.interface, stop).await else { return };
        let Some(mac) = link.mac else {
            warn!(interface = %link.name, "wan dhcp: the interface has no Ethernet address; trying again later");
            if sleep_or_stop(RESYNC_INTERVAL, stop).await {
                return;
            }
            continue;
        };
        let Some((netlink, socket)) = open(&link, stop).await else { return };
        let mut driver = Driver { netlink, link, socket, wan, file: &file, unapplied: None, gone: None };
        if client.is_none() {
            let client_id =
                saved.as_ref().map_or_else(|| Identity::client_id_of(mac), |s| s.client_id.clone());
            let identity = Identity { mac, client_id, hostname: settings.hostname.clone() };
            let fresh = client.insert(Client::new(identity, settings.lan, seed(mac)));
            let actions = fresh.start(now(), saved.as_ref().and_then(|s| s.lease.as_ref()));
            driver.execute(fresh, actions).await;
        } else if let Some((client, lease)) = client.as_ref().and_then(|c| Some((c, c.lease()?.clone()))) {
            // Opened again on a new interface (a replaced NIC): it has none of the lease yet.
            driver.bind(client, lease, None).await;
        }
        let Some(client) = client.as_mut() else { continue };
        match driver.serve(client, stop).await {
            Ok(()) => return,
            Err(e) => {
                warn!(interface = %settings.interface, error = %e, "wan dhcp: the socket failed; opening it again");
                if sleep_or_stop(REOPEN_DELAY, stop).await {
                    return;
                }
            }
        }
    }
}

/// The I/O of one bound socket.
struct Driver<'a> {
    netlink: Netlink,
    link: Link,
    socket: UdpSocket,
    wan: &'a WanWatch,
    file: &'a LeaseFile,
    /// A lease whose configuration failed (and what it replaces), tried again every
    /// [`REAPPLY_INTERVAL`]: until it is on the interface, no address is published.
    unapplied: Option<(Lease, Option<Lease>)>,
    /// Set when a send found the interface gone: the socket is opened again on the new one.
    gone: Option<io::Error>,
}

impl Driver<'_> {
    /// Receives replies and wakes the client at its deadlines until `stop` (`Ok`) or the socket
    /// fails or its interface goes away (`Err`).
    async fn serve(&mut self, client: &mut Client, stop: &CancellationToken) -> io::Result<()> {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            if let Some(e) = self.gone.take() {
                return Err(e);
            }
            let deadline = tokio::time::Instant::from_std(client.deadline());
            tokio::select! {
                () = stop.cancelled() => {
                    if let Some(lease) = client.lease() {
                        info!(address = %lease.address, "wan dhcp: stopping; the lease is kept for the next start");
                    }
                    return Ok(());
                }
                () = tokio::time::sleep_until(deadline) => {
                    let actions = client.on_timer(now());
                    self.execute(client, actions).await;
                }
                () = tokio::time::sleep(REAPPLY_INTERVAL), if self.unapplied.is_some() => {
                    if let Some((lease, previous)) = self.unapplied.take() {
                        self.bind(client, lease, previous).await;
                    }
                }
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => {
                        let datagram = buf.get(..len).unwrap_or_default();
                        match dhcp::wire::decode(datagram) {
                            Ok(msg) => {
                                let actions = client.on_reply(&msg, now());
                                self.execute(client, actions).await;
                            }
                            Err(e) => debug!(%from, len, error = %e, "wan dhcp: dropped a malformed datagram"),
                        }
                    }
                    Err(e) if transient(&e) => debug!(error = %e, "wan dhcp: receive"),
                    Err(e) => return Err(e),
                },
            }
        }
    }

    async fn execute(&mut self, client: &Client, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { message, to } => self.send(client, &message, to).await,
                Action::Bind { lease, previous } => self.bind(client, lease, previous).await,
                Action::Unbind(lease) => {
                    self.unapplied = None;
                    if let Err(e) = apply::unbind(&self.netlink, &self.link, &lease).await {
                        warn!(address = %lease.address, error = %e, "wan dhcp: cannot remove the ended lease");
                    }
                    self.wan.publish(WanState::default());
                    self.save(client, None);
                }
            }
        }
    }

    async fn send(&mut self, client: &Client, message: &Message, to: Destination) {
        let Some(bytes) = messages::encode(message) else {
            warn!(xid = message.xid(), "wan dhcp: cannot encode our own message");
            return;
        };
        let to = match to {
            Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT),
            Destination::Server(ip) => SocketAddrV4::new(ip, SERVER_PORT),
        };
        let kind = message.opts().msg_type();
        match self.socket.send_to(&bytes, SocketAddr::V4(to)).await {
            Ok(_) => debug!(%to, ?kind, xid = message.xid(), state = client.state_name(), "wan dhcp: sent"),
            // The device the socket is bound to is gone (a replaced NIC): open it again.
            Err(e) if e.raw_os_error() == Some(ENODEV) => self.gone = Some(e),
            Err(e) => warn!(%to, ?kind, error = %e, "wan dhcp: send failed; retransmitting later"),
        }
    }

    /// Puts `lease` on the interface, then publishes and saves it; a failure is tried again.
    async fn bind(&mut self, client: &Client, lease: Lease, previous: Option<Lease>) {
        match apply::bind(&self.netlink, &self.link, &lease, previous.as_ref()).await {
            Ok(()) => {
                self.unapplied = None;
                self.wan.publish(WanState {
                    address: Some(lease.address),
                    gateway: lease.router,
                    dns: lease.dns.clone(),
                });
            }
            Err(e) => {
                warn!(address = %lease.address, error = %e, "wan dhcp: cannot configure the lease; trying again");
                self.wan.publish(WanState::default());
                self.unapplied = Some((lease.clone(), previous));
            }
        }
        // Saved either way: the server gave it to us, and a restart should ask for it again.
        self.save(client, Some(SavedLease::of(&lease)));
    }

    fn save(&self, client: &Client, lease: Option<SavedLease>) {
        let saved = Saved { client_id: client.identity().client_id.clone(), lease };
        if let Err(e) = self.file.store(&saved) {
            warn!(error = %e, "wan dhcp: cannot save the lease; a restart will begin with a DISCOVER");
        }
    }
}

/// Waits until `interface` exists (a warning once, then quietly on link notifications);
/// `None` when stopped first.
async fn wait_for_link(interface: &str, stop: &CancellationToken) -> Option<Link> {
    let mut warned = false;
    loop {
        let (netlink, mut events) = match Netlink::monitor() {
            Ok(opened) => opened,
            Err(e) => {
                warn!(interface, error = %e, "wan dhcp: cannot open netlink; trying again");
                if sleep_or_stop(REOPEN_DELAY, stop).await {
                    return None;
                }
                continue;
            }
        };
        loop {
            match netlink.link(interface).await {
                Ok(Some(link)) => {
                    if warned {
                        info!(interface, "wan dhcp: the interface appeared");
                    }
                    return Some(link);
                }
                Ok(None) if !warned => {
                    warn!(interface, "wan dhcp: the wan interface does not exist; waiting for it");
                    warned = true;
                }
                Ok(None) => {}
                Err(e) => warn!(interface, error = %e, "wan dhcp: cannot read the interface"),
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                more = events.changed() => {
                    if !more {
                        break;
                    }
                    events.drain();
                }
                () = tokio::time::sleep(RESYNC_INTERVAL) => {}
            }
        }
    }
}

/// A netlink connection for the lease's configuration and the bound socket, the link set up
/// first; `None` when stopped first. Failures are retried.
async fn open(link: &Link, stop: &CancellationToken) -> Option<(Netlink, UdpSocket)> {
    loop {
        let opened = async {
            let netlink = Netlink::open().map_err(|e| e.to_string())?;
            if !link.up {
                netlink.set_up(link).await.map_err(|e| e.to_string())?;
                info!(interface = %link.name, "wan dhcp: set the interface up");
            }
            let socket = dhcp::socket::bind(&link.name, CLIENT_PORT).map_err(|e| e.to_string())?;
            Ok::<_, String>((netlink, socket))
        };
        match opened.await {
            Ok(opened) => {
                info!(interface = %link.name, "wan dhcp: client started");
                return Some(opened);
            }
            Err(e) => {
                warn!(interface = %link.name, error = %e, "wan dhcp: cannot start the client; trying again");
                if sleep_or_stop(REOPEN_DELAY, stop).await {
                    return None;
                }
            }
        }
    }
}

/// The time now on both clocks.
fn now() -> Now {
    Now { at: std::time::Instant::now(), unix: dhcp::server::unix_now() }
}

/// A seed for transaction ids and jitter: random, else (no entropy source) the MAC and the time,
/// which still differ between appliances.
fn seed(mac: [u8; 6]) -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    bytes[..6].copy_from_slice(&mac);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    u64::from_le_bytes(bytes) ^ u64::from(nanos)
}

/// Errors after which the socket still works (ICMP errors reported on a later call, interrupts).
fn transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | Interrupted | WouldBlock | HostUnreachable | NetworkUnreachable
    )
}
