//! The keep-alive pool of HTTP/1.1 connections to backends, each connection driven by the
//! request it carries: its I/O runs in the task of the client connection the request came on,
//! from the request head to the end of the response body, and the connection goes back to the
//! pool when the body has been read to its end. No task per backend connection and no hand-off
//! between tasks per request (hyper-util's pool spends a fifth of the proxy's time on those,
//! with small responses), as nginx does it in its one event loop.
//!
//! An idle connection is not polled. Taking one from the pool polls it once: one the backend
//! has closed (or that still has work left from its last request) is dropped there, and a
//! request that one closes before it could be sent comes back untouched, to be sent on another
//! ([`Sent::Unsent`]). Idle connections older than [`POOL_IDLE_TIMEOUT`] are closed by
//! [`Pool::sweep`].

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::body::RequestBody;
use super::metrics::Metrics;

/// An idle pooled connection to a backend is closed after this long. Below the 5 s keep-alive
/// of Node.js and Apache, so we do not send on a connection the backend is just closing.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Idle connections kept per backend.
pub const POOL_MAX_IDLE_PER_BACKEND: usize = 64;

type Driver = http1::Connection<TokioIo<TcpStream>, RequestBody>;

/// One connection to a backend: the handle requests are sent with and the connection's I/O,
/// which makes progress only while polled (by [`Conn::send`], then by the response body).
pub(crate) struct Conn {
    backend: SocketAddr,
    sender: http1::SendRequest<RequestBody>,
    /// `None` once the connection has ended. Boxed: a connection moves several times per
    /// request (pool, exchange, response body), its I/O state (680 bytes) need not.
    driver: Option<Pin<Box<Driver>>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("backend", &self.backend).field("open", &self.driver.is_some()).finish()
    }
}

/// Why no connection to a backend could be made.
#[derive(Debug)]
pub(crate) enum ConnectError {
    TimedOut,
    Failed(io::Error),
}

/// What became of a request sent on a connection.
pub(crate) enum Sent {
    /// The backend's response head, and the connection, which the response body drives.
    Response(Response<Incoming>, Conn),
    /// The connection was closed before any of the request went out: send it elsewhere.
    Unsent(Request<RequestBody>),
    Failed(hyper::Error),
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle keep-alive connections by backend, newest last.
pub(crate) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    builder: http1::Builder,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("idle", &self.idle_count()).finish()
    }
}

impl Pool {
    pub(crate) fn new(connect_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
            connect_timeout,
            idle_timeout: POOL_IDLE_TIMEOUT,
            max_idle: POOL_MAX_IDLE_PER_BACKEND,
            builder: http1::Builder::new(),
            metrics,
        }
    }

    /// The newest idle connection to `backend` that is ready for a request, if any.
    pub(crate) fn checkout(&self, backend: SocketAddr) -> Option<Conn> {
        let now = Instant::now();
        loop {
            let idle = {
                let mut pool = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                let conns = pool.get_mut(&backend)?;
                let idle = conns.pop();
                if conns.is_empty() {
                    pool.remove(&backend);
                }
                idle?
            };
            // Dropped outside the lock: dropping closes the socket.
            if now.duration_since(idle.since) < self.idle_timeout {
                if let Some(conn) = idle.conn.ready() {
                    return Some(conn);
                }
            }
        }
    }

    /// A new connection to `backend`, within the connect timeout.
    pub(crate) async fn connect(&self, backend: SocketAddr) -> Result<Conn, ConnectError> {
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(backend)).await {
            Err(_) => return Err(ConnectError::TimedOut),
            Ok(Err(e)) => return Err(ConnectError::Failed(e)),
            Ok(Ok(stream)) => stream,
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%backend, error = %e, "backend: set_nodelay");
        }
        self.metrics.backend_connected();
        // An HTTP/1 handshake is no exchange: it only sets the connection up.
        let (sender, driver) = self
            .builder
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Failed(io::Error::other(e)))?;
        Ok(Conn { backend, sender, driver: Some(Box::pin(driver)) })
    }

    /// Keeps `conn` for a later request to its backend, unless the pool for it is full.
    pub(crate) fn checkin(&self, conn: Conn) {
        if conn.driver.is_none() || conn.sender.is_closed() {
            return;
        }
        let rejected = {
            let mut pool = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let conns = pool.entry(conn.backend).or_default();
            if conns.len() < self.max_idle {
                conns.push(Idle { conn, since: Instant::now() });
                None
            } else {
                Some(conn)
            }
        };
        drop(rejected);
    }

    /// Closes the idle connections older than the idle timeout.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut pool = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            pool.retain(|_, conns| {
                // Oldest first: the expired ones are a prefix.
                let keep = conns.iter().position(|idle| now.duration_since(idle.since) < self.idle_timeout);
                expired.extend(conns.drain(..keep.unwrap_or(conns.len())));
                !conns.is_empty()
            });
        }
        drop(expired);
    }

    /// Sweeps every half idle timeout until `stop`.
    pub(crate) async fn sweep_until(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.idle_timeout / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => self.sweep(),
            }
        }
    }

    /// Idle connections held now.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).values().map(Vec::len).sum()
    }
}

impl Conn {
    /// `self` if it can take a request now: polled once, the connection reads what the backend
    /// sent while it was idle (a close) and asks for its next request.
    fn ready(mut self) -> Option<Self> {
        let mut cx = Context::from_waker(Waker::noop());
        if self.poll_driver(&mut cx).is_ready() {
            return None;
        }
        matches!(self.sender.poll_ready(&mut cx), Poll::Ready(Ok(()))).then_some(self)
    }

    /// Polls the connection's I/O; `Ready` (and the connection dropped) once it has ended.
    pub(crate) fn poll_driver(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(driver) = &mut self.driver else { return Poll::Ready(()) };
        match driver.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                if let Err(e) = result {
                    debug!(backend = %self.backend, error = %e, "backend connection ended");
                }
                self.driver = None;
                Poll::Ready(())
            }
        }
    }

    /// Sends `request` and drives the connection until the response head has come. An upgrade
    /// request's connection is driven by a task of its own instead, as it must go on after the
    /// response head to hand the upgraded stream over; it is never pooled again.
    pub(crate) async fn send(mut self, request: Request<RequestBody>, upgrade: bool) -> Sent {
        if upgrade {
            if let Some(driver) = self.driver.take() {
                let backend = self.backend;
                tokio::spawn(async move {
                    if let Err(e) = Pin::into_inner(driver).with_upgrades().await {
                        debug!(%backend, error = %e, "backend connection ended");
                    }
                });
            }
        }
        let response = self.sender.try_send_request(request);
        let mut response = std::pin::pin!(response);
        let result = poll_fn(|cx| {
            // A connection that ends resolves the response (with an error, if nothing came).
            let _ = self.poll_driver(cx);
            response.as_mut().poll(cx)
        })
        .await;
        match result {
            Ok(response) => Sent::Response(response, self),
            Err(mut e) => match e.take_message() {
                Some(request) => Sent::Unsent(request),
                None => Sent::Failed(e.into_error()),
            },
        }
    }
}

/// A connection lent to a response body: driven while the body is read and given back to the
/// pool once the body has ended ([`Lease::release`]); dropped (closed) if the body is not read
/// to its end.
pub(crate) struct Lease {
    conn: Option<Conn>,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("conn", &self.conn).finish()
    }
}

impl Lease {
    pub(crate) fn new(conn: Conn, pool: Arc<Pool>) -> Self {
        Lease { conn: Some(conn), pool }
    }

    /// Moves the connection's I/O on (the body's data comes through it).
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = &mut self.conn {
            if conn.poll_driver(cx).is_ready() {
                self.conn = None;
            }
        }
    }

    /// The body has ended: the connection can carry another request.
    pub(crate) fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.checkin(conn);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;
    use hyper::body::Body;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::proxy::body::PendingBody;

    /// A backend answering every request on a connection with `hello`, counting connections;
    /// closes each connection after `per_conn` requests.
    async fn backend(per_conn: usize) -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for _ in 0..per_conn {
                        let mut head = Vec::new();
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = stream.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            head.extend_from_slice(&buf[..n]);
                        }
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
                        if stream.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn request() -> Request<RequestBody> {
        let body = PendingBody::empty(Duration::from_secs(5)).attempt().unwrap();
        let mut request = Request::new(body);
        *request.uri_mut() = "/".parse().unwrap();
        request.headers_mut().insert(http::header::HOST, "a".parse().unwrap());
        request
    }

    /// One exchange through the pool, as the proxy makes it: checkout or connect, send, read
    /// the body through the lease, release.
    async fn exchange(pool: &Arc<Pool>, backend: SocketAddr) -> Bytes {
        let mut request = request();
        loop {
            let conn = match pool.checkout(backend) {
                Some(conn) => conn,
                None => pool.connect(backend).await.unwrap(),
            };
            match conn.send(request, false).await {
                Sent::Response(response, conn) => {
                    let mut lease = Lease::new(conn, pool.clone());
                    let mut body = response.into_body();
                    let mut data = Vec::new();
                    poll_fn(|cx| {
                        lease.drive(cx);
                        loop {
                            match Pin::new(&mut body).poll_frame(cx) {
                                Poll::Ready(Some(frame)) => {
                                    if let Ok(chunk) = frame.unwrap().into_data() {
                                        data.extend_from_slice(&chunk);
                                    }
                                }
                                Poll::Ready(None) => return Poll::Ready(()),
                                Poll::Pending => return Poll::Pending,
                            }
                        }
                    })
                    .await;
                    lease.release();
                    return Bytes::from(data);
                }
                Sent::Unsent(r) => request = r,
                Sent::Failed(e) => panic!("{e}"),
            }
        }
    }

    #[tokio::test]
    async fn connections_are_reused() {
        let (addr, accepted) = backend(usize::MAX).await;
        let pool = Arc::new(Pool::new(Duration::from_secs(1), Arc::default()));
        for _ in 0..20 {
            assert_eq!(exchange(&pool, addr).await, "hello");
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 1);
        assert_eq!(pool.metrics.backend_connections(), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_backend_closed_is_replaced() {
        let (addr, accepted) = backend(1).await;
        let pool = Arc::new(Pool::new(Duration::from_secs(1), Arc::default()));
        for _ in 0..5 {
            assert_eq!(exchange(&pool, addr).await, "hello");
            // Let the backend's close arrive, or not: either way the next request succeeds.
            tokio::task::yield_now().await;
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn an_unread_body_closes_its_connection() {
        let (addr, _) = backend(usize::MAX).await;
        let pool = Arc::new(Pool::new(Duration::from_secs(1), Arc::default()));
        let conn = pool.connect(addr).await.unwrap();
        let Sent::Response(response, conn) = conn.send(request(), false).await else { panic!("no response") };
        drop(Lease::new(conn, pool.clone()));
        drop(response);
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(exchange(&pool, addr).await, "hello");
        assert_eq!(pool.metrics.backend_connections(), 2);
    }

    #[tokio::test]
    async fn idle_connections_expire() {
        let (addr, _) = backend(usize::MAX).await;
        let pool = Arc::new(Pool {
            idle_timeout: Duration::from_millis(50),
            ..Pool::new(Duration::from_secs(1), Arc::default())
        });
        assert_eq!(exchange(&pool, addr).await, "hello");
        assert_eq!(pool.idle_count(), 1);
        std::thread::sleep(Duration::from_millis(60));
        pool.sweep();
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn refused_connect_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let pool = Pool::new(Duration::from_secs(1), Arc::default());
        assert!(matches!(pool.connect(addr).await, Err(ConnectError::Failed(_))));
    }
}
