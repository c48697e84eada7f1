//! The Proximity network lab: end-to-end tests run the real `proximity-appliance` in a network
//! namespace (or as PID 1 of an unprivileged LXC container) on a bridge, with real DHCP clients
//! (dhclient, udhcpc, dhcpcd) in other namespaces, and optionally an outside namespace on its WAN
//! side.
//!
//! A test builds a [`Lab`], starts the appliance with a config derived from [`Lab::config`], and
//! drives clients from [`Lab::client`]:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use proximity_tests::{GATEWAY, Lab};
//! let lab = Lab::builder().clients(1).build()?;
//! lab.start_appliance(&lab.config())?;
//! let lease = lab.client(0).dhclient().obtain()?;
//! assert_eq!(lease.routers, [GATEWAY]);
//! lab.client(0).ping(GATEWAY)?;
//! # Ok(()) }
//! ```
//!
//! Needs root and iproute2; without them building a lab fails (it never skips).
//!
//! # Layout
//! - [`topology`]: [`Lab`] (switch namespace with a bridge, appliance namespace, client
//!   namespaces) and [`Host`], one machine of the lab; teardown on drop.
//! - [`wan`]: the WAN side, `Lab::builder().wan(true)`: an outside namespace (the user's
//!   management network, where upstream servers run) on the appliance's second interface.
//! - [`appliance`]: the real binary: find, start, wait for `listening for dhcp`, stop, kill -9,
//!   restart, log.
//! - [`lxc`]: the appliance as PID 1 of an unprivileged LXC container on the lab's bridges, as
//!   Proxmox runs it (`Lab::builder().appliance_netns(false)`): the static binary, the rootfs,
//!   start, stop, teardown.
//! - [`clients`]: dhclient, udhcpc and dhcpcd wrappers, their recording scripts, and the
//!   [`Lease`] a client saw.
//! - [`dhcp_server`]: [`dhcp_server::DhcpServer`], dnsmasq as the WAN's DHCP server, for the
//!   appliance's own DHCP client.
//! - [`dns`]: `dig` and `kdig` run in a host's namespace and their replies read; [`dns::Dnsmasq`],
//!   a real DNS server on a lab host (the upstream the appliance forwards to).
//! - [`netns`]: network namespaces (create, run inside, delete, sweep stale ones).
//! - [`pve`]: the Proxmox VE API schema and its validator ([`pve::schema::Schema`]), for the
//!   Proxmox API test double.
//! - [`process`]: running and signalling processes, the [`process::Reaper`] for detached daemons.
//! - [`names`]: unique namespace and interface names per lab.
//! - [`logs`]: the lab's log files, shown when a test fails.
//! - [`wait`]: polling with deadlines, the only way the lab waits.
//! - [`http`]: `curl` run in a host's namespace and its answer read; [`http::Admin`], the
//!   admin API as a user drives it with curl; [`http::Backend`], the `lab-backend` app server.
//! - [`stream`]: the byte pattern and digest of the large bodies streamed through the proxy.
//! - [`pve`]: Proxmox VE as the lab plays it: the API schema, `pve-sim` (the Proxmox API test
//!   double) and [`pve::node::Node`], a namespace playing a Proxmox node with `pve-sim` inside.
//! - [`websocket`]: the handshake key and frames of RFC 6455, for `lab-backend` and `lab-ws-client`.

pub mod appliance;
pub mod clients;
pub mod dhcp_server;
pub mod dns;
pub mod http;
pub mod logs;
pub mod lxc;
pub mod names;
pub mod netns;
pub mod process;
pub mod pve;
pub mod stream;
pub mod topology;
pub mod wait;
pub mod wan;
pub mod websocket;

pub use appliance::Appliance;
pub use clients::{Dhclient, Dhcpcd, Event, Lease, Udhcpc, UdhcpcDaemon};
pub use topology::{GATEWAY, Host, LAN_PREFIX, Lab, LabBuilder};
pub use wan::{WAN_ADDRESS, WAN_PREFIX, WAN_UPSTREAM};
