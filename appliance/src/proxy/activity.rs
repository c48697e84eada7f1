//! What one client connection is doing, for its timeouts and its slot: [`Activity`] (requests in
//! flight, last traffic, when the pending request head began), the [`Tracked`] stream that
//! records traffic, and the [`InFlight`] guard a request holds until its response is sent.
//!
//! Our own timers rather than hyper's `header_read_timeout`: hyper 1 runs that timer whenever
//! it waits for a request head, so it would also close every idle keep-alive connection after
//! the header timeout. Here the head timer runs from the first byte of a request (or from
//! accept), and idle keep-alive has its own, longer, limit.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use super::Limits;
use super::metrics::Metrics;

/// `head_since` when no request head is pending.
const NO_HEAD: u64 = u64::MAX;

/// Shared by a connection's stream, its requests and its watcher. Dropped with the last of
/// them, which is when the connection (or the tunnel it became) is closed: that frees its
/// slot under `Limits::max_connections`.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last byte read or written, or request finished.
    last_io: AtomicU64,
    /// Milliseconds since `epoch` when the request head now being read began ([`NO_HEAD`]: none).
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    /// HTTP/2: bytes between requests are control frames, not a slow head.
    h2: AtomicBool,
    metrics: Arc<Metrics>,
    _slot: OwnedSemaphorePermit,
}

/// What the watcher of a connection should do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Look again after this long.
    Wait(Duration),
    /// No request and no traffic for `idle_timeout`: close gracefully.
    Idle,
    /// A request head is taking longer than `header_read_timeout`: drop the connection.
    SlowHead,
}

impl Activity {
    /// A connection just accepted: its first request head must arrive within the header timeout.
    pub(crate) fn new(slot: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Arc<Self> {
        metrics.connection_opened();
        Arc::new(Activity {
            epoch: Instant::now(),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            h2: AtomicBool::new(false),
            metrics,
            _slot: slot,
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn read(&self) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 && !self.h2.load(Ordering::Relaxed) {
            // Only the first byte of a head starts its timer.
            let _ = self.head_since.compare_exchange(NO_HEAD, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    /// A request's head has been read: it is in flight until the guard is dropped (with the
    /// response body, once sent).
    pub(crate) fn begin(self: &Arc<Self>, h2: bool) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NO_HEAD, Ordering::Relaxed);
        if h2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        InFlight(self.clone())
    }

    /// Starts the head timer over (after a TLS handshake, which has its own limit).
    pub(crate) fn restart_head(&self) {
        let now = self.now();
        self.head_since.store(now, Ordering::Relaxed);
        self.last_io.store(now, Ordering::Relaxed);
    }

    /// Judges the connection against `limits` now.
    pub(crate) fn verdict(&self, limits: &Limits) -> Verdict {
        let recheck = limits.idle_timeout.min(limits.header_read_timeout);
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Verdict::Wait(recheck);
        }
        let now = self.now();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2);
        let mut wait = u64::MAX;
        let head_since = self.head_since.load(Ordering::Relaxed);
        if head_since != NO_HEAD {
            let deadline = head_since.saturating_add(ms(limits.header_read_timeout));
            if now >= deadline {
                return Verdict::SlowHead;
            }
            wait = deadline - now;
        }
        let deadline = self.last_io.load(Ordering::Relaxed).saturating_add(ms(limits.idle_timeout));
        if now >= deadline {
            return Verdict::Idle;
        }
        wait = wait.min(deadline - now);
        // A millisecond more, so the next look is past the deadline rather than just before.
        Verdict::Wait(Duration::from_millis(wait + 1))
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

/// A request in flight on a connection; the connection is not idle while one lives.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.last_io.store(activity.now(), Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client stream (TCP or TLS) that reports its traffic to the connection's [`Activity`],
/// and holds the connection's slot for as long as it is open.
#[derive(Debug)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::sync::Semaphore;

    use super::*;

    fn activity() -> Arc<Activity> {
        let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        Activity::new(slot, Arc::new(Metrics::default()))
    }

    fn limits(header_ms: u64, idle_ms: u64) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(header_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            ..Limits::default()
        }
    }

    #[test]
    fn silent_new_connection_is_a_slow_head() {
        let a = activity();
        assert!(
            matches!(a.verdict(&limits(10_000, 60_000)), Verdict::Wait(d) if d <= Duration::from_millis(10_001))
        );
        assert_eq!(a.verdict(&limits(0, 60_000)), Verdict::SlowHead);
    }

    #[test]
    fn in_flight_request_is_never_idle_and_idle_follows_it() {
        let a = activity();
        let guard = a.begin(false);
        assert!(matches!(a.verdict(&limits(0, 0)), Verdict::Wait(_)));
        drop(guard);
        // No head pending after a request: only the idle limit applies.
        assert_eq!(a.verdict(&limits(0, 0)), Verdict::Idle);
        assert!(matches!(a.verdict(&limits(0, 60_000)), Verdict::Wait(_)));
    }

    #[test]
    fn bytes_between_requests_start_the_head_timer_on_http1_only() {
        let a = activity();
        drop(a.begin(false));
        a.read();
        assert_eq!(a.verdict(&limits(0, 60_000)), Verdict::SlowHead);
        let b = activity();
        drop(b.begin(true));
        b.read();
        assert!(matches!(b.verdict(&limits(0, 60_000)), Verdict::Wait(_)));
    }

    #[test]
    fn connection_count_follows_the_activity() {
        let m = Arc::new(Metrics::default());
        let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let a = Activity::new(slot, m.clone());
        assert_eq!(m.open_connections(), 1);
        drop(a);
        assert_eq!(m.open_connections(), 0);
    }
}
