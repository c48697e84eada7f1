//! The DHCP server loop: receive, decide, make durable, answer. One bad datagram never stops it;
//! only a dead socket does. A socket for a replaced LAN interface takes the old one's place
//! without a restart: leases, offers and pending commits stay, and replies waiting for their
//! commit go out on the socket current when they are sent.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dhcproto::v4::{Message, MessageType};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::engine::{CLIENT_PORT, Dest, Engine, Ignored, Outcome, Reply};
use super::metrics::Metrics;
use super::neighbours::Neighbours;
use super::socket::Rebind;
use super::wire;
use crate::names::{Directory, LeaseSource};
use crate::shutdown::Stop;
use crate::state::{Change, Lease, LeaseState, Store, StoreError, UnixTime};

/// Largest datagram read; anything longer is not a DHCP message we serve.
const RECV_BUF: usize = 4096;
/// Replies waiting for their lease to be committed. Past this, requests are dropped and the
/// clients retransmit, so memory stays bounded when the disk is slow. (The store also bounds
/// its queue; a full queue fails the submit and counts as a failed commit.)
const MAX_PENDING_COMMITS: usize = 4096;
/// How often ended leases are looked for, to log them and take their names out of DNS.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Wall-clock seconds; leases are stored in wall-clock time so they survive restarts.
pub fn unix_now() -> UnixTime {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A running DHCP server's shared parts.
#[derive(Debug, Clone)]
pub struct Server {
    engine: Arc<Mutex<Engine>>,
    store: Store,
    metrics: Arc<Metrics>,
    /// `None` when netlink is unavailable: clients without an address then get broadcasts.
    neighbours: Option<Neighbours>,
    names: NameFeed,
}

/// What the server needs to keep the names (and the apps that follow leases) in step with its
/// leases.
#[derive(Debug, Clone)]
pub struct NameFeed {
    pub directory: Arc<Directory>,
    /// Signalled after a commit that touched a named lease; the loop then rebuilds the table.
    pub changed: Arc<Notify>,
}

impl NameFeed {
    pub fn new(directory: Arc<Directory>) -> Self {
        NameFeed { directory, changed: Arc::new(Notify::new()) }
    }
}

impl Server {
    pub fn new(
        engine: Engine,
        store: Store,
        metrics: Arc<Metrics>,
        neighbours: Option<Neighbours>,
        names: NameFeed,
    ) -> Self {
        Server { engine: Arc::new(Mutex::new(engine)), store, metrics, neighbours, names }
    }

    /// The directory's view of the leases: every record and their generation, taken under the
    /// engine's lock. The directory calls it when apps or reservations change, since leases that
    /// touched no name were never handed to it.
    pub fn lease_source(&self) -> LeaseSource {
        let engine = self.engine.clone();
        Arc::new(move || {
            let engine = engine.lock().unwrap_or_else(PoisonError::into_inner);
            (engine.pool().generation(), engine.pool().records().cloned().collect())
        })
    }

    /// Replaces the reservations the server honours (the config's and the admin API's).
    pub fn set_reservations(&self, reservations: &[proximity_config::Reservation]) {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner).set_reservations(reservations);
    }

    /// Every lease record the server holds (active, released, expired, declined), in address
    /// order.
    pub fn leases(&self) -> Vec<Lease> {
        let engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        let mut leases: Vec<Lease> = engine.pool().records().cloned().collect();
        leases.sort_by_key(|l| u32::from(l.ip));
        leases
    }

    /// Ends the lease of `ip` now (the admin API's delete): durable before this returns `Ok(true)`,
    /// its name gone from DNS right after. `Ok(false)`: no bound active lease of `ip`. On a failed
    /// commit the lease is put back as it was, unless the address was given out meanwhile.
    pub async fn revoke(&self, ip: Ipv4Addr) -> Result<bool, StoreError> {
        let (old, ended, durable) = {
            let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
            let Some((old, ended)) = engine.revoke(ip, unix_now()) else { return Ok(false) };
            // Queued under the engine lock, so it reaches the disk in decision order with the
            // DHCP server's own commits (a re-lease of this address is queued after it).
            match self.store.submit(vec![Change::PutLease(ended.clone())]) {
                Ok(durable) => (old, ended, durable),
                Err(e) => {
                    engine.restore(old, &ended);
                    return Err(e);
                }
            }
        };
        match durable.await {
            Ok(()) => {
                info!(%ip, mac = %old.mac, hostname = old.hostname.as_deref().unwrap_or(""), "lease revoked by the admin api");
                self.names.changed.notify_one();
                Ok(true)
            }
            Err(e) => {
                warn!(%ip, error = ?e, "lease revocation not stored; lease kept");
                self.engine.lock().unwrap_or_else(PoisonError::into_inner).restore(old, &ended);
                Err(e)
            }
        }
    }

    /// Hands the leases in memory to the directory, which rebuilds the names and publishes
    /// them if they changed.
    fn rebuild_names(&self) {
        let engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        self.names.directory.set_leases(engine.pool().records(), engine.pool().generation(), unix_now());
    }

    /// Serves on `socket` until `stop` fires, then lets pending commits finish within the
    /// stop's drain limit.
    pub async fn serve(self, socket: UdpSocket, stop: Stop) -> std::io::Result<()> {
        let (_none, rebinds) = mpsc::channel(1);
        self.serve_rebinding(socket, rebinds, stop).await
    }

    /// [`Server::serve`], moving to each socket `rebinds` brings (one bound to a replaced LAN
    /// interface).
    pub async fn serve_rebinding(
        self,
        socket: UdpSocket,
        mut rebinds: mpsc::Receiver<Rebind>,
        stop: Stop,
    ) -> std::io::Result<()> {
        let current = watch::Sender::new(Arc::new(socket));
        let mut pending: JoinSet<()> = JoinSet::new();
        let mut buf = vec![0u8; RECV_BUF];
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        let mut swept_until = unix_now();
        let result = loop {
            let socket = current.borrow().clone();
            tokio::select! {
                () = stop.cancelled() => break Ok(()),
                Some(rebind) = rebinds.recv() => {
                    if let Some(neighbours) = &self.neighbours {
                        neighbours.set_index(rebind.index);
                    }
                    current.send_replace(Arc::new(rebind.socket));
                    info!(index = rebind.index, "dhcp serving on the replaced lan interface");
                }
                received = socket.recv_from(&mut buf) => match received {
                    Ok((len, src)) => {
                        if pending.len() >= MAX_PENDING_COMMITS {
                            self.metrics.overloaded();
                            if !self.metrics.overloaded_now.swap(true, Ordering::Relaxed) {
                                warn!(pending = pending.len(), "dhcp overloaded: the disk is slower than requests arrive; dropping requests until it catches up");
                            }
                            continue;
                        }
                        if pending.len() < MAX_PENDING_COMMITS / 2 {
                            self.metrics.overloaded_now.store(false, Ordering::Relaxed);
                        }
                        let datagram = buf.get(..len).unwrap_or_default();
                        self.handle(datagram, src, &current, &mut pending).await;
                    }
                    Err(e) if transient(&e) => debug!(error = %e, "dhcp receive"),
                    Err(e) => break Err(e),
                },
                _ = sweep.tick() => {
                    let now = unix_now();
                    if self.log_ended(swept_until, now) {
                        self.rebuild_names();
                    }
                    swept_until = now;
                }
                () = self.names.changed.notified() => self.rebuild_names(),
                Some(done) = pending.join_next(), if !pending.is_empty() => {
                    if let Err(e) = done {
                        warn!(error = %e, "dhcp commit task failed");
                    }
                }
            }
        };
        drain(&mut pending, stop.drain_limit()).await;
        let counters: Vec<String> = self
            .metrics
            .snapshot()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        info!(counters = %counters.join(" "), "dhcp stopped");
        result
    }

    async fn handle(
        &self,
        datagram: &[u8],
        src: SocketAddr,
        current: &watch::Sender<Arc<UdpSocket>>,
        pending: &mut JoinSet<()>,
    ) {
        let msg = match wire::decode(datagram) {
            Ok(msg) => msg,
            Err(e) => {
                self.metrics.malformed();
                debug!(%src, len = datagram.len(), error = %e, "dropped malformed dhcp datagram");
                return;
            }
        };
        let kind = msg.opts().msg_type();
        self.metrics.received(kind);
        let outcome = self.engine.lock().unwrap_or_else(PoisonError::into_inner).handle(&msg, unix_now());
        match outcome {
            Outcome::Ignore(why) => self.ignored(why, &msg, src),
            Outcome::Send(reply) => {
                let socket = current.borrow().clone();
                send(&socket, &self.metrics, self.neighbours.as_ref(), reply).await;
            }
            Outcome::Commit { changes, reply, renewal } => {
                // Queued here, in decision order; only the wait for the disk runs in a task.
                let logged = changes.clone();
                let durable = match self.store.submit(changes) {
                    Ok(durable) => durable,
                    Err(e) => {
                        self.metrics.commit_failed();
                        warn!(error = ?e, "lease not stored; no reply sent");
                        return;
                    }
                };
                let (metrics, sockets, neighbours) =
                    (self.metrics.clone(), current.subscribe(), self.neighbours.clone());
                let renames = self.names.directory.touches(&logged).then(|| self.names.changed.clone());
                pending.spawn(async move {
                    match durable.await {
                        Ok(()) => {
                            log_changes(&logged, renewal);
                            if let Some(changed) = renames {
                                changed.notify_one();
                            }
                            if let Some(reply) = reply {
                                // The socket of now: the interface may have been replaced meanwhile.
                                let socket = sockets.borrow().clone();
                                send(&socket, &metrics, neighbours.as_ref(), reply).await;
                            }
                        }
                        Err(e) => {
                            metrics.commit_failed();
                            warn!(error = ?e, "lease not stored; no reply sent");
                        }
                    }
                });
            }
        }
    }

    fn ignored(&self, why: Ignored, msg: &Message, src: SocketAddr) {
        self.metrics.ignored(why);
        if why == Ignored::PoolExhausted {
            if !self.metrics.exhausted_now.swap(true, Ordering::Relaxed) {
                warn!("dhcp pool exhausted: no free address for new clients");
            }
        } else {
            debug!(%src, xid = msg.xid(), reason = ?why, "dhcp message ignored");
        }
    }

    /// Logs the leases that ended since the last sweep; true if any of them had a name or
    /// backed an app.
    fn log_ended(&self, after: UnixTime, now: UnixTime) -> bool {
        let engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ended = Vec::new();
        for lease in engine.pool().ended_between(after, now) {
            info!(ip = %lease.ip, mac = %lease.mac, "lease expired");
            ended.push(Change::PutLease(lease.clone()));
        }
        let named = self.names.directory.touches(&ended);
        if self.metrics.exhausted_now.load(Ordering::Relaxed)
            && engine.pool().bound_count(now) < range_len(&engine)
        {
            self.metrics.exhausted_now.store(false, Ordering::Relaxed);
        }
        named
    }
}

fn range_len(engine: &Engine) -> usize {
    usize::try_from(engine.pool().range().len()).unwrap_or(usize::MAX)
}

fn log_changes(changes: &[Change], renewal: bool) {
    for change in changes {
        if let Change::PutLease(l) = change {
            let name = l.hostname.as_deref().unwrap_or("");
            match l.state {
                LeaseState::Active if renewal => {
                    debug!(ip = %l.ip, mac = %l.mac, hostname = name, expires = l.expires, "lease renewed")
                }
                LeaseState::Active => {
                    info!(ip = %l.ip, mac = %l.mac, hostname = name, expires = l.expires, "lease granted")
                }
                LeaseState::Released => info!(ip = %l.ip, mac = %l.mac, "lease released"),
                LeaseState::Declined => {
                    warn!(ip = %l.ip, mac = %l.mac, "address declined: in use elsewhere, on probation")
                }
            }
        }
    }
}

async fn send(socket: &UdpSocket, metrics: &Metrics, neighbours: Option<&Neighbours>, reply: Reply) {
    let to = match reply.dest {
        Dest::Relay(addr) => addr,
        Dest::Client(ip) => SocketAddrV4::new(ip, CLIENT_PORT),
        Dest::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
        Dest::Hardware { ip, mac } => match neighbours {
            Some(n) => match n.teach(ip, mac).await {
                Ok(()) => SocketAddrV4::new(ip, CLIENT_PORT),
                Err(e) => {
                    debug!(%ip, %mac, error = %e, "cannot add neighbour entry; broadcasting");
                    SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
                }
            },
            None => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
        },
    };
    match socket.send_to(&reply.bytes, to).await {
        Ok(_) => {
            metrics.sent(reply.kind);
            if reply.kind == MessageType::Nak {
                info!(%to, "sent dhcp nak");
            }
        }
        Err(e) => {
            metrics.send_failed();
            warn!(%to, error = %e, "dhcp send failed");
        }
    }
}

/// Errors after which the socket still works (ICMP errors reported on a later call, interrupts).
fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | Interrupted | WouldBlock | HostUnreachable | NetworkUnreachable
    )
}

async fn drain(pending: &mut JoinSet<()>, limit: Duration) {
    if pending.is_empty() {
        return;
    }
    let waited = tokio::time::timeout(limit, async { while pending.join_next().await.is_some() {} }).await;
    if waited.is_err() {
        warn!(
            abandoned = pending.len(),
            "stopping with dhcp commits still pending; their clients got no ack"
        );
        pending.abort_all();
    }
}
