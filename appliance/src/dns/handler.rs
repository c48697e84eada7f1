//! The protocol decisions for one query: read it, pick the view, answer from our zones, forward
//! it, or refuse it; errors as the RFCs want them. Bytes in, bytes out: no sockets here, so every
//! decision is testable on its own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Header, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use proximity_config::Config;
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use super::forward::{ForwardError, Forwarder};
use super::metrics::{Metrics, bump};
use super::view::{View, Views};
use super::wire::{self, Answer, ReplyTo, Transport};
use super::zone::{ZoneError, Zones};
use crate::names::Names;

/// The DNS server could not be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("dns.domain: {0}")]
    Zone(#[from] ZoneError),
    #[error("dns.upstreams: {0}")]
    Forward(#[from] ForwardError),
}

/// What to do with one incoming message.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Ask the upstreams first ([`Forwarding::run`] gives the reply); may take up to the
    /// upstream timeout, so the UDP loop runs it in a task of its own.
    Forward(Box<Forwarding>),
    /// Not a query we answer (unreadable header, a response): nothing is sent.
    Drop,
}

/// Answers queries for one appliance: its zones, its view policy, its forwarder.
#[derive(Debug)]
pub struct Handler {
    zones: Zones,
    views: Views,
    names: Arc<Names>,
    forwarder: Arc<Forwarder>,
    metrics: Arc<Metrics>,
}

impl Handler {
    /// The handler of `config.dns` for the LAN of `config.lan`, answering from `names`.
    pub fn new(config: &Config, names: Arc<Names>, metrics: Arc<Metrics>) -> Result<Self, SetupError> {
        let dns = &config.dns;
        let ttl = u32::try_from(dns.ttl.as_secs()).unwrap_or(u32::MAX);
        let zones = Zones::new(&dns.domain, config.lan.address, ttl)?;
        let forwarder = Forwarder::new(&dns.upstreams, dns.upstream_timeout, dns.cache_size)?;
        Ok(Handler {
            zones,
            views: Views::for_lan(config.lan.address),
            names,
            forwarder: Arc::new(forwarder),
            metrics,
        })
    }

    /// Replaces the view classifier (tests: see the WAN view from loopback).
    pub fn with_views(mut self, views: Views) -> Self {
        self.views = views;
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The forwarder, whose upstreams can be swapped while serving.
    pub fn forwarder(&self) -> &Arc<Forwarder> {
        &self.forwarder
    }

    /// The reply to `message` from `src` sent to `asked`, forwarding inline when needed.
    pub async fn answer(
        &self,
        message: &[u8],
        src: SocketAddr,
        asked: Option<IpAddr>,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        match self.handle(message, src, asked, transport) {
            Step::Reply(bytes) => Some(bytes),
            Step::Forward(forwarding) => Some(forwarding.run().await),
            Step::Drop => None,
        }
    }

    /// Decides what `message` from `src`, sent to our address `asked` (when known), gets;
    /// everything but forwarding is answered here.
    pub fn handle(
        &self,
        message: &[u8],
        src: SocketAddr,
        asked: Option<IpAddr>,
        transport: Transport,
    ) -> Step {
        let Ok(header) = Header::read(&mut BinDecoder::new(message)) else {
            bump(&self.metrics.dropped_malformed);
            debug!(%src, len = message.len(), "dropped a message shorter than a dns header");
            return Step::Drop;
        };
        if header.metadata.message_type == MessageType::Response {
            bump(&self.metrics.dropped_responses);
            return Step::Drop;
        }
        let view = self.views.classify(src.ip());
        // Decided on the header alone, before the body is read: a header may announce 65535
        // questions, and what we do not serve is not worth parsing.
        if header.metadata.op_code != OpCode::Query {
            return self.bare(&header, view, ResponseCode::NotImp);
        }
        if header.counts.queries != 1 {
            return self.bare(&header, view, ResponseCode::FormErr);
        }
        let protocol = match transport {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        };
        let request = match Request::from_bytes(message.to_vec(), src, protocol) {
            Ok(request) => request,
            Err(e) => {
                debug!(%src, id = header.metadata.id, error = %e, "malformed query");
                return self.bare(&header, view, ResponseCode::FormErr);
            }
        };
        let to = ReplyTo {
            queries: &request.queries,
            request: &request.metadata,
            edns: request.edns.is_some(),
            recursion: view.recursion(),
            limit: wire::reply_limit(transport, request.edns.as_ref()),
        };
        let refuse = |rcode| Step::Reply(self.reply(&to, view, &Answer::error(rcode)));

        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return refuse(ResponseCode::BADVERS);
        }
        let [query] = request.queries.queries() else { return refuse(ResponseCode::FormErr) };
        let qtype = query.query_type();
        match qtype {
            RecordType::OPT => return refuse(ResponseCode::FormErr),
            // Zone transfers are not offered, to anyone.
            RecordType::AXFR | RecordType::IXFR => return refuse(ResponseCode::Refused),
            _ => {}
        }
        if query.query_class() != DNSClass::IN {
            return refuse(ResponseCode::Refused);
        }
        let name: &Name = query.name();
        if let Some(zone) = self.zones.find(name) {
            let asked = match asked {
                Some(IpAddr::V4(ip)) => Some(ip),
                _ => None,
            };
            let answer = self.zones.answer(zone, name, qtype, view, asked, &self.names.load());
            return Step::Reply(self.reply(&to, view, &answer));
        }
        // Never an open resolver: the WAN gets our zones and nothing else.
        if !view.recursion() {
            return refuse(ResponseCode::Refused);
        }
        if let Some(answer) = self.forwarder.cached(name, qtype) {
            bump(&self.metrics.cache_hits);
            return Step::Reply(self.reply(&to, view, &answer));
        }
        if !self.forwarder.has_upstreams() {
            return refuse(ResponseCode::ServFail);
        }
        let Some(permit) = self.forwarder.permit() else {
            bump(&self.metrics.forward_overload);
            return refuse(ResponseCode::ServFail);
        };
        let name = name.clone();
        Step::Forward(Box::new(Forwarding {
            request,
            name,
            qtype,
            view,
            transport,
            forwarder: self.forwarder.clone(),
            metrics: self.metrics.clone(),
            _permit: permit,
        }))
    }

    /// A reply of the header alone, for a query whose question is not read.
    fn bare(&self, header: &Header, view: View, rcode: ResponseCode) -> Step {
        let mut metadata = Metadata::response_from_request(&header.metadata);
        metadata.response_code = rcode;
        metadata.recursion_available = view.recursion();
        self.metrics.replied(view, rcode);
        Step::Reply(wire::header_only(&metadata))
    }

    fn reply(&self, to: &ReplyTo<'_>, view: View, answer: &Answer) -> Vec<u8> {
        finish(&self.metrics, to, view, answer)
    }
}

/// A query on its way to the upstreams; holds its in-flight slot until answered.
#[derive(Debug)]
pub struct Forwarding {
    request: Request,
    name: Name,
    qtype: RecordType,
    view: View,
    transport: Transport,
    forwarder: Arc<Forwarder>,
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
}

impl Forwarding {
    /// Asks the upstreams and encodes the reply: their answer, or SERVFAIL in time.
    pub async fn run(self) -> Vec<u8> {
        bump(&self.metrics.forwarded);
        let answer = match self.forwarder.resolve(&self.name, self.qtype).await {
            Ok(answer) => answer,
            Err(why) => {
                bump(&self.metrics.upstream_failed);
                debug!(name = %self.name, qtype = %self.qtype, reason = %why, "forwarding failed");
                Answer::error(ResponseCode::ServFail)
            }
        };
        let to = ReplyTo {
            queries: &self.request.queries,
            request: &self.request.metadata,
            edns: self.request.edns.is_some(),
            recursion: self.view.recursion(),
            limit: wire::reply_limit(self.transport, self.request.edns.as_ref()),
        };
        finish(&self.metrics, &to, self.view, &answer)
    }
}

fn finish(metrics: &Metrics, to: &ReplyTo<'_>, view: View, answer: &Answer) -> Vec<u8> {
    let encoded = wire::encode(to, answer);
    metrics.replied(view, encoded.rcode);
    if encoded.truncated {
        bump(&metrics.truncated);
    }
    encoded.bytes
}
