//! Our zones as a LAN client (loopback counts as LAN) sees them.

use std::net::Ipv4Addr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use proximity_appliance::names::NameTable;

use crate::support::{
    self, NOW, Server, TTL, addresses, authority_types, lease, query, reservation, tcp, udp,
};

fn soa_serial(reply: &hickory_proto::op::Message) -> Option<u32> {
    reply.answers.iter().chain(&reply.authorities).find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

#[tokio::test]
async fn host_names_answer_their_address_authoritatively_with_recursion_offered() {
    let server = Server::start(&support::config(&[], "2s")).await;
    for (name, ip) in [
        ("nas.prox.local.", Ipv4Addr::new(10, 20, 0, 10)),
        ("laptop.prox.local.", Ipv4Addr::new(10, 20, 0, 101)),
    ] {
        let reply = udp(server.addr, &query(name, RecordType::A)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(addresses(&reply), [ip], "{name}");
        assert!(reply.metadata.authoritative, "AA for our zone");
        assert!(reply.metadata.recursion_available, "RA for a LAN client");
        assert_eq!(reply.answers[0].ttl, TTL);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_app_answers_with_the_gateway_its_proxy_to_lan_clients() {
    let server = Server::start(&support::config(&[], "2s")).await;
    for name in ["web.prox.local.", "WEB.Prox.Local."] {
        for reply in [
            udp(server.addr, &query(name, RecordType::A)).await,
            tcp(server.addr, &query(name, RecordType::A)).await,
        ] {
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "{name}");
            assert_eq!(
                addresses(&reply),
                [Ipv4Addr::new(10, 20, 0, 1)],
                "{name}: the proxy, not the backend"
            );
            assert!(reply.metadata.authoritative);
        }
    }
    // The app's name exists: other types are NODATA, not NXDOMAIN.
    let reply = udp(server.addr, &query("web.prox.local.", RecordType::AAAA)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
    assert_eq!(authority_types(&reply), [RecordType::SOA]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn ptr_names_hosts_and_the_gateway() {
    let server = Server::start(&support::config(&[], "2s")).await;
    for (reverse, target) in [
        ("10.0.20.10.in-addr.arpa.", "nas.prox.local."),
        ("101.0.20.10.in-addr.arpa.", "laptop.prox.local."),
        ("1.0.20.10.in-addr.arpa.", "ns.prox.local."),
    ] {
        let reply = udp(server.addr, &query(reverse, RecordType::PTR)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "{reverse}");
        assert!(reply.metadata.authoritative);
        let ptrs: Vec<String> = reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::PTR(p) => Some(p.0.to_ascii()),
                _ => None,
            })
            .collect();
        assert_eq!(ptrs, [target], "{reverse}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn each_apex_has_soa_and_ns_and_the_name_server_answers_the_gateway() {
    let server = Server::start(&support::config(&[], "2s")).await;
    let serial = server.names.current().serial();
    for apex in ["prox.local.", "0.20.10.in-addr.arpa."] {
        let reply = udp(server.addr, &query(apex, RecordType::SOA)).await;
        assert_eq!(reply.answers.len(), 1, "{apex}: {reply:?}");
        let RData::SOA(soa) = &reply.answers[0].data else { panic!("{apex}: not a SOA: {reply:?}") };
        assert_eq!(soa.serial, serial);
        assert_eq!(soa.mname.to_ascii(), "ns.prox.local.");
        assert_eq!(soa.rname.to_ascii(), "hostmaster.prox.local.");
        assert_eq!(soa.minimum, TTL);
        assert!(reply.metadata.authoritative);

        let reply = udp(server.addr, &query(apex, RecordType::NS)).await;
        let ns: Vec<String> = reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(ns) => Some(ns.0.to_ascii()),
                _ => None,
            })
            .collect();
        assert_eq!(ns, ["ns.prox.local."], "{apex}");
        let glue: Vec<_> = reply.additionals.iter().map(|r| (r.name.to_ascii(), r.data.clone())).collect();
        assert!(
            glue.contains(&("ns.prox.local.".into(), RData::A(Ipv4Addr::new(10, 20, 0, 1).into()))),
            "{glue:?}"
        );
    }
    let reply = udp(server.addr, &query("ns.prox.local.", RecordType::A)).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(10, 20, 0, 1)]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn nxdomain_and_nodata_differ_and_both_carry_the_soa() {
    let server = Server::start(&support::config(&[], "2s")).await;
    // NODATA: the name exists, the type does not.
    for (name, qtype) in [
        ("nas.prox.local.", RecordType::AAAA),
        ("nas.prox.local.", RecordType::MX),
        ("prox.local.", RecordType::A),
        ("10.0.20.10.in-addr.arpa.", RecordType::A),
    ] {
        let reply = udp(server.addr, &query(name, qtype)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "{name} {qtype}");
        assert!(reply.answers.is_empty(), "{name} {qtype}: {reply:?}");
        assert_eq!(authority_types(&reply), [RecordType::SOA], "{name} {qtype}");
        assert!(reply.metadata.authoritative);
    }
    // NXDOMAIN: no such name, for any type.
    for (name, qtype) in [
        ("nobody.prox.local.", RecordType::A),
        ("nobody.prox.local.", RecordType::AAAA),
        ("deep.nas.prox.local.", RecordType::A),
        ("77.0.20.10.in-addr.arpa.", RecordType::PTR),
        ("x.10.0.20.10.in-addr.arpa.", RecordType::PTR),
        ("010.0.20.10.in-addr.arpa.", RecordType::PTR),
    ] {
        let reply = udp(server.addr, &query(name, qtype)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain, "{name} {qtype}");
        assert!(reply.answers.is_empty());
        assert_eq!(authority_types(&reply), [RecordType::SOA], "{name} {qtype}");
        assert!(reply.metadata.authoritative);
        assert_eq!(reply.authorities[0].ttl, TTL, "negative caching time");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn names_are_case_insensitive_and_the_question_keeps_its_case() {
    let server = Server::start(&support::config(&[], "2s")).await;
    let reply = udp(server.addr, &query("NaS.PrOx.LoCaL.", RecordType::A)).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(10, 20, 0, 10)]);
    let asked = reply.queries[0].name();
    assert!(asked.eq_case(&Name::from_ascii("NaS.PrOx.LoCaL.").unwrap()), "question echoed as {asked}");
    let reply = udp(server.addr, &query("10.0.20.10.IN-ADDR.ARPA.", RecordType::PTR)).await;
    assert_eq!(reply.answers.len(), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn names_follow_each_published_table_and_the_serial_grows() {
    let server = Server::start(&support::config(&[], "2s")).await;
    let first = server.names.current();
    let before = soa_serial(&udp(server.addr, &query("prox.local.", RecordType::SOA)).await).unwrap();
    let reply = udp(server.addr, &query("phone.prox.local.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);

    // A new lease with a name: it answers at once, forward and reverse.
    let leases = [lease(101, "laptop"), lease(102, "phone")];
    let with_phone = first.build(&[reservation(10, "nas")], &leases, &[], NOW);
    server.names.publish(with_phone.clone());
    let reply = udp(server.addr, &query("phone.prox.local.", RecordType::A)).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(10, 20, 0, 102)]);
    let reply = udp(server.addr, &query("102.0.20.10.in-addr.arpa.", RecordType::PTR)).await;
    assert_eq!(reply.answers.len(), 1);
    let after = soa_serial(&reply_soa(&server).await).unwrap();
    assert!(after > before, "serial {after} after a change, {before} before");

    // Its lease ends: the name is gone, and the serial grows again.
    let without: NameTable = with_phone.build(&[reservation(10, "nas")], &[lease(101, "laptop")], &[], NOW);
    server.names.publish(without);
    let reply = udp(server.addr, &query("phone.prox.local.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert!(soa_serial(&reply).unwrap() > after, "the NXDOMAIN's SOA carries the new serial");
    server.stop().await.unwrap();
}

async fn reply_soa(server: &Server) -> hickory_proto::op::Message {
    udp(server.addr, &query("prox.local.", RecordType::SOA)).await
}

#[tokio::test]
async fn tcp_answers_like_udp_on_the_same_port() {
    let server = Server::start(&support::config(&[], "2s")).await;
    let reply = tcp(server.addr, &query("laptop.prox.local.", RecordType::A)).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(10, 20, 0, 101)]);
    assert!(reply.metadata.authoritative);
    let reply = tcp(server.addr, &query("gone.prox.local.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn ipv6_sockets_serve_the_same_answers() {
    let server = Server::start_with(&support::config(&[], "2s"), None, "::1").await;
    let reply = udp(server.addr, &query("nas.prox.local.", RecordType::A)).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(10, 20, 0, 10)], "::1 is loopback: the LAN view");
    let reply = tcp(server.addr, &query("nas.prox.local.", RecordType::A)).await;
    assert_eq!(addresses(&reply), [Ipv4Addr::new(10, 20, 0, 10)]);
    server.stop().await.unwrap();
}
