//! One version of the names: every host label with its address, the reverse map, and the SOA
//! serial that changes with every change. Built by [`NameTable::build`], which applies the name
//! policy and keeps each name with the client that claimed it first.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use proximity_config::types::is_reserved_label;
use proximity_config::{MacAddr, Reservation};
use tracing::{info, warn};

use crate::state::{Lease, LeaseState, UnixTime};

/// Where a name comes from, which decides who may own it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// A `[[dhcp.reservations]]` entry with a name: owns it.
    Reservation,
    /// A DHCP client's own host name: holds it only while nobody with a better claim wants it.
    Lease { mac: MacAddr },
}

/// One host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostName {
    pub ip: Ipv4Addr,
    pub source: NameSource,
}

/// An immutable version of every name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameTable {
    serial: u32,
    hosts: HashMap<String, HostName>,
    by_ip: HashMap<Ipv4Addr, String>,
    /// Claims refused because the name is taken, remembered so each is logged once.
    refused: HashSet<(String, Ipv4Addr)>,
}

impl NameTable {
    /// An empty table whose serial starts at `serial` (the start time, so serials keep growing
    /// across restarts).
    pub fn empty(serial: u32) -> Self {
        NameTable { serial, ..NameTable::default() }
    }

    /// The SOA serial: it grows with every change of the table.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The host with this label (any case).
    pub fn host(&self, label: &str) -> Option<&HostName> {
        self.hosts.get(&label.to_ascii_lowercase())
    }

    /// The label that `ip` resolves back to.
    pub fn name_of(&self, ip: Ipv4Addr) -> Option<&str> {
        self.by_ip.get(&ip).map(String::as_str)
    }

    /// Every host, in no particular order.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, &HostName)> {
        self.hosts.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The next version: reservations first (they own their names), then the bound leases that
    /// carry a host name. A name already held by a lease in `self` stays with it while that
    /// lease is bound; other claims are served oldest lease first. A claim on a taken name is
    /// refused and logged once (when it first appears).
    pub fn build<'a>(
        &self,
        reservations: &[Reservation],
        leases: impl IntoIterator<Item = &'a Lease>,
        now: UnixTime,
    ) -> NameTable {
        let mut next = NameTable::empty(self.serial);
        for r in reservations {
            if let Some(name) = &r.name {
                next.insert(name, HostName { ip: r.ip, source: NameSource::Reservation });
            }
        }
        let mut claims: Vec<&Lease> = leases
            .into_iter()
            .filter(|l| l.state == LeaseState::Active && l.is_bound(now) && l.hostname.is_some())
            .collect();
        // Current holders first, then the oldest claims.
        claims.sort_by_key(|l| {
            let holds = l.hostname.as_deref().and_then(|n| self.hosts.get(n)).is_some_and(|h| h.ip == l.ip);
            (!holds, l.starts, u32::from(l.ip))
        });
        for lease in claims {
            let Some(name) = lease.hostname.as_deref() else { continue };
            if is_reserved_label(name) {
                let claim = (name.to_owned(), lease.ip);
                if !self.refused.contains(&claim) {
                    warn!(name, ip = %lease.ip, mac = %lease.mac, "host name is the appliance's own; client gets no name");
                }
                next.refused.insert(claim);
                continue;
            }
            let wanted = HostName { ip: lease.ip, source: NameSource::Lease { mac: lease.mac } };
            match next.hosts.get(name) {
                None if !next.by_ip.contains_key(&lease.ip) => next.insert(name, wanted),
                None => {}
                Some(owner) if owner.ip == lease.ip => {}
                Some(owner) => {
                    let claim = (name.to_owned(), lease.ip);
                    if !self.refused.contains(&claim) {
                        warn!(name, ip = %lease.ip, mac = %lease.mac, owner = %owner.ip, "host name already taken; client gets no name");
                    }
                    next.refused.insert(claim);
                }
            }
        }
        if next.hosts != self.hosts {
            next.serial = self.serial.wrapping_add(1);
            for (name, host) in &next.hosts {
                if self.hosts.get(name) != Some(host) {
                    info!(name, ip = %host.ip, "name registered");
                }
            }
        }
        next
    }

    fn insert(&mut self, name: &str, host: HostName) {
        let name = name.to_ascii_lowercase();
        self.by_ip.entry(host.ip).or_insert_with(|| name.clone());
        self.hosts.insert(name, host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(n: u8, name: Option<&str>, starts: UnixTime) -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 20, 0, 100 + n),
            client_id: vec![1, n],
            mac: MacAddr([2, 0, 0, 0, 0, n]),
            hostname: name.map(str::to_owned),
            state: LeaseState::Active,
            starts,
            expires: starts + 3600,
        }
    }

    fn reservation(n: u8, name: &str) -> Reservation {
        Reservation {
            mac: MacAddr([2, 0, 0, 0, 1, n]),
            ip: Ipv4Addr::new(10, 20, 0, n),
            name: Some(name.into()),
        }
    }

    #[test]
    fn leases_and_reservations_get_names_and_reverse_names() {
        let t = NameTable::empty(100).build(&[reservation(10, "nas")], &[lease(1, Some("laptop"), 0)], 10);
        assert_eq!(t.host("NAS").map(|h| h.ip), Some(Ipv4Addr::new(10, 20, 0, 10)));
        assert_eq!(t.host("laptop").map(|h| h.ip), Some(Ipv4Addr::new(10, 20, 0, 101)));
        assert_eq!(t.name_of(Ipv4Addr::new(10, 20, 0, 101)), Some("laptop"));
        assert_eq!(t.serial(), 101);
    }

    #[test]
    fn a_reservation_owns_its_name_against_any_lease() {
        let t = NameTable::empty(1).build(&[reservation(10, "nas")], &[lease(1, Some("nas"), 0)], 10);
        assert_eq!(t.host("nas").map(|h| h.source), Some(NameSource::Reservation));
        assert_eq!(t.name_of(Ipv4Addr::new(10, 20, 0, 101)), None);
    }

    #[test]
    fn the_first_claimant_keeps_a_name_even_when_an_older_lease_asks_later() {
        let first = NameTable::empty(1).build(&[], &[lease(1, Some("web"), 50)], 60);
        // Client 2's lease is older, but client 1 already holds the name.
        let second = first.build(&[], &[lease(1, Some("web"), 50), lease(2, Some("web"), 10)], 61);
        assert_eq!(second.host("web").map(|h| h.ip), Some(Ipv4Addr::new(10, 20, 0, 101)));
        assert_eq!(second.serial(), first.serial(), "nothing changed");
        // When client 1's lease ends, client 2 gets the name.
        let third = second.build(&[], &[lease(2, Some("web"), 10)], 62);
        assert_eq!(third.host("web").map(|h| h.ip), Some(Ipv4Addr::new(10, 20, 0, 102)));
        assert!(third.serial() > second.serial());
    }

    #[test]
    fn a_client_cannot_take_the_name_servers_label() {
        let t = NameTable::empty(1).build(&[], &[lease(1, Some("ns"), 0)], 10);
        assert!(t.is_empty());
    }

    #[test]
    fn ended_released_and_nameless_leases_have_no_name() {
        let mut released = lease(2, Some("gone"), 0);
        released.state = LeaseState::Released;
        let expired = lease(3, Some("old"), 0);
        let t = NameTable::empty(1).build(&[], &[lease(1, None, 0), released, expired], 5000);
        assert!(t.is_empty());
    }
}
