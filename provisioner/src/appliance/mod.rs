//! The deployed appliance as the provisioner sees it: the config baked into its template, its
//! admin API (CA proof, pinned trust, apps, leases, health) and the DNS probe.

pub mod admin;
pub mod config;
pub mod dns_probe;
pub mod proof;
