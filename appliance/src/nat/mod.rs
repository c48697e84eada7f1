//! NAT and the firewall: the appliance as the LAN's router, with nftables. It owns one table,
//! `inet proximity`, and never lists, changes or deletes any other.
//!
//! # Layout
//! - [`plan`]: what the ruleset is built from (interfaces, LAN, WAN address, served ports per
//!   side, forwards), derived from the config.
//! - [`ruleset`]: the pure builder, a [`Plan`] to nftables JSON objects; `expr`: the
//!   expressions it is made of, in the form nft lists them.
//! - `apply`: one atomic `nft -j -f` transaction replacing our table whole, then the read-back
//!   check; [`readback`]: the listing without handles and the comparison; [`render`]: nft's
//!   syntax for logs, tests and differences.
//! - [`nft`]: running the `nft` binary; `error`: [`NftError`] and [`NatError`], each telling
//!   the operator what to do (install nftables, grant CAP_NET_ADMIN, load nf_tables).
//! - `sysctl`: `net.ipv4.ip_forward` in the appliance's namespace.
//! - [`forwards`]: the port forwards in force (config and admin API), which NAT follows.
//! - [`service`]: the task that keeps the ruleset in force, re-applies on change and retries
//!   with backoff; `/v1/health` shows its state as `nat`.

mod apply;
mod error;
mod expr;
pub mod forwards;
pub mod nft;
pub mod plan;
pub mod readback;
pub mod render;
pub mod ruleset;
pub mod service;
mod sysctl;

#[cfg(test)]
mod ruleset_tests;

pub use error::{NatError, NftError};
pub use forwards::Forwards;
pub use plan::Plan;
pub use ruleset::{Ruleset, build};
pub use service::{Nat, serve};
