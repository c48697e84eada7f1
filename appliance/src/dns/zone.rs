//! Our authoritative zones: `<domain>` and the reverse zones of the LAN, answered from the name
//! table in force for each query (never cached here: the table is swapped on every change).
//!
//! One function, [`Zones::address`], decides what address a name has in a view; every A answer
//! and glue record goes through it. Hosts answer with their own address, and only to the LAN.
//! Apps (and `ns`) answer with the appliance's own address on the asker's side: the gateway for
//! LAN clients; for WAN clients the address their query was sent to, which is the appliance's
//! address on their network whatever the WAN set-up.

use std::net::Ipv4Addr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, NS, PTR, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::Ipv4Net;

use super::view::View;
use super::wire::Answer;
use crate::names::NameTable;

/// The label of the appliance's own name server record: `ns.<domain>`.
pub const NS_LABEL: &str = proximity_config::types::NS_LABEL;
/// The mailbox in the SOA: `hostmaster.<domain>`.
const HOSTMASTER_LABEL: &str = "hostmaster";
/// SOA timers. Nobody transfers these zones; the values are the conventional ones so tools that
/// read them see nothing odd.
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 7 * 24 * 3600;

/// Failed to derive the zones from the configuration.
#[derive(Debug, thiserror::Error)]
#[error("{name:?} is not a usable zone name: {reason}")]
pub struct ZoneError {
    name: String,
    reason: String,
}

/// Which of our zones a name is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// `<domain>`.
    Forward,
    /// One of the reverse zones, by index.
    Reverse(usize),
}

/// What a name in the forward zone is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// `<domain>` itself: SOA and NS.
    Apex,
    /// `ns.<domain>`: the appliance as the zones' name server.
    NameServer,
    /// An app: served by the appliance's proxy, so at the appliance's address.
    App,
    /// A host of the name table (lease or reservation), at its own address.
    Host(Ipv4Addr),
}

/// A reverse zone: `c.b.a.in-addr.arpa.` and the address octets its apex fixes (`[a, b, c]`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReverseZone {
    apex: Name,
    fixed: Vec<u8>,
}

/// The zones we are authoritative for, fixed at start-up; the names in them come from the
/// [`NameTable`] passed to each answer.
#[derive(Debug, Clone)]
pub struct Zones {
    domain: Name,
    ns: Name,
    hostmaster: Name,
    reverse: Vec<ReverseZone>,
    ttl: u32,
    gateway: Ipv4Addr,
}

impl Zones {
    /// The zones of `domain` (lower-case, no trailing dot) and of the LAN `lan` (gateway address
    /// with prefix), serving records with `ttl` seconds.
    pub fn new(domain: &str, lan: Ipv4Net, ttl: u32) -> Result<Self, ZoneError> {
        let bad =
            |name: &str, e: &dyn std::fmt::Display| ZoneError { name: name.into(), reason: e.to_string() };
        let mut domain_name = Name::from_ascii(domain).map_err(|e| bad(domain, &e))?.to_lowercase();
        domain_name.set_fqdn(true);
        let ns = domain_name.prepend_label(NS_LABEL).map_err(|e| bad(domain, &e))?;
        let hostmaster = domain_name.prepend_label(HOSTMASTER_LABEL).map_err(|e| bad(domain, &e))?;
        let reverse = reverse_zones(lan)
            .into_iter()
            .map(|net| {
                let text = reverse_name(net);
                let apex = Name::from_ascii(&text).map_err(|e| bad(&text, &e))?;
                Ok(ReverseZone { apex, fixed: fixed_octets(net) })
            })
            .collect::<Result<_, ZoneError>>()?;
        Ok(Zones { domain: domain_name, ns, hostmaster, reverse, ttl, gateway: lan.addr() })
    }

    /// The zone `name` falls in, if it is one of ours (the most specific one).
    pub fn find(&self, name: &Name) -> Option<Zone> {
        if let Some(i) = self.reverse.iter().position(|z| z.apex.zone_of(name)) {
            return Some(Zone::Reverse(i));
        }
        self.domain.zone_of(name).then_some(Zone::Forward)
    }

    /// The address `node` answers with in `view`, for a query sent to `asked`; `None`: no A
    /// record there. The one place that decides who sees which address.
    pub fn address(&self, node: Node, view: View, asked: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        match (node, view) {
            (Node::Apex, _) => None,
            (Node::NameServer | Node::App, View::Lan) => Some(self.gateway),
            // The address the WAN client reached us at. Over IPv6 there is none to give.
            (Node::NameServer | Node::App, View::Wan) => asked.filter(|ip| !ip.is_unspecified()),
            (Node::Host(ip), View::Lan) => Some(ip),
            (Node::Host(_), View::Wan) => None,
        }
    }

    /// The authoritative answer for `name` (lower-case, inside `zone`) and `qtype` in `view`,
    /// for a query sent to `asked`.
    pub fn answer(
        &self,
        zone: Zone,
        name: &Name,
        qtype: RecordType,
        view: View,
        asked: Option<Ipv4Addr>,
        table: &NameTable,
    ) -> Answer {
        match zone {
            Zone::Forward => self.forward(name, qtype, view, asked, table),
            Zone::Reverse(i) => match self.reverse.get(i) {
                Some(reverse) => self.reverse(reverse, name, qtype, view, asked, table),
                None => Answer::error(ResponseCode::ServFail),
            },
        }
    }

    fn forward(
        &self,
        name: &Name,
        qtype: RecordType,
        view: View,
        asked: Option<Ipv4Addr>,
        table: &NameTable,
    ) -> Answer {
        let below: Vec<&[u8]> = labels_below(name, &self.domain);
        let node = match below.as_slice() {
            [] => Some(Node::Apex),
            [label] if label.eq_ignore_ascii_case(NS_LABEL.as_bytes()) => Some(Node::NameServer),
            [label] => std::str::from_utf8(label).ok().and_then(|label| {
                if table.app(label).is_some() {
                    return Some(Node::App);
                }
                // Host names are not there at all for the WAN: NXDOMAIN, not NODATA.
                table
                    .host(label)
                    .map(|host| Node::Host(host.ip))
                    .filter(|node| self.address(*node, view, asked).is_some())
            }),
            _ => None,
        };
        let Some(node) = node else { return self.negative(&self.domain, ResponseCode::NXDomain, table) };
        if node == Node::Apex {
            return self.apex(&self.domain, qtype, view, asked, table);
        }
        let address = self.address(node, view, asked);
        match (qtype, address) {
            (RecordType::A | RecordType::ANY, Some(ip)) => {
                self.positive(vec![Record::from_rdata(name.clone(), self.ttl, RData::A(A(ip)))])
            }
            _ => self.negative(&self.domain, ResponseCode::NoError, table),
        }
    }

    fn reverse(
        &self,
        zone: &ReverseZone,
        name: &Name,
        qtype: RecordType,
        view: View,
        asked: Option<Ipv4Addr>,
        table: &NameTable,
    ) -> Answer {
        let below = labels_below(name, &zone.apex);
        if below.is_empty() {
            return self.apex(&zone.apex, qtype, view, asked, table);
        }
        // The WAN sees the zone's apex only: which LAN addresses have names is not its business.
        if view != View::Lan || zone.fixed.len() + below.len() > 4 {
            return self.negative(&zone.apex, ResponseCode::NXDomain, table);
        }
        let Some(low) = below.iter().rev().map(|l| octet(l)).collect::<Option<Vec<u8>>>() else {
            return self.negative(&zone.apex, ResponseCode::NXDomain, table);
        };
        let prefix = [zone.fixed.as_slice(), low.as_slice()].concat();
        let Ok(full) = <[u8; 4]>::try_from(prefix.as_slice()) else {
            // An empty non-terminal (in a zone wider than /24) exists when a named address is below it.
            let exists = self.named_addresses(table).any(|ip| ip.octets().starts_with(&prefix));
            let rcode = if exists { ResponseCode::NoError } else { ResponseCode::NXDomain };
            return self.negative(&zone.apex, rcode, table);
        };
        let ip = Ipv4Addr::from(full);
        let Some(target) = self.ptr_target(ip, table) else {
            return self.negative(&zone.apex, ResponseCode::NXDomain, table);
        };
        match qtype {
            RecordType::PTR | RecordType::ANY => {
                self.positive(vec![Record::from_rdata(name.clone(), self.ttl, RData::PTR(PTR(target)))])
            }
            _ => self.negative(&zone.apex, ResponseCode::NoError, table),
        }
    }

    /// The name `ip` points back to in the LAN view: its host, or `ns.<domain>` for the gateway.
    fn ptr_target(&self, ip: Ipv4Addr, table: &NameTable) -> Option<Name> {
        if let Some(label) = table.name_of(ip).filter(|l| !l.eq_ignore_ascii_case(NS_LABEL)) {
            return self.domain.prepend_label(label).ok();
        }
        (ip == self.gateway).then(|| self.ns.clone())
    }

    fn named_addresses<'t>(&self, table: &'t NameTable) -> impl Iterator<Item = Ipv4Addr> + 't {
        let gateway = self.gateway;
        table.hosts().map(|(_, h)| h.ip).chain(std::iter::once(gateway))
    }

    /// The apex of a zone: SOA and NS (with the name server's address as glue where the view has one).
    fn apex(
        &self,
        apex: &Name,
        qtype: RecordType,
        view: View,
        asked: Option<Ipv4Addr>,
        table: &NameTable,
    ) -> Answer {
        match qtype {
            // RFC 8482: ANY gets one RRset, not everything.
            RecordType::SOA | RecordType::ANY => self.positive(vec![self.soa(apex, table)]),
            RecordType::NS => {
                let mut answer = self.positive(vec![self.ns_record(apex)]);
                if let Some(ip) = self.address(Node::NameServer, view, asked) {
                    answer.additionals.push(Record::from_rdata(self.ns.clone(), self.ttl, RData::A(A(ip))));
                }
                answer
            }
            _ => self.negative(apex, ResponseCode::NoError, table),
        }
    }

    fn positive(&self, answers: Vec<Record>) -> Answer {
        Answer { authoritative: true, answers, ..Answer::default() }
    }

    /// NXDOMAIN or NODATA: the zone's SOA in the authority section (RFC 2308), its TTL the
    /// negative caching time.
    fn negative(&self, apex: &Name, rcode: ResponseCode, table: &NameTable) -> Answer {
        Answer { rcode, authoritative: true, authorities: vec![self.soa(apex, table)], ..Answer::default() }
    }

    fn soa(&self, apex: &Name, table: &NameTable) -> Record {
        let soa = SOA::new(
            self.ns.clone(),
            self.hostmaster.clone(),
            table.serial(),
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            self.ttl,
        );
        Record::from_rdata(apex.clone(), self.ttl, RData::SOA(soa))
    }

    fn ns_record(&self, apex: &Name) -> Record {
        Record::from_rdata(apex.clone(), self.ttl, RData::NS(NS(self.ns.clone())))
    }
}

/// The labels of `name` left of `apex` (which must be a zone of it), leftmost first.
fn labels_below<'n>(name: &'n Name, apex: &Name) -> Vec<&'n [u8]> {
    let extra = usize::from(name.num_labels()).saturating_sub(usize::from(apex.num_labels()));
    name.iter().take(extra).collect()
}

/// A reverse-name label as an address octet: decimal, 0 to 255, no leading zeros.
fn octet(label: &[u8]) -> Option<u8> {
    if label.is_empty() || label.len() > 3 || (label.len() > 1 && label[0] == b'0') {
        return None;
    }
    std::str::from_utf8(label).ok()?.parse().ok()
}

/// The octet-aligned networks whose reverse zones cover `lan`.
///
/// A prefix that is a multiple of 8 gives one zone (/24 -> `c.b.a.in-addr.arpa`). A prefix in
/// between gives the zones of the next octet boundary inside it (/22 -> four /24 zones,
/// /12 -> sixteen /16 zones); a prefix longer than /24 gives the /24 zone around it (no RFC 2317
/// classless delegation: nobody delegates to a LAN appliance).
pub fn reverse_zones(lan: Ipv4Net) -> Vec<Ipv4Net> {
    let prefix = lan.prefix_len();
    let zone_prefix = prefix.div_ceil(8).clamp(1, 3) * 8;
    if zone_prefix <= prefix {
        vec![Ipv4Net::new(lan.network(), zone_prefix).map_or(lan.trunc(), |n| n.trunc())]
    } else {
        lan.trunc().subnets(zone_prefix).map(Iterator::collect).unwrap_or_default()
    }
}

/// The octets an octet-aligned network fixes.
fn fixed_octets(net: Ipv4Net) -> Vec<u8> {
    let count = usize::from(net.prefix_len() / 8);
    net.network().octets().into_iter().take(count).collect()
}

/// `c.b.a.in-addr.arpa.` for an octet-aligned network.
pub fn reverse_name(net: Ipv4Net) -> String {
    let labels: Vec<String> = fixed_octets(net).iter().rev().map(u8::to_string).collect();
    format!("{}.in-addr.arpa.", labels.join("."))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn zones(lan: &str) -> Vec<String> {
        reverse_zones(lan.parse().unwrap()).into_iter().map(reverse_name).collect()
    }

    #[test]
    fn reverse_zones_follow_octet_boundaries() {
        assert_eq!(zones("10.20.0.1/24"), ["0.20.10.in-addr.arpa."]);
        assert_eq!(zones("10.20.0.1/16"), ["20.10.in-addr.arpa."]);
        assert_eq!(zones("10.20.0.1/8"), ["10.in-addr.arpa."]);
        assert_eq!(
            zones("10.20.4.1/22"),
            [
                "4.20.10.in-addr.arpa.",
                "5.20.10.in-addr.arpa.",
                "6.20.10.in-addr.arpa.",
                "7.20.10.in-addr.arpa."
            ]
        );
        assert_eq!(zones("172.16.0.1/12").len(), 16);
        assert_eq!(zones("172.16.0.1/12")[15], "31.172.in-addr.arpa.");
        assert_eq!(zones("10.20.0.65/26"), ["0.20.10.in-addr.arpa."]);
    }

    fn lookup(zones: &Zones, name: &str, qtype: RecordType, table: &NameTable) -> Answer {
        let name = Name::from_ascii(name).unwrap().to_lowercase();
        let zone = zones.find(&name).unwrap_or_else(|| panic!("{name} is not in our zones"));
        zones.answer(zone, &name, qtype, View::Lan, None, table)
    }

    #[test]
    fn a_wide_lan_has_empty_non_terminals_in_its_reverse_zone() {
        let zones = Zones::new("prox.local", "10.20.0.1/16".parse().unwrap(), 30).unwrap();
        let nas = proximity_config::Reservation {
            mac: proximity_config::MacAddr([2, 0, 0, 0, 0, 1]),
            ip: Ipv4Addr::new(10, 20, 7, 10),
            name: Some("nas".into()),
        };
        let table = NameTable::empty(1).build(&[nas], &[], &[], 0);
        let ptr = lookup(&zones, "10.7.20.10.in-addr.arpa.", RecordType::PTR, &table);
        assert_eq!((ptr.rcode, ptr.answers.len()), (ResponseCode::NoError, 1));
        // 7.20.10.in-addr.arpa has a name below it: NODATA; 8.20.10.in-addr.arpa has none.
        let between = lookup(&zones, "7.20.10.in-addr.arpa.", RecordType::PTR, &table);
        assert_eq!((between.rcode, between.answers.len()), (ResponseCode::NoError, 0));
        let empty = lookup(&zones, "8.20.10.in-addr.arpa.", RecordType::PTR, &table);
        assert_eq!(empty.rcode, ResponseCode::NXDomain);
        // The gateway (10.20.0.1) is named too.
        let gateway = lookup(&zones, "0.20.10.in-addr.arpa.", RecordType::PTR, &table);
        assert_eq!(gateway.rcode, ResponseCode::NoError);
        assert!(zones.find(&Name::from_ascii("10.7.21.10.in-addr.arpa.").unwrap()).is_none());
    }

    #[test]
    fn octets_are_canonical_decimal() {
        assert_eq!(octet(b"0"), Some(0));
        assert_eq!(octet(b"255"), Some(255));
        for bad in [&b"256"[..], b"01", b"", b"1a", b"-1", b"1000"] {
            assert_eq!(octet(bad), None, "{bad:?}");
        }
    }
}
