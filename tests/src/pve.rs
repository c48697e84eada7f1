//! The Proxmox VE API as the provisioner's tests meet it: the official API schema and its
//! validator, `pve-sim` (the Proxmox API test double, never Proxmox itself), and the
//! [`node::Node`] harness that runs it in a namespace standing for a Proxmox node.
//!
//! - [`schema`]: the official API schema and a validator that checks requests as Proxmox does.
//! - [`sim`]: the test double's library: HTTPS server, auth, routes, tasks, storage, network, LXC.
//! - [`node`]: a namespace with `vmbr0`, a DHCP server on it and `pve-sim` inside.
//! - [`proximity`]: the real `proximity` binary run on that node as a user runs it.

pub mod node;
pub mod proximity;
pub mod schema;
pub mod sim;
