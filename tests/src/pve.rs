//! Proxmox VE as the lab plays it: the API schema the requests are checked against, `pve-sim`
//! (the Proxmox API test double, never Proxmox itself), and the [`node::Node`] harness that runs
//! it in a namespace standing for a Proxmox node.
//!
//! - [`schema`]: the official API schema and the check of one request against it.
//! - [`sim`]: the test double's library: HTTPS server, auth, routes, tasks, storage, network, LXC.
//! - [`node`]: a namespace with `vmbr0`, a DHCP server on it and `pve-sim` inside.

pub mod node;
pub mod schema;
pub mod sim;
