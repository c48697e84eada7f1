//! The Proximity appliance: the network services of a Proxmox host's app LAN in one daemon.
//!
//! # Layout
//! - [`state`]: the one durable store (redb); every lease is committed before it is acknowledged.
//! - [`dhcp`]: the DHCPv4 server on the LAN interface.
//! - [`names`]: host names derived from reservations and leases by the name policy.
//! - [`dns`]: the DNS server: our zones from the names, split horizon, forwarding for the LAN.
//! - [`shutdown`]: signals (graceful vs fast stop) and, as PID 1, reaping children.
//! - [`run`]: binds every socket, starts the services and waits for them to stop.

pub mod dhcp;
pub mod dns;
pub mod names;
pub mod run;
pub mod shutdown;
pub mod state;

pub use run::run;
