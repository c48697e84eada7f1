//! The protocol: one client message in, one decision out (RFC 2131 section 4.3). Pure: the
//! caller supplies the time, commits the changes durably, and only then sends the reply.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode};
use proximity_config::{MacAddr, types::sanitize_label};

use super::pool::Pool;
use super::reply::{self, LeaseTimes, NetworkOptions};
use crate::state::{Change, Lease, LeaseState, UnixTime};

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// Relay hop limit: a message relayed more often than this is looping (RFC 1542 4.1.1).
const MAX_HOPS: u8 = 16;

/// Where a reply goes (RFC 2131 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// Through the relay agent that forwarded the request.
    Relay(SocketAddrV4),
    /// To a client that has a configured address.
    Client(Ipv4Addr),
    /// To everyone on the LAN.
    Broadcast,
    /// To a client that has no address yet: `ip` at `mac`.
    Hardware { ip: Ipv4Addr, mac: MacAddr },
}

/// A reply ready to send.
#[derive(Debug, Clone)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub kind: MessageType,
    pub dest: Dest,
}

/// Why a message got no answer. Each is counted; none is an error of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Not a client request, no message type (BOOTP), not Ethernet, or looping.
    NotForUs,
    /// Relayed from a network we do not serve.
    ForeignRelay,
    /// The client chose another server's offer.
    OtherServer,
    /// A field the message type needs is missing.
    Incomplete,
    /// Release or decline of an address the client does not hold.
    NothingToDo,
    /// No free address for a new client.
    PoolExhausted,
    /// The reply could not be encoded.
    Unencodable,
}

/// What to do about one message.
#[derive(Debug)]
pub enum Outcome {
    Ignore(Ignored),
    /// Send now; nothing to keep.
    Send(Reply),
    /// Make `changes` durable, then send `reply` (if any).
    Commit {
        changes: Vec<Change>,
        reply: Option<Reply>,
        /// The client already held this lease (a renewal or a reboot), so not worth an info log.
        renewal: bool,
    },
}

/// The client fields every decision needs.
struct Client {
    id: Vec<u8>,
    mac: MacAddr,
    kind: MessageType,
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    hostname: Option<String>,
}

impl Client {
    fn parse(msg: &Message) -> Result<Self, Ignored> {
        if msg.opcode() != Opcode::BootRequest || msg.hops() > MAX_HOPS {
            return Err(Ignored::NotForUs);
        }
        let Some(kind) = msg.opts().msg_type() else { return Err(Ignored::NotForUs) };
        // Checked before chaddr() is called: dhcproto slices chaddr by the wire's hlen.
        if msg.htype() != HType::Eth || msg.hlen() != 6 {
            return Err(Ignored::NotForUs);
        }
        let mac = mac_of(msg).ok_or(Ignored::NotForUs)?;
        let id = match msg.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => id.clone(),
            _ => [&[1u8][..], &mac.0].concat(),
        };
        let requested = match msg.opts().get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
            _ => None,
        };
        let server_id = match msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        };
        Ok(Client { id, mac, kind, requested, server_id, hostname: hostname(msg) })
    }
}

/// The client's name: the first label of option 81, else option 12, as a valid DNS label.
fn hostname(msg: &Message) -> Option<String> {
    let raw = match msg.opts().get(OptionCode::ClientFQDN) {
        Some(DhcpOption::ClientFQDN(fqdn)) => fqdn.domain().to_utf8(),
        _ => match msg.opts().get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(name)) => name.clone(),
            _ => return None,
        },
    };
    sanitize_label(&raw)
}

/// The DHCP server's decisions, over the in-memory pool.
#[derive(Debug)]
pub struct Engine {
    net: NetworkOptions,
    pool: Pool,
}

impl Engine {
    pub fn new(net: NetworkOptions, pool: Pool) -> Self {
        Engine { net, pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Replaces the reservations (see [`Pool::set_reservations`]).
    pub fn set_reservations(&mut self, reservations: &[proximity_config::Reservation]) {
        self.pool.set_reservations(reservations);
    }

    /// Ends the lease of `ip` at `now` on the administrator's word (the admin API's lease
    /// delete), as if its client had released it: the address goes back to the pool and the
    /// client keeps its claim on it, so it gets it again if still free. Returns the record before
    /// and after, applied in memory; the caller commits the second and, if that fails, calls
    /// [`Engine::restore`]. `None` when `ip` has no bound active lease.
    pub fn revoke(&mut self, ip: Ipv4Addr, now: UnixTime) -> Option<(Lease, Lease)> {
        let old = self.pool.lease(ip).filter(|l| l.state == LeaseState::Active && l.is_bound(now))?.clone();
        let ended = Lease { state: LeaseState::Released, expires: now, ..old.clone() };
        self.pool.record(ended.clone());
        Some((old, ended))
    }

    /// Undoes a [`Engine::revoke`] whose commit failed: `old` comes back unless the address
    /// has been given out since (then the newer record stands).
    pub fn restore(&mut self, old: Lease, ended: &Lease) {
        if self.pool.lease(old.ip) == Some(ended) {
            self.pool.record(old);
        }
    }

    /// Decides what to answer to `msg` at `now`. Changes to the pool are applied in memory
    /// at once; the caller must commit the returned changes before sending the reply.
    pub fn handle(&mut self, msg: &Message, now: UnixTime) -> Outcome {
        let giaddr = msg.giaddr();
        if !giaddr.is_unspecified() && !self.net.subnet.contains(&giaddr) {
            return Outcome::Ignore(Ignored::ForeignRelay);
        }
        let client = match Client::parse(msg) {
            Ok(c) => c,
            Err(why) => return Outcome::Ignore(why),
        };
        match client.kind {
            MessageType::Discover => self.discover(msg, &client, now),
            MessageType::Request => self.request(msg, &client, now),
            MessageType::Decline => self.decline(&client, now),
            MessageType::Release => self.release(msg, &client, now),
            MessageType::Inform => self.inform(msg),
            _ => Outcome::Ignore(Ignored::NotForUs),
        }
    }

    fn discover(&mut self, msg: &Message, c: &Client, now: UnixTime) -> Outcome {
        let Some(ip) = self.pool.offer(&c.id, c.mac, c.requested, now) else {
            return Outcome::Ignore(Ignored::PoolExhausted);
        };
        match self.lease_reply(msg, MessageType::Offer, ip) {
            Some(reply) => Outcome::Send(reply),
            None => Outcome::Ignore(Ignored::Unencodable),
        }
    }

    fn request(&mut self, msg: &Message, c: &Client, now: UnixTime) -> Outcome {
        let ip = match (c.server_id, c.requested, msg.ciaddr()) {
            // SELECTING: the client answers one server's offer.
            (Some(sid), _, _) if sid != self.net.server_id => {
                self.pool.drop_client_hold(&c.id);
                return Outcome::Ignore(Ignored::OtherServer);
            }
            (Some(_), Some(ip), _) => ip,
            // INIT-REBOOT: the client wants its remembered address back.
            (None, Some(ip), _) => ip,
            // RENEWING (unicast) or REBINDING (broadcast): ciaddr is the lease.
            (None, None, ciaddr) if !ciaddr.is_unspecified() => ciaddr,
            _ => return Outcome::Ignore(Ignored::Incomplete),
        };
        if !self.net.subnet.contains(&ip) {
            return self.nak(msg, "requested address is not on this network");
        }
        // We are the only server on this LAN (authoritative): an address we cannot confirm
        // gets a NAK, so the client starts over at once instead of waiting for its lease to end.
        if let Err(why) = self.pool.check(&c.id, c.mac, ip, now) {
            return self.nak(msg, why.message());
        }
        let hostname = c
            .hostname
            .clone()
            .or_else(|| self.pool.lease(ip).filter(|l| l.client_id == c.id).and_then(|l| l.hostname.clone()));
        let renewal = self.pool.lease(ip).is_some_and(|l| {
            l.client_id == c.id && l.state == crate::state::LeaseState::Active && l.is_bound(now)
        });
        let lease = self.pool.bind(&c.id, c.mac, ip, hostname, now);
        let mut changes = Vec::with_capacity(2);
        if let Some(old) = self.pool.superseded(&c.id, ip, now) {
            self.pool.record(old.clone());
            changes.push(Change::PutLease(old));
        }
        self.pool.record(lease.clone());
        changes.push(Change::PutLease(lease));
        let reply = self.lease_reply(msg, MessageType::Ack, ip);
        Outcome::Commit { changes, reply, renewal }
    }

    fn decline(&mut self, c: &Client, now: UnixTime) -> Outcome {
        if c.server_id.is_some_and(|sid| sid != self.net.server_id) {
            return Outcome::Ignore(Ignored::OtherServer);
        }
        let Some(ip) = c.requested else { return Outcome::Ignore(Ignored::Incomplete) };
        self.record(self.pool.decline(&c.id, c.mac, ip, now))
    }

    fn release(&mut self, msg: &Message, c: &Client, now: UnixTime) -> Outcome {
        if c.server_id.is_some_and(|sid| sid != self.net.server_id) {
            return Outcome::Ignore(Ignored::OtherServer);
        }
        self.record(self.pool.release(&c.id, msg.ciaddr(), now))
    }

    fn record(&mut self, lease: Option<Lease>) -> Outcome {
        let Some(lease) = lease else { return Outcome::Ignore(Ignored::NothingToDo) };
        self.pool.record(lease.clone());
        Outcome::Commit { changes: vec![Change::PutLease(lease)], reply: None, renewal: false }
    }

    fn inform(&self, msg: &Message) -> Outcome {
        if msg.ciaddr().is_unspecified() {
            return Outcome::Ignore(Ignored::Incomplete);
        }
        let mut out = reply::header(msg, MessageType::Ack, &self.net);
        reply::add_config(&mut out, msg, &self.net);
        self.finish(msg, out, MessageType::Ack, Ipv4Addr::UNSPECIFIED)
            .map_or(Outcome::Ignore(Ignored::Unencodable), Outcome::Send)
    }

    fn nak(&self, msg: &Message, why: &str) -> Outcome {
        let mut out = reply::header(msg, MessageType::Nak, &self.net);
        out.opts_mut().insert(DhcpOption::Message(why.to_owned()));
        self.finish(msg, out, MessageType::Nak, Ipv4Addr::UNSPECIFIED)
            .map_or(Outcome::Ignore(Ignored::Unencodable), Outcome::Send)
    }

    fn lease_reply(&self, msg: &Message, kind: MessageType, ip: Ipv4Addr) -> Option<Reply> {
        let mut out = reply::header(msg, kind, &self.net);
        out.set_yiaddr(ip);
        reply::add_config(&mut out, msg, &self.net);
        reply::add_lease(&mut out, LeaseTimes::new(self.pool.lease_time()));
        self.finish(msg, out, kind, ip)
    }

    fn finish(&self, req: &Message, out: Message, kind: MessageType, yiaddr: Ipv4Addr) -> Option<Reply> {
        let bytes = reply::encode_within(out, reply::size_limit(req)).ok()?;
        Some(Reply { bytes, kind, dest: destination(req, kind, yiaddr) })
    }
}

/// RFC 2131 4.1, "the server ... sends any return messages to ...".
fn destination(req: &Message, kind: MessageType, yiaddr: Ipv4Addr) -> Dest {
    let giaddr = req.giaddr();
    let ciaddr = req.ciaddr();
    if !giaddr.is_unspecified() {
        Dest::Relay(SocketAddrV4::new(giaddr, SERVER_PORT))
    } else if kind == MessageType::Nak {
        Dest::Broadcast
    } else if !ciaddr.is_unspecified() {
        Dest::Client(ciaddr)
    } else if req.flags().broadcast() || yiaddr.is_unspecified() {
        Dest::Broadcast
    } else {
        match mac_of(req) {
            Some(mac) => Dest::Hardware { ip: yiaddr, mac },
            None => Dest::Broadcast,
        }
    }
}

/// The Ethernet address in chaddr, if the message carries one.
fn mac_of(msg: &Message) -> Option<MacAddr> {
    if msg.hlen() != 6 {
        return None;
    }
    let hw: [u8; 6] = msg.chaddr().get(..6)?.try_into().ok()?;
    Some(MacAddr(hw))
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
