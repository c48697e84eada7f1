//! The Proxmox VE API as the provisioner's tests meet it: [`schema`], the official API schema
//! and a validator that checks requests as Proxmox does (used by the test double `pve-sim`).

pub mod schema;
