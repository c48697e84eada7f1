//! Building replies: the fixed header fields RFC 2131 table 3 asks for, the options a client
//! asked for (option 55) among those we serve, and the size the client can take (option 57).

use std::net::Ipv4Addr;

use dhcproto::Name;
use dhcproto::v4::{DhcpOption, Encodable, EncodeError, Flags, Message, MessageType, Opcode, OptionCode};
use ipnet::Ipv4Net;

/// Smallest datagram every client must accept (RFC 2131 section 2), IP and UDP headers included.
pub const MIN_DATAGRAM: usize = 576;
/// IPv4 (no options) + UDP headers.
const IP_UDP_HEADERS: usize = 28;
/// Largest datagram we send whatever the client says: one Ethernet frame.
pub const MAX_DATAGRAM: usize = 1500;

/// Options dropped first when a reply does not fit, least useful first.
const SHED_ORDER: [OptionCode; 5] = [
    OptionCode::DomainSearch,
    OptionCode::BroadcastAddr,
    OptionCode::DomainName,
    OptionCode::Message,
    OptionCode::DomainNameServer,
];

/// What the server tells every client about the network.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    pub server_id: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub router: Ipv4Addr,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain: String,
    /// `domain` as a wire name for option 119; `None` if it could not be encoded.
    pub search: Option<Name>,
}

impl NetworkOptions {
    pub fn new(server_id: Ipv4Addr, subnet: Ipv4Net, domain: &str) -> Self {
        NetworkOptions {
            server_id,
            subnet,
            router: server_id,
            dns_servers: vec![server_id],
            domain: domain.to_owned(),
            search: Name::from_ascii(format!("{domain}.")).ok(),
        }
    }
}

/// Lease times carried by OFFER and ACK.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTimes {
    pub lease: u32,
}

impl LeaseTimes {
    pub fn new(secs: u64) -> Self {
        LeaseTimes { lease: u32::try_from(secs).unwrap_or(u32::MAX - 1) }
    }

    /// T1: renew at half the lease (RFC 2131 4.4.5).
    pub fn renewal(self) -> u32 {
        self.lease / 2
    }

    /// T2: rebind at seven eighths.
    pub fn rebinding(self) -> u32 {
        u32::try_from(u64::from(self.lease) * 7 / 8).unwrap_or(u32::MAX)
    }
}

/// A reply to `req` with the header fields copied as RFC 2131 table 3 says.
pub fn header(req: &Message, kind: MessageType, net: &NetworkOptions) -> Message {
    let mut msg = Message::default();
    msg.set_opcode(Opcode::BootReply)
        .set_htype(req.htype())
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_giaddr(req.giaddr())
        .set_chaddr(req.chaddr());
    if matches!(kind, MessageType::Ack) {
        msg.set_ciaddr(req.ciaddr());
    }
    if kind == MessageType::Nak && !req.giaddr().is_unspecified() {
        // The relay must broadcast a NAK on the client's segment.
        msg.set_flags(Flags::default().set_broadcast());
    }
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(net.server_id));
    if let Some(info) = req.opts().get(OptionCode::RelayAgentInformation) {
        // RFC 3046 2.2: echo the relay agent information back.
        opts.insert(info.clone());
    }
    msg
}

/// Adds the network configuration the client asked for (and the few every client needs).
pub fn add_config(msg: &mut Message, req: &Message, net: &NetworkOptions) {
    let requested: Vec<OptionCode> = match req.opts().get(OptionCode::ParameterRequestList) {
        Some(DhcpOption::ParameterRequestList(list)) => list.clone(),
        _ => Vec::new(),
    };
    let wants = |code| requested.contains(&code);
    let opts = msg.opts_mut();
    // Always sent: a client without mask, router and DNS server cannot use the LAN.
    opts.insert(DhcpOption::SubnetMask(net.subnet.netmask()));
    opts.insert(DhcpOption::Router(vec![net.router]));
    opts.insert(DhcpOption::DomainNameServer(net.dns_servers.clone()));
    opts.insert(DhcpOption::DomainName(net.domain.clone()));
    if wants(OptionCode::DomainSearch) {
        if let Some(name) = &net.search {
            opts.insert(DhcpOption::DomainSearch(vec![name.clone()]));
        }
    }
    if wants(OptionCode::BroadcastAddr) {
        opts.insert(DhcpOption::BroadcastAddr(net.subnet.broadcast()));
    }
}

pub fn add_lease(msg: &mut Message, times: LeaseTimes) {
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::AddressLeaseTime(times.lease));
    opts.insert(DhcpOption::Renewal(times.renewal()));
    opts.insert(DhcpOption::Rebinding(times.rebinding()));
}

/// The largest DHCP message (without IP/UDP headers) this client accepts.
pub fn size_limit(req: &Message) -> usize {
    let datagram = match req.opts().get(OptionCode::MaxMessageSize) {
        Some(DhcpOption::MaxMessageSize(n)) => usize::from(*n).clamp(MIN_DATAGRAM, MAX_DATAGRAM),
        _ => MIN_DATAGRAM,
    };
    datagram - IP_UDP_HEADERS
}

/// Shortest message on the wire: BOOTP relays and old clients drop anything shorter (RFC 1542 2.1).
pub const MIN_MESSAGE: usize = 300;

/// Encodes `msg`, shedding optional options until it fits in `limit` bytes, and pads it to
/// [`MIN_MESSAGE`] after the end option.
pub fn encode_within(mut msg: Message, limit: usize) -> Result<Vec<u8>, EncodeError> {
    let mut bytes = msg.to_vec()?;
    for code in SHED_ORDER {
        if bytes.len() <= limit {
            break;
        }
        if msg.opts_mut().remove(code).is_some() {
            bytes = msg.to_vec()?;
        }
    }
    if bytes.len() < MIN_MESSAGE {
        bytes.resize(MIN_MESSAGE, 0);
    }
    Ok(bytes)
}
