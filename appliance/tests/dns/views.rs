//! The WAN view. The server gets a classifier whose LAN is 10.20.0.0/24 only, so a client on
//! 127.0.0.1 is a WAN client (the appliance's own classifier counts loopback as LAN).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use proximity_appliance::dns::Views;

use crate::support::{self, Server, addresses, authority_types, query, tcp, udp};
use crate::upstream::Upstream;

fn wan_only() -> Views {
    Views::new(["10.20.0.0/24".parse().unwrap()])
}

#[tokio::test]
async fn wan_clients_see_no_host_names_and_get_no_recursion() {
    let upstream = Upstream::start().await;
    let server =
        Server::start_with(&support::config(&[upstream.addr], "2s"), Some(wan_only()), "127.0.0.1").await;
    for (name, qtype) in [
        ("nas.prox.local.", RecordType::A),
        ("laptop.prox.local.", RecordType::A),
        ("nas.prox.local.", RecordType::AAAA),
        ("10.0.20.10.in-addr.arpa.", RecordType::PTR),
        ("1.0.20.10.in-addr.arpa.", RecordType::PTR),
    ] {
        let reply = udp(server.addr, &query(name, qtype)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain, "{name} {qtype}");
        assert!(reply.metadata.authoritative, "{name}: still our zone");
        assert!(!reply.metadata.recursion_available, "{name}: RA=0 for the WAN");
        assert_eq!(authority_types(&reply), [RecordType::SOA]);
    }
    // The zones themselves are public: SOA and NS at the apex.
    for apex in ["prox.local.", "0.20.10.in-addr.arpa."] {
        let reply = udp(server.addr, &query(apex, RecordType::SOA)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(reply.answers.len(), 1);
        assert!(!reply.metadata.recursion_available);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn wan_clients_get_apps_and_the_name_server_at_the_address_they_asked() {
    let server = Server::start_with(&support::config(&[], "2s"), Some(wan_only()), "127.0.0.1").await;
    // Loopback stands in for the WAN address: the answer is the address the query was sent to.
    let asked = std::net::Ipv4Addr::LOCALHOST;
    for name in ["web.prox.local.", "ns.prox.local."] {
        let reply = udp(server.addr, &query(name, RecordType::A)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(addresses(&reply), [asked], "{name} over udp");
        let reply = tcp(server.addr, &query(name, RecordType::A)).await;
        assert_eq!(addresses(&reply), [asked], "{name} over tcp");
    }
    let reply = udp(server.addr, &query("prox.local.", RecordType::NS)).await;
    let glue: Vec<_> = reply
        .additionals
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(glue, [asked], "glue for the name server");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn wan_clients_are_refused_anything_outside_our_zones_and_nothing_is_forwarded() {
    let upstream = Upstream::start().await;
    let server =
        Server::start_with(&support::config(&[upstream.addr], "2s"), Some(wan_only()), "127.0.0.1").await;
    for name in ["www.example.test.", "example.com.", "."] {
        let reply = udp(server.addr, &query(name, RecordType::A)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(!reply.metadata.recursion_available);
        assert!(reply.answers.is_empty());
        let reply = tcp(server.addr, &query(name, RecordType::A)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused, "{name} over tcp");
    }
    assert!(upstream.asked().is_empty(), "a WAN question reached the upstream: {:?}", upstream.asked());
    server.stop().await.unwrap();
}
