//! The client's side of the wire: the DISCOVER, REQUEST and RELEASE it sends (RFC 2131 table 5),
//! and what it reads from a server's reply, checked field by field so a hostile server's packet
//! is a rejected reply, never a panic or a bogus address on our interface.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Encodable, Flags, Message, MessageType, Opcode, OptionCode};
use ipnet::Ipv4Net;

/// The options we ask the server for (RFC 2132 option 55): the address's subnet mask, the
/// router, DNS servers for forwarding, the lease time and the renewal and rebinding times.
pub const REQUESTED_OPTIONS: [OptionCode; 6] = [
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::AddressLeaseTime,
    OptionCode::Renewal,
    OptionCode::Rebinding,
];
/// The largest reply we take (option 57): a full Ethernet frame's worth.
pub const MAX_MESSAGE_SIZE: u16 = 1500;
/// Most DNS servers kept from a reply; more add nothing to forwarding but time.
pub const MAX_DNS_SERVERS: usize = 4;
/// Shortest lease taken as given. A server offering less (even 0) gets renewals at this pace
/// at most, so a broken or hostile server cannot make us spin.
pub const MIN_LEASE_TIME: Duration = Duration::from_secs(10);
/// Longest lease kept (0xffffffff means infinite): ten years keeps every timer computation far
/// from overflowing.
pub const MAX_LEASE_TIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Who we are to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The WAN interface's MAC (chaddr).
    pub mac: [u8; 6],
    /// Option 61, what the server keys our lease on.
    pub client_id: Vec<u8>,
    /// Option 12, what the server's lease list (and its DNS, if it registers names) shows.
    pub hostname: Option<String>,
}

impl Identity {
    /// The usual client identifier of an Ethernet interface (RFC 2132 9.14): type 1, the MAC.
    pub fn client_id_of(mac: [u8; 6]) -> Vec<u8> {
        let mut id = vec![1];
        id.extend_from_slice(&mac);
        id
    }
}

/// Which REQUEST of RFC 2131 4.3.2 to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SELECTING: accepting `server`'s offer of `address` (broadcast, ciaddr 0).
    Selecting { address: Ipv4Addr, server: Ipv4Addr },
    /// INIT-REBOOT: asking to keep `address` after a restart (broadcast, ciaddr 0).
    Rebooting { address: Ipv4Addr },
    /// RENEWING (unicast to the server) and REBINDING (broadcast): extending the lease of the
    /// address we have (ciaddr).
    Extending { address: Ipv4Addr },
}

/// A DISCOVER; `hint` is the address we had before, which the server may give again.
pub fn discover(identity: &Identity, xid: u32, secs: u16, hint: Option<Ipv4Addr>) -> Message {
    let mut msg = base(identity, xid, secs, MessageType::Discover);
    msg.set_flags(Flags::default().set_broadcast());
    if let Some(hint) = hint {
        msg.opts_mut().insert(DhcpOption::RequestedIpAddress(hint));
    }
    msg
}

/// A REQUEST of kind `request`.
pub fn request(identity: &Identity, xid: u32, secs: u16, request: Request) -> Message {
    let mut msg = base(identity, xid, secs, MessageType::Request);
    match request {
        Request::Selecting { address, server } => {
            // No address yet: a unicast reply to it could not reach us (see `socket`).
            msg.set_flags(Flags::default().set_broadcast());
            msg.opts_mut().insert(DhcpOption::RequestedIpAddress(address));
            msg.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        }
        Request::Rebooting { address } => {
            msg.set_flags(Flags::default().set_broadcast());
            msg.opts_mut().insert(DhcpOption::RequestedIpAddress(address));
        }
        Request::Extending { address } => {
            msg.set_ciaddr(address);
        }
    }
    msg
}

fn base(identity: &Identity, xid: u32, secs: u16, kind: MessageType) -> Message {
    let zero = Ipv4Addr::UNSPECIFIED;
    let mut msg = Message::new_with_id(xid, zero, zero, zero, zero, &identity.mac);
    msg.set_opcode(Opcode::BootRequest).set_secs(secs);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ClientIdentifier(identity.client_id.clone()));
    if let Some(hostname) = &identity.hostname {
        opts.insert(DhcpOption::Hostname(hostname.clone()));
    }
    opts.insert(DhcpOption::ParameterRequestList(REQUESTED_OPTIONS.to_vec()));
    opts.insert(DhcpOption::MaxMessageSize(MAX_MESSAGE_SIZE));
    msg
}

/// Encodes `msg`; `None` (never expected for what we build) is logged by the caller.
pub fn encode(msg: &Message) -> Option<Vec<u8>> {
    msg.to_vec().ok()
}

/// What a server's OFFER or ACK gives, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// The address, with the prefix of the subnet mask (option 1).
    pub address: Ipv4Net,
    /// The server identifier (option 54), if sent.
    pub server: Option<Ipv4Addr>,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// The lease time (option 51), clamped to [`MIN_LEASE_TIME`]..[`MAX_LEASE_TIME`].
    pub lease_time: Option<Duration>,
    /// T1 and T2 (options 58 and 59) as sent; checked against the lease in [`Offered::times`].
    pub t1: Option<Duration>,
    pub t2: Option<Duration>,
}

/// Why a reply was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("{0} is not an address a host can have")]
    Address(Ipv4Addr),
    #[error("subnet mask {0} is not a prefix")]
    Mask(Ipv4Addr),
    #[error("no server identifier")]
    NoServer,
    #[error("no lease time")]
    NoLeaseTime,
    #[error("{address} overlaps the lan {lan}")]
    OverlapsLan { address: Ipv4Net, lan: Ipv4Net },
}

/// The server identifier (option 54) of a reply, if it has one.
pub fn server_of(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(server)) => Some(*server),
        _ => None,
    }
}

/// Whether `ip` can be a host's own unicast address.
pub fn is_host_address(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_loopback()
        || ip.octets()[0] >= 240)
}

/// Reads the offer in an OFFER or ACK.
pub fn read_offered(msg: &Message) -> Result<Offered, Rejected> {
    let ip = msg.yiaddr();
    if !is_host_address(ip) {
        return Err(Rejected::Address(ip));
    }
    let address = match msg.opts().get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => {
            let net = Ipv4Net::with_netmask(ip, *mask).map_err(|_| Rejected::Mask(*mask))?;
            if net.prefix_len() == 0 {
                return Err(Rejected::Mask(*mask));
            }
            net
        }
        // RFC 2131 leaves this to the client; the classful prefix is what clients have long used.
        _ => Ipv4Net::new(ip, classful_prefix(ip)).map_err(|_| Rejected::Address(ip))?,
    };
    let mut offered = Offered {
        address,
        server: None,
        router: None,
        dns: Vec::new(),
        lease_time: None,
        t1: None,
        t2: None,
    };
    for (_, option) in msg.opts().iter() {
        match option {
            DhcpOption::ServerIdentifier(server) if is_host_address(*server) => {
                offered.server = Some(*server)
            }
            DhcpOption::Router(routers) => {
                offered.router = routers.iter().copied().find(|r| is_host_address(*r) && *r != ip);
            }
            DhcpOption::DomainNameServer(servers) => {
                let mut dns: Vec<Ipv4Addr> =
                    servers.iter().copied().filter(|s| is_host_address(*s)).collect();
                dns.dedup();
                dns.truncate(MAX_DNS_SERVERS);
                offered.dns = dns;
            }
            DhcpOption::AddressLeaseTime(secs) => {
                let given = Duration::from_secs(u64::from(*secs));
                offered.lease_time = Some(given.clamp(MIN_LEASE_TIME, MAX_LEASE_TIME));
            }
            DhcpOption::Renewal(secs) => offered.t1 = Some(Duration::from_secs(u64::from(*secs))),
            DhcpOption::Rebinding(secs) => offered.t2 = Some(Duration::from_secs(u64::from(*secs))),
            _ => {}
        }
    }
    Ok(offered)
}

impl Offered {
    /// The lease time and when to renew (T1) and rebind (T2): the server's T1 and T2 when they
    /// are in order within the lease (0 < T1 < T2 < lease), else RFC 2131's defaults of half
    /// and seven eighths of the lease.
    pub fn times(&self) -> Option<(Duration, Duration, Duration)> {
        let lease = self.lease_time?;
        let t2 = self.t2.filter(|t2| !t2.is_zero() && *t2 < lease).unwrap_or(lease * 7 / 8);
        let t1 = self.t1.filter(|t1| !t1.is_zero() && *t1 < t2).unwrap_or((lease / 2).min(t2));
        Some((lease, t1, t2))
    }
}

/// The prefix of `ip`'s class (A /8, B /16, C /24), for a server that sends no subnet mask.
fn classful_prefix(ip: Ipv4Addr) -> u8 {
    match ip.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        let mac = [2, 0, 0, 0, 0, 7];
        Identity { mac, client_id: Identity::client_id_of(mac), hostname: Some("proximity".into()) }
    }

    fn reply(yiaddr: Ipv4Addr, options: Vec<DhcpOption>) -> Message {
        let zero = Ipv4Addr::UNSPECIFIED;
        let mut msg = Message::new_with_id(7, zero, yiaddr, zero, zero, &identity().mac);
        msg.set_opcode(Opcode::BootReply);
        for option in options {
            msg.opts_mut().insert(option);
        }
        msg
    }

    #[test]
    fn requests_carry_what_rfc_2131_table_5_asks() {
        let id = identity();
        let server = Ipv4Addr::new(192, 0, 2, 1);
        let address = Ipv4Addr::new(192, 0, 2, 50);
        let discover = discover(&id, 1, 0, Some(address));
        assert!(discover.flags().broadcast());
        assert_eq!(
            discover.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(address))
        );
        assert_eq!(discover.chaddr(), &id.mac);

        let selecting = request(&id, 2, 3, Request::Selecting { address, server });
        assert!(selecting.flags().broadcast());
        assert_eq!(selecting.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            selecting.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(server))
        );
        assert_eq!(selecting.secs(), 3);

        let rebooting = request(&id, 3, 0, Request::Rebooting { address });
        assert!(rebooting.opts().get(OptionCode::ServerIdentifier).is_none());
        assert_eq!(rebooting.ciaddr(), Ipv4Addr::UNSPECIFIED);

        let renewing = request(&id, 4, 0, Request::Extending { address });
        assert_eq!(renewing.ciaddr(), address);
        assert!(!renewing.flags().broadcast());
        assert!(renewing.opts().get(OptionCode::RequestedIpAddress).is_none());
        assert!(renewing.opts().get(OptionCode::ServerIdentifier).is_none());

        for msg in [&discover, &selecting, &rebooting, &renewing] {
            assert_eq!(
                msg.opts().get(OptionCode::ClientIdentifier),
                Some(&DhcpOption::ClientIdentifier(id.client_id.clone()))
            );
            assert!(encode(msg).is_some());
        }
    }

    #[test]
    fn an_offer_is_read_with_its_prefix_router_dns_and_times() {
        let msg = reply(
            Ipv4Addr::new(192, 0, 2, 50),
            vec![
                DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
                DhcpOption::ServerIdentifier(Ipv4Addr::new(192, 0, 2, 1)),
                DhcpOption::Router(vec![Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(192, 0, 2, 1)]),
                DhcpOption::DomainNameServer(vec![
                    Ipv4Addr::new(192, 0, 2, 53),
                    Ipv4Addr::BROADCAST,
                    Ipv4Addr::new(192, 0, 2, 54),
                ]),
                DhcpOption::AddressLeaseTime(3600),
                DhcpOption::Renewal(600),
                DhcpOption::Rebinding(3000),
            ],
        );
        let offered = read_offered(&msg).unwrap();
        assert_eq!(offered.address, "192.0.2.50/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(offered.server, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(offered.router, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(offered.dns, [Ipv4Addr::new(192, 0, 2, 53), Ipv4Addr::new(192, 0, 2, 54)]);
        let secs = Duration::from_secs;
        assert_eq!(offered.times(), Some((secs(3600), secs(600), secs(3000))));
    }

    #[test]
    fn times_out_of_order_fall_back_to_rfc_defaults_and_tiny_leases_are_floored() {
        let secs = Duration::from_secs;
        let mut offered =
            read_offered(&reply(Ipv4Addr::new(10, 1, 2, 3), vec![DhcpOption::AddressLeaseTime(800)]))
                .unwrap();
        assert_eq!(offered.address.prefix_len(), 8, "classful without a mask");
        assert_eq!(offered.times(), Some((secs(800), secs(400), secs(700))));
        offered.t1 = Some(secs(750));
        offered.t2 = Some(secs(900));
        assert_eq!(offered.times(), Some((secs(800), secs(400), secs(700))));
        let tiny =
            read_offered(&reply(Ipv4Addr::new(10, 1, 2, 3), vec![DhcpOption::AddressLeaseTime(0)])).unwrap();
        assert_eq!(tiny.lease_time, Some(MIN_LEASE_TIME));
        let infinite =
            read_offered(&reply(Ipv4Addr::new(10, 1, 2, 3), vec![DhcpOption::AddressLeaseTime(u32::MAX)]))
                .unwrap();
        assert_eq!(infinite.lease_time, Some(MAX_LEASE_TIME));
    }

    #[test]
    fn hostile_offers_are_rejected() {
        for bad in
            [Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 1), Ipv4Addr::LOCALHOST]
        {
            assert_eq!(read_offered(&reply(bad, vec![])), Err(Rejected::Address(bad)));
        }
        let mask = Ipv4Addr::new(255, 0, 255, 0);
        let msg = reply(Ipv4Addr::new(192, 0, 2, 50), vec![DhcpOption::SubnetMask(mask)]);
        assert_eq!(read_offered(&msg), Err(Rejected::Mask(mask)));
        let msg = reply(Ipv4Addr::new(192, 0, 2, 50), vec![DhcpOption::SubnetMask(Ipv4Addr::UNSPECIFIED)]);
        assert!(read_offered(&msg).is_err());
    }
}
