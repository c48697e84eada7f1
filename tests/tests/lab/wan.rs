//! The WAN address, in each mode, as a user sees it: in `dhcp` mode the appliance gets its address
//! and default route from the WAN's DHCP server (dnsmasq on the outside host) and forwards LAN
//! clients' questions to the DNS server it learned there; it follows a new address when the
//! server changes its mind (a NAK at renewal), with the admin API's certificate and the NAT table
//! (its hairpin forward) naming the new one; it keeps its address across a restart (INIT-REBOOT),
//! even while the server is away. In `static` mode it sets address and route; in `host` mode it
//! follows what someone else sets, and waits for an interface that is not there yet.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use proximity_config::RawConfig;
use proximity_config::raw::RawForward;
use proximity_tests::dhcp_server::{DhcpServer, Logged};
use proximity_tests::dns::{Dnsmasq, query};
use proximity_tests::http::admin::ADMIN_PORT;
use proximity_tests::http::{Admin, curl};
use proximity_tests::process::run;
use proximity_tests::{GATEWAY, Host, Lab, WAN_ADDRESS, WAN_PREFIX, WAN_UPSTREAM, wait};

/// The first WAN server's range, and the one a restarted server hands out instead.
const FIRST_RANGE: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 99, 0, 50), Ipv4Addr::new(10, 99, 0, 60));
const SECOND_RANGE: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 99, 0, 150), Ipv4Addr::new(10, 99, 0, 160));
/// The router the second server names, so the default route visibly follows.
const SECOND_ROUTER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 254);
/// A name only the outside DNS server knows.
const OUTSIDE_NAME: &str = "www.example.test";
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// How long the appliance may take to get (or change) its WAN address: a DISCOVER or a
/// renewal is answered at once; this covers a lost first packet (retransmitted after 4 s).
const LEASE_DEADLINE: Duration = Duration::from_secs(20);
/// INIT-REBOOT without an answer: two REQUESTs (4 s and 8 s apart, each ±1 s), then the saved
/// lease is used.
const FALLBACK_DEADLINE: Duration = Duration::from_secs(30);
/// For what follows an address (the route, the certificate, DNS's upstreams): milliseconds.
const FOLLOW_DEADLINE: Duration = Duration::from_secs(10);

fn in_range((first, last): (Ipv4Addr, Ipv4Addr)) -> impl Fn(Ipv4Addr) -> bool {
    move |ip| (u32::from(first)..=u32::from(last)).contains(&u32::from(ip))
}

/// Waits until the appliance's WAN interface has exactly one IPv4 address and it passes `wanted`.
fn await_wan_address(lab: &Lab, what: &str, wanted: impl Fn(Ipv4Addr) -> bool) -> Result<Ipv4Addr> {
    let mut last = Vec::new();
    let found = wait::until(LEASE_DEADLINE.max(FALLBACK_DEADLINE), what, || {
        last = lab.appliance_netns().ipv4_addrs(lab.wan_iface())?;
        Ok(match last.as_slice() {
            [(ip, WAN_PREFIX)] if wanted(*ip) => Some(*ip),
            _ => None,
        })
    });
    found.map_err(|e| anyhow::anyhow!("{e:#}; the WAN interface has {last:?}\n{}", lab.diagnostics()))
}

fn await_default_route(lab: &Lab, via: Ipv4Addr) -> Result<()> {
    let what = format!("a default route via {via}");
    wait::until(FOLLOW_DEADLINE, &what, || {
        Ok((lab.appliance_netns().default_gateway()? == Some(via)).then_some(()))
    })
}

/// `https://<ip>:9090/v1/health` from `host`, trusting only the appliance's CA: 200 once the
/// certificate names `ip`.
fn await_verified_admin(host: &Host, ip: Ipv4Addr, cacert: &Path) -> Result<()> {
    let health = curl(host, &format!("https://{ip}:{ADMIN_PORT}/v1/health")).cacert(cacert);
    health.await_status(200, FOLLOW_DEADLINE).map(drop)
}

/// Until the NAT table's hairpin forward (LAN clients addressing the WAN address) names `now`,
/// and `old` no more: the ruleset is applied again when the WAN address changes.
fn await_nat_follows(lab: &Lab, now: Ipv4Addr, old: Option<Ipv4Addr>) -> Result<()> {
    let mut list = lab.appliance_netns().command("nft");
    list.args(["list", "table", "inet", "proximity"]);
    wait::until(FOLLOW_DEADLINE, "the NAT table to follow the WAN address", || {
        let table = run(&mut list)?;
        let names = |ip: Ipv4Addr| table.contains(&format!("ip daddr {ip} "));
        Ok((names(now) && !old.is_some_and(names)).then_some(()))
    })
}

fn dhcp_config(lab: &Lab) -> RawConfig {
    let mut config = lab.config();
    config.wan.mode = "dhcp".into();
    config
}

fn kinds(logged: &[Logged]) -> Vec<&str> {
    logged.iter().map(|l| l.kind.as_str()).collect()
}

#[test]
fn dhcp_mode_takes_address_route_and_dns_server_from_the_wan() -> Result<()> {
    let lab = Lab::builder().clients(1).wan(true).wan_address_by_harness(false).build()?;
    let outside = lab.wan();
    let upstream = Dnsmasq::builder(outside, WAN_UPSTREAM).address("example.test", OUTSIDE_IP).start()?;
    let _server = DhcpServer::builder(outside, FIRST_RANGE.0, FIRST_RANGE.1).dns(&[WAN_UPSTREAM]).start()?;
    let config = dhcp_config(&lab);
    assert!(config.dns.upstreams.is_empty(), "the DNS servers must come from the WAN's DHCP server");
    lab.start_appliance(&config)?;

    let wan = await_wan_address(&lab, "a WAN address from the first range", in_range(FIRST_RANGE))?;
    await_default_route(&lab, WAN_UPSTREAM)?;
    outside.ping(wan)?;

    // A LAN client asks the appliance for an outside name: forwarded to the learned server.
    let client = lab.client(0);
    client.dhclient().obtain()?;
    let ask = query(client, GATEWAY, OUTSIDE_NAME, "A");
    let reply = wait::until(FOLLOW_DEADLINE, "the outside name through the appliance", || {
        let reply = ask.run()?;
        Ok((reply.addresses() == [OUTSIDE_IP]).then_some(reply))
    })?;
    assert_eq!(reply.status, "NOERROR", "{reply}");
    let asked: Vec<_> = upstream.queries().into_iter().filter(|(_, name, _)| name == OUTSIDE_NAME).collect();
    assert!(
        asked.iter().any(|(_, _, from)| *from == wan.to_string()),
        "the outside server was asked from the appliance's WAN address {wan}: {asked:?}"
    );

    // The admin API at the WAN address, verified against the appliance's CA.
    let api = Admin::connect(outside, wan, Path::new(&config.state.dir))?;
    await_verified_admin(outside, wan, api.cacert())?;
    let health = api.anonymous("GET", "/v1/health").run()?.json()?;
    assert_eq!(health["services"]["wan"], "running", "{health}");
    Ok(())
}

#[test]
fn a_new_wan_address_is_followed_by_the_route_nat_and_the_admin_certificate() -> Result<()> {
    let lab = Lab::builder().clients(0).wan(true).wan_address_by_harness(false).build()?;
    let outside = lab.wan();
    let first_server = DhcpServer::builder(outside, FIRST_RANGE.0, FIRST_RANGE.1)
        .renew_after(2, 3)
        .authoritative()
        .start()?;
    let mut config = dhcp_config(&lab);
    // A forward, whose hairpin rule names the WAN address.
    config.nat.forwards.push(RawForward { protocol: "tcp".into(), port: 8022, to: "10.20.0.50:22".into() });
    lab.start_appliance(&config)?;
    let first = await_wan_address(&lab, "a WAN address from the first range", in_range(FIRST_RANGE))?;
    let api = Admin::connect(outside, first, Path::new(&config.state.dir))?;
    await_verified_admin(outside, first, api.cacert())?;
    await_nat_follows(&lab, first, None)?;

    // The WAN's server is replaced by one with another range and router, which knows nothing of
    // the old lease: the appliance's next renewal (T1 = 2 s) is refused, and it starts over.
    first_server.kill();
    let second_server = DhcpServer::builder(outside, SECOND_RANGE.0, SECOND_RANGE.1)
        .renew_after(2, 3)
        .router(SECOND_ROUTER)
        .authoritative()
        .start()?;
    let second = await_wan_address(&lab, "only a WAN address from the second range", in_range(SECOND_RANGE))?;
    await_default_route(&lab, SECOND_ROUTER)?;
    await_verified_admin(outside, second, api.cacert())?;
    await_nat_follows(&lab, second, Some(first))?;
    let logged = second_server.logged();
    assert!(
        logged.iter().any(|l| l.kind == "DHCPNAK" && l.ip == Some(first)),
        "the old address was refused: {:?}",
        kinds(&logged)
    );
    // Renewals go on at T1 without changing anything.
    let acks = || second_server.logged().iter().filter(|l| l.kind == "DHCPACK").count();
    let before = acks();
    wait::until(FOLLOW_DEADLINE, "a renewal of the new lease", || Ok((acks() > before).then_some(())))?;
    assert_eq!(lab.appliance_netns().ipv4_addrs(lab.wan_iface())?, [(second, WAN_PREFIX)]);
    Ok(())
}

#[test]
fn a_restart_keeps_the_wan_address_even_while_the_server_is_away() -> Result<()> {
    let lab = Lab::builder().clients(0).wan(true).wan_address_by_harness(false).build()?;
    let outside = lab.wan();
    let server = DhcpServer::builder(outside, FIRST_RANGE.0, FIRST_RANGE.1).start()?;
    let appliance = lab.start_appliance(&dhcp_config(&lab))?;
    let leased = await_wan_address(&lab, "a WAN address", in_range(FIRST_RANGE))?;

    // As after an upgrade: the appliance stops and its new container's interface has no
    // address. It asks for the same one again (INIT-REBOOT: a REQUEST, no DISCOVER).
    let (ns, wan) = (lab.appliance_netns(), lab.wan_iface());
    let status = appliance.stop()?;
    assert!(status.success(), "a graceful stop: {status}");
    assert!(!kinds(&server.logged()).contains(&"DHCPRELEASE"), "a stop must not release the lease");
    ns.ip(&["addr", "flush", "dev", wan])?;
    let seen = server.logged().len();
    appliance.start_again()?;
    assert_eq!(await_wan_address(&lab, "the same WAN address", |ip| ip == leased)?, leased);
    await_default_route(&lab, WAN_UPSTREAM)?;
    let after = server.logged().split_off(seen);
    match after.first() {
        Some(Logged { kind, ip }) if kind == "DHCPREQUEST" && *ip == Some(leased) => {}
        _ => bail!("after the restart the first message should be a REQUEST for {leased}: {after:?}"),
    }
    assert!(!kinds(&after).contains(&"DHCPDISCOVER"), "no DISCOVER after a restart: {after:?}");
    assert!(appliance.log().contains("saved lease confirmed"), "{}", appliance.log());

    // With the server away, the saved lease is used for the time it has left.
    appliance.stop()?;
    server.kill();
    ns.ip(&["addr", "flush", "dev", wan])?;
    appliance.start_again()?;
    assert_eq!(await_wan_address(&lab, "the saved WAN address, unconfirmed", |ip| ip == leased)?, leased);
    await_default_route(&lab, WAN_UPSTREAM)?;
    Ok(())
}

#[test]
fn static_mode_sets_address_and_route_once() -> Result<()> {
    const STATIC: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 7);
    let lab = Lab::builder().clients(0).wan(true).wan_address_by_harness(false).build()?;
    let mut config = lab.config();
    config.wan.mode = "static".into();
    config.wan.address = Some(format!("{STATIC}/{WAN_PREFIX}"));
    config.wan.gateway = Some(WAN_UPSTREAM.to_string());
    let appliance = lab.start_appliance(&config)?;
    await_wan_address(&lab, "the static address", |ip| ip == STATIC)?;
    await_default_route(&lab, WAN_UPSTREAM)?;
    let outside = lab.wan();
    outside.ping(STATIC)?;
    let api = Admin::connect(outside, STATIC, Path::new(&config.state.dir))?;
    await_verified_admin(outside, STATIC, api.cacert())?;

    appliance.restart()?;
    api.wait_ready()?;
    let log = appliance.log();
    assert!(
        log.contains("static wan address already configured"),
        "the second start changes nothing:\n{log}"
    );
    assert_eq!(lab.appliance_netns().ipv4_addrs(lab.wan_iface())?, [(STATIC, WAN_PREFIX)]);
    assert_eq!(lab.appliance_netns().default_gateway()?, Some(WAN_UPSTREAM));
    Ok(())
}

#[test]
fn host_mode_follows_an_address_changed_by_hand() -> Result<()> {
    const MOVED: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 20);
    let lab = Lab::builder().clients(0).wan(true).build()?;
    let config = lab.config();
    assert_eq!(config.wan.mode, "host");
    lab.start_appliance(&config)?;
    let outside = lab.wan();
    let api = Admin::connect(outside, WAN_ADDRESS, Path::new(&config.state.dir))?;
    await_verified_admin(outside, WAN_ADDRESS, api.cacert())?;

    let (ns, wan) = (lab.appliance_netns(), lab.wan_iface());
    ns.ip(&["addr", "del", &format!("{WAN_ADDRESS}/{WAN_PREFIX}"), "dev", wan])?;
    ns.ip(&["addr", "add", &format!("{MOVED}/{WAN_PREFIX}"), "dev", wan])?;
    await_verified_admin(outside, MOVED, api.cacert())?;
    assert_eq!(ns.ipv4_addrs(wan)?, [(MOVED, WAN_PREFIX)], "host mode changes nothing itself");
    Ok(())
}

#[test]
fn host_mode_waits_for_a_wan_interface_that_comes_later() -> Result<()> {
    const LATE: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 2);
    // In the appliance's own namespace, so no name can clash.
    const LATE_IFACE: &str = "wanlate";
    let lab = Lab::builder().clients(0).build()?;
    let mut config = lab.config();
    config.wan.interface = LATE_IFACE.into();
    let appliance = lab.start_appliance(&config)?;
    let log = wait::until(FOLLOW_DEADLINE, "the missing interface's warning", || {
        let log = appliance.log();
        Ok(log.contains("does not exist; waiting for it").then_some(log))
    })?;
    assert!(log.contains(LATE_IFACE), "the warning names the interface:\n{log}");
    assert!(appliance.pid().is_some(), "a missing WAN interface is no reason to exit");

    // The interface arrives (as a NIC Proxmox adds to a running container), with an address:
    // the admin API's certificate names it (checked from inside the appliance's namespace, the
    // only place the new link leads to).
    let ns = lab.appliance_netns();
    ns.ip(&["link", "add", LATE_IFACE, "type", "veth", "peer", "name", "wanlatep"])?;
    ns.ip(&["addr", "add", &format!("{LATE}/24"), "dev", LATE_IFACE])?;
    ns.ip(&["link", "set", LATE_IFACE, "up"])?;
    let cacert = Path::new(&config.state.dir).join("ca.crt");
    let url = format!("https://{LATE}:{ADMIN_PORT}/v1/health");
    let mut last = String::new();
    let verified = wait::until(FOLLOW_DEADLINE, "the admin API verified at the late address", || {
        let out = ns
            .command("curl")
            .args(["-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&cacert)
            .arg(&url)
            .output()?;
        last = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        Ok((last.trim() == "200").then_some(()))
    });
    verified.map_err(|e| anyhow::anyhow!("{e:#}; curl said: {last}"))
}
