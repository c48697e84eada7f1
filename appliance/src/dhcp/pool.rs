//! The address pool in memory: who holds which address, which are free, and which are held
//! for an outstanding offer. Pure bookkeeping with an explicit clock, so every rule is unit-tested;
//! durability is the caller's job (the store), and the pool is rebuilt from it at start.
//!
//! Allocation order for a client without a reservation:
//! 1. the address it was just offered, or holds or last held (also after expiry or release),
//!    when no other client has a lease on it;
//! 2. the address it asks for (option 50), when free and not offered to another client;
//! 3. an address never leased before, lowest first;
//! 4. the address whose last lease ended longest ago, so recent clients can still come back;
//! 5. when every free address is on offer to someone, the one offered longest ago.
//!
//! Offers are soft holds (`offer_hold` long): they keep concurrent clients from being offered
//! the same address, but never lock it. Only a lease (a REQUEST answered with ACK) takes an
//! address. So a flood of DISCOVERs from invented MACs takes nothing from the pool: a real
//! client still gets an offer (step 5) and its REQUEST wins. A flood of complete DORA exchanges
//! takes addresses at the rate the lease policy allows, as with any server.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::Ipv4Addr;

use proximity_config::{DhcpConfig, Ipv4Range, MacAddr};

use crate::state::{Lease, LeaseState, UnixTime};

/// Why a request cannot have the address it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Outside the pool and not reserved for this client.
    NotOurs,
    /// Reserved for another client.
    Reserved,
    /// Leased to or declined by another client.
    Taken,
    /// This client has a reservation for another address.
    HasReservation,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotOurs => "requested address is not in this server's pool",
            Refusal::Reserved => "requested address is reserved for another client",
            Refusal::Taken => "requested address is in use by another client",
            Refusal::HasReservation => "this client has a reserved address",
        }
    }
}

/// Seconds a lease outlives what the client was told. Times are whole seconds, so without it
/// the server could free an address up to a second before the client's lease ends.
pub const EXPIRY_GRACE: u64 = 1;

#[derive(Debug, Clone)]
struct Hold {
    client_id: Vec<u8>,
    /// Which `hold_order` entry is this hold's (times repeat within a second).
    seq: u64,
}

/// The in-memory view of every address the server manages.
#[derive(Debug)]
pub struct Pool {
    /// Counts changes to the records: a snapshot of them carries it, so an older snapshot never
    /// replaces a newer one elsewhere (the names' directory).
    generation: u64,
    range: Ipv4Range,
    lease_time: u64,
    decline_probation: u64,
    offer_hold: u64,
    /// Fixed addresses by MAC, and the reverse, from the config.
    reservations: HashMap<MacAddr, Ipv4Addr>,
    reserved_ips: HashMap<Ipv4Addr, MacAddr>,
    /// Every lease record, by address (the store's records).
    leases: HashMap<Ipv4Addr, Lease>,
    /// The address each client holds or last held.
    by_client: HashMap<Vec<u8>, Ipv4Addr>,
    /// Pool addresses that have never had a lease and are not held.
    fresh: BTreeSet<u32>,
    /// Pool addresses with a record, ordered by when that record ends.
    by_expiry: BTreeSet<(UnixTime, u32)>,
    holds: HashMap<Ipv4Addr, Hold>,
    held_by_client: HashMap<Vec<u8>, Ipv4Addr>,
    /// Holds in creation order (also their expiry order) as `(ip, seq, until)`; entries whose
    /// hold was replaced or dropped are skipped when met.
    hold_order: VecDeque<(Ipv4Addr, u64, UnixTime)>,
    next_seq: u64,
}

impl Pool {
    /// Builds the pool from the config and the records kept in the store.
    pub fn new(config: &DhcpConfig, records: Vec<Lease>) -> Self {
        let mut pool = Pool {
            generation: 0,
            range: config.range,
            lease_time: config.lease_time.as_secs(),
            decline_probation: config.decline_probation.as_secs(),
            offer_hold: config.offer_hold.as_secs(),
            reservations: config.reservations.iter().map(|r| (r.mac, r.ip)).collect(),
            reserved_ips: config.reservations.iter().map(|r| (r.ip, r.mac)).collect(),
            leases: HashMap::with_capacity(records.len()),
            by_client: HashMap::with_capacity(records.len()),
            fresh: config.range.iter().map(u32::from).collect(),
            by_expiry: BTreeSet::new(),
            holds: HashMap::new(),
            held_by_client: HashMap::new(),
            hold_order: VecDeque::new(),
            next_seq: 0,
        };
        for lease in records {
            pool.record(lease);
        }
        pool
    }

    pub fn lease_time(&self) -> u64 {
        self.lease_time
    }

    pub fn range(&self) -> Ipv4Range {
        self.range
    }

    /// How many times the records changed: grows with every [`Pool::record`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every lease record, in no particular order.
    pub fn records(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// The record of an address, if any.
    pub fn lease(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.leases.get(&ip)
    }

    /// Leases bound at `now` (active or on probation).
    pub fn bound_count(&self, now: UnixTime) -> usize {
        self.leases.values().filter(|l| l.is_bound(now)).count()
    }

    /// Stores a record in memory (after it was committed, or while loading).
    pub fn record(&mut self, lease: Lease) {
        self.generation += 1;
        let ip = lease.ip;
        if let Some(old) = self.leases.remove(&ip) {
            self.by_expiry.remove(&(old.expires, u32::from(ip)));
            if self.by_client.get(&old.client_id) == Some(&ip) {
                self.by_client.remove(&old.client_id);
            }
        }
        self.drop_hold(ip);
        if self.range.contains(ip) {
            self.fresh.remove(&u32::from(ip));
            self.by_expiry.insert((lease.expires, u32::from(ip)));
        }
        if lease.state != LeaseState::Declined {
            self.by_client.insert(lease.client_id.clone(), ip);
        }
        self.leases.insert(ip, lease);
    }

    /// Replaces the reservations (the config's and the admin API's). They take effect at each
    /// client's next exchange: a lease held now is not taken away.
    pub fn set_reservations(&mut self, reservations: &[proximity_config::Reservation]) {
        self.reservations = reservations.iter().map(|r| (r.mac, r.ip)).collect();
        self.reserved_ips = reservations.iter().map(|r| (r.ip, r.mac)).collect();
    }

    /// The address reserved for a MAC, if any.
    pub fn reservation(&self, mac: MacAddr) -> Option<Ipv4Addr> {
        self.reservations.get(&mac).copied()
    }

    /// Whether `client` may be given `ip` at `now`, and if not, why. Offers to other clients do
    /// not count: the first REQUEST wins.
    pub fn check(&self, client_id: &[u8], mac: MacAddr, ip: Ipv4Addr, now: UnixTime) -> Result<(), Refusal> {
        if let Some(fixed) = self.reservation(mac) {
            return if fixed == ip { Ok(()) } else { Err(Refusal::HasReservation) };
        }
        if self.reserved_ips.contains_key(&ip) {
            return Err(Refusal::Reserved);
        }
        if !self.range.contains(ip) {
            return Err(Refusal::NotOurs);
        }
        match self.leases.get(&ip) {
            Some(lease)
                if (lease.client_id != client_id || lease.state == LeaseState::Declined)
                    && lease.is_bound(now) =>
            {
                Err(Refusal::Taken)
            }
            _ => Ok(()),
        }
    }

    /// Whether `ip` is on offer to a client other than `client_id`.
    fn held_for_other(&self, client_id: &[u8], ip: Ipv4Addr) -> bool {
        self.holds.get(&ip).is_some_and(|h| h.client_id != client_id)
    }

    /// Chooses an address to offer and holds it for the client. `None` when the pool is exhausted.
    pub fn offer(
        &mut self,
        client_id: &[u8],
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
        now: UnixTime,
    ) -> Option<Ipv4Addr> {
        self.expire_holds(now);
        if let Some(fixed) = self.reservation(mac) {
            return Some(fixed);
        }
        let ip = self.choose(client_id, mac, requested, now)?;
        self.hold(client_id, ip, now);
        Some(ip)
    }

    fn choose(
        &self,
        client_id: &[u8],
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
        now: UnixTime,
    ) -> Option<Ipv4Addr> {
        let usable = |ip: Ipv4Addr| self.check(client_id, mac, ip, now).is_ok();
        let free = |ip: Ipv4Addr| usable(ip) && !self.held_for_other(client_id, ip);
        // The client's own addresses come first, even if just offered to someone else.
        let own = [self.held_by_client.get(client_id), self.by_client.get(client_id)];
        if let Some(&ip) = own.into_iter().flatten().find(|&&ip| usable(ip)) {
            return Some(ip);
        }
        if let Some(ip) = requested.filter(|&ip| free(ip)) {
            return Some(ip);
        }
        // Reserved addresses lie outside the pool (the config guarantees it) and held ones are
        // not in the fresh set, so the lowest fresh address is always free.
        if let Some(&ip) = self.fresh.first() {
            return Some(Ipv4Addr::from(ip));
        }
        // Records ordered by end time: the first ones ended longest ago.
        let ended = self.by_expiry.iter().take_while(|(expires, _)| *expires <= now);
        if let Some(ip) = ended.map(|&(_, ip)| Ipv4Addr::from(ip)).find(|&ip| free(ip)) {
            return Some(ip);
        }
        // Every free address is on offer: take over the offer made longest ago.
        self.hold_order.iter().filter(|e| self.is_current(e)).map(|&(ip, _, _)| ip).find(|&ip| usable(ip))
    }

    fn hold(&mut self, client_id: &[u8], ip: Ipv4Addr, now: UnixTime) {
        if let Some(previous) = self.held_by_client.get(client_id).copied() {
            if previous != ip {
                self.drop_hold(previous);
            }
        }
        // Taking over another client's offer: that client will get a NAK if it asks for it.
        self.drop_hold(ip);
        let (until, seq) = (now + self.offer_hold, self.next_seq);
        self.next_seq += 1;
        self.holds.insert(ip, Hold { client_id: client_id.to_vec(), seq });
        self.held_by_client.insert(client_id.to_vec(), ip);
        self.hold_order.push_back((ip, seq, until));
        self.fresh.remove(&u32::from(ip));
        // Superseded entries are skipped when met; compact when they dominate.
        if self.hold_order.len() > 2 * self.holds.len() + 64 {
            let order = std::mem::take(&mut self.hold_order);
            self.hold_order = order.into_iter().filter(|e| self.is_current(e)).collect();
        }
    }

    /// Whether a `hold_order` entry is still the hold of its address.
    fn is_current(&self, &(ip, seq, _): &(Ipv4Addr, u64, UnixTime)) -> bool {
        self.holds.get(&ip).is_some_and(|h| h.seq == seq)
    }

    /// Forgets the hold on `ip`; a never-leased address goes back to the fresh set.
    pub fn drop_hold(&mut self, ip: Ipv4Addr) {
        if let Some(h) = self.holds.remove(&ip) {
            if self.held_by_client.get(&h.client_id) == Some(&ip) {
                self.held_by_client.remove(&h.client_id);
            }
            if self.range.contains(ip) && !self.leases.contains_key(&ip) {
                self.fresh.insert(u32::from(ip));
            }
        }
    }

    /// Forgets whatever `client` had held for it (it chose another server).
    pub fn drop_client_hold(&mut self, client_id: &[u8]) {
        if let Some(ip) = self.held_by_client.get(client_id).copied() {
            self.drop_hold(ip);
        }
    }

    fn expire_holds(&mut self, now: UnixTime) {
        while let Some(&entry @ (ip, _, until)) = self.hold_order.front() {
            if until > now {
                break;
            }
            self.hold_order.pop_front();
            if self.is_current(&entry) {
                self.drop_hold(ip);
            }
        }
    }

    /// The record that binds `ip` to `client` from `now` for a full lease time.
    pub fn bind(
        &self,
        client_id: &[u8],
        mac: MacAddr,
        ip: Ipv4Addr,
        hostname: Option<String>,
        now: UnixTime,
    ) -> Lease {
        Lease {
            ip,
            client_id: client_id.to_vec(),
            mac,
            hostname,
            state: LeaseState::Active,
            starts: now,
            expires: now + self.lease_time + EXPIRY_GRACE,
        }
    }

    /// The record of the address `client` held before moving to `new_ip`, now ended; `None`
    /// when it had no other bound address.
    pub fn superseded(&self, client_id: &[u8], new_ip: Ipv4Addr, now: UnixTime) -> Option<Lease> {
        let old_ip = *self.by_client.get(client_id)?;
        let old = self.leases.get(&old_ip)?;
        (old_ip != new_ip && old.is_bound(now)).then(|| Lease {
            state: LeaseState::Released,
            expires: now,
            ..old.clone()
        })
    }

    /// The record after `client` releases `ip`; `None` unless it holds that address now.
    pub fn release(&self, client_id: &[u8], ip: Ipv4Addr, now: UnixTime) -> Option<Lease> {
        let lease = self.leases.get(&ip)?;
        (lease.client_id == client_id && lease.state == LeaseState::Active && lease.is_bound(now))
            .then(|| Lease { state: LeaseState::Released, expires: now, ..lease.clone() })
    }

    /// The record after `client` declines `ip`: on probation, owned by nobody. `None` unless
    /// the address was offered or leased to that client.
    pub fn decline(&self, client_id: &[u8], mac: MacAddr, ip: Ipv4Addr, now: UnixTime) -> Option<Lease> {
        let leased = self.leases.get(&ip).is_some_and(|l| l.client_id == client_id);
        let held = self.holds.get(&ip).is_some_and(|h| h.client_id == client_id);
        (leased || held).then(|| Lease {
            ip,
            client_id: Vec::new(),
            mac,
            hostname: None,
            state: LeaseState::Declined,
            starts: now,
            expires: now + self.decline_probation,
        })
    }

    /// Leases that ended in `(after, now]`, for logging and, later, DNS clean-up.
    pub fn ended_between(&self, after: UnixTime, now: UnixTime) -> impl Iterator<Item = &Lease> {
        // An empty window (the clock did not move, or went back) must not build a reversed range.
        let window = (now > after).then(|| self.by_expiry.range((after + 1, 0)..=(now, u32::MAX)));
        window
            .into_iter()
            .flatten()
            .filter_map(|(_, ip)| self.leases.get(&Ipv4Addr::from(*ip)))
            .filter(|l| l.state == LeaseState::Active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proximity_config::from_toml_str;

    fn config(extra: &str) -> DhcpConfig {
        let text = format!("[dhcp]\nrange = \"10.20.0.100-10.20.0.103\"\nlease_time = \"100s\"\n{extra}");
        from_toml_str(&text).expect("valid").dhcp
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, n])
    }

    fn id(n: u8) -> Vec<u8> {
        vec![1, 0x52, 0x54, 0, 0, 0, n]
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 20, 0, last)
    }

    /// Offers, then binds like a REQUEST would.
    fn lease(pool: &mut Pool, n: u8, now: UnixTime) -> Option<Ipv4Addr> {
        let ip = pool.offer(&id(n), mac(n), None, now)?;
        pool.check(&id(n), mac(n), ip, now).ok()?;
        let l = pool.bind(&id(n), mac(n), ip, None, now);
        pool.record(l);
        Some(ip)
    }

    #[test]
    fn hands_out_lowest_fresh_then_exhausts() {
        let mut pool = Pool::new(&config(""), vec![]);
        let got: Vec<_> = (1..=4).map(|n| lease(&mut pool, n, 0)).collect();
        assert_eq!(got, vec![Some(ip(100)), Some(ip(101)), Some(ip(102)), Some(ip(103))]);
        assert_eq!(pool.offer(&id(9), mac(9), None, 1), None);
    }

    #[test]
    fn same_offer_twice_and_held_address_not_offered_to_others() {
        let mut pool = Pool::new(&config(""), vec![]);
        let a = pool.offer(&id(1), mac(1), None, 0);
        assert_eq!(pool.offer(&id(1), mac(1), None, 1), a);
        let b = pool.offer(&id(2), mac(2), a, 1);
        assert_ne!(a, b, "an address on offer is not offered to another client");
        // But an offer does not lock it: the first REQUEST wins.
        assert_eq!(pool.check(&id(2), mac(2), ip(100), 1), Ok(()));
    }

    #[test]
    fn when_all_is_on_offer_the_oldest_offer_is_taken_over() {
        let mut pool = Pool::new(&config(""), vec![]);
        let offered: Vec<_> = (1..=4).map(|n| pool.offer(&id(n), mac(n), None, 0)).collect();
        assert_eq!(offered, vec![Some(ip(100)), Some(ip(101)), Some(ip(102)), Some(ip(103))]);
        assert_eq!(pool.offer(&id(5), mac(5), None, 1), Some(ip(100)));
        assert_eq!(pool.offer(&id(6), mac(6), None, 1), Some(ip(101)));
        // Client 1 lost its offer; asking again it gets the oldest offer left.
        assert_eq!(pool.offer(&id(1), mac(1), None, 2), Some(ip(102)));
        // Its REQUEST for the address it was first offered still wins, being the first.
        assert_eq!(pool.check(&id(1), mac(1), ip(100), 2), Ok(()));
    }

    #[test]
    fn returning_client_gets_its_address_after_expiry_and_release() {
        let mut pool = Pool::new(&config(""), vec![]);
        let a = lease(&mut pool, 1, 0);
        let b = lease(&mut pool, 2, 0);
        // Both expire; a newcomer gets a never-used address, not theirs.
        assert_eq!(lease(&mut pool, 3, 500), Some(ip(102)));
        assert_eq!(lease(&mut pool, 1, 500), a);
        let released = pool.release(&id(2), ip(101), 500);
        assert_eq!(released.as_ref().map(|l| l.state), None, "expired lease cannot be released");
        assert_eq!(lease(&mut pool, 2, 501), b);
    }

    #[test]
    fn expired_leases_are_reclaimed_oldest_first() {
        let mut pool = Pool::new(&config(""), vec![]);
        for n in 1..=4 {
            lease(&mut pool, n, u64::from(n));
        }
        assert_eq!(pool.offer(&id(9), mac(9), None, 50), None);
        // Client 1's lease ended first (t=101).
        assert_eq!(pool.offer(&id(9), mac(9), None, 102), Some(ip(100)));
    }

    #[test]
    fn reservations_are_fixed_and_exclusive() {
        let extra = "[[dhcp.reservations]]\nmac = \"52:54:00:00:00:07\"\nip = \"10.20.0.10\"\n";
        let mut pool = Pool::new(&config(extra), vec![]);
        assert_eq!(pool.offer(&id(7), mac(7), Some(ip(100)), 0), Some(ip(10)));
        assert_eq!(pool.check(&id(7), mac(7), ip(100), 0), Err(Refusal::HasReservation));
        assert_eq!(pool.check(&id(1), mac(1), ip(10), 0), Err(Refusal::Reserved));
        assert_eq!(pool.check(&id(1), mac(1), ip(50), 0), Err(Refusal::NotOurs));
    }

    #[test]
    fn reservations_can_change_while_running() {
        let mut pool = Pool::new(&config(""), vec![]);
        assert_eq!(pool.offer(&id(7), mac(7), None, 0), Some(ip(100)));
        let added = proximity_config::Reservation { mac: mac(7), ip: ip(10), name: None };
        pool.set_reservations(std::slice::from_ref(&added));
        assert_eq!(pool.offer(&id(7), mac(7), None, 1), Some(ip(10)));
        assert_eq!(pool.check(&id(1), mac(1), ip(10), 1), Err(Refusal::Reserved));
        pool.set_reservations(&[]);
        assert_eq!(
            pool.check(&id(1), mac(1), ip(10), 1),
            Err(Refusal::NotOurs),
            "back to a plain reserved-range address"
        );
    }

    #[test]
    fn declined_address_sits_out_its_probation() {
        let mut pool = Pool::new(&config("decline_probation = \"60s\""), vec![]);
        let a = pool.offer(&id(1), mac(1), None, 0).expect("offer");
        let declined = pool.decline(&id(1), mac(1), a, 0).expect("was offered to it");
        pool.record(declined);
        assert_ne!(pool.offer(&id(1), mac(1), None, 1), Some(a));
        assert_eq!(pool.check(&id(2), mac(2), a, 59), Err(Refusal::Taken));
        assert_eq!(pool.check(&id(2), mac(2), a, 60), Ok(()));
        assert!(pool.decline(&id(3), mac(3), ip(103), 0).is_none(), "a stranger cannot decline");
    }

    #[test]
    fn discover_flood_cannot_lock_the_pool() {
        let mut pool = Pool::new(&config(""), vec![]);
        for n in 100..=255 {
            assert!(pool.offer(&id(n), mac(n), None, 0).is_some());
        }
        // Every well-behaved client still gets an offer and can bind it.
        for n in 1..=4 {
            assert!(lease(&mut pool, n, 0).is_some(), "client {n}");
        }
        assert!(pool.holds.len() <= 4);
        assert!(pool.hold_order.len() <= 2 * 4 + 64 + 1);
    }

    #[test]
    fn moving_client_ends_its_old_lease() {
        let mut pool = Pool::new(&config(""), vec![]);
        let a = lease(&mut pool, 1, 0).expect("lease");
        let old = pool.superseded(&id(1), ip(103), 10).expect("had a bound lease");
        assert_eq!((old.ip, old.state, old.expires), (a, LeaseState::Released, 10));
    }

    #[test]
    fn ended_leases_are_listed_once_per_window() {
        let mut pool = Pool::new(&config(""), vec![]);
        lease(&mut pool, 1, 0);
        // Lease time 100 s, plus the grace second.
        assert_eq!(pool.ended_between(0, 100).count(), 0);
        assert_eq!(pool.ended_between(100, 101).count(), 1);
        assert_eq!(pool.ended_between(101, 101).count(), 0);
        assert_eq!(pool.ended_between(200, 150).count(), 0, "clock went back");
    }

    #[test]
    fn rebuilt_pool_respects_records() {
        let mut pool = Pool::new(&config(""), vec![]);
        lease(&mut pool, 1, 0);
        let records: Vec<Lease> = pool.leases.values().cloned().collect();
        let mut again = Pool::new(&config(""), records);
        assert_eq!(again.check(&id(2), mac(2), ip(100), 5), Err(Refusal::Taken));
        assert_eq!(again.offer(&id(1), mac(1), None, 5), Some(ip(100)));
        assert_eq!(again.offer(&id(2), mac(2), None, 5), Some(ip(101)));
    }
}
