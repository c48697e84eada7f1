//! The bodies the proxy streams: [`ProxyBody`] to clients (a backend's body or one of our
//! fixed pages) and [`RequestBody`] to backends (the client's body, which a second backend can
//! still take if the first could not be reached). Either side that keeps the other waiting
//! mid-body too long fails the body ([`Stalled`]), so neither can hold a request forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::activity::InFlight;
use super::pool::Lease;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which side stopped sending a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Backend,
}

/// A body that sent nothing for its limit while being read.
#[derive(Debug, thiserror::Error)]
#[error("{side:?} sent no body data for {after:?}")]
pub(crate) struct Stalled {
    pub side: Side,
    pub after: Duration,
}

/// Measures how long a body keeps its reader waiting: from the first `Pending` after a frame
/// until the next frame. Time the reader spends elsewhere (a slow client not reading the
/// response) does not count. The timer is made at the first wait, so bodies that never keep
/// anyone waiting cost nothing.
#[derive(Debug)]
struct Watchdog {
    side: Side,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl Watchdog {
    fn new(side: Side, limit: Duration) -> Self {
        Watchdog { side, limit, timer: None, waiting: false }
    }

    /// Polls `body` under the watchdog.
    fn poll<B>(
        &mut self,
        body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        if let Poll::Ready(frame) = body.poll_frame(cx) {
            self.waiting = false;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = Instant::now() + self.limit;
        let timer = match &mut self.timer {
            Some(timer) => {
                if !self.waiting {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.waiting = true;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Stalled { side: self.side, after: self.limit }.into()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A response body to a client. It holds its request's [`InFlight`] guard, so the connection
/// counts as busy until the body has been sent (or abandoned).
#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
    in_flight: Option<InFlight>,
}

#[derive(Debug)]
enum Kind {
    Upstream(Upstream),
    /// Our own page; `None` once sent.
    Fixed(Option<Bytes>),
}

/// A backend's body and the connection it comes on, which reading the body drives and which
/// goes back to the pool once the body has ended.
#[derive(Debug)]
struct Upstream {
    body: Incoming,
    watchdog: Watchdog,
    lease: Lease,
    ended: bool,
}

impl Upstream {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.lease.drive(cx);
        let frame = self.watchdog.poll(Pin::new(&mut self.body), cx);
        if let Poll::Ready(None) = frame {
            self.ended = true;
            // Once more, so the connection takes in the end of the message and is idle.
            self.lease.drive(cx);
            self.lease.release();
        }
        frame
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // hyper does not read a body that says it is empty; one cut short closes its connection.
        if self.ended || self.body.is_end_stream() {
            self.lease.release();
        }
    }
}

impl ProxyBody {
    /// A backend's body, coming on `lease`'s connection; failed if the backend sends nothing
    /// for `limit` while we wait.
    pub(crate) fn upstream(body: Incoming, lease: Lease, limit: Duration) -> Self {
        let watchdog = Watchdog::new(Side::Backend, limit);
        ProxyBody { kind: Kind::Upstream(Upstream { body, watchdog, lease, ended: false }), in_flight: None }
    }

    pub(crate) fn fixed(text: &'static str) -> Self {
        ProxyBody { kind: Kind::Fixed(Some(Bytes::from_static(text.as_bytes()))), in_flight: None }
    }

    pub(crate) fn hold(&mut self, in_flight: InFlight) {
        self.in_flight = Some(in_flight);
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Upstream(upstream) => upstream.poll_frame(cx),
            Kind::Fixed(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(upstream) => upstream.body.is_end_stream(),
            Kind::Fixed(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(upstream) => upstream.body.size_hint(),
            Kind::Fixed(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// A client's request body, kept aside until a backend connection starts reading it. Each
/// attempt at a backend gets a [`RequestBody`] from [`PendingBody::attempt`]; the first one
/// polled takes the body, so a failed connect (nothing read) leaves it for the next backend.
#[derive(Debug)]
pub(crate) struct PendingBody {
    /// `None` for a request without a body (most), which needs no sharing.
    slot: Option<Arc<Mutex<Option<Incoming>>>>,
    hint: SizeHint,
    /// Longest the client may keep a backend waiting mid-body.
    limit: Duration,
}

impl PendingBody {
    pub(crate) fn new(body: Incoming, limit: Duration) -> Self {
        let hint = body.size_hint();
        let slot = (!body.is_end_stream()).then(|| Arc::new(Mutex::new(Some(body))));
        PendingBody { slot, hint, limit }
    }

    /// No body at all (a request that had none).
    #[cfg(test)]
    pub(crate) fn empty(limit: Duration) -> Self {
        PendingBody { slot: None, hint: SizeHint::with_exact(0), limit }
    }

    /// A body for one more attempt, if no earlier attempt has read any of it.
    pub(crate) fn attempt(&self) -> Option<RequestBody> {
        let intact = match &self.slot {
            Some(slot) => slot.lock().unwrap_or_else(PoisonError::into_inner).is_some(),
            None => true,
        };
        intact.then(|| RequestBody {
            slot: self.slot.clone(),
            body: None,
            hint: self.hint,
            watchdog: Watchdog::new(Side::Client, self.limit),
        })
    }
}

/// The body of one attempt at a backend; see [`PendingBody`].
#[derive(Debug)]
pub(crate) struct RequestBody {
    slot: Option<Arc<Mutex<Option<Incoming>>>>,
    body: Option<Incoming>,
    hint: SizeHint,
    watchdog: Watchdog,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.body.is_none() {
            let Some(slot) = &this.slot else { return Poll::Ready(None) };
            match slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                Some(body) => this.body = Some(body),
                None => {
                    return Poll::Ready(Some(Err("request body already taken by another attempt".into())));
                }
            }
        }
        match &mut this.body {
            Some(body) => this.watchdog.poll(Pin::new(body), cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Some(body) => body.is_end_stream(),
            // No slot: the request had no body.
            None => self.slot.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(body) => body.size_hint(),
            None => self.hint,
        }
    }
}
