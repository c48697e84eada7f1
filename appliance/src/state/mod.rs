//! The one durable store of the appliance: every lease and every app is committed here,
//! fsync'd, before anything is acknowledged or published.
//!
//! # Layout
//! - [`lease`]: the lease record, `LeaseState`, `UnixTime`.
//! - `store`: [`Store`], the cloneable handle: `open`, `leases`, `apps`, `reservations`,
//!   `forwards`, `commit`, `submit`,
//!   `close`; [`Change`].
//! - `writer`: the single writer thread that group-commits queued changes (one transaction and
//!   one fsync per batch) and reopens the file after a failed commit.
//! - `file`: creating the file atomically and opening it only when intact.
//! - `codec`: the tables, the schema version and its migrations, and the record encodings (JSON).
//! - `error`: [`StoreError`].
//!
//! The file is `<state dir>/proximity.redb` (redb). Tables: `meta` (`&str -> u64`, holds
//! `schema_version`, now 3), `leases` (`u32` address -> JSON of [`Lease`]), `apps` (name ->
//! JSON of `proximity_config::api::App`), `reservations` (MAC -> JSON of
//! `proximity_config::api::ApiReservation`, those made through the admin API) and `forwards`
//! (`tcp/2222` -> JSON of `proximity_config::PortForward`, those added through the admin API).
//! A version-1 or -2 file is upgraded on open.

mod codec;
mod error;
mod file;
pub mod lease;
mod store;
mod writer;

#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use lease::{Lease, LeaseState, UnixTime};
pub use store::{Change, Store};
