//! A tiny upstream DNS server for the forwarding tests, UDP and TCP on one port of 127.0.0.1,
//! serving `example.test.`, and counting every question it is asked.
//!
//! - `www.example.test. A` -> 192.0.2.80 (TTL 300)
//! - `big.example.test. A` -> 100 addresses (too big for UDP: truncated there, whole over TCP)
//! - `mid.example.test. A` -> 40 addresses (over 512 bytes, under 1232)
//! - `alias.example.test. A` -> CNAME `www.example.test.` and its A record
//! - `www.example.test. AAAA` -> NODATA with the SOA
//! - anything else -> NXDOMAIN with the SOA (`example.test.`, minimum 60)

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

use crate::support::read_framed;

/// One question the upstream was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Asked {
    pub(crate) name: String,
    pub(crate) qtype: RecordType,
    pub(crate) tcp: bool,
}

/// A running fake upstream; stops when dropped.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    asked: Arc<Mutex<Vec<Asked>>>,
    _tasks: JoinSet<()>,
}

impl Upstream {
    pub(crate) async fn start() -> Upstream {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("addr");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = JoinSet::new();
        tasks.spawn(serve_udp(udp, asked.clone()));
        tasks.spawn(serve_tcp(tcp, asked.clone()));
        Upstream { addr, asked, _tasks: tasks }
    }

    /// Every question asked so far.
    pub(crate) fn asked(&self) -> Vec<Asked> {
        self.asked.lock().expect("lock").clone()
    }

    /// How often `name` (any case, with the final dot) was asked, over any transport.
    pub(crate) fn count(&self, name: &str) -> usize {
        self.asked().iter().filter(|a| a.name.eq_ignore_ascii_case(name)).count()
    }
}

/// A UDP socket that takes questions and never answers: a dead upstream.
pub(crate) async fn dead() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind")
}

async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().expect("addr")).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both udp and tcp");
}

async fn serve_udp(socket: UdpSocket, asked: Arc<Mutex<Vec<Asked>>>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((len, src)) = socket.recv_from(&mut buf).await else { return };
        let Ok(query) = Message::from_vec(&buf[..len]) else { continue };
        let reply = answer(&query, false, &asked);
        // The size limit a real server applies: the query's EDNS payload, else 512.
        let limit = query.edns.as_ref().map_or(512, |e| usize::from(e.max_payload().max(512)));
        let mut bytes = reply.to_vec().expect("encode");
        if bytes.len() > limit {
            bytes = reply.truncate().to_vec().expect("encode");
        }
        let _ = socket.send_to(&bytes, src).await;
    }
}

async fn serve_tcp(listener: TcpListener, asked: Arc<Mutex<Vec<Asked>>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { return };
        let asked = asked.clone();
        tokio::spawn(async move {
            loop {
                let bytes = read_framed_or_eof(&mut stream).await;
                let Some(bytes) = bytes else { return };
                let Ok(query) = Message::from_vec(&bytes) else { return };
                let reply = answer(&query, true, &asked).to_vec().expect("encode");
                let len = u16::try_from(reply.len()).expect("fits").to_be_bytes();
                if stream.write_all(&[&len[..], &reply].concat()).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn read_framed_or_eof(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut peek = [0u8; 1];
    if stream.peek(&mut peek).await.ok()? == 0 {
        return None;
    }
    Some(read_framed(stream).await)
}

fn answer(query: &Message, tcp: bool, asked: &Mutex<Vec<Asked>>) -> Message {
    let mut reply = Message::new(query.metadata.id, MessageType::Response, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    reply.edns = query.edns.clone();
    let Some(q) = query.queries.first() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply;
    };
    reply.add_query(q.clone());
    let name = q.name().to_ascii().to_ascii_lowercase();
    asked.lock().expect("lock").push(Asked { name: name.clone(), qtype: q.query_type(), tcp });
    let owner = q.name().clone();
    let a = |ip: Ipv4Addr| Record::from_rdata(owner.clone(), 300, RData::A(A(ip)));
    match (name.as_str(), q.query_type()) {
        ("www.example.test.", RecordType::A) => {
            reply.add_answer(a(Ipv4Addr::new(192, 0, 2, 80)));
        }
        ("alias.example.test.", RecordType::A) => {
            let www = Name::from_ascii("www.example.test.").expect("name");
            reply.add_answer(Record::from_rdata(owner.clone(), 300, RData::CNAME(CNAME(www.clone()))));
            reply.add_answer(Record::from_rdata(www, 300, RData::A(A(Ipv4Addr::new(192, 0, 2, 80)))));
        }
        ("www.example.test.", _) => {
            reply.add_authority(soa());
        }
        ("big.example.test.", RecordType::A) => {
            reply.add_answers((0..100).map(|i| a(Ipv4Addr::new(198, 51, 100, i))));
        }
        ("mid.example.test.", RecordType::A) => {
            reply.add_answers((0..40).map(|i| a(Ipv4Addr::new(203, 0, 113, i))));
        }
        _ => {
            reply.metadata.response_code = ResponseCode::NXDomain;
            reply.add_authority(soa());
        }
    }
    reply
}

fn soa() -> Record {
    let zone = Name::from_ascii("example.test.").expect("name");
    let soa = SOA::new(
        Name::from_ascii("ns.example.test.").expect("name"),
        Name::from_ascii("admin.example.test.").expect("name"),
        7,
        3600,
        600,
        86400,
        60,
    );
    Record::from_rdata(zone, 60, RData::SOA(soa))
}
