//! End-to-end tests of the appliance in the network lab: the real `proximity-appliance` in a
//! network namespace, real dhclient, udhcpc and dhcpcd in others (root needed; see
//! `proximity_tests`). Every lab test compiles into this one binary.

mod api;
mod apps;
mod crash;
mod delivery;
mod deploy;
mod dhcp_clients;
mod dns;
mod expiry;
mod hostile;
mod hotplug;
mod init;
mod isolation;
mod lan;
mod load;
mod lxc;
mod nat;
mod pages;
mod pve_api;
mod pve_sim;
mod release;
mod renew;
mod reservations;
mod restart;
mod startup;
mod support;
mod validate;
mod wan;
mod web;
