//! The Proximity appliance: the network services of a Proxmox host's app LAN in one daemon.
//!
//! # Layout
//! - [`state`]: the one durable store (redb); every lease is committed before it is acknowledged.
//! - [`dhcp`]: the DHCPv4 server on the LAN interface.
//! - [`names`]: host names derived from reservations and leases by the name policy.
//! - [`dns`]: the DNS server: our zones from the names, split horizon, forwarding for the LAN.
//! - [`accept`]: the accept loop the TCP servers share (connection cap, errors a socket survives).
//! - [`apps`]: apps at run time: the proxy's route table derived from the names, and which
//!   names get certificates.
//! - [`proxy`]: the reverse proxy to the apps, by Host, over HTTP/1.1 and HTTP/2, with TLS.
//! - [`tls`]: the local certificate authority and certificates issued by name.
//! - [`nat`]: the LAN's router: masquerade, port forwards and the firewall, as one nftables
//!   table (`inet proximity`) kept in force.
//! - [`api`]: the admin API (apps, leases, reservations, DNS records, health, metrics) over HTTP.
//! - [`net`]: interfaces over rtnetlink: the LAN address at start, the WAN address (static,
//!   followed, or from our own DHCP client) published to what depends on it.
//! - [`shutdown`]: signals (graceful vs fast stop) and, as PID 1, reaping children.
//! - `reaper`: PID 1's collection of orphans, which leaves the children we wait for (`nft`) alone.
//! - [`run`]: binds every socket, starts the services and waits for them to stop.

pub mod accept;
pub mod api;
pub mod apps;
pub mod dhcp;
pub mod dns;
mod errors;
pub mod names;
pub mod nat;
pub mod net;
pub mod proxy;
mod reaper;
pub mod run;
pub mod shutdown;
pub mod state;
pub mod tls;

pub use run::run;
