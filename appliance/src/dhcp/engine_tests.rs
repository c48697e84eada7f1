//! Protocol decisions for each client state of RFC 2131 4.3, on real encoded messages.

use std::net::Ipv4Addr;

use dhcproto::v4::{Decodable, DhcpOption, Encodable, Flags, Message, MessageType, OptionCode};
use proximity_config::from_toml_str;

use super::*;
use crate::dhcp::pool::EXPIRY_GRACE;
use crate::dhcp::reply::MIN_MESSAGE;
use crate::state::LeaseState;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);

/// An engine serving `range` (3 addresses unless a test needs fewer).
fn engine_with(range: &str, extra: &str) -> Engine {
    let text =
        format!("[dhcp]\nrange = \"{range}\"\nlease_time = \"1h\"\ndecline_probation = \"60s\"\n{extra}");
    let config = from_toml_str(&text).expect("valid config");
    let net = NetworkOptions::new(config.lan.gateway(), config.lan.address.trunc(), &config.dns.domain);
    Engine::new(net, Pool::new(&config.dhcp, Vec::new()))
}

fn engine(extra: &str) -> Engine {
    engine_with("10.20.0.100-10.20.0.102", extra)
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 20, 0, last)
}

fn mac(n: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0, 0, n]
}

/// A client message as it would arrive: built, encoded, decoded.
fn client(kind: MessageType, n: u8, edit: impl FnOnce(&mut Message)) -> Message {
    let mut m = Message::default();
    m.set_chaddr(&mac(n)).set_xid(0x1000 + u32::from(n));
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    edit(&mut m);
    Message::from_bytes(&m.to_vec().expect("encodes")).expect("decodes")
}

fn requested(ip: Ipv4Addr) -> DhcpOption {
    DhcpOption::RequestedIpAddress(ip)
}

fn decoded(reply: &Reply) -> Message {
    Message::from_bytes(&reply.bytes).expect("reply decodes")
}

fn sent(outcome: Outcome) -> Reply {
    match outcome {
        Outcome::Send(reply) | Outcome::Commit { reply: Some(reply), .. } => reply,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn committed(outcome: &Outcome) -> Vec<Lease> {
    match outcome {
        Outcome::Commit { changes, .. } => changes
            .iter()
            .filter_map(|c| match c {
                Change::PutLease(l) => Some(l.clone()),
                _ => None,
            })
            .collect(),
        other => panic!("expected a commit, got {other:?}"),
    }
}

/// DISCOVER then REQUEST (SELECTING); returns the leased address.
fn dora(e: &mut Engine, n: u8, now: UnixTime) -> Ipv4Addr {
    let offer = decoded(&sent(e.handle(&client(MessageType::Discover, n, |_| {}), now)));
    let yiaddr = offer.yiaddr();
    let ack = e.handle(
        &client(MessageType::Request, n, |m| {
            m.opts_mut().insert(requested(yiaddr));
            m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        }),
        now,
    );
    assert_eq!(decoded(&sent(ack)).opts().msg_type(), Some(MessageType::Ack));
    yiaddr
}

fn opt(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
    m.opts().get(code)
}

#[test]
fn offer_carries_the_network_configuration() {
    let mut e = engine("");
    let reply = sent(e.handle(&client(MessageType::Discover, 1, |_| {}), 0));
    assert!(reply.bytes.len() >= MIN_MESSAGE);
    let offer = decoded(&reply);
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(offer.yiaddr(), ip(100));
    assert_eq!(offer.xid(), 0x1001);
    assert_eq!(opt(&offer, OptionCode::ServerIdentifier), Some(&DhcpOption::ServerIdentifier(SERVER)));
    assert_eq!(
        opt(&offer, OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(opt(&offer, OptionCode::Router), Some(&DhcpOption::Router(vec![SERVER])));
    assert_eq!(opt(&offer, OptionCode::DomainNameServer), Some(&DhcpOption::DomainNameServer(vec![SERVER])));
    assert_eq!(opt(&offer, OptionCode::DomainName), Some(&DhcpOption::DomainName("prox.local".into())));
    assert_eq!(opt(&offer, OptionCode::AddressLeaseTime), Some(&DhcpOption::AddressLeaseTime(3600)));
    assert_eq!(opt(&offer, OptionCode::Renewal), Some(&DhcpOption::Renewal(1800)));
    assert_eq!(opt(&offer, OptionCode::Rebinding), Some(&DhcpOption::Rebinding(3150)));
    // Not asked for, not sent.
    assert_eq!(opt(&offer, OptionCode::DomainSearch), None);
    assert_eq!(reply.dest, Dest::Hardware { ip: ip(100), mac: MacAddr(mac(1)) });
}

#[test]
fn parameter_request_list_adds_search_list_and_broadcast_flag_is_honoured() {
    let mut e = engine("");
    let discover = client(MessageType::Discover, 1, |m| {
        m.set_flags(Flags::default().set_broadcast());
        m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::DomainSearch,
            OptionCode::BroadcastAddr,
        ]));
    });
    let reply = sent(e.handle(&discover, 0));
    assert_eq!(reply.dest, Dest::Broadcast);
    let offer = decoded(&reply);
    let Some(DhcpOption::DomainSearch(names)) = opt(&offer, OptionCode::DomainSearch) else {
        panic!("no search list")
    };
    assert_eq!(names.iter().map(ToString::to_string).collect::<Vec<_>>(), vec!["prox.local."]);
    assert_eq!(opt(&offer, OptionCode::BroadcastAddr), Some(&DhcpOption::BroadcastAddr(ip(255))));
}

#[test]
fn selecting_request_is_acked_and_committed() {
    let mut e = engine("");
    dora(&mut e, 1, 0);
    let lease = e.pool().lease(ip(100)).expect("recorded");
    assert_eq!(
        (lease.state, lease.expires, lease.mac),
        (LeaseState::Active, 3600 + EXPIRY_GRACE, MacAddr(mac(1)))
    );
}

#[test]
fn request_for_another_server_drops_our_hold() {
    let mut e = engine_with("10.20.0.100-10.20.0.100", "");
    let offer = decoded(&sent(e.handle(&client(MessageType::Discover, 1, |_| {}), 0)));
    let other = e.handle(
        &client(MessageType::Request, 1, |m| {
            m.opts_mut().insert(requested(offer.yiaddr()));
            m.opts_mut().insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 20, 0, 2)));
        }),
        1,
    );
    assert!(matches!(other, Outcome::Ignore(Ignored::OtherServer)));
    // The one address is free again for the next client.
    assert_eq!(dora(&mut e, 2, 2), ip(100));
}

#[test]
fn init_reboot_acks_own_address_and_naks_the_rest() {
    let mut e = engine("");
    let a = dora(&mut e, 1, 0);
    let reboot = |n: u8, want: Ipv4Addr| {
        client(MessageType::Request, n, move |m| {
            m.opts_mut().insert(requested(want));
        })
    };
    let ack = sent(e.handle(&reboot(1, a), 10));
    assert_eq!(decoded(&ack).opts().msg_type(), Some(MessageType::Ack));
    // Somebody else's address, another subnet, outside the pool: NAK, broadcast.
    for (n, want) in [(2, a), (2, Ipv4Addr::new(192, 168, 1, 5)), (2, ip(50))] {
        let nak = sent(e.handle(&reboot(n, want), 10));
        assert_eq!(decoded(&nak).opts().msg_type(), Some(MessageType::Nak), "{want}");
        assert_eq!(nak.dest, Dest::Broadcast);
    }
    // An unknown client asking for a free pool address gets it (we are authoritative).
    let ack = sent(e.handle(&reboot(3, ip(101)), 10));
    assert_eq!(decoded(&ack).yiaddr(), ip(101));
}

#[test]
fn renewing_extends_the_lease_and_answers_unicast() {
    let mut e = engine("");
    let a = dora(&mut e, 1, 0);
    let renew = client(MessageType::Request, 1, |m| {
        m.set_ciaddr(a);
    });
    let outcome = e.handle(&renew, 1000);
    let leases = committed(&outcome);
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].ip, leases[0].expires), (a, 1000 + 3600 + EXPIRY_GRACE));
    let reply = sent(outcome);
    assert_eq!(reply.dest, Dest::Client(a));
    let ack = decoded(&reply);
    assert_eq!((ack.ciaddr(), ack.yiaddr()), (a, a));
    // A client renewing an address it does not have is refused.
    let stolen = client(MessageType::Request, 2, |m| {
        m.set_ciaddr(a);
    });
    assert_eq!(decoded(&sent(e.handle(&stolen, 1000))).opts().msg_type(), Some(MessageType::Nak));
}

#[test]
fn relayed_messages_go_back_to_the_relay_and_foreign_relays_are_ignored() {
    let mut e = engine("");
    let relayed = client(MessageType::Discover, 1, |m| {
        m.set_giaddr(ip(2));
    });
    assert_eq!(sent(e.handle(&relayed, 0)).dest, Dest::Relay(SocketAddrV4::new(ip(2), SERVER_PORT)));
    let foreign = client(MessageType::Discover, 1, |m| {
        m.set_giaddr(Ipv4Addr::new(192, 168, 7, 1));
    });
    assert!(matches!(e.handle(&foreign, 0), Outcome::Ignore(Ignored::ForeignRelay)));
    let nak = sent(e.handle(
        &client(MessageType::Request, 1, |m| {
            m.set_giaddr(ip(2));
            m.opts_mut().insert(requested(Ipv4Addr::new(192, 168, 1, 5)));
        }),
        0,
    ));
    assert!(decoded(&nak).flags().broadcast(), "relay must broadcast a NAK");
}

#[test]
fn decline_puts_the_address_on_probation() {
    let mut e = engine("");
    let a = dora(&mut e, 1, 0);
    let decline = client(MessageType::Decline, 1, |m| {
        m.opts_mut().insert(requested(a));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    });
    let leases = committed(&e.handle(&decline, 5));
    assert_eq!((leases[0].state, leases[0].expires), (LeaseState::Declined, 65));
    // Neither the decliner nor anyone else is offered it during probation.
    for n in [1, 2] {
        let offer = decoded(&sent(e.handle(&client(MessageType::Discover, n, |_| {}), 6)));
        assert_ne!(offer.yiaddr(), a);
    }
    let stranger = client(MessageType::Decline, 3, |m| {
        m.opts_mut().insert(requested(ip(101)));
    });
    assert!(matches!(e.handle(&stranger, 7), Outcome::Ignore(Ignored::NothingToDo)));
}

#[test]
fn release_frees_the_address_for_others() {
    let mut e = engine_with("10.20.0.100-10.20.0.100", "");
    let a = dora(&mut e, 1, 0);
    assert!(matches!(
        e.handle(&client(MessageType::Discover, 2, |_| {}), 1),
        Outcome::Ignore(Ignored::PoolExhausted)
    ));
    // Only the holder can release it.
    let forged = client(MessageType::Release, 2, |m| {
        m.set_ciaddr(a);
    });
    assert!(matches!(e.handle(&forged, 2), Outcome::Ignore(Ignored::NothingToDo)));
    let release = client(MessageType::Release, 1, |m| {
        m.set_ciaddr(a);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    });
    assert_eq!(committed(&e.handle(&release, 3))[0].state, LeaseState::Released);
    assert_eq!(dora(&mut e, 2, 4), a);
}

#[test]
fn inform_gets_configuration_without_a_lease() {
    let mut e = engine("");
    let inform = client(MessageType::Inform, 1, |m| {
        m.set_ciaddr(ip(20));
    });
    let reply = sent(e.handle(&inform, 0));
    assert_eq!(reply.dest, Dest::Client(ip(20)));
    let ack = decoded(&reply);
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(opt(&ack, OptionCode::AddressLeaseTime), None);
    assert!(opt(&ack, OptionCode::Router).is_some());
}

#[test]
fn client_identifier_takes_precedence_over_hardware_address() {
    let mut e = engine("");
    let with_id = |n: u8| {
        move |m: &mut Message| {
            m.opts_mut().insert(DhcpOption::ClientIdentifier(b"vm-42".to_vec()));
            let _ = n;
        }
    };
    let first = decoded(&sent(e.handle(&client(MessageType::Discover, 1, with_id(1)), 0))).yiaddr();
    let moved = decoded(&sent(e.handle(&client(MessageType::Discover, 2, with_id(2)), 0))).yiaddr();
    assert_eq!(first, moved, "same client id, new NIC: same address");
}

#[test]
fn hostnames_are_sanitised_and_kept_on_renewal() {
    let mut e = engine("");
    let request = client(MessageType::Request, 1, |m| {
        m.opts_mut().insert(requested(ip(100)));
        m.opts_mut().insert(DhcpOption::Hostname("My_Laptop.home".into()));
    });
    assert_eq!(committed(&e.handle(&request, 0))[0].hostname.as_deref(), Some("my-laptop"));
    let renew = client(MessageType::Request, 1, |m| {
        m.set_ciaddr(ip(100));
    });
    assert_eq!(committed(&e.handle(&renew, 10))[0].hostname.as_deref(), Some("my-laptop"));
}

#[test]
fn reservation_gets_its_fixed_address() {
    let mut e =
        engine("[[dhcp.reservations]]\nmac = \"52:54:00:00:00:07\"\nip = \"10.20.0.10\"\nname = \"nas\"\n");
    assert_eq!(dora(&mut e, 7, 0), ip(10));
    let wrong = client(MessageType::Request, 7, |m| {
        m.opts_mut().insert(requested(ip(100)));
    });
    assert_eq!(decoded(&sent(e.handle(&wrong, 1))).opts().msg_type(), Some(MessageType::Nak));
    let thief = client(MessageType::Request, 8, |m| {
        m.opts_mut().insert(requested(ip(10)));
    });
    assert_eq!(decoded(&sent(e.handle(&thief, 1))).opts().msg_type(), Some(MessageType::Nak));
}

#[test]
fn bootp_replies_and_odd_hardware_are_ignored() {
    let mut e = engine("");
    let mut bootp = Message::default();
    bootp.set_chaddr(&mac(1));
    assert!(matches!(e.handle(&bootp, 0), Outcome::Ignore(Ignored::NotForUs)));
    let offer_from_elsewhere = client(MessageType::Offer, 1, |_| {});
    assert!(matches!(e.handle(&offer_from_elsewhere, 0), Outcome::Ignore(Ignored::NotForUs)));
}

#[test]
fn hostile_bytes_never_panic() {
    let mut e = engine("");
    let valid = client(MessageType::Discover, 1, |m| {
        m.opts_mut().insert(DhcpOption::Hostname("x".into()));
        m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![OptionCode::DomainSearch]));
    })
    .to_vec()
    .expect("encodes");
    // hlen past the 16-byte chaddr field once crashed naive parsers.
    let mut long_hlen = valid.clone();
    long_hlen[2] = 255;
    if let Ok(m) = crate::dhcp::wire::decode(&long_hlen) {
        assert!(matches!(e.handle(&m, 0), Outcome::Ignore(_)));
    }
    // Deterministic mutations of a valid message: flip bytes, truncate, extend.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000 {
        let mut bytes = valid.clone();
        for _ in 0..=(next() % 8) {
            let at = usize::try_from(next()).unwrap_or(0) % bytes.len();
            bytes[at] = u8::try_from(next() & 0xff).unwrap_or(0);
        }
        if round % 3 == 0 {
            bytes.truncate(usize::try_from(next()).unwrap_or(0) % bytes.len());
        }
        if let Ok(m) = crate::dhcp::wire::decode(&bytes) {
            let _ = e.handle(&m, round);
        }
    }
}

#[test]
fn an_admin_revoke_frees_the_address_and_a_failed_commit_puts_it_back() {
    let mut e = engine("");
    let a = dora(&mut e, 1, 10);
    assert!(e.revoke(ip(200), 20).is_none(), "no lease there");
    let (old, ended) = e.revoke(a, 20).expect("a bound lease");
    assert_eq!((old.state, ended.state, ended.expires), (LeaseState::Active, LeaseState::Released, 20));
    assert_eq!(e.pool().lease(a), Some(&ended));
    assert!(e.revoke(a, 21).is_none(), "already ended");
    // The commit failed: the lease is back as it was.
    e.restore(old.clone(), &ended);
    assert_eq!(e.pool().lease(a), Some(&old));
    // Revoked for good: another client may now get it, and a late restore does not take it back.
    let (old, ended) = e.revoke(a, 30).expect("bound again");
    // Three more clients for three addresses: the last one gets the revoked one.
    for n in 2..=4 {
        dora(&mut e, n, 31);
    }
    let taken = e.pool().lease(a).cloned().expect("a record");
    assert_eq!(taken.state, LeaseState::Active, "the pool gave the address out again");
    assert_ne!(taken.mac, old.mac);
    e.restore(old, &ended);
    assert_eq!(e.pool().lease(a), Some(&taken), "the newer lease stands");
}
