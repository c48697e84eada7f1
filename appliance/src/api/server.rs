//! Serving the router: accept loops (one per listener, one connection cap for all), TLS
//! handshakes, HTTP/1.1 and HTTP/2 per connection with head and idle timeouts, and the graceful
//! stop. Shaped like the proxy's server, smaller: the admin API has few clients.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{debug, info, warn};

use super::{
    ApiState, HEADER_READ_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_HEADER_BYTES,
    MAX_STREAMS_PER_CONNECTION, TLS_HANDSHAKE_TIMEOUT, router,
};
use crate::accept::{accept_loop, drain_connections, join_loops};
use crate::shutdown::Stop;

/// hyper's smallest HTTP/1.1 read buffer.
const MIN_HEADER_BUFFER: usize = 8192;

/// Serves the admin API on the bound listeners (over TLS when `tls` is given) until `stop`
/// fires; then stops accepting, lets requests in flight and app mutations finish within the
/// stop's drain limit, cuts what is left and returns. Errors only when a listening socket dies
/// (the others are stopped too).
pub async fn serve(
    listeners: Vec<TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<ApiState>,
    stop: Stop,
) -> io::Result<()> {
    let cancel = stop.token().child_token();
    let server = Arc::new(Server::new(router(state.clone()), cancel.clone()));
    let acceptor = tls.map(TlsAcceptor::from);
    let mut loops: JoinSet<io::Result<()>> = JoinSet::new();
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            let scheme = if acceptor.is_some() { "https" } else { "http" };
            info!(%addr, scheme, "listening for the admin api");
        }
        loops.spawn(server.clone().listen(listener, acceptor.clone()));
    }
    let result = join_loops(loops, &cancel, "admin api").await;
    cancel.cancelled().await;

    let deadline = Instant::now() + stop.drain_limit();
    drain_connections(&server.connections, &server.cut, deadline, "admin api").await;
    state.tasks.close();
    if tokio::time::timeout_at(deadline, state.tasks.wait()).await.is_err() {
        warn!(left = state.tasks.len(), "stopping with admin api changes still being committed");
    }
    info!("admin api stopped");
    result
}

/// What the accept loops and connections share.
struct Server {
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    /// One permit per open connection.
    slots: Arc<Semaphore>,
    connections: TaskTracker,
    /// Stop accepting; connections finish their requests and close.
    stop: CancellationToken,
    /// The drain time is over: connections still open are dropped.
    cut: CancellationToken,
}

impl Server {
    fn new(router: Router, stop: CancellationToken) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEADER_BYTES.max(MIN_HEADER_BUFFER));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
            .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
        Server {
            router,
            builder,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            connections: TaskTracker::new(),
            stop,
            cut: CancellationToken::new(),
        }
    }

    /// Accepts on `listener` until the stop, a connection slot at a time. Errors only when the
    /// socket is dead.
    async fn listen(self: Arc<Self>, listener: TcpListener, tls: Option<TlsAcceptor>) -> io::Result<()> {
        accept_loop(&listener, &self.slots, &self.stop, "admin api", |stream, peer, slot| {
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
        _slot: OwnedSemaphorePermit,
    ) {
        let Some(acceptor) = tls else {
            return self.serve(stream, peer).await;
        };
        let handshake = tokio::select! {
            () = self.stop.cancelled() => return,
            handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => handshake,
        };
        match handshake {
            Ok(Ok(stream)) => self.serve(stream, peer).await,
            Ok(Err(e)) => debug!(%peer, error = %e, "admin api: tls handshake failed"),
            Err(_) => debug!(%peer, "admin api: tls handshake timed out"),
        }
    }

    /// Serves HTTP on one connection until it closes, idles out, or the server stops
    /// (gracefully: requests in flight finish) or cuts it.
    async fn serve<S>(&self, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let watched = Watched::new(stream);
        let last = watched.last.clone();
        let router = self.router.clone();
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            let mut router = router.clone();
            async move { router.call(request).await }
        });
        let conn = self.builder.serve_connection(TokioIo::new(watched), service);
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            let idle_until = idle_deadline(&last);
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        debug!(%peer, error = %e, "admin api connection ended with an error");
                    }
                    return;
                }
                () = self.cut.cancelled() => {
                    debug!(%peer, "admin api connection cut: stopping");
                    return;
                }
                () = self.stop.cancelled(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = tokio::time::sleep_until(idle_until), if !closing => {
                    if idle_deadline(&last) <= Instant::now() {
                        debug!(%peer, "admin api connection idle; closing");
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// When a connection started, and milliseconds since then at the last read or write that moved
/// bytes.
type LastActivity = Arc<(Instant, AtomicU64)>;

/// When the connection counts as idle if nothing moves before.
fn idle_deadline(last: &LastActivity) -> Instant {
    let (origin, ms) = &**last;
    *origin + Duration::from_millis(ms.load(Ordering::Relaxed)) + IDLE_TIMEOUT
}

/// A stream that notes when bytes last moved either way, for the idle timeout.
struct Watched<S> {
    inner: S,
    last: LastActivity,
}

impl<S> Watched<S> {
    fn new(inner: S) -> Self {
        Watched { inner, last: Arc::new((Instant::now(), AtomicU64::new(0))) }
    }

    fn touch(&self) {
        let (origin, last) = &*self.last;
        let ms = u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        last.store(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
