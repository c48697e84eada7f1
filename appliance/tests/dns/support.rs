//! The harness: a real DNS server on 127.0.0.1:0 (UDP and TCP on one port) over a name table the
//! test controls, and clients that speak raw DNS over UDP and TCP.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use proximity_appliance::dns::{self, Handler, Metrics, Views};
use proximity_appliance::names::{NameTable, Names};
use proximity_appliance::shutdown::Stop;
use proximity_appliance::state::{Lease, LeaseState};
use proximity_config::api::{App, Backend};
use proximity_config::{Config, MacAddr, Reservation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// How long a client waits for a reply before the test fails; generous, only a failure waits it.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// "Now" for the name tables the tests build.
pub(crate) const NOW: u64 = 1_800_000_000;
/// The TTL the test configs give our records.
pub(crate) const TTL: u32 = 45;

/// The test config: LAN 10.20.0.1/24, domain prox.local, TTL [`TTL`], these upstreams.
pub(crate) fn config(upstreams: &[SocketAddr], upstream_timeout: &str) -> Config {
    let upstreams: Vec<String> = upstreams.iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "[lan]\naddress = \"10.20.0.1/24\"\n[dns]\nttl = \"{TTL}s\"\nupstreams = [{}]\nupstream_timeout = \"{upstream_timeout}\"\n",
        upstreams.join(", ")
    );
    proximity_config::from_toml_str(&text).expect("test config")
}

/// A reservation `name` at 10.20.0.`n`.
pub(crate) fn reservation(n: u8, name: &str) -> Reservation {
    Reservation { mac: MacAddr([2, 0, 0, 0, 1, n]), ip: Ipv4Addr::new(10, 20, 0, n), name: Some(name.into()) }
}

/// A bound lease of 10.20.0.`n` whose client sent host name `name`.
pub(crate) fn lease(n: u8, name: &str) -> Lease {
    Lease {
        ip: Ipv4Addr::new(10, 20, 0, n),
        client_id: vec![1, n],
        mac: MacAddr([2, 0, 0, 0, 0, n]),
        hostname: Some(name.into()),
        state: LeaseState::Active,
        starts: NOW - 10,
        expires: NOW + 3600,
    }
}

/// An app `name` whose backend is 10.20.0.`n`:8080.
pub(crate) fn app(name: &str, n: u8) -> App {
    App {
        name: name.into(),
        backend: Backend::Ip(Ipv4Addr::new(10, 20, 0, n)),
        port: 8080,
        health_check: None,
    }
}

/// The table the tests start from: reservation `nas` (10.20.0.10), lease `laptop` (10.20.0.101),
/// app `web` (backend 10.20.0.50).
pub(crate) fn table() -> NameTable {
    NameTable::empty(1000).build(&[reservation(10, "nas")], &[lease(101, "laptop")], &[app("web", 50)], NOW)
}

/// A running server.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) names: Arc<Names>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) handler: Arc<Handler>,
    stop: Stop,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// The appliance's view policy (loopback is LAN).
    pub(crate) async fn start(config: &Config) -> Server {
        Server::start_with(config, None, "127.0.0.1").await
    }

    /// With `views` instead of the appliance's (e.g. one that makes loopback WAN).
    pub(crate) async fn start_with(config: &Config, views: Option<Views>, host: &str) -> Server {
        let names = Arc::new(Names::new(table()));
        let metrics = Arc::new(Metrics::default());
        let mut handler = Handler::new(config, names.clone(), metrics.clone()).expect("handler");
        if let Some(views) = views {
            handler = handler.with_views(views);
        }
        let (udp, tcp) = bind_pair(host);
        let addr = udp.local_addr().expect("local addr");
        let stop = Stop::manual();
        let handler = Arc::new(handler);
        let task = tokio::spawn(dns::serve(vec![udp], vec![tcp], handler.clone(), stop.clone()));
        Server { addr, names, metrics, handler, stop, task }
    }

    /// Stops the server and returns what `serve` returned.
    pub(crate) async fn stop(self) -> std::io::Result<()> {
        self.stop.request(false);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve stops")
            .expect("no panic")
    }

    /// Whether `serve` is still running (it ends only on stop or a dead socket).
    pub(crate) fn running(&self) -> bool {
        !self.task.is_finished()
    }
}

/// UDP and TCP sockets on one free port of `host`.
fn bind_pair(host: &str) -> (tokio::net::UdpSocket, tokio::net::TcpListener) {
    for _ in 0..50 {
        let udp = dns::socket::bind_udp(SocketAddr::new(host.parse().expect("host"), 0)).expect("udp");
        let addr = udp.local_addr().expect("addr");
        if let Ok(tcp) = dns::socket::bind_tcp(addr) {
            return (udp, tcp);
        }
    }
    panic!("no port free for both udp and tcp on {host}");
}

/// A query for `name`/`qtype` with RD=1, without EDNS.
pub(crate) fn query(name: &str, qtype: RecordType) -> Message {
    let mut msg = Message::new(next_id(), MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    msg
}

/// The same query advertising an EDNS0 payload of `payload` bytes.
pub(crate) fn with_edns(mut msg: Message, payload: u16) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    msg.set_edns(edns);
    msg
}

fn next_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static ID: AtomicU16 = AtomicU16::new(0x1234);
    ID.fetch_add(7919, Ordering::Relaxed)
}

/// Sends raw bytes over UDP from a fresh socket; the reply's bytes, or `None` if none came
/// within `wait`.
pub(crate) async fn udp_bytes(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv6() { "[::1]:0" } else { "127.0.0.1:0" }.parse().ok()?;
    let socket = UdpSocket::bind(local).await.expect("client socket");
    socket.send_to(bytes, server).await.expect("send");
    let mut buf = vec![0u8; 65535];
    let (len, _) = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await.ok()?.ok()?;
    buf.truncate(len);
    Some(buf)
}

/// `msg` over UDP; the reply, decoded, and its size on the wire.
pub(crate) async fn udp_sized(server: SocketAddr, msg: &Message) -> (Message, usize) {
    let bytes = udp_bytes(server, &msg.to_vec().expect("encode"), REPLY_TIMEOUT).await.expect("a udp reply");
    let reply = Message::from_vec(&bytes).expect("decodable reply");
    assert_eq!(reply.metadata.id, msg.metadata.id, "reply id");
    (reply, bytes.len())
}

/// `msg` over UDP; the reply.
pub(crate) async fn udp(server: SocketAddr, msg: &Message) -> Message {
    udp_sized(server, msg).await.0
}

/// `msg` over a new TCP connection; the reply.
pub(crate) async fn tcp(server: SocketAddr, msg: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.expect("tcp connect");
    let bytes = msg.to_vec().expect("encode");
    let len = u16::try_from(bytes.len()).expect("short query").to_be_bytes();
    stream.write_all(&[&len[..], &bytes].concat()).await.expect("tcp write");
    let reply =
        tokio::time::timeout(REPLY_TIMEOUT, read_framed(&mut stream)).await.expect("a tcp reply in time");
    let reply = Message::from_vec(&reply).expect("decodable reply");
    assert_eq!(reply.metadata.id, msg.metadata.id, "reply id");
    reply
}

/// One length-prefixed message from `stream`.
pub(crate) async fn read_framed(stream: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.expect("tcp length");
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).await.expect("tcp body");
    reply
}

/// The A addresses in the answer section.
pub(crate) fn addresses(reply: &Message) -> Vec<Ipv4Addr> {
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// The record types in the authority section.
pub(crate) fn authority_types(reply: &Message) -> Vec<RecordType> {
    reply.authorities.iter().map(|r| r.record_type()).collect()
}
