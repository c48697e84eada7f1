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
//! query at INFO, has no cap on TCP connections, and spawns a task per datagram. Ours serves UDP
//! from one thread per core blocked in `recvmmsg` on the shared socket, answering local and
//! cached names in place and replying to a whole batch with one `sendmmsg` (only forwarding
//! goes to the async runtime); it caps TCP connections and in-flight forwards, and counts what
//! it drops. Measured against dnsmasq in `bench/dns.sh`: that design took the CPU per query from
//! about 1.1x dnsmasq's (a tokio task per socket) to about 0.8x.

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
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

pub use handler::{Handler, SetupError, Step};
pub use metrics::Metrics;
pub use view::{View, Views};
pub use wire::Transport;

use crate::accept::join_loops;
use crate::shutdown::Stop;

/// `socket` as the UDP threads use it: blocking, with timeouts so they can see a stop and never
/// wait long for room to send.
fn blocking(socket: UdpSocket) -> io::Result<std::net::UdpSocket> {
    let socket = socket.into_std()?;
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(listener::UDP_STOP_POLL))?;
    socket.set_write_timeout(Some(listener::UDP_SEND_TIMEOUT))?;
    Ok(socket)
}

/// Most receive threads per UDP socket; they share the socket, so queries are answered on
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
    let forwards = TaskTracker::new();
    let mut loops: JoinSet<io::Result<()>> = JoinSet::new();
    for socket in udp {
        let socket = Arc::new(blocking(socket)?);
        for n in 0..workers {
            let (done, finished) = oneshot::channel();
            let (socket, handler, token) = (socket.clone(), handler.clone(), cancel.clone());
            let (runtime, forwards) = (Handle::current(), forwards.clone());
            let spawned = std::thread::Builder::new().name(format!("dns-udp-{n}")).spawn(move || {
                let _ = done.send(listener::udp(socket, handler, token, runtime, forwards));
            });
            if let Err(e) = spawned {
                // The threads already running stop with the token.
                cancel.cancel();
                return Err(e);
            }
            loops.spawn(async move {
                finished.await.unwrap_or_else(|_| Err(io::Error::other("a dns/udp thread panicked")))
            });
        }
    }
    for tcp in tcp {
        loops.spawn(listener::tcp(tcp, handler.clone(), cancel.clone(), stop.clone()));
    }
    let result = join_loops(loops, &cancel, "dns").await;
    forwards.close();
    if tokio::time::timeout(stop.drain_limit(), forwards.wait()).await.is_err() {
        debug!(abandoned = forwards.len(), "stopping with forwarded dns queries in flight");
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
