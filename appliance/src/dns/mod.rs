//! The DNS server: authoritative for `<domain>` and the LAN's reverse zones from the live name
//! table, split horizon by client address, forwarding for LAN clients (hickory-proto,
//! hickory-server's request/response types, hickory-resolver for the upstreams).
//!
//! - [`handler`]: the protocol decisions for one query, bytes in, bytes out.
//! - [`zone`]: our zones' answers (SOA, NS, A, PTR; NXDOMAIN vs NODATA), read from the
//!   [`crate::names::Names`] table in force at each query.
//! - [`view`]: split horizon, LAN or WAN by source address.
//! - [`forward`]: upstreams in order, UDP then TCP on truncation, cache, timeouts.
//! - [`wire`]: EDNS0, reply size limits, truncation.
//! - [`listener`]: the UDP and TCP loops and their limits.
//! - [`socket`]: binding the sockets (called by `run`); UDP replies from the address asked.
//! - [`metrics`]: counters of replies by view and code, drops, forwarding.
//!
//! The socket loops are ours rather than `hickory_server::Server`'s: that server logs every
//! query at INFO, has no cap on TCP connections, and spawns a task per datagram; ours answers
//! local names inline, caps connections and in-flight forwards, and counts what it drops.

pub mod forward;
pub mod handler;
pub mod listener;
pub mod metrics;
pub mod socket;
pub mod view;
pub mod wire;
pub mod zone;

use std::io;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tracing::{error, info};

pub use handler::{Handler, SetupError, Step};
pub use metrics::Metrics;
pub use view::{View, Views};
pub use wire::Transport;

use crate::shutdown::Stop;

/// Most receive workers per UDP socket; they share the socket, so queries are answered on
/// every core.
const MAX_UDP_WORKERS: usize = 4;

/// Serves DNS on the bound sockets until `stop` fires, then lets forwarded queries and TCP
/// clients finish within the stop's drain limit. Returns an error only when a socket dies; the
/// others are then stopped too.
pub async fn serve(
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    handler: Arc<Handler>,
    stop: Stop,
) -> io::Result<()> {
    // Cancelled by the stop, or by us when a socket dies.
    let cancel = stop.token().child_token();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_UDP_WORKERS);
    let mut loops: JoinSet<io::Result<()>> = JoinSet::new();
    for socket in udp {
        let socket = Arc::new(socket);
        for _ in 0..workers {
            loops.spawn(listener::udp(socket.clone(), handler.clone(), cancel.clone(), stop.clone()));
        }
    }
    for tcp in tcp {
        loops.spawn(listener::tcp(tcp, handler.clone(), cancel.clone(), stop.clone()));
    }
    let mut result = Ok(());
    while let Some(done) = loops.join_next().await {
        let failure = match done {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) => io::Error::other(format!("a dns socket task panicked: {e}")),
        };
        error!(error = %failure, "dns socket failed; stopping dns");
        cancel.cancel();
        if result.is_ok() {
            result = Err(failure);
        }
    }
    let counters: Vec<String> = handler
        .metrics()
        .snapshot()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    info!(counters = %counters.join(" "), "dns stopped");
    result
}
