//! The DHCPv4 server of the LAN (RFC 2131/2132), on dhcproto.
//!
//! - [`engine`]: the protocol decisions, pure and unit-tested.
//! - [`pool`]: which address goes to whom; holds on offers; reservations; probation.
//! - [`reply`]: reply headers and options (parameter request list, maximum message size).
//! - [`server`]: the socket loop; a lease is committed to the store before its ACK is sent.
//! - [`socket`]: binding to the LAN interface only.
//! - [`neighbours`]: unicast to clients without an address (a neighbour entry first).
//! - [`wire`]: decoding hostile datagrams without panicking.
//! - [`metrics`]: counters of messages, replies and drops.

pub mod engine;
pub mod metrics;
pub mod neighbours;
pub mod pool;
pub mod reply;
pub mod server;
pub mod socket;
pub mod wire;

use std::sync::Arc;

use proximity_config::Config;

pub use engine::{Engine, SERVER_PORT};
pub use metrics::Metrics;
pub use pool::Pool;
pub use reply::NetworkOptions;
pub use server::{NameFeed, Server};

use crate::shutdown::Stop;
use crate::state::{Lease, Store};
use neighbours::Neighbours;

/// A server for `config`, starting from the lease records kept in the store.
pub fn server(
    config: &Config,
    records: Vec<Lease>,
    store: Store,
    metrics: Arc<Metrics>,
    names: NameFeed,
    stop: &Stop,
) -> Server {
    let net = NetworkOptions::new(config.lan.gateway(), config.lan.address.trunc(), &config.dns.domain);
    let pool = Pool::new(&config.dhcp, records);
    let neighbours = match Neighbours::open(&config.lan.interface, stop.token().clone()) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "no netlink: replies to clients without an address will be broadcast");
            None
        }
    };
    Server::new(Engine::new(net, pool), store, metrics, neighbours, names)
}
