//! The client's protocol decisions (RFC 2131 4.4 and its figure 5) without sockets or clocks of
//! its own: told the time and each reply, [`Client`] answers with [`Action`]s (send this,
//! configure that lease, remove this one) and says when it next wants to be woken. So every
//! transition (INIT, SELECTING, REQUESTING, INIT-REBOOT, BOUND, RENEWING, REBINDING, a NAK, an
//! expiry) is unit-tested with made-up times, and the driver in `mod.rs` only does I/O.

use std::net::Ipv4Addr;
use std::time::Instant;

use dhcproto::v4::{Message, MessageType, Opcode};
use ipnet::Ipv4Net;
use tracing::{debug, info, warn};

use super::lease::{Lease, SavedLease};
use super::messages::{self, Identity, Offered, Rejected, Request};
use super::timing::{self, Rng};

/// REQUESTs sent for an offer before going back to DISCOVER (about a minute with the backoff).
pub const REQUEST_ATTEMPTS: u32 = 4;
/// REQUESTs sent at INIT-REBOOT before using the saved lease as it is (RFC 2131 3.2 allows it
/// for the rest of the lease): a restart while the server is away keeps the address.
pub const REBOOT_ATTEMPTS: u32 = 2;

/// The current time on both clocks: monotonic for timers, wall clock for the lease file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    pub unix: u64,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255:67 on the WAN interface.
    Broadcast,
    /// The server's address, port 67 (renewals).
    Server(Ipv4Addr),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send {
        message: Message,
        to: Destination,
    },
    /// Put `lease` on the interface (address with its prefix, default route via its router),
    /// take `previous`'s address off if it differs, publish it, save it.
    Bind {
        lease: Lease,
        previous: Option<Lease>,
    },
    /// Take `lease`'s address and route off the interface, publish no address, forget it.
    Unbind(Lease),
}

/// One transaction: its id, when it started (the `secs` field), how many times its message
/// was sent, and when to act next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exchange {
    xid: u32,
    started: Instant,
    sent: u32,
    next: Instant,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// A DISCOVER is due at `at`.
    Init {
        at: Instant,
    },
    Selecting(Exchange),
    Requesting {
        exchange: Exchange,
        offer: Offered,
        server: Ipv4Addr,
    },
    Rebooting {
        exchange: Exchange,
        saved: Lease,
    },
    Bound(Lease),
    Renewing {
        exchange: Exchange,
        lease: Lease,
    },
    Rebinding {
        exchange: Exchange,
        lease: Lease,
    },
}

/// The DHCP client of the WAN interface.
#[derive(Debug)]
pub struct Client {
    identity: Identity,
    /// Offers overlapping the LAN are refused: with them the appliance could not route.
    lan: Option<Ipv4Net>,
    state: State,
    rng: Rng,
    /// NAKs (and unacknowledged offers) in a row, for the restart delay.
    restarts: u32,
    /// The address we had, asked for again in DISCOVER (option 50).
    hint: Option<Ipv4Addr>,
}

impl Client {
    /// A client that starts at [`Client::start`]; `seed` feeds transaction ids and jitter.
    pub fn new(identity: Identity, lan: Option<Ipv4Net>, seed: u64) -> Client {
        Client {
            identity,
            lan,
            state: State::Init { at: Instant::now() },
            rng: Rng::new(seed),
            restarts: 0,
            hint: None,
        }
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The RFC 2131 name of the state, for logs.
    pub fn state_name(&self) -> &'static str {
        state_name(&self.state)
    }

    /// The lease in force (bound, renewing or rebinding).
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound(lease) | State::Renewing { lease, .. } | State::Rebinding { lease, .. } => {
                Some(lease)
            }
            _ => None,
        }
    }

    /// Starts: INIT-REBOOT with a saved lease that has time left, else INIT (first taking off
    /// the address of a saved lease that ran out while we were away).
    pub fn start(&mut self, now: Now, saved: Option<&SavedLease>) -> Vec<Action> {
        let Some(saved) = saved else {
            self.state = State::Init { at: now.at };
            return self.on_timer(now);
        };
        let lease = saved.restore(now.at, now.unix);
        if saved.valid_at(now.unix) {
            info!(address = %lease.address, server = %lease.server, "wan dhcp: asking to keep the saved lease (init-reboot)");
            let mut exchange = self.exchange(now.at);
            let address = lease.address.addr();
            let send = self.send(&mut exchange, now, Request::Rebooting { address }, Destination::Broadcast);
            self.state = State::Rebooting { exchange, saved: lease };
            return vec![send];
        }
        info!(address = %lease.address, "wan dhcp: the saved lease has run out; back to discover");
        self.hint = Some(lease.address.addr());
        self.state = State::Init { at: now.at };
        let mut actions = vec![Action::Unbind(lease)];
        actions.extend(self.on_timer(now));
        actions
    }

    /// When [`Client::on_timer`] is next due.
    pub fn deadline(&self) -> Instant {
        match &self.state {
            State::Init { at } => *at,
            State::Selecting(exchange)
            | State::Requesting { exchange, .. }
            | State::Rebooting { exchange, .. }
            | State::Renewing { exchange, .. }
            | State::Rebinding { exchange, .. } => exchange.next,
            State::Bound(lease) => lease.renew_at(),
        }
    }

    /// Acts on the timer: (re)transmits, moves on to renewing, rebinding, or gives a lease up.
    pub fn on_timer(&mut self, now: Now) -> Vec<Action> {
        if now.at < self.deadline() {
            return Vec::new();
        }
        let state = std::mem::replace(&mut self.state, State::Init { at: now.at });
        match state {
            State::Init { .. } => {
                let mut exchange = self.exchange(now.at);
                let discover = messages::discover(&self.identity, exchange.xid, 0, self.hint);
                exchange.sent = 1;
                exchange.next = now.at + timing::retransmit_delay(1, &mut self.rng);
                self.state = State::Selecting(exchange);
                vec![Action::Send { message: discover, to: Destination::Broadcast }]
            }
            State::Selecting(mut exchange) => {
                let secs = secs(&exchange, now);
                let discover = messages::discover(&self.identity, exchange.xid, secs, self.hint);
                exchange.sent += 1;
                exchange.next = now.at + timing::retransmit_delay(exchange.sent, &mut self.rng);
                self.state = State::Selecting(exchange);
                vec![Action::Send { message: discover, to: Destination::Broadcast }]
            }
            State::Requesting { mut exchange, offer, server } => {
                if exchange.sent >= REQUEST_ATTEMPTS {
                    warn!(address = %offer.address, %server, "wan dhcp: no answer to our request; back to discover");
                    return self.restart(now, Vec::new());
                }
                let request = Request::Selecting { address: offer.address.addr(), server };
                let send = self.send(&mut exchange, now, request, Destination::Broadcast);
                self.state = State::Requesting { exchange, offer, server };
                vec![send]
            }
            State::Rebooting { mut exchange, saved } => {
                if exchange.sent < REBOOT_ATTEMPTS {
                    let request = Request::Rebooting { address: saved.address.addr() };
                    let send = self.send(&mut exchange, now, request, Destination::Broadcast);
                    self.state = State::Rebooting { exchange, saved };
                    return vec![send];
                }
                if now.at < saved.expires_at() {
                    warn!(address = %saved.address, "wan dhcp: no answer at init-reboot; using the saved lease for the time it has left");
                    self.state = State::Bound(saved.clone());
                    return vec![Action::Bind { lease: saved, previous: None }];
                }
                self.hint = Some(saved.address.addr());
                self.state = State::Init { at: now.at };
                let mut actions = vec![Action::Unbind(saved)];
                actions.extend(self.on_timer(now));
                actions
            }
            State::Bound(lease) => {
                debug!(address = %lease.address, server = %lease.server, "wan dhcp: renewing");
                let mut exchange = self.exchange(now.at);
                let send = self.extend(&mut exchange, now, &lease, Destination::Server(lease.server));
                exchange.next = timing::extend_next(now.at, lease.rebind_at());
                self.state = State::Renewing { exchange, lease };
                vec![send]
            }
            State::Renewing { mut exchange, lease } => {
                if now.at >= lease.rebind_at() {
                    info!(address = %lease.address, server = %lease.server, "wan dhcp: no answer from our server; rebinding with any server");
                    let mut exchange = self.exchange(now.at);
                    let send = self.extend(&mut exchange, now, &lease, Destination::Broadcast);
                    exchange.next = timing::extend_next(now.at, lease.expires_at());
                    self.state = State::Rebinding { exchange, lease };
                    return vec![send];
                }
                let send = self.extend(&mut exchange, now, &lease, Destination::Server(lease.server));
                exchange.next = timing::extend_next(now.at, lease.rebind_at());
                self.state = State::Renewing { exchange, lease };
                vec![send]
            }
            State::Rebinding { mut exchange, lease } => {
                if now.at >= lease.expires_at() {
                    warn!(address = %lease.address, "wan dhcp: the lease expired; removing the address; back to discover");
                    self.hint = Some(lease.address.addr());
                    self.state = State::Init { at: now.at };
                    let mut actions = vec![Action::Unbind(lease)];
                    actions.extend(self.on_timer(now));
                    return actions;
                }
                let send = self.extend(&mut exchange, now, &lease, Destination::Broadcast);
                exchange.next = timing::extend_next(now.at, lease.expires_at());
                self.state = State::Rebinding { exchange, lease };
                vec![send]
            }
        }
    }

    /// Acts on a reply: ignored unless it answers our current transaction.
    pub fn on_reply(&mut self, msg: &Message, now: Now) -> Vec<Action> {
        // hlen first: dhcproto's chaddr() slices by it (decode refuses more than 16 already).
        if msg.opcode() != Opcode::BootReply || msg.hlen() != 6 || msg.chaddr() != self.identity.mac {
            return Vec::new();
        }
        let Some(kind) = msg.opts().msg_type() else { return Vec::new() };
        let current = match &self.state {
            State::Init { .. } | State::Bound(_) => None,
            State::Selecting(exchange)
            | State::Requesting { exchange, .. }
            | State::Rebooting { exchange, .. }
            | State::Renewing { exchange, .. }
            | State::Rebinding { exchange, .. } => Some(exchange.xid),
        };
        if current != Some(msg.xid()) {
            debug!(xid = msg.xid(), ?kind, "wan dhcp: a reply to another transaction");
            return Vec::new();
        }
        let state = std::mem::replace(&mut self.state, State::Init { at: now.at });
        match (state, kind) {
            (State::Selecting(mut exchange), MessageType::Offer) => {
                match self.check(messages::read_offered(msg)) {
                    Ok(offer) => {
                        let Some(server) = offer.server else {
                            debug!(address = %offer.address, "wan dhcp: offer without a server identifier ignored");
                            self.state = State::Selecting(exchange);
                            return Vec::new();
                        };
                        info!(address = %offer.address, %server, "wan dhcp: offered");
                        exchange.sent = 0;
                        let request = Request::Selecting { address: offer.address.addr(), server };
                        let send = self.send(&mut exchange, now, request, Destination::Broadcast);
                        self.state = State::Requesting { exchange, offer, server };
                        vec![send]
                    }
                    Err(why) => {
                        debug!(reason = %why, "wan dhcp: offer refused");
                        self.state = State::Selecting(exchange);
                        Vec::new()
                    }
                }
            }
            (State::Requesting { exchange, offer, server }, MessageType::Ack) => {
                match self.lease_of(msg, now, server) {
                    Ok(lease) => self.bind(lease, None, false),
                    Err(why) => {
                        warn!(reason = %why, "wan dhcp: acknowledgement refused");
                        self.state = State::Requesting { exchange, offer, server };
                        Vec::new()
                    }
                }
            }
            (State::Requesting { exchange, offer, server }, MessageType::Nak) => {
                let from = messages::server_of(msg);
                if from.is_some_and(|from| from != server) {
                    self.state = State::Requesting { exchange, offer, server };
                    return Vec::new();
                }
                warn!(address = %offer.address, %server, "wan dhcp: request refused (nak); back to discover");
                self.restart(now, Vec::new())
            }
            (State::Rebooting { exchange, saved }, MessageType::Ack) => {
                match self.lease_of(msg, now, saved.server) {
                    Ok(lease) => self.bind(lease, Some(saved), true),
                    Err(why) => {
                        warn!(reason = %why, "wan dhcp: acknowledgement refused");
                        self.state = State::Rebooting { exchange, saved };
                        Vec::new()
                    }
                }
            }
            (
                State::Renewing { exchange, lease } | State::Rebinding { exchange, lease },
                MessageType::Ack,
            ) => {
                match self.lease_of(msg, now, lease.server) {
                    Ok(renewed) => self.bind(renewed, Some(lease), false),
                    Err(why) => {
                        warn!(reason = %why, "wan dhcp: acknowledgement refused");
                        // Still renewing before T2, rebinding after it: the timer decides as before.
                        self.state = if now.at < lease.rebind_at() {
                            State::Renewing { exchange, lease }
                        } else {
                            State::Rebinding { exchange, lease }
                        };
                        Vec::new()
                    }
                }
            }
            (
                State::Rebooting { saved: lease, .. }
                | State::Renewing { lease, .. }
                | State::Rebinding { lease, .. },
                MessageType::Nak,
            ) => {
                warn!(address = %lease.address, "wan dhcp: the server refused our address (nak); removing it; back to discover");
                self.hint = None;
                self.restart(now, vec![Action::Unbind(lease)])
            }
            (state, kind) => {
                debug!(?kind, state = state_name(&state), "wan dhcp: unexpected reply ignored");
                self.state = state;
                Vec::new()
            }
        }
    }

    /// The lease an ACK gives; `server` when the ACK names none.
    fn lease_of(&self, msg: &Message, now: Now, server: Ipv4Addr) -> Result<Lease, Rejected> {
        let offered = self.check(messages::read_offered(msg))?;
        let (lease_time, t1, t2) = offered.times().ok_or(Rejected::NoLeaseTime)?;
        Ok(Lease {
            address: offered.address,
            router: offered.router,
            dns: offered.dns,
            server: offered.server.unwrap_or(server),
            lease_time,
            t1,
            t2,
            acquired: now.at,
            acquired_unix: now.unix,
        })
    }

    /// Refuses an offer overlapping the LAN.
    fn check(&self, offered: Result<Offered, Rejected>) -> Result<Offered, Rejected> {
        let offered = offered?;
        if let Some(lan) = self
            .lan
            .filter(|lan| lan.contains(&offered.address.addr()) || offered.address.contains(&lan.addr()))
        {
            return Err(Rejected::OverlapsLan { address: offered.address, lan });
        }
        Ok(offered)
    }

    /// Binds `lease`; `rebooting` when it confirms the saved one after a restart.
    fn bind(&mut self, lease: Lease, previous: Option<Lease>, rebooting: bool) -> Vec<Action> {
        let same = previous.as_ref().is_some_and(|p| p.address == lease.address && p.router == lease.router);
        let (address, router, dns) = (lease.address, lease.router, &lease.dns);
        let (server, lease_secs, renew_secs) = (lease.server, lease.lease_time.as_secs(), lease.t1.as_secs());
        match (same, rebooting) {
            // Every T1: not worth more than a debug line.
            (true, false) => debug!(%address, lease_secs, renew_secs, "wan dhcp: lease extended"),
            (true, true) => {
                info!(%address, ?router, ?dns, %server, lease_secs, renew_secs, "wan dhcp: saved lease confirmed")
            }
            (false, _) => {
                info!(%address, ?router, ?dns, %server, lease_secs, renew_secs, "wan dhcp: lease bound")
            }
        }
        self.restarts = 0;
        self.hint = Some(lease.address.addr());
        self.state = State::Bound(lease.clone());
        vec![Action::Bind { lease, previous }]
    }

    /// Back to INIT after a delay that grows with each restart in a row.
    fn restart(&mut self, now: Now, mut actions: Vec<Action>) -> Vec<Action> {
        self.restarts = self.restarts.saturating_add(1);
        self.state = State::Init { at: now.at + timing::restart_delay(self.restarts) };
        actions.extend(self.on_timer(now));
        actions
    }

    fn exchange(&mut self, now: Instant) -> Exchange {
        Exchange { xid: self.rng.next_u32(), started: now, sent: 0, next: now }
    }

    /// Sends a REQUEST of `request` in `exchange` and schedules its retransmission.
    fn send(&mut self, exchange: &mut Exchange, now: Now, request: Request, to: Destination) -> Action {
        let message = messages::request(&self.identity, exchange.xid, secs(exchange, now), request);
        exchange.sent += 1;
        exchange.next = now.at + timing::retransmit_delay(exchange.sent, &mut self.rng);
        Action::Send { message, to }
    }

    /// A renewing or rebinding REQUEST; the caller sets the retransmission time.
    fn extend(&mut self, exchange: &mut Exchange, now: Now, lease: &Lease, to: Destination) -> Action {
        let request = Request::Extending { address: lease.address.addr() };
        self.send(exchange, now, request, to)
    }
}

fn state_name(state: &State) -> &'static str {
    match state {
        State::Init { .. } => "init",
        State::Selecting(_) => "selecting",
        State::Requesting { .. } => "requesting",
        State::Rebooting { .. } => "init-reboot",
        State::Bound(_) => "bound",
        State::Renewing { .. } => "renewing",
        State::Rebinding { .. } => "rebinding",
    }
}

/// Seconds since the exchange started, for the `secs` field.
fn secs(exchange: &Exchange, now: Now) -> u16 {
    u16::try_from(now.at.saturating_duration_since(exchange.started).as_secs()).unwrap_or(u16::MAX)
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
