//! The client side: accept loops (one per listening socket, one connection cap for all), TLS
//! handshakes, and each connection's HTTP/1.1 or HTTP/2 service with its timeouts and its
//! graceful close when the server stops.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::Limits;
use super::activity::{Activity, Tracked, Verdict};
use super::forward::Origin;
use super::handler::{Client, Proxy};
use crate::accept::accept_loop;

/// hyper's smallest read buffer; `Limits::max_header_bytes` below it is raised to it.
const MIN_HEADER_BUFFER: usize = 8192;

/// Everything the accept loops and connections share.
#[derive(Debug)]
pub(crate) struct Server {
    pub proxy: Arc<Proxy>,
    pub limits: Limits,
    builder: auto::Builder<TokioExecutor>,
    /// One permit per open client connection (held by its [`Activity`]).
    slots: Arc<Semaphore>,
    pub connections: TaskTracker,
    /// Stop accepting; connections finish their requests and close.
    pub stop: CancellationToken,
    /// The drain time is over: connections still open are dropped.
    pub cut: CancellationToken,
}

impl Server {
    pub(crate) fn new(proxy: Arc<Proxy>, limits: Limits, stop: CancellationToken) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // Our own head and idle timers (see `activity`): hyper's would close idle keep-alive.
            .header_read_timeout(None)
            .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BUFFER));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        Server {
            proxy,
            limits,
            builder,
            slots: Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS))),
            connections: TaskTracker::new(),
            stop,
            cut: CancellationToken::new(),
        }
    }

    /// Accepts on `listener` until the stop, a connection slot at a time. Errors only when the
    /// socket is dead.
    pub(crate) async fn listen(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<()> {
        accept_loop(&listener, &self.slots, &self.stop, "proxy", |stream, peer, slot| {
            let (server, tls) = (self.clone(), tls.clone());
            self.connections.spawn(async move { server.connection(stream, peer, tls, slot).await });
        })
        .await
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<TlsAcceptor>,
        slot: OwnedSemaphorePermit,
    ) {
        let activity = Activity::new(slot, self.proxy.metrics.clone());
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%peer, error = %e, "proxy: set_nodelay");
        }
        let Some(acceptor) = tls else {
            return self.serve(stream, peer, false, activity).await;
        };
        let handshake = tokio::select! {
            () = self.stop.cancelled() => return,
            handshake = tokio::time::timeout(self.limits.tls_handshake_timeout, acceptor.accept(stream)) => handshake,
        };
        match handshake {
            Ok(Ok(stream)) => {
                // The head timer counts from the end of the handshake, which had its own limit.
                activity.restart_head();
                self.serve(stream, peer, true, activity).await;
            }
            Ok(Err(e)) => {
                self.proxy.metrics.tls_failed();
                debug!(%peer, error = %e, "tls handshake failed");
            }
            Err(_) => {
                self.proxy.metrics.tls_failed();
                debug!(%peer, "tls handshake timed out");
            }
        }
    }

    /// Serves HTTP on one client connection until it closes, idles out, is too slow sending a
    /// head, or the server stops (gracefully: requests in flight finish).
    async fn serve<S>(&self, stream: S, peer: SocketAddr, https: bool, activity: Arc<Activity>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(Tracked::new(stream, activity.clone()));
        let origin = Origin::new(peer.ip(), https);
        let client = Arc::new(Client { peer, origin, activity: activity.clone() });
        let proxy = self.proxy.clone();
        let service = service_fn(move |request| proxy.clone().handle(client.clone(), request));
        let conn = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            let wait = if closing {
                // Only the end of the connection or the cut matter now.
                Duration::MAX
            } else {
                match activity.verdict(&self.limits) {
                    Verdict::Wait(wait) => wait,
                    Verdict::Idle => {
                        debug!(%peer, "client connection idle; closing");
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        continue;
                    }
                    Verdict::SlowHead => {
                        activity.metrics().header_timeout();
                        debug!(%peer, "client too slow sending a request head; dropping");
                        return;
                    }
                }
            };
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        debug!(%peer, error = %e, "client connection ended with an error");
                    }
                    return;
                }
                () = self.cut.cancelled() => {
                    debug!(%peer, "client connection cut: stopping");
                    return;
                }
                () = self.stop.cancelled(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = tokio::time::sleep(wait), if !closing => {}
            }
        }
    }
}
