//! Host names, derived from state by the name policy, published as immutable snapshots.
//!
//! - [`table`]: [`NameTable`], one consistent version of every name and its address, and the
//!   policy that builds it from reservations and leases.
//! - [`Names`]: the current table, swapped atomically so readers (DNS) never lock and always
//!   see one whole version.
//! - [`directory`]: [`Directory`], the inputs (reservations, leases, apps) and the one place
//!   that rebuilds and publishes the table, and tells subscribers (the proxy's routes).
//!
//! Name policy (DESIGN.md): names from reservations and from the admin API (apps) own their name;
//! a DHCP client's host name only claims a free name, and the first claimant keeps it while its
//! lease lasts; names are case-insensitive labels under the configured domain.

pub mod directory;
pub mod table;

use std::sync::Arc;

use arc_swap::ArcSwap;

pub use directory::{Directory, LeaseSource, Subscriber};
pub use table::{AppName, HostName, NameSource, NameTable};

/// The published name table.
#[derive(Debug)]
pub struct Names {
    current: ArcSwap<NameTable>,
}

impl Names {
    pub fn new(table: NameTable) -> Self {
        Names { current: ArcSwap::from_pointee(table) }
    }

    /// The table in force now: cheap, lock-free, consistent.
    pub fn current(&self) -> Arc<NameTable> {
        self.current.load_full()
    }

    /// The table in force now, for the length of one lookup: no reference count is touched,
    /// so concurrent readers do not contend on a shared counter (the DNS hot path).
    pub fn load(&self) -> arc_swap::Guard<Arc<NameTable>> {
        self.current.load()
    }

    /// Replaces the table; readers see the new one from their next lookup on.
    pub fn publish(&self, table: NameTable) {
        self.current.store(Arc::new(table));
    }
}
