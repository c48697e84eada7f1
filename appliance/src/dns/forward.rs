//! Forwarding for LAN clients: the upstreams of `dns.upstreams` (or, when that is empty, those
//! the WAN's DHCP server gave, swapped in at run time with [`Forwarder::set_upstreams`]), tried
//! in order, each through a hickory-resolver `Resolver` of its own (UDP, TCP when the answer is
//! truncated; our own `ResolverConfig`, never `/etc/resolv.conf`), behind one cache that honours
//! TTLs and caches negative answers (RFC 2308). Failure is SERVFAIL within
//! `dns.upstream_timeout`, never a hang.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts, ServerOrderingStrategy,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::{Resolver, ResponseCache, TtlConfig};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use super::wire::Answer;

/// Forwarded questions waiting for an upstream at once, over all clients. Past this a question
/// gets SERVFAIL at once: memory and upstream sockets stay bounded under a flood.
pub const MAX_FORWARDS_IN_FLIGHT: usize = 1024;

/// Failed to set up forwarding.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up forwarding to upstream {upstream}: {source}")]
pub struct ForwardError {
    upstream: SocketAddr,
    #[source]
    source: NetError,
}

/// Why a forwarded question got no answer (the client gets SERVFAIL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unanswered {
    #[error("no upstream is configured")]
    NoUpstreams,
    #[error("no upstream answered within {0:?}")]
    TimedOut(Duration),
    #[error("every upstream failed; last: {0}")]
    Failed(String),
}

/// One upstream server and the resolver that talks to it.
struct Upstream {
    addr: SocketAddr,
    resolver: Resolver<TokioRuntimeProvider>,
}

/// The forwarder shared by every query of the server.
pub struct Forwarder {
    /// Swapped whole when the WAN's DNS servers change; a query in flight keeps the list it
    /// started with.
    upstreams: ArcSwap<Vec<Upstream>>,
    cache: ResponseCache,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("upstreams", &self.upstreams())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Forwarder {
    /// Forwarding to `upstreams` in order, all of them within `timeout`, with a cache of
    /// `cache_size` answers.
    pub fn new(upstreams: &[SocketAddr], timeout: Duration, cache_size: u32) -> Result<Self, ForwardError> {
        let cache = ResponseCache::new(u64::from(cache_size), TtlConfig::from_opts(&ResolverOpts::default()));
        Ok(Forwarder {
            upstreams: ArcSwap::from_pointee(resolvers(upstreams, timeout)?),
            cache,
            timeout,
            in_flight: Arc::new(Semaphore::new(MAX_FORWARDS_IN_FLIGHT)),
        })
    }

    /// Forwards to `upstreams` from now on (questions already asked finish with the old ones).
    /// The cache stays: what it holds was true when asked and expires by its TTLs.
    pub fn set_upstreams(&self, upstreams: &[SocketAddr]) -> Result<(), ForwardError> {
        self.upstreams.store(Arc::new(resolvers(upstreams, self.timeout)?));
        Ok(())
    }

    /// The upstreams in use, in order.
    pub fn upstreams(&self) -> Vec<SocketAddr> {
        self.upstreams.load().iter().map(|u| u.addr).collect()
    }

    pub fn has_upstreams(&self) -> bool {
        !self.upstreams.load().is_empty()
    }

    /// The cached answer to `name`/`qtype`, with TTLs counted down, if there is one.
    pub fn cached(&self, name: &Name, qtype: RecordType) -> Option<Answer> {
        let query = Query::query(name.clone(), qtype);
        self.cache.get(&query, Instant::now()).and_then(to_answer)
    }

    /// A slot for one more question in flight, unless [`MAX_FORWARDS_IN_FLIGHT`] are.
    pub fn permit(&self) -> Option<OwnedSemaphorePermit> {
        self.in_flight.clone().try_acquire_owned().ok()
    }

    /// Asks the upstreams in order until one answers (an answer, NXDOMAIN or NODATA), within
    /// the timeout overall; caches what it got.
    pub async fn resolve(&self, name: &Name, qtype: RecordType) -> Result<Answer, Unanswered> {
        let upstreams = self.upstreams.load_full();
        if upstreams.is_empty() {
            return Err(Unanswered::NoUpstreams);
        }
        let query = Query::query(name.clone(), qtype);
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut last = Unanswered::TimedOut(self.timeout);
        for (i, upstream) in upstreams.iter().enumerate() {
            let left = u32::try_from(upstreams.len() - i).unwrap_or(1);
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                break;
            }
            let lookup = upstream.resolver.lookup(name.clone(), qtype);
            let result = match tokio::time::timeout(remaining / left, lookup).await {
                Ok(Ok(lookup)) => Ok(lookup.message().clone()),
                Ok(Err(e)) => Err(e),
                Err(_) => {
                    debug!(upstream = %upstream.addr, %name, %qtype, "upstream timed out");
                    continue;
                }
            };
            if let Some(answer) = to_answer(result.clone()) {
                self.cache.insert(query, result, Instant::now());
                return Ok(answer);
            }
            if let Err(e) = result {
                debug!(upstream = %upstream.addr, %name, %qtype, error = %e, "upstream failed");
                last = Unanswered::Failed(e.to_string());
            }
        }
        Err(last)
    }
}

/// A resolver for each of `upstreams`. Each gets an equal share of the time, so a dead first
/// one leaves the others time to answer before the client gives up.
fn resolvers(upstreams: &[SocketAddr], timeout: Duration) -> Result<Vec<Upstream>, ForwardError> {
    let share = timeout / u32::try_from(upstreams.len().max(1)).unwrap_or(u32::MAX);
    upstreams
        .iter()
        .map(|&addr| {
            resolver(addr, share)
                .map(|resolver| Upstream { addr, resolver })
                .map_err(|source| ForwardError { upstream: addr, source })
        })
        .collect()
}

/// The resolver for one upstream: only that server, no hosts file, no search list, no cache
/// of its own (the forwarder's cache is in front), no retries beyond UDP retransmission
/// within `timeout`.
fn resolver(addr: SocketAddr, timeout: Duration) -> Result<Resolver<TokioRuntimeProvider>, NetError> {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
    let config = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
    let mut options = ResolverOpts::default();
    options.timeout = timeout;
    options.attempts = 0;
    options.cache_size = 0;
    options.use_hosts_file = ResolveHosts::Never;
    // A forwarder passes CNAME chains on (RFC 1034 4.3.2).
    options.preserve_intermediates = true;
    options.num_concurrent_reqs = 1;
    options.server_ordering_strategy = ServerOrderingStrategy::UserProvidedOrder;
    Resolver::builder_with_config(config, TokioRuntimeProvider::default()).with_options(options).build()
}

/// What the client is told for an upstream result: the answer, or NXDOMAIN/NODATA with the
/// upstream's SOA; `None` when the upstream gave no usable answer.
fn to_answer(result: Result<Message, NetError>) -> Option<Answer> {
    match result {
        Ok(message) => {
            let rcode = match message.metadata.response_code {
                ResponseCode::NXDomain => ResponseCode::NXDomain,
                _ => ResponseCode::NoError,
            };
            Some(Answer {
                rcode,
                authoritative: false,
                answers: message.answers,
                authorities: message.authorities,
                additionals: message.additionals,
            })
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(NoRecords {
            response_code, soa, authorities, ..
        }))) => {
            let authorities = match (authorities, soa) {
                (Some(records), _) if !records.is_empty() => records.to_vec(),
                (_, Some(soa)) => {
                    vec![Record::from_rdata(soa.name.clone(), soa.ttl, RData::SOA(soa.data.clone()))]
                }
                _ => Vec::new(),
            };
            let rcode =
                if response_code == ResponseCode::NXDomain { response_code } else { ResponseCode::NoError };
            Some(Answer { rcode, authorities, ..Answer::default() })
        }
        Err(_) => None,
    }
}
