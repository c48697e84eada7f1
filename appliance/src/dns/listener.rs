//! The socket loops: UDP receive/answer workers and the TCP accept loop with its per-connection
//! handlers. Limits live here: connections, idle time, message size. A bad packet or client is
//! logged and forgotten; only a dead socket ends a loop.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::sys::socket::MsgFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::handler::{Handler, Step};
use super::metrics::bump;
use super::socket::{self, Local, Outgoing, Received};
use super::wire::Transport;
use crate::accept::{accept_loop, transient};
use crate::shutdown::Stop;

/// How often a UDP thread blocked in `recvmsg` wakes to see whether the server is stopping.
pub const UDP_STOP_POLL: Duration = Duration::from_millis(100);
/// Longest a UDP thread waits for room in the socket's send buffer before dropping a reply.
pub const UDP_SEND_TIMEOUT: Duration = Duration::from_millis(100);
/// Most datagrams taken from the socket in one receive call (and answered in one send call).
pub const UDP_BATCH: usize = 16;
/// Largest UDP query read. Queries are small (a name is at most 255 bytes); a longer datagram
/// is cut here and then fails to parse.
pub const MAX_UDP_QUERY: usize = 4096;
/// Open TCP connections at once. Past this, new connections wait in the listen backlog.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// A TCP client that sends nothing (or stalls mid-message, or does not read its reply) for
/// this long is disconnected (RFC 7766 asks for seconds, not minutes).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Receives on `socket` and answers until `cancel` fires. Runs on a thread of its own, blocked in
/// `recvmmsg` while there is nothing to read (the socket's receive timeout, [`UDP_STOP_POLL`],
/// bounds how long a stop waits): no event loop between the kernel and the answer, and under
/// load one receive and one send call for up to [`UDP_BATCH`] queries. Queries for our zones
/// and cached names are answered right here; a query that must be forwarded becomes a task on
/// `runtime`, tracked by `forwards`, which sends its reply itself.
pub fn udp(
    socket: Arc<UdpSocket>,
    handler: Arc<Handler>,
    cancel: CancellationToken,
    runtime: Handle,
    forwards: TaskTracker,
) -> io::Result<()> {
    let mut bufs = vec![vec![0u8; MAX_UDP_QUERY]; UDP_BATCH];
    let mut received = Vec::with_capacity(UDP_BATCH);
    let mut replies = Vec::with_capacity(UDP_BATCH);
    while !cancel.is_cancelled() {
        match socket::recv_batch(socket.as_fd(), &mut bufs, &mut received) {
            Ok(()) => {}
            // The receive timeout: time to look at `cancel`.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if transient(&e) => {
                debug!(error = %e, "dns/udp receive");
                continue;
            }
            Err(e) => return Err(e),
        }
        for &(i, Received { len, from, local }) in &received {
            let message = bufs.get(i).and_then(|buf| buf.get(..len)).unwrap_or_default();
            let asked = match local {
                Some(Local::V4(ip)) => Some(IpAddr::V4(ip)),
                Some(Local::V6 { addr, .. }) => Some(IpAddr::V6(addr)),
                None => None,
            };
            match handler.handle(message, from, asked, Transport::Udp) {
                Step::Reply(bytes) => replies.push(Outgoing { bytes, to: from, from: local }),
                Step::Forward(forwarding) => {
                    let (socket, handler) = (socket.clone(), handler.clone());
                    forwards.spawn_on(
                        async move {
                            let reply = forwarding.run().await;
                            // Never wait in a runtime thread: a full buffer drops the reply
                            // (counted), as it would drop the query.
                            send(&socket, &handler, &reply, from, local, MsgFlags::MSG_DONTWAIT);
                        },
                        &runtime,
                    );
                }
                Step::Drop => {}
            }
        }
        // A full send buffer holds this thread for at most the send timeout per reply.
        let (failed, error) = socket::send_batch(socket.as_fd(), &replies);
        replies.clear();
        if failed > 0 {
            handler.metrics().send_failed.fetch_add(failed as u64, Ordering::Relaxed);
            debug!(failed, error = ?error, "dns/udp replies not sent");
        }
    }
    Ok(())
}

/// Sends one reply from the address its query was sent to.
fn send(
    socket: &UdpSocket,
    handler: &Handler,
    reply: &[u8],
    to: SocketAddr,
    from: Option<Local>,
    flags: MsgFlags,
) {
    if let Err(e) = socket::send(socket.as_fd(), reply, to, from, flags) {
        bump(&handler.metrics().send_failed);
        debug!(%to, error = %e, "dns/udp send failed");
    }
}

/// Accepts on `listener` until `cancel` fires, at most [`MAX_TCP_CONNECTIONS`] at once.
pub async fn tcp(
    listener: TcpListener,
    handler: Arc<Handler>,
    cancel: CancellationToken,
    stop: Stop,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut connections: JoinSet<()> = JoinSet::new();
    let result = accept_loop(&listener, &slots, &cancel, "dns/tcp", |stream, src, slot| {
        while connections.try_join_next().is_some() {}
        bump(&handler.metrics().tcp_connections);
        let (handler, cancel) = (handler.clone(), cancel.clone());
        connections.spawn(async move {
            connection(stream, src, &handler, &cancel).await;
            drop(slot);
        });
    })
    .await;
    drain(&mut connections, stop.drain_limit(), "dns/tcp connections").await;
    result
}

/// Serves one TCP client: length-prefixed queries (RFC 1035 4.2.2), answered in order, until
/// it closes, idles past [`TCP_IDLE_TIMEOUT`], sends garbage framing, or the server stops.
async fn connection(mut stream: TcpStream, src: SocketAddr, handler: &Handler, cancel: &CancellationToken) {
    let asked = stream.local_addr().ok().map(|a| a.ip());
    loop {
        let mut prefix = [0u8; 2];
        let read = tokio::select! {
            () = cancel.cancelled() => return,
            read = tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut prefix)) => read,
        };
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                bump(&handler.metrics().tcp_idle_closed);
                debug!(%src, "dns/tcp client idle; closing");
                return;
            }
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut message)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                bump(&handler.metrics().tcp_idle_closed);
                debug!(%src, "dns/tcp client stalled mid-message; closing");
                return;
            }
        }
        // A message we cannot even read a header from has no reply; the framing is suspect too.
        let Some(reply) = handler.answer(&message, src, asked, Transport::Tcp).await else { return };
        let Ok(len) = u16::try_from(reply.len()) else { return };
        let framed = [&len.to_be_bytes()[..], &reply].concat();
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(%src, error = %e, "dns/tcp write failed");
                return;
            }
            Err(_) => {
                bump(&handler.metrics().tcp_idle_closed);
                debug!(%src, "dns/tcp client does not read its replies; closing");
                return;
            }
        }
    }
}

/// Lets `tasks` finish within `limit`, then abandons the rest.
async fn drain(tasks: &mut JoinSet<()>, limit: Duration, what: &str) {
    if tasks.is_empty() {
        return;
    }
    let waited = tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} }).await;
    if waited.is_err() {
        debug!(abandoned = tasks.len(), what, "stopping with dns work in flight");
        tasks.abort_all();
    }
}
