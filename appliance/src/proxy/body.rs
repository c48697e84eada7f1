//! The bodies the proxy streams: [`ProxyBody`] to clients (a backend's body or one of our
//! fixed pages) and [`RequestBody`] to backends (the client's body, which a second backend can
//! still take if the first could not be reached).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::activity::InFlight;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body to a client. It holds its request's [`InFlight`] guard, so the connection
/// counts as busy until the body has been sent (or abandoned).
#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
    in_flight: Option<InFlight>,
}

#[derive(Debug)]
enum Kind {
    Upstream(Incoming),
    /// Our own page; `None` once sent.
    Fixed(Option<Bytes>),
}

impl ProxyBody {
    pub(crate) fn upstream(body: Incoming) -> Self {
        ProxyBody { kind: Kind::Upstream(body), in_flight: None }
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
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Upstream(body) => Pin::new(body).poll_frame(cx),
            Kind::Fixed(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Fixed(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(body) => body.size_hint(),
            Kind::Fixed(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// A client's request body, kept aside until a backend connection starts reading it. Each
/// attempt at a backend gets a [`RequestBody`] from [`PendingBody::attempt`]; the first one
/// polled takes the body, so a failed connect (nothing read) leaves it for the next backend.
#[derive(Debug)]
pub(crate) struct PendingBody {
    slot: Arc<Mutex<Option<Incoming>>>,
    hint: SizeHint,
    end: bool,
}

impl PendingBody {
    pub(crate) fn new(body: Incoming) -> Self {
        PendingBody {
            hint: body.size_hint(),
            end: body.is_end_stream(),
            slot: Arc::new(Mutex::new(Some(body))),
        }
    }

    /// A body for one more attempt, if no earlier attempt has read any of it.
    pub(crate) fn attempt(&self) -> Option<RequestBody> {
        let intact = self.end || self.slot.lock().unwrap_or_else(PoisonError::into_inner).is_some();
        intact.then(|| RequestBody { slot: self.slot.clone(), body: None, hint: self.hint, end: self.end })
    }
}

/// The body of one attempt at a backend; see [`PendingBody`].
#[derive(Debug)]
pub(crate) struct RequestBody {
    slot: Arc<Mutex<Option<Incoming>>>,
    body: Option<Incoming>,
    hint: SizeHint,
    end: bool,
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
            if this.end {
                return Poll::Ready(None);
            }
            match this.slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                Some(body) => this.body = Some(body),
                None => {
                    return Poll::Ready(Some(Err("request body already taken by another attempt".into())));
                }
            }
        }
        match &mut this.body {
            Some(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Some(body) => body.is_end_stream(),
            None => self.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(body) => body.size_hint(),
            None => self.hint,
        }
    }
}
