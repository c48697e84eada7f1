//! One version of the names: every host label with its address, every app with the address its
//! backend has now, the reverse map, and the SOA serial that changes with every change. Built by
//! [`NameTable::build`], which applies the name policy and keeps each name with the client that
//! claimed it first.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use proximity_config::api::{App, Backend};
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

/// An app's name: it resolves to the proxy (whoever asks), which forwards to `backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppName {
    /// The backend's address now: `None` while an app given by MAC or host name has no lease.
    pub backend: Option<Ipv4Addr>,
    pub app: App,
}

/// An immutable version of every name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameTable {
    serial: u32,
    hosts: HashMap<String, HostName>,
    apps: HashMap<String, AppName>,
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

    /// The app with this label (any case).
    pub fn app(&self, label: &str) -> Option<&AppName> {
        self.apps.get(&label.to_ascii_lowercase())
    }

    /// Every app that holds its name, in no particular order.
    pub fn apps(&self) -> impl Iterator<Item = &AppName> {
        self.apps.values()
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

    /// The next version: reservations first and apps next (both own their names; the admin API
    /// refuses an app named like a reservation, so a clash only comes from a config edit, and
    /// the reservation wins), then the bound leases that carry a host name. A name already held
    /// by a lease in `self` stays with it while that lease is bound; other claims are served
    /// oldest lease first. A claim on a taken name is refused and logged once (when it first
    /// appears). Each app's backend is resolved against the same leases and reservations.
    pub fn build<'a>(
        &self,
        reservations: &[Reservation],
        leases: impl IntoIterator<Item = &'a Lease>,
        apps: &[App],
        now: UnixTime,
    ) -> NameTable {
        let mut next = NameTable::empty(self.serial);
        for r in reservations {
            if let Some(name) = &r.name {
                next.insert(name, HostName { ip: r.ip, source: NameSource::Reservation });
            }
        }
        let bound: Vec<&Lease> =
            leases.into_iter().filter(|l| l.state == LeaseState::Active && l.is_bound(now)).collect();
        for app in apps {
            if next.hosts.contains_key(&app.name) {
                let claim = (app.name.clone(), Ipv4Addr::UNSPECIFIED);
                if !self.refused.contains(&claim) {
                    warn!(name = %app.name, "app name is a reservation's; the app gets no name until one is renamed");
                }
                next.refused.insert(claim);
                continue;
            }
            let backend = backend_address(&app.backend, reservations, &bound);
            next.apps.insert(app.name.clone(), AppName { backend, app: app.clone() });
        }
        let mut claims: Vec<&Lease> = bound.into_iter().filter(|l| l.hostname.is_some()).collect();
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
            if let Some(app) = next.apps.get(name) {
                let claim = (name.to_owned(), lease.ip);
                if !self.refused.contains(&claim) {
                    // The usual case: the app is this very client (container "web" serves app
                    // "web"). Worth a warning only when the name belongs to someone else.
                    if app.backend == Some(lease.ip) {
                        info!(name, ip = %lease.ip, "the app of this name is served by this client; the name resolves to the proxy");
                    } else {
                        warn!(name, ip = %lease.ip, mac = %lease.mac, "host name is an app's; client gets no name");
                    }
                }
                next.refused.insert(claim);
                continue;
            }
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
        if next.hosts != self.hosts || next.apps != self.apps {
            next.serial = self.serial.wrapping_add(1);
            for (name, host) in &next.hosts {
                if self.hosts.get(name) != Some(host) {
                    info!(name, ip = %host.ip, "name registered");
                }
            }
            for (name, app) in &next.apps {
                let before = self.apps.get(name).map(|a| a.backend);
                if before != Some(app.backend) {
                    match app.backend {
                        Some(ip) => info!(app = %name, backend = %ip, port = app.app.port, "app live"),
                        None => info!(app = %name, "app waiting for its backend to get a lease"),
                    }
                }
            }
        }
        next
    }

    fn insert(&mut self, name: &str, host: HostName) {
        // Reservations come first and the config refuses duplicate names, so nothing is replaced.
        let name = name.to_ascii_lowercase();
        self.by_ip.entry(host.ip).or_insert_with(|| name.clone());
        self.hosts.insert(name, host);
    }
}

/// Where `backend` is now: the address itself; a MAC's bound lease (the newest), else its
/// reservation; a host name's bound lease (the newest, whether or not it holds the DNS name:
/// an app usually takes the name of its own container), else the reservation of that name.
fn backend_address(backend: &Backend, reservations: &[Reservation], bound: &[&Lease]) -> Option<Ipv4Addr> {
    let newest = |matches: &dyn Fn(&Lease) -> bool| {
        bound.iter().filter(|l| matches(l)).max_by_key(|l| (l.starts, u32::from(l.ip))).map(|l| l.ip)
    };
    match backend {
        Backend::Ip(ip) => Some(*ip),
        Backend::Mac(mac) => {
            newest(&|l| l.mac == *mac).or_else(|| reservations.iter().find(|r| r.mac == *mac).map(|r| r.ip))
        }
        Backend::Hostname(name) => newest(&|l| l.hostname.as_deref() == Some(name.as_str()))
            .or_else(|| reservations.iter().find(|r| r.name.as_deref() == Some(name.as_str())).map(|r| r.ip)),
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
        let t =
            NameTable::empty(100).build(&[reservation(10, "nas")], &[lease(1, Some("laptop"), 0)], &[], 10);
        assert_eq!(t.host("NAS").map(|h| h.ip), Some(Ipv4Addr::new(10, 20, 0, 10)));
        assert_eq!(t.host("laptop").map(|h| h.ip), Some(Ipv4Addr::new(10, 20, 0, 101)));
        assert_eq!(t.name_of(Ipv4Addr::new(10, 20, 0, 101)), Some("laptop"));
        assert_eq!(t.serial(), 101);
    }

    #[test]
    fn a_reservation_owns_its_name_against_any_lease() {
        let t = NameTable::empty(1).build(&[reservation(10, "nas")], &[lease(1, Some("nas"), 0)], &[], 10);
        assert_eq!(t.host("nas").map(|h| h.source), Some(NameSource::Reservation));
        assert_eq!(t.name_of(Ipv4Addr::new(10, 20, 0, 101)), None);
    }

    #[test]
    fn the_first_claimant_keeps_a_name_even_when_an_older_lease_asks_later() {
        let first = NameTable::empty(1).build(&[], &[lease(1, Some("web"), 50)], &[], 60);
        // Client 2's lease is older, but client 1 already holds the name.
        let second = first.build(&[], &[lease(1, Some("web"), 50), lease(2, Some("web"), 10)], &[], 61);
        assert_eq!(second.host("web").map(|h| h.ip), Some(Ipv4Addr::new(10, 20, 0, 101)));
        assert_eq!(second.serial(), first.serial(), "nothing changed");
        // When client 1's lease ends, client 2 gets the name.
        let third = second.build(&[], &[lease(2, Some("web"), 10)], &[], 62);
        assert_eq!(third.host("web").map(|h| h.ip), Some(Ipv4Addr::new(10, 20, 0, 102)));
        assert!(third.serial() > second.serial());
    }

    #[test]
    fn a_client_cannot_take_the_name_servers_label() {
        let t = NameTable::empty(1).build(&[], &[lease(1, Some("ns"), 0)], &[], 10);
        assert!(t.is_empty());
    }

    #[test]
    fn ended_released_and_nameless_leases_have_no_name() {
        let mut released = lease(2, Some("gone"), 0);
        released.state = LeaseState::Released;
        let expired = lease(3, Some("old"), 0);
        let t = NameTable::empty(1).build(&[], &[lease(1, None, 0), released, expired], &[], 5000);
        assert!(t.is_empty());
    }
    fn app(name: &str, backend: Backend) -> App {
        App { name: name.into(), backend, port: 8080, health_check: None }
    }

    #[test]
    fn an_app_owns_its_name_and_follows_its_containers_lease_by_host_name() {
        // The usual case: container "web" registers as app "web".
        let apps = [app("web", Backend::Hostname("web".into()))];
        let t = NameTable::empty(1).build(&[], &[lease(1, Some("web"), 0)], &apps, 10);
        assert_eq!(t.app("WEB").map(|a| a.backend), Some(Some(Ipv4Addr::new(10, 20, 0, 101))));
        assert!(t.host("web").is_none(), "the container does not hold the app's name");
        // Its lease moves: the app follows, and the serial says something changed.
        let moved = t.build(&[], &[lease(2, Some("web"), 20)], &apps, 30);
        assert_eq!(moved.app("web").map(|a| a.backend), Some(Some(Ipv4Addr::new(10, 20, 0, 102))));
        assert!(moved.serial() > t.serial());
    }

    #[test]
    fn an_app_by_mac_waits_for_a_lease_then_goes_live() {
        let mac = MacAddr([2, 0, 0, 0, 0, 3]);
        let apps = [app("db", Backend::Mac(mac))];
        let waiting = NameTable::empty(1).build(&[], &[], &apps, 10);
        assert_eq!(waiting.app("db").map(|a| a.backend), Some(None));
        let live = waiting.build(&[], &[lease(3, None, 5)], &apps, 10);
        assert_eq!(live.app("db").map(|a| a.backend), Some(Some(Ipv4Addr::new(10, 20, 0, 103))));
        assert!(live.serial() > waiting.serial());
        // A reservation of the MAC stands in while there is no lease.
        let reserved = Reservation { mac, ip: Ipv4Addr::new(10, 20, 0, 30), name: None };
        let t = NameTable::empty(1).build(&[reserved], &[], &apps, 10);
        assert_eq!(t.app("db").map(|a| a.backend), Some(Some(Ipv4Addr::new(10, 20, 0, 30))));
    }

    #[test]
    fn a_dhcp_client_cannot_take_an_apps_name_and_a_reservation_keeps_its_own() {
        let apps = [
            app("web", Backend::Ip(Ipv4Addr::new(10, 20, 0, 9))),
            app("nas", Backend::Ip(Ipv4Addr::new(10, 20, 0, 9))),
        ];
        let t = NameTable::empty(1).build(&[reservation(10, "nas")], &[lease(1, Some("web"), 0)], &apps, 10);
        assert!(t.app("web").is_some());
        assert_eq!(t.name_of(Ipv4Addr::new(10, 20, 0, 101)), None, "the client got no name");
        assert!(t.app("nas").is_none(), "the reservation keeps its name");
        assert_eq!(t.host("nas").map(|h| h.source), Some(NameSource::Reservation));
    }

    #[test]
    fn removing_an_app_changes_the_serial() {
        let apps = [app("web", Backend::Ip(Ipv4Addr::new(10, 20, 0, 9)))];
        let with = NameTable::empty(1).build(&[], &[], &apps, 10);
        let without = with.build(&[], &[], &[], 10);
        assert!(without.app("web").is_none());
        assert!(without.serial() > with.serial());
    }
}
