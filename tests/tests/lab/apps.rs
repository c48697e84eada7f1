//! Apps as a user sees them: registered with curl against the admin API, then reached by name
//! from a LAN client (resolved at the appliance) over HTTP, HTTPS with the downloaded CA, and
//! HTTP/2, with the forwarded headers a backend relies on; 64 MiB each way and a WebSocket (ws, wss)
//! through the proxy; and from the WAN, by the WAN address, with the LAN's host names hidden.

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use proximity_tests::http::Backend;
use proximity_tests::stream::pattern_digest;
use proximity_tests::{GATEWAY, Lab, WAN_ADDRESS, WAN_UPSTREAM};
use serde_json::json;

use crate::web::{
    BACKEND_PORT, LAB_BACKEND, LIVE_DEADLINE, WS_CLIENT, admin, app_by_ip, assert_resolves, await_status,
    echo_of, fqdn, get, received, start,
};

/// Size of the streamed bodies, as the issue asks.
const BIG: u64 = 64 * 1024 * 1024;

#[test]
fn a_registered_app_answers_by_name_over_http_https_and_http2() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let (user, server) = (lab.client(0), lab.client(1));
    let user_ip = user.ipv4_addrs()?.first().context("the user has no address")?.0;
    let backend_ip = server.dhclient().obtain()?.ip;
    let _web = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, None)?;
    // The suggestion of a backend: python's file server, on the same host.
    let www = server.dir().join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("hello.txt"), "hello from python\n")?;
    let _files = Backend::python(server, &www, 8000)?;

    let registered = Instant::now();
    let app = api.create_app(&app_by_ip("web", backend_ip))?;
    assert_eq!(app["urls"], json!(["http://web.prox.local/", "https://web.prox.local/"]), "{app}");
    assert_eq!(app["backend_address"], json!(backend_ip.to_string()), "{app}");
    assert_eq!(app["live"], json!(true), "{app}");
    assert_resolves(user, GATEWAY, "web", GATEWAY)?;
    let http = get(user, GATEWAY, "http", "web", "/echo?from=lab", api.cacert())?;
    let (reply, _) = await_status(&http, 200, LIVE_DEADLINE)?;
    println!("web: registration to first 200 over http: {:?}", registered.elapsed());

    let echo = echo_of(&reply, "web")?;
    assert_eq!(echo["uri"], "/echo?from=lab", "{reply}");
    assert_eq!(received(&echo, "host"), ["web.prox.local"], "Host is preserved: {reply}");
    assert_eq!(received(&echo, "x-forwarded-for"), [user_ip.to_string()], "{reply}");
    assert_eq!(received(&echo, "x-forwarded-proto"), ["http"], "{reply}");
    assert_eq!(received(&echo, "x-forwarded-host"), ["web.prox.local"], "{reply}");
    assert_eq!(echo["local"], format!("{backend_ip}:{BACKEND_PORT}"), "{reply}");

    // Hop-by-hop headers stop at the proxy; end-to-end ones pass.
    let reply = http
        .clone()
        .header("Connection: keep-alive, X-Hop")
        .header("X-Hop: only-to-the-proxy")
        .header("X-End: to-the-app")
        .run()?;
    let echo = echo_of(&reply, "web")?;
    assert!(received(&echo, "x-hop").is_empty(), "a header named in Connection was passed on: {reply}");
    assert_eq!(received(&echo, "x-end"), ["to-the-app"], "{reply}");

    // HTTPS with the CA from the API, HTTP/1.1 and HTTP/2.
    let https = get(user, GATEWAY, "https", "web", "/echo", api.cacert())?;
    let reply = https.clone().http1_1().run()?;
    assert_eq!(reply.version, "1.1", "{reply}");
    let echo = echo_of(&reply, "web")?;
    assert_eq!(received(&echo, "x-forwarded-proto"), ["https"], "{reply}");
    assert_eq!(received(&echo, "host"), ["web.prox.local"], "{reply}");
    let reply = https.clone().http2().run()?;
    assert_eq!(reply.version, "2", "HTTP/2 by ALPN: {reply}");
    let echo = echo_of(&reply, "web")?;
    assert_eq!(received(&echo, "x-forwarded-proto"), ["https"], "{reply}");
    assert_eq!(received(&echo, "x-forwarded-for"), [user_ip.to_string()], "{reply}");
    assert_eq!(received(&echo, "x-forwarded-host"), ["web.prox.local"], "{reply}");
    assert_eq!(
        received(&echo, "host"),
        ["web.prox.local"],
        "an h2 :authority reaches the app as Host: {reply}"
    );

    // The python backend, registered as a second app on another port.
    api.create_app(&json!({ "name": "files", "backend": { "ip": backend_ip.to_string() }, "port": 8000 }))?;
    for scheme in ["http", "https"] {
        let request = get(user, GATEWAY, scheme, "files", "/hello.txt", api.cacert())?;
        let (reply, _) = await_status(&request, 200, LIVE_DEADLINE)?;
        assert_eq!(reply.text(), "hello from python\n", "{scheme}: {reply}");
    }
    Ok(())
}

#[test]
fn big_bodies_and_a_websocket_pass_through_the_proxy() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let (user, server) = (lab.client(0), lab.client(1));
    let backend_ip = server.dhclient().obtain()?.ip;
    let _web = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, None)?;
    api.create_app(&app_by_ip("web", backend_ip))?;
    await_status(&get(user, GATEWAY, "http", "web", "/echo", api.cacert())?, 200, LIVE_DEADLINE)?;
    let expected = pattern_digest(BIG);

    // Upload: chunked over HTTP/1.1, and over HTTP/2; the backend answers length and digest.
    for (scheme, h2) in [("http", false), ("https", true)] {
        let mut request = get(user, GATEWAY, scheme, "web", "/upload", api.cacert())?;
        if h2 {
            request = request.http2();
        }
        let started = Instant::now();
        let reply = request.timeout(std::time::Duration::from_secs(120)).upload_pattern(BIG)?;
        ensure!(reply.status == 200, "{scheme} upload: {reply}");
        let got = reply.json()?;
        assert_eq!(got["bytes"], json!(BIG), "{scheme} upload length: {reply}");
        assert_eq!(got["sha256"], json!(expected.hex()), "{scheme} upload digest: {reply}");
        println!("64 MiB upload over {scheme} (h2: {h2}) in {:?}", started.elapsed());
    }
    // Download, both ways too.
    for (scheme, h2) in [("http", false), ("https", true)] {
        let mut request = get(user, GATEWAY, scheme, "web", &format!("/download?bytes={BIG}"), api.cacert())?;
        if h2 {
            request = request.http2();
        }
        let started = Instant::now();
        let (reply, digest) = request.timeout(std::time::Duration::from_secs(120)).download_digest()?;
        assert_eq!(reply.status, 200, "{scheme} download: {reply}");
        assert_eq!(digest.bytes(), BIG, "{scheme} download length");
        assert_eq!(digest.hex(), expected.hex(), "{scheme} download digest");
        println!("64 MiB download over {scheme} (h2: {h2}) in {:?}", started.elapsed());
    }

    // A WebSocket by name, ws:// and wss://: the upgrade, messages both ways, the close.
    let ip = crate::web::resolve(user, GATEWAY, &fqdn("web"))?;
    for (port, tls) in [(80, false), (443, true)] {
        let mut cmd = user.command(WS_CLIENT);
        cmd.args(["--connect", &format!("{ip}:{port}"), "--host", &fqdn("web")]);
        if tls {
            cmd.arg("--cacert").arg(api.cacert());
        }
        let out = cmd.output().context("cannot run lab-ws-client")?;
        let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "WebSocket (tls: {tls}) through the proxy failed ({}): {said}",
            out.status
        );
        assert!(said.contains("echoed 3 messages"), "{said}");
    }
    Ok(())
}

#[test]
fn the_wan_reaches_apps_at_the_wan_address_and_sees_no_host_names() -> Result<()> {
    let lab = Lab::builder().clients(2).wan(true).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let (user, server, outside) = (lab.client(0), lab.client(1), lab.wan());
    // The backend is named by its DHCP host name, which is also its LAN DNS name.
    let daemon = server.udhcpc().hostname("boxhost").spawn()?;
    let backend_ip = daemon.lease()?.ip;
    let _web = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, None)?;
    let app = api
        .create_app(&json!({ "name": "web", "backend": { "hostname": "boxhost" }, "port": BACKEND_PORT }))?;
    assert_eq!(app["backend_address"], json!(backend_ip.to_string()), "{app}");
    await_status(&get(user, GATEWAY, "http", "web", "/echo", api.cacert())?, 200, LIVE_DEADLINE)?;
    assert_resolves(user, GATEWAY, "boxhost", backend_ip)?;

    // The WAN asks the appliance's WAN address and gets that address for the app.
    assert_resolves(outside, WAN_ADDRESS, "web", WAN_ADDRESS)?;
    for scheme in ["http", "https"] {
        let request = get(outside, WAN_ADDRESS, scheme, "web", "/echo", api.cacert())?;
        let reply = request.run()?;
        let echo = echo_of(&reply, "web")?;
        assert_eq!(
            received(&echo, "x-forwarded-for"),
            [WAN_UPSTREAM.to_string()],
            "{scheme} from the WAN: {reply}"
        );
        assert_eq!(received(&echo, "x-forwarded-proto"), [scheme], "{reply}");
        assert_eq!(received(&echo, "host"), ["web.prox.local"], "{reply}");
    }
    // The backend's own host name stays on the LAN, in DNS and in the proxy.
    let reply = proximity_tests::dns::query(outside, WAN_ADDRESS, &fqdn("boxhost"), "A").run()?;
    assert!(reply.addresses().is_empty(), "a LAN host name answered to the WAN: {reply}");
    assert_eq!(reply.status, "NXDOMAIN", "{reply}");
    let reply = proximity_tests::http::curl(outside, "http://boxhost.prox.local/echo")
        .resolve(&fqdn("boxhost"), 80, WAN_ADDRESS)
        .run()?;
    assert_eq!(reply.status, 404, "a host that is no app, asked on the WAN: {reply}");
    assert!(!reply.text().contains(&backend_ip.to_string()), "the 404 names the host's address: {reply}");
    Ok(())
}
