//! Forwarding for LAN clients, against a fake upstream on 127.0.0.1.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::support::{self, Server, addresses, authority_types, query, tcp, udp, udp_sized, with_edns};
use crate::upstream::{self, Upstream};

/// What a test allows beyond the configured upstream timeout before calling it a hang.
const MARGIN: Duration = Duration::from_millis(700);

#[tokio::test]
async fn lan_questions_are_forwarded_and_the_answer_cached() {
    let upstream = Upstream::start().await;
    let server = Server::start(&support::config(&[upstream.addr], "2s")).await;
    let reply = udp(server.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&reply), [Ipv4Addr::new(192, 0, 2, 80)]);
    assert!(!reply.metadata.authoritative, "not our zone: AA=0");
    assert!(reply.metadata.recursion_available);
    assert!(reply.answers[0].ttl <= 300 && reply.answers[0].ttl > 290, "ttl {}", reply.answers[0].ttl);

    let again = udp(server.addr, &query("WWW.example.test.", RecordType::A)).await;
    assert_eq!(addresses(&again), [Ipv4Addr::new(192, 0, 2, 80)]);
    assert!(again.answers[0].ttl <= reply.answers[0].ttl, "cached TTLs count down");
    assert_eq!(upstream.count("www.example.test."), 1, "the second question came from the cache");
    let again = tcp(server.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(addresses(&again), [Ipv4Addr::new(192, 0, 2, 80)]);
    assert_eq!(upstream.count("www.example.test."), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn upstream_nxdomain_and_nodata_are_preserved_with_their_soa_and_cached() {
    let upstream = Upstream::start().await;
    let server = Server::start(&support::config(&[upstream.addr], "2s")).await;
    for _ in 0..2 {
        let reply = udp(server.addr, &query("nothing.example.test.", RecordType::A)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        assert!(reply.answers.is_empty());
        assert_eq!(authority_types(&reply), [RecordType::SOA]);
        assert_eq!(reply.authorities[0].name.to_ascii(), "example.test.");

        let reply = udp(server.addr, &query("www.example.test.", RecordType::AAAA)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "NODATA, not NXDOMAIN");
        assert!(reply.answers.is_empty());
        assert_eq!(authority_types(&reply), [RecordType::SOA]);
    }
    assert_eq!(upstream.count("nothing.example.test."), 1, "negative answers are cached");
    assert_eq!(upstream.asked().len(), 2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn large_answers_are_truncated_over_udp_and_whole_over_tcp() {
    let upstream = Upstream::start().await;
    let server = Server::start(&support::config(&[upstream.addr], "2s")).await;
    // 100 addresses: more than any UDP reply may carry.
    let whole = tcp(server.addr, &query("big.example.test.", RecordType::A)).await;
    assert_eq!(addresses(&whole).len(), 100);
    assert!(!whole.metadata.truncation);
    assert!(
        upstream.asked().iter().any(|a| a.tcp),
        "the upstream's truncated UDP answer was retried over TCP"
    );
    for (payload, limit) in [(None, 512), (Some(4096), 1232), (Some(1232), 1232)] {
        let msg = query("big.example.test.", RecordType::A);
        let msg = if let Some(p) = payload { with_edns(msg, p) } else { msg };
        let (reply, size) = udp_sized(server.addr, &msg).await;
        assert!(reply.metadata.truncation, "TC=1 with payload {payload:?}");
        assert!(size <= limit, "{size} bytes with payload {payload:?}");
        assert!(reply.answers.is_empty(), "no partial answer with TC=1");
    }
    // 40 addresses (about 700 bytes): too big without EDNS, fits the client's 1232, not its 600.
    let mid = query("mid.example.test.", RecordType::A);
    let (reply, _) = udp_sized(server.addr, &mid).await;
    assert!(reply.metadata.truncation);
    let (reply, size) = udp_sized(server.addr, &with_edns(mid.clone(), 1232)).await;
    assert!(!reply.metadata.truncation, "{size} bytes");
    assert_eq!(addresses(&reply).len(), 40);
    let (reply, size) = udp_sized(server.addr, &with_edns(mid, 600)).await;
    assert!(reply.metadata.truncation && size <= 600, "{size} bytes for a client of 600");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_dead_upstream_gives_servfail_within_the_timeout() {
    let dead = upstream::dead().await;
    let server = Server::start(&support::config(&[dead.local_addr().unwrap()], "300ms")).await;
    let started = Instant::now();
    let reply = udp(server.addr, &query("www.example.test.", RecordType::A)).await;
    let took = started.elapsed();
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(reply.metadata.recursion_available);
    assert!(took < Duration::from_millis(300) + MARGIN, "SERVFAIL after {took:?}");
    let reply = tcp(server.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail, "failures are not cached as answers");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_upstreams_it_is_servfail_at_once() {
    // A long timeout: an answer within the margin shows nothing waited for it.
    let server = Server::start(&support::config(&[], "30s")).await;
    let started = Instant::now();
    let reply = udp(server.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() < MARGIN, "took {:?}", started.elapsed());
    server.stop().await.unwrap();
}

/// The WAN's DNS servers arrive by DHCP after the server started: swapped in while it serves,
/// used by the next question, and swapped out again.
#[tokio::test]
async fn upstreams_can_be_swapped_while_serving() {
    let server = Server::start(&support::config(&[], "2s")).await;
    let reply = udp(server.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail, "no upstream yet");

    let (first, second) = (Upstream::start().await, Upstream::start().await);
    server.handler.forwarder().set_upstreams(&[first.addr]).unwrap();
    let reply = udp(server.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(192, 0, 2, 80)]);
    assert_eq!(first.count("www.example.test."), 1);

    server.handler.forwarder().set_upstreams(&[second.addr]).unwrap();
    let reply = udp(server.addr, &query("alias.example.test.", RecordType::A)).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(192, 0, 2, 80)]);
    assert_eq!((first.count("alias.example.test."), second.count("alias.example.test.")), (0, 1));

    server.handler.forwarder().set_upstreams(&[]).unwrap();
    let reply = udp(server.addr, &query("other.example.test.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail, "no upstream again");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn upstreams_are_tried_in_order() {
    let dead = upstream::dead().await;
    let (first, second) = (Upstream::start().await, Upstream::start().await);
    // Working upstreams: the first gets every question.
    let server = Server::start(&support::config(&[first.addr, second.addr], "2s")).await;
    let reply = udp(server.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(192, 0, 2, 80)]);
    assert_eq!((first.count("www.example.test."), second.asked().len()), (1, 0));
    server.stop().await.unwrap();

    // A dead first upstream: the next one answers, within the timeout.
    let server = Server::start(&support::config(&[dead.local_addr().unwrap(), second.addr], "600ms")).await;
    let started = Instant::now();
    let reply = udp(server.addr, &query("www.example.test.", RecordType::A)).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(192, 0, 2, 80)]);
    assert!(started.elapsed() < Duration::from_millis(600) + MARGIN, "took {:?}", started.elapsed());
    assert_eq!(second.count("www.example.test."), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn our_zones_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let server = Server::start(&support::config(&[upstream.addr], "2s")).await;
    for (name, qtype) in [
        ("nas.prox.local.", RecordType::A),
        ("nas.prox.local.", RecordType::AAAA),
        ("nobody.prox.local.", RecordType::A),
        ("deep.er.prox.local.", RecordType::TXT),
        ("prox.local.", RecordType::MX),
        ("10.0.20.10.in-addr.arpa.", RecordType::PTR),
        ("99.0.20.10.in-addr.arpa.", RecordType::PTR),
    ] {
        let reply = udp(server.addr, &query(name, qtype)).await;
        assert!(reply.metadata.authoritative, "{name} {qtype}");
    }
    assert!(upstream.asked().is_empty(), "asked upstream: {:?}", upstream.asked());
    // Names outside our zones but close to them do go upstream.
    let reply = udp(server.addr, &query("11.20.10.in-addr.arpa.", RecordType::PTR)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(upstream.count("11.20.10.in-addr.arpa."), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn forwarded_cname_chains_are_passed_on_whole() {
    let upstream = Upstream::start().await;
    let server = Server::start(&support::config(&[upstream.addr], "2s")).await;
    let reply = udp(server.addr, &with_edns(query("alias.example.test.", RecordType::A), 1232)).await;
    let answers: Vec<(String, RecordType)> =
        reply.answers.iter().map(|r| (r.name.to_ascii(), r.record_type())).collect();
    assert_eq!(
        answers,
        [("alias.example.test.".into(), RecordType::CNAME), ("www.example.test.".into(), RecordType::A)]
    );
    assert!(matches!(&reply.answers[1].data, RData::A(a) if a.0 == Ipv4Addr::new(192, 0, 2, 80)));
    assert_eq!(reply.edns.as_ref().map(|e| e.max_payload()), Some(1232), "our OPT on forwarded answers too");
    server.stop().await.unwrap();
}
