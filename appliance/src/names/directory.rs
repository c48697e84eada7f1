//! The directory: the inputs every name comes from (the config's reservations, the bound
//! leases the DHCP server holds, the apps the admin API registered), and the one place that
//! rebuilds the [`NameTable`] from them and publishes it, then tells whoever derives something
//! from names (the proxy's route table) in the same step.
//!
//! The DHCP server and the admin API each push their part after it is durable; a rebuild takes
//! the other parts as they are, so neither needs the other running.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use proximity_config::Reservation;
use proximity_config::api::{ApiReservation, App, Backend};

use super::{NameTable, Names};
use crate::state::{Change, Lease, LeaseState, UnixTime};

/// Something derived from each published table (the proxy's route table).
pub type Subscriber = Box<dyn Fn(&NameTable) + Send + Sync>;

/// Where the leases are kept (the DHCP server): a snapshot of every record with its generation.
pub type LeaseSource = Arc<dyn Fn() -> (u64, Vec<Lease>) + Send + Sync>;

/// The inputs of the names, and their published table.
pub struct Directory {
    names: Arc<Names>,
    /// The config file's reservations: fixed for the life of the process.
    configured: Vec<Reservation>,
    inputs: Mutex<Inputs>,
    subscribers: Vec<Subscriber>,
    /// Set once the DHCP server exists; `None` without DHCP.
    lease_source: OnceLock<LeaseSource>,
}

#[derive(Debug, Default)]
struct Inputs {
    /// Leases that are active (bound or not: binding is judged at each rebuild's `now`).
    leases: Vec<Lease>,
    /// The generation of the pool the leases were taken from; an older snapshot is ignored.
    generation: u64,
    /// In name order, as the store gives them.
    apps: Vec<App>,
    /// Reservations made through the admin API, in MAC order.
    reservations: Vec<ApiReservation>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("configured", &self.configured.len())
            .field("inputs", &self.inputs)
            .field("subscribers", &self.subscribers.len())
            .finish()
    }
}

impl Directory {
    /// A directory starting from the config's reservations and what the store holds, publishing
    /// into `names`.
    pub fn new(
        names: Arc<Names>,
        configured: Vec<Reservation>,
        leases: &[Lease],
        apps: Vec<App>,
        reservations: Vec<ApiReservation>,
    ) -> Self {
        let leases = active(leases.iter());
        let inputs = Inputs { leases, generation: 0, apps, reservations };
        Directory {
            names,
            configured,
            inputs: Mutex::new(inputs),
            subscribers: Vec::new(),
            lease_source: OnceLock::new(),
        }
    }

    /// Adds a subscriber (before the directory is shared); it is called at once with the
    /// current table, then after every rebuild that changed it.
    pub fn subscribe(&mut self, subscriber: Subscriber) {
        subscriber(&self.names.current());
        self.subscribers.push(subscriber);
    }

    pub fn names(&self) -> &Arc<Names> {
        &self.names
    }

    /// Every reservation in force: the config's, then the admin API's.
    pub fn reservations(&self) -> Vec<Reservation> {
        let inputs = self.lock();
        self.all_reservations(&inputs)
    }

    /// The config file's reservations.
    pub fn configured_reservations(&self) -> &[Reservation] {
        &self.configured
    }

    /// The reservations made through the admin API, in MAC order.
    pub fn api_reservations(&self) -> Vec<ApiReservation> {
        self.lock().reservations.clone()
    }

    /// Replaces the admin API's reservations (committed to the store by the caller) and rebuilds.
    pub fn set_api_reservations(&self, mut reservations: Vec<ApiReservation>, now: UnixTime) {
        reservations.sort_by_key(|r| r.mac);
        let fresh = self.fresh_leases();
        let mut inputs = self.lock();
        Self::take_leases(&mut inputs, fresh);
        inputs.reservations = reservations;
        self.rebuild(&inputs, now);
    }

    fn all_reservations(&self, inputs: &Inputs) -> Vec<Reservation> {
        self.configured
            .iter()
            .cloned()
            .chain(inputs.reservations.iter().cloned().map(Reservation::from))
            .collect()
    }

    /// The registered apps, in name order.
    pub fn apps(&self) -> Vec<App> {
        self.lock().apps.clone()
    }

    /// Where to read the leases from when apps or reservations change (the DHCP server); set
    /// once, when the DHCP server starts.
    pub fn set_lease_source(&self, source: LeaseSource) {
        let _ = self.lease_source.set(source);
    }

    /// Replaces the leases (the DHCP server's records at `generation`: only active ones are
    /// kept) and rebuilds. A snapshot older than the one in hand is ignored.
    pub fn set_leases<'a>(
        &self,
        leases: impl IntoIterator<Item = &'a Lease>,
        generation: u64,
        now: UnixTime,
    ) {
        let mut inputs = self.lock();
        if generation < inputs.generation {
            return;
        }
        inputs.leases = active(leases.into_iter());
        inputs.generation = generation;
        self.rebuild(&inputs, now);
    }

    /// Takes the leases from the source, if there is one and it is newer. Read before the
    /// inputs are locked: the source takes the DHCP engine's lock, which the DHCP server holds
    /// while it calls [`Directory::set_leases`].
    fn fresh_leases(&self) -> Option<(u64, Vec<Lease>)> {
        self.lease_source.get().map(|source| source())
    }

    fn take_leases(inputs: &mut Inputs, fresh: Option<(u64, Vec<Lease>)>) {
        if let Some((generation, leases)) = fresh
            && generation >= inputs.generation
        {
            inputs.leases = active(leases.iter());
            inputs.generation = generation;
        }
    }

    /// Replaces the apps (committed to the store by the caller) and rebuilds.
    pub fn set_apps(&self, mut apps: Vec<App>, now: UnixTime) {
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        let fresh = self.fresh_leases();
        let mut inputs = self.lock();
        Self::take_leases(&mut inputs, fresh);
        inputs.apps = apps;
        self.rebuild(&inputs, now);
    }

    /// Rebuilds with the inputs as they are (leases may have ended since the last rebuild).
    pub fn refresh(&self, now: UnixTime) {
        let inputs = self.lock();
        self.rebuild(&inputs, now);
    }

    /// Whether committed lease changes can change a name or an app's backend: the lease carries
    /// a host name, or its address has a name now, or an app follows its MAC.
    pub fn touches(&self, changes: &[Change]) -> bool {
        let table = self.names.load();
        let follows_mac = |mac| table.apps().any(|a| a.app.backend == Backend::Mac(mac));
        let backs_app = |ip| table.apps().any(|a| a.backend == Some(ip));
        changes.iter().any(|c| match c {
            Change::PutLease(l) => {
                l.hostname.is_some() || table.name_of(l.ip).is_some() || follows_mac(l.mac) || backs_app(l.ip)
            }
            Change::DeleteLease(ip) => table.name_of(*ip).is_some() || backs_app(*ip),
            _ => true,
        })
    }

    /// Builds the next table; publishes it and tells the subscribers when it changed. Called
    /// with the inputs locked, so rebuilds (and what subscribers publish) never interleave.
    fn rebuild(&self, inputs: &Inputs, now: UnixTime) {
        let current = self.names.current();
        let next = current.build(&self.all_reservations(inputs), &inputs.leases, &inputs.apps, now);
        if next.serial() == current.serial() {
            return;
        }
        for subscriber in &self.subscribers {
            subscriber(&next);
        }
        self.names.publish(next);
    }

    fn lock(&self) -> MutexGuard<'_, Inputs> {
        self.inputs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn active<'a>(leases: impl Iterator<Item = &'a Lease>) -> Vec<Lease> {
    leases.filter(|l| l.state == LeaseState::Active).cloned().collect()
}
