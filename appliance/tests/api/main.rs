//! In-process tests of the admin API: a real store in a temporary directory, a real directory of
//! names, the API served by `api::serve` on 127.0.0.1:0, clients speaking HTTP/1.1 and HTTP/2
//! (over TLS from the local CA).
//!
//! - [`auth`]: the bearer token (none, wrong, right), the open endpoints, the token file.
//! - [`apps`]: create, read, replace, delete; conflicts; publication to the names; restart.
//! - [`input`]: every kind of bad input, each answered with its code and naming its field.
//! - [`failure`]: a store that fails leaves everything as it was and says nothing of why.
//! - [`reservations`]: made through the API: stored, named, given to DHCP; conflicts refused.
//! - [`forwards`]: port forwards: stored, published to NAT; every bad input named; conflicts
//!   with other forwards and with the appliance's own ports refused; the config's left alone.
//! - [`views`]: health, leases, reservations, DNS records, metrics, 404/405.
//! - [`server`]: TLS with HTTP/2, concurrent mutations, graceful stop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod apps;
mod auth;
mod failure;
mod forwards;
mod input;
mod reservations;
mod server;
mod support;
mod views;
