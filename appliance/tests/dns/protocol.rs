//! What a resolver expects of any server: EDNS0, minimal ANY, FORMERR/NOTIMP/BADVERS, no answer
//! to responses, refusals, and surviving hostile input.

use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::support::{self, REPLY_TIMEOUT, Server, query, tcp, udp, with_edns};

#[tokio::test]
async fn edns_is_answered_with_our_payload_size_and_only_when_asked() {
    let server = Server::start(&support::config(&[], "2s")).await;
    let reply = udp(server.addr, &with_edns(query("nas.prox.local.", RecordType::A), 4096)).await;
    let edns = reply.edns.as_ref().expect("an OPT record in the reply");
    assert_eq!(edns.max_payload(), 1232);
    assert_eq!(edns.version(), 0);
    let reply = udp(server.addr, &query("nas.prox.local.", RecordType::A)).await;
    assert!(reply.edns.is_none(), "no OPT to a client that sent none");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_edns_version_gets_badvers() {
    let server = Server::start(&support::config(&[], "2s")).await;
    let mut msg = query("nas.prox.local.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1).set_max_payload(1232);
    msg.set_edns(edns);
    let reply = udp(server.addr, &msg).await;
    // BADVERS is 16 (shared with BADSIG), carried in the OPT record's extended code.
    assert_eq!(u16::from(reply.metadata.response_code), 16, "{:?}", reply.metadata.response_code);
    assert!(reply.answers.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn any_is_answered_with_one_rrset() {
    let server = Server::start(&support::config(&[], "2s")).await;
    for (name, only) in [
        ("prox.local.", RecordType::SOA),
        ("nas.prox.local.", RecordType::A),
        ("10.0.20.10.in-addr.arpa.", RecordType::PTR),
    ] {
        let reply = udp(server.addr, &query(name, RecordType::ANY)).await;
        let types: Vec<RecordType> = reply.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(types, [only], "{name}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unreadable_questions_and_several_questions_get_formerr() {
    let server = Server::start(&support::config(&[], "2s")).await;
    // A header announcing one question, then half a name.
    let garbage = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'f', b'o'];
    let reply = support::udp_bytes(server.addr, &garbage, REPLY_TIMEOUT).await.expect("a reply");
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.id, 0xabcd);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    let mut two = query("nas.prox.local.", RecordType::A);
    two.add_query(hickory_proto::op::Query::query(
        Name::from_ascii("laptop.prox.local.").unwrap(),
        RecordType::A,
    ));
    let reply = udp(server.addr, &two).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert!(reply.answers.is_empty());

    // A bare header announcing 65535 questions: refused on the header alone.
    let many = [0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
    let reply = support::udp_bytes(server.addr, &many, REPLY_TIMEOUT).await.expect("a reply");
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!((reply.metadata.id, reply.metadata.response_code), (0x1234, ResponseCode::FormErr));

    let mut none = query("nas.prox.local.", RecordType::A);
    none.queries.clear();
    let reply = udp(server.addr, &none).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn other_opcodes_get_notimp() {
    let server = Server::start(&support::config(&[], "2s")).await;
    for opcode in [1u8, 2, 3, 4, 5, 6, 15] {
        let msg = query("nas.prox.local.", RecordType::A);
        let mut bytes = msg.to_vec().unwrap();
        bytes[2] = (opcode << 3) | (bytes[2] & 0x01);
        let reply = support::udp_bytes(server.addr, &bytes, REPLY_TIMEOUT).await.expect("a reply");
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.id, msg.metadata.id);
        assert_eq!(reply.metadata.response_code, ResponseCode::NotImp, "opcode {opcode}");
        assert_eq!(u8::from(reply.metadata.op_code), opcode, "opcode echoed");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn responses_and_runts_are_dropped_and_the_next_query_answered() {
    let server = Server::start(&support::config(&[], "2s")).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut response = query("nas.prox.local.", RecordType::A);
    response.metadata.message_type = hickory_proto::op::MessageType::Response;
    socket.send_to(&response.to_vec().unwrap(), server.addr).await.unwrap();
    socket.send_to(&[1, 2, 3], server.addr).await.unwrap();
    let real = query("nas.prox.local.", RecordType::A);
    socket.send_to(&real.to_vec().unwrap(), server.addr).await.unwrap();
    // Datagrams on loopback are handled in order: the first reply is the real query's.
    let mut buf = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(REPLY_TIMEOUT, socket.recv_from(&mut buf)).await.unwrap().unwrap();
    let reply = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(reply.metadata.id, real.metadata.id, "the response or the runt got a reply");
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(server.metrics.dropped_responses.load(Relaxed), 1);
    assert_eq!(server.metrics.dropped_malformed.load(Relaxed), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn zone_transfers_and_other_classes_are_refused() {
    let server = Server::start(&support::config(&[], "2s")).await;
    for qtype in [RecordType::AXFR, RecordType::IXFR] {
        let reply = tcp(server.addr, &query("prox.local.", qtype)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused, "{qtype}");
    }
    let mut chaos = query("version.bind.", RecordType::TXT);
    chaos.queries[0].set_query_class(DNSClass::CH);
    let reply = udp(server.addr, &chaos).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    server.stop().await.unwrap();
}

/// A small deterministic generator (xorshift64), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random bytes, or a valid query with a few bytes changed (to get past the header).
fn hostile(rng: &mut Rng, valid: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(2) == 0 {
        let len = rng.below(600);
        (0..len).map(|_| rng.next() as u8).collect()
    } else {
        let mut bytes = valid[rng.below(valid.len())].clone();
        for _ in 0..=rng.below(4) {
            let i = rng.below(bytes.len());
            bytes[i] = rng.next() as u8;
        }
        if rng.below(4) == 0 {
            bytes.truncate(rng.below(bytes.len()));
        }
        bytes
    }
}

async fn still_answers(addr: SocketAddr) {
    let reply = udp(addr, &query("nas.prox.local.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn ten_thousand_hostile_datagrams_do_not_stop_the_server() {
    let server = Server::start(&support::config(&[], "2s")).await;
    let valid: Vec<Vec<u8>> = [
        with_edns(query("nas.prox.local.", RecordType::A), 1232),
        query("10.0.20.10.in-addr.arpa.", RecordType::PTR),
        with_edns(query("nobody.prox.local.", RecordType::ANY), 4096),
        query("prox.local.", RecordType::NS),
    ]
    .iter()
    .map(|m| m.to_vec().unwrap())
    .collect();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for round in 0..100 {
        for _ in 0..100 {
            socket.send_to(&hostile(&mut rng, &valid), server.addr).await.unwrap();
        }
        // Paces the flood and checks the server after every hundred.
        still_answers(server.addr).await;
        assert!(server.running(), "serve ended after round {round}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn hostile_tcp_clients_do_not_stop_the_server() {
    let server = Server::start(&support::config(&[], "2s")).await;
    let mut rng = Rng(0x0dd_ba11);
    let valid = vec![query("nas.prox.local.", RecordType::A).to_vec().unwrap()];
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let bytes = hostile(&mut rng, &valid);
        let _ = stream.write_all(&bytes).await;
        // Half the clients hang up at once, half stay, leaving the server waiting on them.
        if rng.below(2) == 0 {
            stalled.push(stream);
        }
    }
    let reply = tcp(server.addr, &query("nas.prox.local.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "stalled clients block nobody");
    still_answers(server.addr).await;
    assert!(server.running());
    drop(stalled);
    server.stop().await.unwrap();
}
