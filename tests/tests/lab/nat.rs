//! The appliance as the LAN's router (nftables, table `inet proximity`): a LAN client reaches the
//! outside behind the WAN address; nothing unasked comes in from the WAN; port forwards from the
//! config and the admin API work from outside (and from the LAN through the WAN address); the
//! firewall drops what the appliance does not serve while DNS, the proxy and the admin API answer
//! on both sides; a restart applies the identical table, once; a foreign table is never touched;
//! a NAT failure is reported and retried while the other services go on.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use proximity_config::RawConfig;
use proximity_config::raw::RawForward;
use proximity_tests::dns::query;
use proximity_tests::http::{Admin, Backend, Curl, curl};
use proximity_tests::process::{kill_child, run, spawn_logged};
use proximity_tests::{GATEWAY, Host, Lab, WAN_ADDRESS, WAN_UPSTREAM, wait};
use serde_json::{Value, json};

use crate::web::LAB_BACKEND;

/// Where the lab's servers listen (outside, on LAN hosts, in the appliance namespace).
const SERVER_PORT: u16 = 8080;
/// A client's fixed address (a reservation), so that a forward in the config can name it.
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 50);
/// How long a try at a port that must stay closed waits: a dropped SYN gets no answer at all.
const CLOSED_WAIT: Duration = Duration::from_secs(2);
/// How long NAT may take to follow a change (forward added or removed, nft appearing).
const NAT_DEADLINE: Duration = Duration::from_secs(30);

/// `nft ARGS` in the appliance's namespace; its output.
fn nft(lab: &Lab, args: &[&str]) -> Result<String> {
    run(lab.appliance_netns().command("nft").args(args))
}

/// Our table as nft lists it in JSON, without what nft numbers itself (handles, metainfo).
fn our_table(lab: &Lab) -> Result<Vec<Value>> {
    let listing: Value = serde_json::from_str(&nft(lab, &["-j", "list", "table", "inet", "proximity"])?)?;
    let mut objects = listing["nftables"].as_array().context("no nftables array")?.clone();
    objects.retain(|o| o.get("metainfo").is_none());
    for o in &mut objects {
        if let Some(body) =
            o.as_object_mut().and_then(|m| m.values_mut().next()).and_then(Value::as_object_mut)
        {
            body.remove("handle");
        }
    }
    Ok(objects)
}

/// Waits for the appliance to log its `n`-th ruleset in force (since it first started).
fn await_applied(lab: &Lab, n: usize) -> Result<()> {
    wait::until(NAT_DEADLINE, &format!("nat ruleset in force {n} times"), || {
        Ok((lab.appliance().log().matches("nat: ruleset in force").count() >= n).then_some(()))
    })
}

/// `http://ip:port/echo` from `host`, short.
fn echo(host: &Host, ip: Ipv4Addr, port: u16) -> Curl<'_> {
    curl(host, &format!("http://{ip}:{port}/echo")).timeout(CLOSED_WAIT)
}

/// The echo's `peer` address (who the server saw connect).
fn peer_of(reply: &proximity_tests::http::Reply) -> Result<SocketAddrV4> {
    ensure!(reply.status == 200, "expected the echo, got {reply}");
    let peer = reply.json()?["peer"].as_str().context("no peer in the echo")?.to_owned();
    peer.parse().with_context(|| format!("peer {peer:?}"))
}

/// Fails unless `request` gets no answer at all (curl's timeout, exit 28: dropped, not refused).
fn assert_dropped(request: &Curl, what: &str) -> Result<()> {
    match request.attempt()? {
        Err(failure) if failure.code == 28 => Ok(()),
        Err(failure) => bail!("{what}: expected no answer (dropped), curl said: {failure}"),
        Ok(reply) => bail!("{what}: expected no answer (dropped), got {reply}"),
    }
}

/// Waits until `request` gets no answer any more.
fn await_dropped(request: &Curl, what: &str) -> Result<()> {
    wait::until(NAT_DEADLINE, what, || Ok(matches!(request.attempt()?, Err(f) if f.code == 28).then_some(())))
}

/// A config with client 0 reserved at [`SERVER_IP`] and `forwards` in the file.
fn config_with(lab: &Lab, forwards: &[(u16, SocketAddrV4)]) -> RawConfig {
    let mut config = lab.config();
    config.dhcp.reservations.push(proximity_config::raw::RawReservation {
        mac: lab.client(0).mac().to_string(),
        ip: SERVER_IP.to_string(),
        name: None,
    });
    config.nat.forwards = forwards
        .iter()
        .map(|(port, to)| RawForward { protocol: "tcp".into(), port: (*port).into(), to: to.to_string() })
        .collect();
    config
}

/// A server process in the appliance's own namespace, killed when dropped.
struct Inside(Child);

impl Drop for Inside {
    fn drop(&mut self) {
        kill_child(&mut self.0);
    }
}

fn serve_inside(lab: &Lab, port: u16) -> Result<Inside> {
    let log = lab.dir().join("inside-backend.log");
    let mut cmd = lab.appliance_netns().command(LAB_BACKEND);
    cmd.args(["--listen", &format!("0.0.0.0:{port}"), "--name", "inside"]);
    let inside = Inside(spawn_logged(&mut cmd, &log)?);
    wait::until(Duration::from_secs(10), "the server inside the appliance namespace", || {
        Ok(std::fs::read_to_string(&log).unwrap_or_default().contains("listening on").then_some(()))
    })?;
    Ok(inside)
}

#[test]
fn a_lan_client_goes_out_as_the_wan_address_and_nothing_comes_in_unasked() -> Result<()> {
    let lab = Lab::builder().clients(1).wan(true).build()?;
    lab.start_appliance(&lab.config())?;
    await_applied(&lab, 1)?;
    let (client, outside) = (lab.client(0), lab.wan());
    let lease = client.dhclient().obtain()?;
    let _far = Backend::lab(outside, LAB_BACKEND, "far", SERVER_PORT, None)?;

    // Out through NAT: the far end sees the appliance's WAN address, not the client's.
    let reply = echo(client, WAN_UPSTREAM, SERVER_PORT).timeout(Duration::from_secs(10)).run()?;
    let peer = peer_of(&reply)?;
    assert_eq!(*peer.ip(), WAN_ADDRESS, "the outside server saw {peer}, not the WAN address: {reply}");

    // In: the outside routes the LAN through the appliance and tries the client's own server.
    let _near = Backend::lab(client, LAB_BACKEND, "near", SERVER_PORT, None)?;
    outside.netns().ip(&["route", "add", "10.20.0.0/24", "via", &WAN_ADDRESS.to_string()])?;
    // The route works: the appliance's LAN address answers through it (its proxy, on the WAN side).
    let control = curl(outside, &format!("http://{GATEWAY}/")).timeout(Duration::from_secs(5)).run()?;
    ensure!(control.status > 0, "no answer from {GATEWAY} over the route: {control}");
    assert_dropped(&echo(outside, lease.ip, SERVER_PORT), "a new connection from the WAN to a LAN client")?;
    Ok(())
}

#[test]
fn the_firewall_opens_only_what_the_appliance_serves_on_each_side() -> Result<()> {
    let lab = Lab::builder().clients(1).wan(true).build()?;
    let config = lab.config();
    lab.start_appliance(&config)?;
    await_applied(&lab, 1)?;
    let (client, outside) = (lab.client(0), lab.wan());
    client.dhclient().obtain()?;
    // A server in the appliance's namespace on a port no service of the appliance has.
    let _inside = serve_inside(&lab, SERVER_PORT)?;
    let local =
        run(lab.appliance_netns().command("curl").args(["-sS", "-m", "5", "http://127.0.0.1:8080/echo"]))?;
    ensure!(local.contains("\"backend\":\"inside\""), "the server inside does not answer locally: {local}");
    assert_dropped(&echo(outside, WAN_ADDRESS, SERVER_PORT), "an unserved port from the WAN")?;
    assert_dropped(&echo(client, GATEWAY, SERVER_PORT), "an unserved port from the LAN")?;

    // What the appliance serves answers on both sides: DNS (UDP and TCP), the proxy, the admin API.
    for (host, server) in [(client, GATEWAY), (outside, WAN_ADDRESS)] {
        for tcp in [false, true] {
            let ask = query(host, server, "ns.prox.local", "A");
            let reply = if tcp { ask.tcp() } else { ask }.run()?;
            assert_eq!(reply.status, "NOERROR", "DNS from {} (tcp: {tcp}): {reply}", host.label());
        }
        let proxy = curl(host, &format!("http://{server}/")).timeout(Duration::from_secs(5)).run()?;
        ensure!(proxy.status == 404, "the proxy from {}: {proxy}", host.label());
        let health = curl(host, &format!("https://{server}:9090/v1/health")).insecure().run()?;
        ensure!(health.status == 200, "the admin API from {}: {health}", host.label());
        assert_eq!(health.json()?["services"]["nat"], "running", "{health}");
    }
    Ok(())
}

#[test]
fn port_forwards_from_the_config_and_the_api_work_from_outside() -> Result<()> {
    let lab = Lab::builder().clients(2).wan(true).build()?;
    let to = SocketAddrV4::new(SERVER_IP, SERVER_PORT);
    let config = config_with(&lab, &[(8022, to)]);
    lab.start_appliance(&config)?;
    await_applied(&lab, 1)?;
    let (server, user, outside) = (lab.client(0), lab.client(1), lab.wan());
    assert_eq!(server.dhclient().obtain()?.ip, SERVER_IP);
    user.dhclient().obtain()?;
    let _backend = Backend::lab(server, LAB_BACKEND, "forwarded", SERVER_PORT, None)?;

    // The config's forward: the LAN host sees the outside host itself (no masquerade inward).
    let reply = echo(outside, WAN_ADDRESS, 8022).await_status(200, NAT_DEADLINE)?;
    assert_eq!(*peer_of(&reply)?.ip(), WAN_UPSTREAM, "{reply}");
    assert_eq!(reply.json()?["local"], to.to_string(), "{reply}");

    // One added over the API.
    let api = Admin::connect(user, GATEWAY, config.state.dir.as_ref())?;
    let body = json!({"protocol": "tcp", "port": 8023, "to": to.to_string()});
    let created = api.call("POST", "/v1/forwards", Some(&body))?;
    ensure!(created.status == 201, "POST /v1/forwards: {created}");
    let listed = api.call("GET", "/v1/forwards", None)?.json()?;
    assert_eq!(
        listed,
        json!([
            {"protocol": "tcp", "port": 8022, "to": to.to_string(), "source": "config"},
            {"protocol": "tcp", "port": 8023, "to": to.to_string(), "source": "api"},
        ])
    );
    let reply = echo(outside, WAN_ADDRESS, 8023).await_status(200, NAT_DEADLINE)?;
    assert_eq!(*peer_of(&reply)?.ip(), WAN_UPSTREAM, "{reply}");
    // Hairpin: a LAN client using the WAN address gets there too, answered through the appliance.
    let reply = echo(user, WAN_ADDRESS, 8023).await_status(200, NAT_DEADLINE)?;
    assert_eq!(*peer_of(&reply)?.ip(), GATEWAY, "hairpin masquerades to the gateway: {reply}");

    // The config's forward cannot be removed over the API; the API's can, and the port closes.
    let refused = api.call("DELETE", "/v1/forwards/tcp/8022", None)?;
    ensure!(refused.status == 409, "DELETE of the config's forward: {refused}");
    let deleted = api.call("DELETE", "/v1/forwards/tcp/8023", None)?;
    ensure!(deleted.status == 204, "DELETE /v1/forwards/tcp/8023: {deleted}");
    await_dropped(&echo(outside, WAN_ADDRESS, 8023), "the removed forward to close")?;
    echo(outside, WAN_ADDRESS, 8022).await_status(200, NAT_DEADLINE)?;
    Ok(())
}

#[test]
fn a_restart_applies_the_same_table_once_and_a_foreign_table_is_untouched() -> Result<()> {
    let lab = Lab::builder().clients(1).wan(true).build()?;
    // Someone else's table in the appliance's namespace, before the appliance starts.
    nft(&lab, &["add", "table", "inet", "other"])?;
    nft(
        &lab,
        &["add", "chain", "inet", "other", "c", "{ type filter hook input priority 10; policy accept; }"],
    )?;
    nft(&lab, &["add", "rule", "inet", "other", "c", "tcp", "dport", "4242", "counter", "accept"])?;
    let foreign = nft(&lab, &["list", "table", "inet", "other"])?;

    let config = config_with(&lab, &[]);
    lab.start_appliance(&config)?;
    await_applied(&lab, 1)?;
    let client = lab.client(0);
    client.dhclient().obtain()?;
    let first = our_table(&lab)?;
    assert_eq!(nft(&lab, &["list", "table", "inet", "other"])?, foreign, "start changed a foreign table");

    // A re-apply (a forward added) changes ours only.
    let api = Admin::connect(client, GATEWAY, config.state.dir.as_ref())?;
    let body = json!({"protocol": "udp", "port": 5353, "to": SocketAddrV4::new(SERVER_IP, 53).to_string()});
    ensure!(api.call("POST", "/v1/forwards", Some(&body))?.status == 201);
    await_applied(&lab, 2)?;
    let with_forward = our_table(&lab)?;
    assert_ne!(with_forward, first, "the forward is not in the table");
    assert_eq!(
        nft(&lab, &["list", "table", "inet", "other"])?,
        foreign,
        "a re-apply changed a foreign table"
    );
    println!("table inet proximity with a forward:\n{}", nft(&lab, &["list", "table", "inet", "proximity"])?);

    // Stopped: the table stays (the LAN keeps its connections during an upgrade).
    lab.appliance().stop()?;
    assert_eq!(our_table(&lab)?, with_forward, "stopping changed our table");
    // Restarted: the identical table, once.
    lab.appliance().start_again()?;
    await_applied(&lab, 3)?;
    assert_eq!(our_table(&lab)?, with_forward, "a restart built another table");
    let tables = nft(&lab, &["list", "tables"])?;
    assert_eq!(tables.matches("table inet proximity").count(), 1, "{tables}");
    assert_eq!(nft(&lab, &["list", "table", "inet", "other"])?, foreign, "a restart changed a foreign table");
    Ok(())
}

/// `/v1/health` as seen from `host` (no token needed).
fn health(host: &Host) -> Result<Value> {
    curl(host, &format!("https://{GATEWAY}:9090/v1/health")).insecure().run()?.json()
}

#[test]
fn nat_failures_are_named_the_rest_serves_and_nat_recovers_when_fixed() -> Result<()> {
    let lab = Lab::builder().clients(1).wan(true).build()?;
    // Where the appliance looks for nft: nothing there yet.
    let nft_path = lab.dir().join("bin-nft");
    lab.appliance().set_env("PROXIMITY_NFT", &nft_path.to_string_lossy());
    lab.start_appliance(&lab.config())?;
    let logged = |text: &'static str| {
        wait::until(NAT_DEADLINE, &format!("{text:?} in the log"), || {
            Ok(lab.appliance().log().contains(text).then_some(()))
        })
    };
    logged("install nftables")?;
    // DHCP, DNS and the admin API go on; health says what is wrong.
    let client = lab.client(0);
    client.dhclient().obtain()?;
    let now = health(client)?;
    assert_eq!((&now["status"], &now["services"]["nat"]), (&json!("degraded"), &json!("failed")), "{now}");
    assert_eq!(now["services"]["dhcp"], "running", "{now}");

    // nft there, but without CAP_NET_ADMIN (what a container that drops it gives).
    let system_nft = ["/usr/sbin/nft", "/sbin/nft"].into_iter().find(|p| std::path::Path::new(p).is_file());
    let system_nft = system_nft.context("no nft on this machine (apt-get install nftables)")?;
    let wrapper = format!("#!/bin/sh\nexec setpriv --bounding-set -net_admin {system_nft} \"$@\"\n");
    std::fs::write(&nft_path, wrapper)?;
    std::fs::set_permissions(&nft_path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    logged("the appliance needs CAP_NET_ADMIN")?;

    // Fixed: the next try (backoff) puts the ruleset in force.
    std::fs::remove_file(&nft_path)?;
    std::os::unix::fs::symlink(system_nft, &nft_path)?;
    await_applied(&lab, 1)?;
    wait::until(NAT_DEADLINE, "nat running in /v1/health", || {
        Ok((health(client)?["services"]["nat"] == "running").then_some(()))
    })?;
    Ok(())
}
