//! DNS end to end: clients that got their address by DHCP (udhcpc, dhcpcd, dhclient) ask the
//! appliance with `dig` and `kdig`. Our zone answers names and addresses of leases and
//! reservations, right (NODATA, NXDOMAIN, AA, TCP, case), live (a name comes with its lease and
//! goes with its release) and by the name policy (a taken name stays with its owner). Other names
//! are forwarded to a real dnsmasq in the outside namespace, cached, and a dead upstream gives
//! SERVFAIL in time. The WAN side gets our zone's apex only: no recursion, no host names.

use std::net::Ipv4Addr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use proximity_config::MacAddr;
use proximity_config::raw::RawReservation;
use proximity_tests::dns::{self, Dnsmasq, Reply, Tool, query, reverse};
use proximity_tests::{GATEWAY, Host, Lab, WAN_ADDRESS, WAN_UPSTREAM};

use crate::support::DOMAIN;

const TOOLS: [Tool; 2] = [Tool::Dig, Tool::Kdig];
/// How long a name may take to appear after its client is bound, or to go after its release.
/// The issue promises 10 ms; this is a deadline against hangs, the measured delay is printed.
const NAME_DEADLINE: Duration = Duration::from_secs(2);
/// What the upstream serves: every name in `example.test`, and one name in `upstream.test`,
/// where every other name is NXDOMAIN.
const EXAMPLE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const MIRROR: &str = "mirror.upstream.test";
const MIRROR_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 8);
/// A TXT record too big for a UDP reply (over dig's EDNS size of 1232 bytes): the upstream
/// truncates it to the appliance, and the appliance to its client.
const BIG: &str = "big.upstream.test";
/// One string of the record: 216 bytes (a TXT string holds at most 255).
const BIG_STRING: &str = "0123456789abcdefghijklmnopqrstuvwxyz";
const BIG_REPEAT: usize = 6;
const BIG_STRINGS: usize = 8;
/// TTL of the upstream's records: long enough that a test never sees one expire.
const UPSTREAM_TTL: u32 = 300;
/// The appliance's upstream timeout in the forwarding tests, and the most a SERVFAIL for a dead
/// upstream may take (dig waits 5 s, so a hang shows as no reply at all).
const UPSTREAM_TIMEOUT: &str = "2s";
const SERVFAIL_WITHIN: Duration = Duration::from_secs(4);
/// A LAN address nobody leases in these tests.
const UNNAMED: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 77);

fn fqdn(label: &str) -> String {
    format!("{label}.{DOMAIN}")
}

/// What `dig` prints for `name` in our zone: lower-case with the root dot.
fn printed(label: &str) -> String {
    format!("{}.", fqdn(label))
}

/// Polls `asker` until `name` answers with `ip` (it may lag its lease by a moment), then checks
/// the answer is authoritative.
fn await_name(asker: &Host, name: &str, ip: Ipv4Addr) -> Result<Reply> {
    let (reply, _) =
        query(asker, GATEWAY, name, "A")
            .until(NAME_DEADLINE, &format!("{name} -> {ip}"), |r| r.is_answer(&[ip]))?;
    assert!(reply.aa(), "an answer from our zone must be authoritative: {reply}");
    Ok(reply)
}

fn assert_answer(reply: &Reply, ips: &[Ipv4Addr], what: &str) {
    assert!(reply.is_answer(ips), "{what}: expected NOERROR with {ips:?}, got {reply}");
    assert!(reply.aa(), "{what}: our zone's answer must have AA: {reply}");
    assert!(reply.ra(), "{what}: the LAN is offered recursion, so RA: {reply}");
}

/// A negative answer from our zone: `status`, no answer, the zone's SOA in the authority section.
fn assert_negative(reply: &Reply, status: &str, zone: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {reply}");
    assert!(reply.answer.is_empty(), "{what}: the answer section must be empty: {reply}");
    assert_eq!(
        reply.authority_soa(),
        Some(zone),
        "{what}: the SOA of {zone} belongs in the authority section: {reply}"
    );
    assert!(reply.aa(), "{what}: our zone's answer must have AA: {reply}");
}

fn assert_ptr(reply: &Reply, label: &str, what: &str) {
    assert_eq!(reply.status, "NOERROR", "{what}: {reply}");
    assert_eq!(reply.ptr_names(), [printed(label)], "{what}: {reply}");
    assert!(reply.aa(), "{what}: our zone's answer must have AA: {reply}");
}

#[test]
fn dig_and_kdig_resolve_dhcp_clients_by_name_and_address() -> Result<()> {
    let lab = Lab::builder().clients(3).build()?;
    lab.start_appliance(&lab.config())?;
    dns::wait_ready(lab.appliance())?;
    let alpha = lab.client(0).udhcpc().hostname("alpha").spawn()?;
    let alpha_ip = alpha.lease()?.ip;
    let bravo_ip = lab.client(1).dhcpcd().hostname("bravo").no_arp().obtain()?.ip;
    // dhclient sends no host name: this client only asks.
    lab.client(2).dhclient().obtain()?;
    await_name(lab.client(2), &fqdn("alpha"), alpha_ip)?;
    await_name(lab.client(2), &fqdn("bravo"), bravo_ip)?;

    // Each client asks for its own name and the others', with both tools, both ways.
    for asker in lab.clients() {
        for tool in TOOLS {
            for (label, ip) in [("alpha", alpha_ip), ("bravo", bravo_ip)] {
                let what = format!("{} asks {tool:?} for {label}", asker.label());
                assert_answer(&query(asker, GATEWAY, &fqdn(label), "A").tool(tool).run()?, &[ip], &what);
                assert_ptr(&reverse(asker, GATEWAY, ip).tool(tool).run()?, label, &format!("{what} (PTR)"));
            }
        }
    }
    // TCP, on the same port.
    for tool in TOOLS {
        let what = format!("{tool:?} over TCP");
        let reply = query(lab.client(2), GATEWAY, &fqdn("alpha"), "A").tool(tool).tcp().run()?;
        assert_answer(&reply, &[alpha_ip], &what);
        assert_ptr(&reverse(lab.client(2), GATEWAY, bravo_ip).tool(tool).tcp().run()?, "bravo", &what);
    }
    // Names are case-insensitive; the answer echoes the question's spelling.
    let reply = query(lab.client(1), GATEWAY, "ALPHA.Prox.Local", "A").run()?;
    assert_answer(&reply, &[alpha_ip], "ALPHA.Prox.Local");
    let reply = query(lab.client(0), GATEWAY, "bRaVo.PROX.local", "A").tool(Tool::Kdig).run()?;
    assert_answer(&reply, &[bravo_ip], "bRaVo.PROX.local");
    Ok(())
}

#[test]
fn negative_answers_are_nodata_and_nxdomain_with_the_soa() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    lab.start_appliance(&lab.config())?;
    let client = lab.client(0);
    // The host name the client sends is not a valid label; its name is the sanitised one.
    let lease = client.udhcpc().hostname("Alpha_Box").spawn()?;
    let ip = lease.lease()?.ip;
    await_name(client, &fqdn("alpha-box"), ip)?;
    let zone = format!("{DOMAIN}.");
    for tool in TOOLS {
        let ask = |name: &str, qtype: &str| query(client, GATEWAY, name, qtype).tool(tool).run();
        // NODATA: the name exists, without that type.
        assert_negative(
            &ask(&fqdn("alpha-box"), "AAAA")?,
            "NOERROR",
            &zone,
            &format!("{tool:?} AAAA of a host"),
        );
        assert_negative(&ask(&fqdn("alpha-box"), "MX")?, "NOERROR", &zone, &format!("{tool:?} MX of a host"));
        // NXDOMAIN: no such name, of any type, nor below a host, nor the name as the client spelt it.
        assert_negative(&ask(&fqdn("alpha_box"), "A")?, "NXDOMAIN", &zone, &format!("{tool:?} alpha_box"));
        assert_negative(&ask(&fqdn("unknown"), "A")?, "NXDOMAIN", &zone, &format!("{tool:?} unknown"));
        assert_negative(
            &ask(&fqdn("unknown"), "AAAA")?,
            "NXDOMAIN",
            &zone,
            &format!("{tool:?} unknown AAAA"),
        );
        assert_negative(
            &ask(&fqdn("www.alpha-box"), "A")?,
            "NXDOMAIN",
            &zone,
            &format!("{tool:?} below a host"),
        );
        // The reverse zone: an address without a name.
        let reply = reverse(client, GATEWAY, UNNAMED).tool(tool).run()?;
        assert_negative(&reply, "NXDOMAIN", "0.20.10.in-addr.arpa.", &format!("{tool:?} PTR of {UNNAMED}"));
        // The apex has its SOA.
        let reply = ask(DOMAIN, "SOA")?;
        assert_eq!(reply.status, "NOERROR", "{tool:?} SOA: {reply}");
        assert!(reply.aa(), "{tool:?} SOA must be authoritative: {reply}");
        let soa: Vec<_> = reply.answer.iter().filter(|r| r.rtype == "SOA").collect();
        assert!(soa.len() == 1 && soa[0].name == zone, "{tool:?} SOA of {DOMAIN}: {reply}");
    }
    Ok(())
}

#[test]
fn a_name_comes_with_its_lease_and_goes_with_its_release() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    lab.start_appliance(&lab.config())?;
    let (client, observer) = (lab.client(0), lab.client(1));
    observer.dhclient().obtain()?;
    let name = fqdn("charlie");
    let ask = query(observer, GATEWAY, &name, "A");
    assert_eq!(ask.run()?.status, "NXDOMAIN", "{name} exists before any lease");
    let serial_before = soa_serial(observer)?;

    // The observer asks over and over while the client gets its lease; each try is timed. It
    // gives up NAME_DEADLINE after the client has its lease (or at once when it got none).
    let give_up: Mutex<Option<Instant>> = Mutex::new(None);
    let (daemon, tries) = std::thread::scope(|s| -> Result<_> {
        let poller = s.spawn(|| -> Result<Vec<(SystemTime, SystemTime, Reply)>> {
            let mut tries = Vec::new();
            loop {
                let sent = SystemTime::now();
                let reply = ask.run()?;
                let found = reply.status == "NOERROR";
                tries.push((sent, SystemTime::now(), reply));
                let limit = *give_up.lock().unwrap_or_else(PoisonError::into_inner);
                if found || limit.is_some_and(|limit| Instant::now() >= limit) {
                    return Ok(tries);
                }
            }
        });
        let daemon = client.udhcpc().hostname("charlie").spawn();
        let limit = if daemon.is_ok() { Instant::now() + NAME_DEADLINE } else { Instant::now() };
        *give_up.lock().unwrap_or_else(PoisonError::into_inner) = Some(limit);
        let tries = poller.join().map_err(|_| anyhow::anyhow!("the polling thread panicked"))?;
        Ok((daemon?, tries?))
    })?;
    let ip = daemon.lease()?.ip;
    // When the client's script recorded the lease (`bound`): the last write of its events file
    // (`udhcpc.events` in the host's directory, see `proximity_tests::clients::udhcpc`).
    let bound = std::fs::metadata(client.dir().join("udhcpc.events"))?.modified()?;
    let ms = |t: &SystemTime| match t.duration_since(bound) {
        Ok(d) => format!("{:+.1} ms", d.as_secs_f64() * 1e3),
        Err(e) => format!("{:+.1} ms", -e.duration().as_secs_f64() * 1e3),
    };
    let (sent, answered, reply) = tries.last().context("no query was made")?;
    let before = match tries.len().checked_sub(2).and_then(|i| tries.get(i)) {
        Some((sent, _, reply)) => format!("the try before, sent at {}, got {}", ms(sent), reply.status),
        None => "it was the first try".to_owned(),
    };
    println!(
        "name appearance: {name} answered by the query sent at {} and answered at {} from the client's \
         bound event ({before}; {} tries)",
        ms(sent),
        ms(answered),
        tries.len()
    );
    assert_answer(reply, &[ip], &format!("the name of a new lease, {} after it", ms(answered)));
    assert_ptr(&reverse(observer, GATEWAY, ip).run()?, "charlie", "PTR of a new lease");
    let serial_leased = soa_serial(observer)?;
    assert!(serial_leased > serial_before, "SOA serial {serial_before} -> {serial_leased} over a new name");

    daemon.release()?;
    let (gone, took) =
        ask.until(NAME_DEADLINE, &format!("{name} to go after its release"), |r| r.status == "NXDOMAIN")?;
    println!("name removal: {name} NXDOMAIN {:.1} ms after the release was sent", took.as_secs_f64() * 1e3);
    assert_negative(&gone, "NXDOMAIN", &format!("{DOMAIN}."), "after the release");
    let reply = reverse(observer, GATEWAY, ip).run()?;
    assert_negative(&reply, "NXDOMAIN", "0.20.10.in-addr.arpa.", "PTR after the release");
    let serial_released = soa_serial(observer)?;
    assert!(
        serial_released > serial_leased,
        "SOA serial {serial_leased} -> {serial_released} over a release"
    );
    Ok(())
}

/// The serial of our zone's SOA, asked by `asker`.
fn soa_serial(asker: &Host) -> Result<u32> {
    let reply = query(asker, GATEWAY, DOMAIN, "SOA").run()?;
    let soa = reply.answer.iter().find(|r| r.rtype == "SOA").with_context(|| format!("no SOA: {reply}"))?;
    // `mname rname serial refresh retry expire minimum`
    let serial = soa.data.split_whitespace().nth(2).with_context(|| format!("short SOA: {reply}"))?;
    serial.parse().with_context(|| format!("SOA serial {serial:?}: {reply}"))
}

#[test]
fn a_taken_host_name_stays_with_its_first_owner() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    lab.start_appliance(&lab.config())?;
    let first = lab.client(0).udhcpc().hostname("delta").spawn()?;
    let first_ip = first.lease()?.ip;
    await_name(lab.client(0), &fqdn("delta"), first_ip)?;
    let second = lab.client(1).udhcpc().hostname("delta").spawn()?;
    let second_ip = second.lease()?.ip;
    assert_ne!(first_ip, second_ip);
    // The second client's renewal asks again; it still gets no name.
    second.renew()?;

    for asker in lab.clients() {
        for tool in TOOLS {
            let what = format!("{} asks {tool:?} for delta", asker.label());
            assert_answer(&query(asker, GATEWAY, &fqdn("delta"), "A").tool(tool).run()?, &[first_ip], &what);
            assert_ptr(&reverse(asker, GATEWAY, first_ip).tool(tool).run()?, "delta", &what);
            let reply = reverse(asker, GATEWAY, second_ip).tool(tool).run()?;
            assert_negative(
                &reply,
                "NXDOMAIN",
                "0.20.10.in-addr.arpa.",
                &format!("{what}: PTR of the second"),
            );
        }
    }
    let log = lab.appliance().log();
    assert!(log.contains("host name already taken"), "the refused claim must be logged:\n{log}");
    Ok(())
}

#[test]
fn reservation_names_resolve_and_own_their_names() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    let web_ip = Ipv4Addr::new(10, 20, 0, 10);
    let printer_ip = Ipv4Addr::new(10, 20, 0, 11);
    let mut config = lab.config();
    config.dhcp.reservations = vec![
        RawReservation::new(lab.client(0).mac(), web_ip, Some("web")),
        // A reserved machine that is switched off: its name is there all the same.
        RawReservation::new(MacAddr([0x02, 0x70, 0x78, 0xee, 0x00, 0x01]), printer_ip, Some("printer")),
    ];
    lab.start_appliance(&config)?;
    assert_eq!(lab.client(0).udhcpc().obtain()?.ip, web_ip);
    // A client that wants the reserved name gets an address, and no name.
    let other = lab.client(1).udhcpc().hostname("web").spawn()?;
    let other_ip = other.lease()?.ip;
    await_name(lab.client(1), &fqdn("web"), web_ip)?;

    for asker in lab.clients() {
        for tool in TOOLS {
            let what = format!("{} asks {tool:?}", asker.label());
            let ask = |name: &str| query(asker, GATEWAY, name, "A").tool(tool).run();
            assert_answer(&ask("WEB.Prox.Local")?, &[web_ip], &format!("{what} for WEB.Prox.Local"));
            assert_answer(&ask(&fqdn("web"))?, &[web_ip], &format!("{what} for web"));
            assert_answer(&ask("printer.PROX.LOCAL")?, &[printer_ip], &format!("{what} for printer"));
            assert_ptr(&reverse(asker, GATEWAY, web_ip).tool(tool).run()?, "web", &what);
            assert_ptr(&reverse(asker, GATEWAY, printer_ip).tool(tool).run()?, "printer", &what);
            let reply = reverse(asker, GATEWAY, other_ip).tool(tool).run()?;
            assert_negative(
                &reply,
                "NXDOMAIN",
                "0.20.10.in-addr.arpa.",
                &format!("{what}: PTR of the claimant"),
            );
        }
    }
    Ok(())
}

/// The upstream of the forwarding tests, in the outside namespace.
fn upstream(lab: &Lab) -> Result<Dnsmasq<'_>> {
    Dnsmasq::builder(lab.wan(), WAN_UPSTREAM)
        .address("example.test", EXAMPLE_IP)
        .host_record(MIRROR, MIRROR_IP)
        .local("upstream.test")
        .txt_record(BIG, &[BIG_STRING.repeat(BIG_REPEAT).as_str(); BIG_STRINGS])
        .ttl(UPSTREAM_TTL)
        .start()
}

/// A lab with a WAN side and the appliance forwarding to [`WAN_UPSTREAM`].
fn forwarding_lab(clients: usize) -> Result<Lab> {
    let lab = Lab::builder().clients(clients).wan(true).build()?;
    let mut config = lab.config();
    config.dns.upstreams = vec![WAN_UPSTREAM.to_string()];
    config.dns.upstream_timeout = UPSTREAM_TIMEOUT.into();
    lab.start_appliance(&config)?;
    Ok(lab)
}

/// A forwarded answer: the upstream's, with RA and without AA.
fn assert_forwarded(reply: &Reply, status: &str, ips: &[Ipv4Addr], what: &str) {
    assert_eq!(reply.status, status, "{what}: {reply}");
    assert_eq!(reply.addresses(), ips, "{what}: {reply}");
    assert!(reply.ra(), "{what}: a forwarded answer to the LAN has RA: {reply}");
    assert!(!reply.aa(), "{what}: a forwarded answer is not ours to call authoritative: {reply}");
}

#[test]
fn lan_queries_for_other_names_are_forwarded_and_cached() -> Result<()> {
    let lab = forwarding_lab(1)?;
    let upstream = upstream(&lab)?;
    let client = lab.client(0);
    let lease = client.udhcpc().hostname("echo").spawn()?;
    let ip = lease.lease()?.ip;

    let www = "www.example.test";
    assert_forwarded(
        &query(client, GATEWAY, www, "A").run()?,
        "NOERROR",
        &[EXAMPLE_IP],
        "dig www.example.test",
    );
    let reply = query(client, GATEWAY, MIRROR, "A").tool(Tool::Kdig).run()?;
    assert_forwarded(&reply, "NOERROR", &[MIRROR_IP], "kdig mirror.upstream.test");
    let reply = query(client, GATEWAY, "missing.upstream.test", "A").run()?;
    assert_forwarded(&reply, "NXDOMAIN", &[], "the upstream's NXDOMAIN");
    let reply = query(client, GATEWAY, "tcp.example.test", "A").tcp().run()?;
    assert_forwarded(&reply, "NOERROR", &[EXAMPLE_IP], "forwarded over TCP");

    // Too big for UDP: truncated (TC) to a UDP client, whole over TCP (dig retries by itself).
    let reply = query(client, GATEWAY, BIG, "TXT").arg("+ignore").run()?;
    assert!(reply.flag("tc") && reply.ra(), "a reply over 1232 bytes by UDP must have TC: {reply}");
    for tool in TOOLS {
        let ask = query(client, GATEWAY, BIG, "TXT").tool(tool);
        for reply in [ask.clone().run()?, ask.tcp().run()?] {
            let whole = BIG_STRING.repeat(BIG_REPEAT * BIG_STRINGS);
            let got: String = reply.answer.iter().map(|r| r.data.replace(['"', ' '], "")).collect();
            assert!(got == whole && !reply.flag("tc"), "{tool:?}: the whole TXT record: {reply}");
        }
    }

    // Our zones are answered here and never asked upstream, whatever the answer.
    await_name(client, &fqdn("echo"), ip)?;
    for (name, qtype) in [(fqdn("echo"), "AAAA"), (fqdn("nobody"), "A"), (DOMAIN.to_owned(), "SOA")] {
        assert!(query(client, GATEWAY, &name, qtype).run()?.aa(), "{name} {qtype} must come from our zone");
    }
    for addr in [ip, UNNAMED] {
        assert!(reverse(client, GATEWAY, addr).run()?.aa(), "PTR of {addr} must come from our zone");
    }
    let leaked: Vec<_> = upstream
        .queries()
        .into_iter()
        .filter(|(_, name, _)| name.ends_with(DOMAIN) || name.ends_with("in-addr.arpa"))
        .collect();
    assert!(leaked.is_empty(), "queries for our zones reached the upstream: {leaked:?}");

    // Asked again: from the cache, not the upstream; and still there when the upstream is gone.
    assert_eq!(upstream.queries_for(www), 1, "upstream queries: {:?}", upstream.queries());
    for tool in TOOLS {
        let reply = query(client, GATEWAY, www, "A").tool(tool).run()?;
        assert_forwarded(&reply, "NOERROR", &[EXAMPLE_IP], &format!("{tool:?} www.example.test again"));
    }
    assert_eq!(upstream.queries_for(www), 1, "asked upstream again within the TTL: {:?}", upstream.queries());
    upstream.kill();
    for tool in TOOLS {
        let reply = query(client, GATEWAY, www, "A").tool(tool).run()?;
        assert_forwarded(&reply, "NOERROR", &[EXAMPLE_IP], &format!("{tool:?} cached, upstream dead"));
        let ttl = reply.answer[0].ttl;
        assert!(ttl > 0 && ttl <= UPSTREAM_TTL, "the cached TTL counts down from {UPSTREAM_TTL}: {reply}");
        let reply = query(client, GATEWAY, MIRROR, "A").tool(tool).run()?;
        assert_forwarded(&reply, "NOERROR", &[MIRROR_IP], &format!("{tool:?} cached mirror, upstream dead"));
    }
    Ok(())
}

/// Asks for a name nobody asked before; it must be SERVFAIL within [`SERVFAIL_WITHIN`].
fn assert_servfail_in_time(client: &Host, name: &str, tool: Tool, tcp: bool, why: &str) -> Result<()> {
    let mut ask = query(client, GATEWAY, name, "A").tool(tool).timeout(Duration::from_secs(5));
    if tcp {
        ask = ask.tcp();
    }
    let reply =
        ask.run().with_context(|| format!("no reply at all for {name} when the upstream is {why}"))?;
    let transport = if tcp { "TCP" } else { "UDP" };
    println!(
        "SERVFAIL time, upstream {why}: {name} ({tool:?}, {transport}) -> {} in {:.2?}",
        reply.status, reply.elapsed
    );
    assert_eq!(reply.status, "SERVFAIL", "{name} with the upstream {why}: {reply}");
    assert!(reply.ra(), "{reply}");
    assert!(
        reply.elapsed < SERVFAIL_WITHIN,
        "SERVFAIL took {:.2?} with the upstream {why}: {reply}",
        reply.elapsed
    );
    Ok(())
}

#[test]
fn a_dead_upstream_gives_servfail_in_time() -> Result<()> {
    let lab = forwarding_lab(1)?;
    let client = lab.client(0);
    let lease = client.udhcpc().hostname("golf").spawn()?;
    let ip = lease.lease()?.ip;

    // Killed: its port is closed, the kernel refuses the queries.
    let killed = upstream(&lab)?;
    assert_forwarded(
        &query(client, GATEWAY, "one.example.test", "A").run()?,
        "NOERROR",
        &[EXAMPLE_IP],
        "alive",
    );
    killed.kill();
    assert_servfail_in_time(client, "two.example.test", Tool::Dig, false, "killed")?;
    assert_servfail_in_time(client, "three.example.test", Tool::Kdig, false, "killed")?;
    assert_servfail_in_time(client, "four.example.test", Tool::Dig, true, "killed")?;

    // Frozen: the queries go in and nothing ever comes back; only our timeout ends the wait.
    let frozen = upstream(&lab)?;
    assert_forwarded(
        &query(client, GATEWAY, "five.example.test", "A").run()?,
        "NOERROR",
        &[EXAMPLE_IP],
        "again",
    );
    frozen.freeze()?;
    assert_servfail_in_time(client, "six.example.test", Tool::Dig, false, "frozen")?;
    assert_servfail_in_time(client, "seven.example.test", Tool::Kdig, true, "frozen")?;
    // Local names do not wait for the upstream.
    let reply = await_name(client, &fqdn("golf"), ip)?;
    assert!(reply.elapsed < Duration::from_secs(1), "a local name waited: {reply}");
    Ok(())
}

#[test]
fn the_wan_side_gets_no_recursion_and_no_host_names() -> Result<()> {
    let lab = forwarding_lab(1)?;
    let upstream = upstream(&lab)?;
    let (client, outside) = (lab.client(0), lab.wan());
    let lease = client.udhcpc().hostname("foxtrot").spawn()?;
    let ip = lease.lease()?.ip;
    let name = fqdn("foxtrot");
    // The LAN view of the name first, so it exists when the WAN asks.
    await_name(client, &name, ip)?;

    let zone = format!("{DOMAIN}.");
    for tool in TOOLS {
        let ask = |name: &str, qtype: &str| query(outside, WAN_ADDRESS, name, qtype).tool(tool);
        let what = format!("{tool:?} from the WAN");
        // No recursion: refused, and the upstream (which would answer) never asked.
        let reply = ask("www.example.test", "A").run()?;
        assert_eq!(reply.status, "REFUSED", "{what}, a foreign name: {reply}");
        assert!(!reply.ra(), "{what}: no recursion on the WAN, so no RA: {reply}");
        assert!(reply.answer.is_empty(), "{what}: {reply}");
        // Host names are not there for the WAN, while the LAN resolves the same name.
        for reply in [ask(&name, "A").run()?, ask(&name, "A").tcp().run()?] {
            assert_negative(&reply, "NXDOMAIN", &zone, &format!("{what}, a LAN host"));
            assert!(!reply.ra(), "{what}: {reply}");
        }
        assert_answer(&query(client, GATEWAY, &name, "A").tool(tool).run()?, &[ip], "the LAN's view of it");
        let reply = reverse(outside, WAN_ADDRESS, ip).tool(tool).run()?;
        assert_eq!(reply.status, "NXDOMAIN", "{what}, PTR of a LAN host: {reply}");
        assert!(reply.ptr_names().is_empty(), "{what}: {reply}");
        // The zone itself is ours, and answered authoritatively.
        let reply = ask(DOMAIN, "SOA").run()?;
        assert_eq!(reply.status, "NOERROR", "{what}, SOA: {reply}");
        assert!(reply.aa() && !reply.ra(), "{what}, SOA: {reply}");
        assert!(reply.answer.iter().any(|r| r.rtype == "SOA" && r.name == zone), "{what}, SOA: {reply}");
    }
    assert_eq!(
        upstream.queries_for("www.example.test"),
        0,
        "WAN queries were forwarded: {:?}",
        upstream.queries()
    );
    Ok(())
}

/// A client may ask any address of the appliance; the UDP reply must come from the address it
/// asked, or the client drops it as a stranger's (the source is not the route's choice when the
/// question went to the appliance's other address). TCP answers from its connection's address
/// anyway; it shows the question arrived.
#[test]
fn every_address_of_the_appliance_answers_from_itself() -> Result<()> {
    let lab = Lab::builder().clients(1).wan(true).build()?;
    lab.start_appliance(&lab.config())?;
    let (client, outside) = (lab.client(0), lab.wan());
    let lease = client.udhcpc().hostname("hotel").spawn()?;
    let ip = lease.lease()?.ip;
    await_name(client, &fqdn("hotel"), ip)?;
    // The user's workstation reaches the app LAN through the appliance (a route on the WAN side).
    outside.netns().ip(&["route", "add", &format!("{GATEWAY}/32"), "via", &WAN_ADDRESS.to_string()])?;

    let mut failures = Vec::new();
    for (asker, server, expect) in [
        (client, WAN_ADDRESS, "NOERROR"), // a LAN client at the WAN address: the LAN view
        (outside, GATEWAY, "NXDOMAIN"),   // the WAN at the LAN address: the WAN view
    ] {
        for tcp in [true, false] {
            let mut ask = query(asker, server, &fqdn("hotel"), "A");
            if tcp {
                ask = ask.tcp();
            }
            let transport = if tcp { "TCP" } else { "UDP" };
            match ask.run() {
                Ok(reply) if reply.status == expect => {}
                Ok(reply) => failures.push(format!("{} -> {server} ({transport}): {reply}", asker.label())),
                Err(e) => failures.push(format!("{} -> {server} ({transport}): {e:#}", asker.label())),
            }
        }
    }
    assert!(failures.is_empty(), "not answered from the address asked:\n{}", failures.join("\n"));
    Ok(())
}
