//! The client's transitions, driven with made-up times and a server written here.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use dhcproto::v4::{DhcpOption, OptionCode};

use super::*;
use crate::net::dhcp_client::timing::JITTER;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OFFERED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];
const UNIX: u64 = 1_700_000_000;

fn identity() -> Identity {
    Identity { mac: MAC, client_id: Identity::client_id_of(MAC), hostname: None }
}

fn client() -> Client {
    Client::new(identity(), Some("10.20.0.1/24".parse().unwrap()), 42)
}

/// The test's clock: `t0` plus `secs`.
struct Clock(Instant);

impl Clock {
    fn at(&self, secs: f64) -> Now {
        let d = Duration::from_secs_f64(secs);
        Now { at: self.0 + d, unix: UNIX + d.as_secs() }
    }
}

/// The one message sent, and where.
fn sent(actions: &[Action]) -> (&Message, Destination) {
    let sends: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { message, to } => Some((message, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 1, "{actions:?}");
    sends[0]
}

fn kind(msg: &Message) -> MessageType {
    msg.opts().msg_type().unwrap()
}

/// A server's reply of `kind` to `request`, giving `ip` with the usual options.
fn reply(request: &Message, kind: MessageType, ip: Ipv4Addr, lease_secs: u32) -> Message {
    let zero = Ipv4Addr::UNSPECIFIED;
    let mut msg = Message::new_with_id(request.xid(), zero, ip, zero, zero, &MAC);
    msg.set_opcode(Opcode::BootReply);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(SERVER));
    if kind != MessageType::Nak {
        opts.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        opts.insert(DhcpOption::Router(vec![SERVER]));
        opts.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(192, 0, 2, 53)]));
        opts.insert(DhcpOption::AddressLeaseTime(lease_secs));
    }
    msg
}

/// Runs DISCOVER, OFFER, REQUEST, ACK at `t`; returns the lease bound.
fn bind(client: &mut Client, clock: &Clock, t: f64, lease_secs: u32) -> Lease {
    let actions = client.start(clock.at(t), None);
    let (discover, to) = sent(&actions);
    assert_eq!((kind(discover), to), (MessageType::Discover, Destination::Broadcast));
    let actions = client.on_reply(&reply(discover, MessageType::Offer, OFFERED, lease_secs), clock.at(t));
    let (request, to) = sent(&actions);
    assert_eq!((kind(request), to), (MessageType::Request, Destination::Broadcast));
    assert_eq!(request.xid(), discover.xid(), "the request carries the offer's xid");
    let actions = client.on_reply(&reply(request, MessageType::Ack, OFFERED, lease_secs), clock.at(t));
    match actions.as_slice() {
        [Action::Bind { lease, previous: None }] => lease.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn discover_offer_request_ack_binds_the_lease() {
    let clock = Clock(Instant::now());
    let mut client = client();
    let lease = bind(&mut client, &clock, 0.0, 3600);
    assert_eq!(lease.address, "192.0.2.50/24".parse::<Ipv4Net>().unwrap());
    assert_eq!((lease.router, lease.server), (Some(SERVER), SERVER));
    assert_eq!(lease.dns, [Ipv4Addr::new(192, 0, 2, 53)]);
    assert_eq!(client.state_name(), "bound");
    assert_eq!(client.deadline(), clock.at(1800.0).at, "renew at T1, half the lease");
    assert!(client.on_timer(clock.at(1799.0)).is_empty(), "nothing before T1");
}

#[test]
fn discover_is_retransmitted_with_backoff_and_jitter_forever() {
    let clock = Clock(Instant::now());
    let mut client = client();
    let first = client.start(clock.at(0.0), None);
    let xid = sent(&first).0.xid();
    let mut t = clock.0;
    for base in [4u64, 8, 16, 32, 64, 64, 64] {
        let wait = client.deadline() - t;
        let base = Duration::from_secs(base);
        assert!(wait >= base - JITTER && wait <= base + JITTER, "waited {wait:?} for a base of {base:?}");
        t = client.deadline();
        let now = Now { at: t, unix: UNIX };
        let actions = client.on_timer(now);
        let (again, _) = sent(&actions);
        assert_eq!((kind(again), again.xid()), (MessageType::Discover, xid));
    }
}

#[test]
fn renewal_goes_to_the_server_then_rebinding_to_all_then_expiry_removes_the_address() {
    let clock = Clock(Instant::now());
    let mut client = client();
    let lease = bind(&mut client, &clock, 0.0, 1000);

    let actions = client.on_timer(clock.at(500.0));
    let (renew, to) = sent(&actions);
    assert_eq!(to, Destination::Server(SERVER));
    assert_eq!(renew.ciaddr(), OFFERED);
    assert!(!renew.flags().broadcast());
    assert_eq!(client.state_name(), "renewing");
    // Half the time left to T2 (875 s) while that is over 60 s, then 60 s, never past T2.
    let mut expected = vec![687.5, 781.25, 841.25, 875.0].into_iter();
    while client.state_name() == "renewing" {
        let next = expected.next().unwrap();
        assert_eq!(client.deadline(), clock.at(next).at, "retransmission at {next}");
        if next == 875.0 {
            break;
        }
        let actions = client.on_timer(clock.at(next));
        let (again, to) = sent(&actions);
        assert_eq!((again.xid(), to), (renew.xid(), Destination::Server(SERVER)));
    }

    let actions = client.on_timer(clock.at(875.0));
    let (rebind, to) = sent(&actions);
    assert_eq!((to, rebind.ciaddr()), (Destination::Broadcast, OFFERED));
    assert_eq!(client.state_name(), "rebinding");
    for next in [937.5, 997.5] {
        assert_eq!(client.deadline(), clock.at(next).at, "rebinding retransmission at {next}");
        let actions = client.on_timer(clock.at(next));
        assert_eq!(sent(&actions).1, Destination::Broadcast);
    }
    assert_eq!(client.deadline(), clock.at(1000.0).at, "then the expiry");

    let actions = client.on_timer(clock.at(1000.0));
    assert_eq!(actions.first(), Some(&Action::Unbind(lease)));
    let (discover, _) = sent(&actions);
    assert_eq!(kind(discover), MessageType::Discover);
    assert_eq!(
        discover.opts().get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(OFFERED)),
        "asks for its old address again"
    );
}

#[test]
fn an_ack_while_renewing_extends_the_lease_and_a_new_address_replaces_the_old() {
    let clock = Clock(Instant::now());
    let mut client = client();
    let old = bind(&mut client, &clock, 0.0, 1000);
    let actions = client.on_timer(clock.at(500.0));
    let (renew, _) = sent(&actions);
    let moved = Ipv4Addr::new(192, 0, 2, 77);
    let actions = client.on_reply(&reply(renew, MessageType::Ack, moved, 1000), clock.at(501.0));
    match actions.as_slice() {
        [Action::Bind { lease, previous: Some(previous) }] => {
            assert_eq!(lease.address.addr(), moved);
            assert_eq!(*previous, old);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.deadline(), clock.at(1001.0).at, "the new lease's T1");
}

#[test]
fn a_nak_while_renewing_removes_the_address_and_restarts_after_a_growing_delay() {
    let clock = Clock(Instant::now());
    let mut client = client();
    let lease = bind(&mut client, &clock, 0.0, 1000);
    let actions = client.on_timer(clock.at(500.0));
    let (renew, _) = sent(&actions);
    let actions = client.on_reply(&reply(renew, MessageType::Nak, Ipv4Addr::UNSPECIFIED, 0), clock.at(500.0));
    assert_eq!(actions, [Action::Unbind(lease)]);
    assert_eq!(client.state_name(), "init");
    assert_eq!(client.deadline(), clock.at(501.0).at, "first restart after a second");
    let actions = client.on_timer(clock.at(501.0));
    let (discover, _) = sent(&actions);
    assert!(
        discover.opts().get(OptionCode::RequestedIpAddress).is_none(),
        "a refused address is not asked for"
    );
    let offer = reply(discover, MessageType::Offer, OFFERED, 1000);
    let actions = client.on_reply(&offer, clock.at(501.0));
    let (request, _) = sent(&actions);
    assert!(
        client
            .on_reply(&reply(request, MessageType::Nak, Ipv4Addr::UNSPECIFIED, 0), clock.at(501.0))
            .is_empty()
    );
    assert_eq!(client.deadline(), clock.at(503.0).at, "the second restart in a row waits twice as long");
}

#[test]
fn replies_to_others_and_malformed_acks_change_nothing() {
    let clock = Clock(Instant::now());
    let mut client = client();
    let actions = client.start(clock.at(0.0), None);
    let (discover, _) = sent(&actions);
    let deadline = client.deadline();

    let mut other_xid = reply(discover, MessageType::Offer, OFFERED, 600);
    other_xid.set_xid(discover.xid().wrapping_add(1));
    let mut other_mac = reply(discover, MessageType::Offer, OFFERED, 600);
    other_mac.set_chaddr(&[2, 0, 0, 0, 0, 8]);
    let mut request_op = reply(discover, MessageType::Offer, OFFERED, 600);
    request_op.set_opcode(Opcode::BootRequest);
    let in_lan = reply(discover, MessageType::Offer, Ipv4Addr::new(10, 20, 0, 9), 600);
    let broadcast = reply(discover, MessageType::Offer, Ipv4Addr::BROADCAST, 600);
    let ack_unasked = reply(discover, MessageType::Ack, OFFERED, 600);
    for msg in [other_xid, other_mac, request_op, in_lan, broadcast, ack_unasked] {
        assert!(client.on_reply(&msg, clock.at(0.5)).is_empty(), "{msg:?}");
        assert_eq!((client.state_name(), client.deadline()), ("selecting", deadline));
    }

    let actions = client.on_reply(&reply(discover, MessageType::Offer, OFFERED, 600), clock.at(1.0));
    let (request, _) = sent(&actions);
    let mut no_lease_time = reply(request, MessageType::Ack, OFFERED, 600);
    no_lease_time.opts_mut().remove(OptionCode::AddressLeaseTime);
    assert!(client.on_reply(&no_lease_time, clock.at(1.0)).is_empty());
    assert_eq!(client.state_name(), "requesting");
}

#[test]
fn an_unanswered_request_goes_back_to_discover() {
    let clock = Clock(Instant::now());
    let mut client = client();
    let actions = client.start(clock.at(0.0), None);
    let (discover, _) = sent(&actions);
    client.on_reply(&reply(discover, MessageType::Offer, OFFERED, 600), clock.at(0.0));
    let mut requests = 1;
    loop {
        let now = Now { at: client.deadline(), unix: UNIX };
        let actions = client.on_timer(now);
        let Some(Action::Send { message, .. }) = actions.first() else {
            assert_eq!(client.state_name(), "init", "waits before starting over: {actions:?}");
            continue;
        };
        if kind(message) == MessageType::Discover {
            break;
        }
        requests += 1;
        assert!(requests <= REQUEST_ATTEMPTS, "too many requests");
    }
    assert_eq!(requests, REQUEST_ATTEMPTS);
}

fn saved(acquired_unix: u64, lease_secs: u64) -> SavedLease {
    SavedLease {
        address: "192.0.2.50/24".parse().unwrap(),
        router: Some(SERVER),
        dns: vec![],
        server: SERVER,
        lease_secs,
        t1_secs: lease_secs / 2,
        t2_secs: lease_secs * 7 / 8,
        acquired_unix,
    }
}

#[test]
fn a_saved_lease_is_asked_for_again_at_init_reboot() {
    let clock = Clock(Instant::now());
    let mut client = client();
    let actions = client.start(clock.at(0.0), Some(&saved(UNIX - 100, 1000)));
    let (request, to) = sent(&actions);
    assert_eq!(
        (kind(request), to, client.state_name()),
        (MessageType::Request, Destination::Broadcast, "init-reboot")
    );
    assert_eq!(request.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        request.opts().get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(OFFERED))
    );
    assert!(request.opts().get(OptionCode::ServerIdentifier).is_none());
    let actions = client.on_reply(&reply(request, MessageType::Ack, OFFERED, 1000), clock.at(0.1));
    match actions.as_slice() {
        [Action::Bind { lease, previous: Some(previous) }] => {
            assert_eq!(lease.address, previous.address, "same address: nothing to remove");
            assert_eq!(lease.acquired, clock.at(0.1).at, "a fresh lease");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_saved_lease_is_removed_and_an_unanswered_one_is_used_while_valid() {
    let clock = Clock(Instant::now());
    let mut refused = client();
    let actions = refused.start(clock.at(0.0), Some(&saved(UNIX - 100, 1000)));
    let (request, _) = sent(&actions);
    let actions =
        refused.on_reply(&reply(request, MessageType::Nak, Ipv4Addr::UNSPECIFIED, 0), clock.at(0.1));
    assert!(
        matches!(actions.as_slice(), [Action::Unbind(lease)] if lease.address.addr() == OFFERED),
        "{actions:?}"
    );

    let mut unanswered = client();
    unanswered.start(clock.at(0.0), Some(&saved(UNIX - 100, 1000)));
    let actions = unanswered.on_timer(Now { at: unanswered.deadline(), unix: UNIX });
    assert_eq!(kind(sent(&actions).0), MessageType::Request);
    let actions = unanswered.on_timer(Now { at: unanswered.deadline(), unix: UNIX });
    match actions.as_slice() {
        [Action::Bind { lease, previous: None }] => {
            assert_eq!(lease.address.addr(), OFFERED);
            assert_eq!(lease.expires_at(), clock.at(900.0).at, "only the time it had left");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_expired_saved_lease_is_removed_and_its_address_hinted() {
    let clock = Clock(Instant::now());
    let mut client = client();
    let actions = client.start(clock.at(0.0), Some(&saved(UNIX - 2000, 1000)));
    assert!(matches!(actions.first(), Some(Action::Unbind(_))), "{actions:?}");
    let (discover, _) = sent(&actions);
    assert_eq!(
        discover.opts().get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(OFFERED))
    );
}

/// A hostile server sees our xid (DISCOVERs are broadcast) and may answer anything: replies
/// made by flipping bytes of a real ACK never panic the decoder or the client, and whatever the
/// client binds is an address a host can have, with timers in order.
#[test]
fn ten_thousand_mangled_replies_never_panic_nor_bind_nonsense() {
    use dhcproto::v4::Encodable;

    let clock = Clock(Instant::now());
    let mut rng = Rng::new(99);
    let mut bound = 0;
    for round in 0..10_000u32 {
        let mut client = client();
        let actions = client.start(clock.at(0.0), None);
        let (discover, _) = sent(&actions);
        let offer = reply(discover, MessageType::Offer, OFFERED, 600);
        let actions = client.on_reply(&offer, clock.at(0.0));
        let (request, _) = sent(&actions);
        let mut bytes = reply(request, MessageType::Ack, OFFERED, 600).to_vec().unwrap();
        // Keep the header's xid and chaddr most of the time, so the mangled options get read.
        for _ in 0..1 + rng.next_u32() % 8 {
            let at = 240 + (rng.next_u32() as usize) % (bytes.len() - 240);
            bytes[at] = rng.next_u32() as u8;
        }
        if round % 10 == 0 {
            let at = (rng.next_u32() as usize) % bytes.len();
            bytes[at] = rng.next_u32() as u8;
        }
        let Ok(msg) = crate::dhcp::wire::decode(&bytes) else { continue };
        for action in client.on_reply(&msg, clock.at(0.0)) {
            if let Action::Bind { lease, .. } = action {
                bound += 1;
                assert!(messages::is_host_address(lease.address.addr()), "{lease:?}");
                assert!(lease.address.prefix_len() >= 1, "{lease:?}");
                assert!(lease.t1 <= lease.t2 && lease.t2 <= lease.lease_time, "{lease:?}");
                assert!(lease.lease_time >= messages::MIN_LEASE_TIME, "{lease:?}");
            }
        }
    }
    assert!(bound > 0, "some mangled acks are still acks");
}
