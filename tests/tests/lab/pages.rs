//! When the proxy cannot hand a request to an app, the user reads why: an unknown name gets a
//! 404 (and, over HTTPS, no certificate), a stopped backend 502, a backend failing its health
//! check 503 until it passes again, a backend that never answers 504; no page names anything
//! internal (the backend's address or port).

use std::time::{Duration, Instant};

use anyhow::Result;
use proximity_tests::http::{Backend, Reply, curl};
use proximity_tests::{GATEWAY, Lab};
use serde_json::json;

use crate::web::{
    BACKEND_PORT, LAB_BACKEND, LIVE_DEADLINE, admin, app_by_ip, await_status, fqdn, get, start,
};

/// Health checks every second in these tests; the flip must show within a few intervals.
const HEALTH_INTERVAL: &str = "1s";
const HEALTH_FLIP_DEADLINE: Duration = Duration::from_secs(6);
/// The proxy's response timeout in the 504 test, and the longest the 504 may take.
const RESPONSE_TIMEOUT: &str = "2s";
const GATEWAY_TIMEOUT_WITHIN: Duration = Duration::from_secs(8);

/// A failure page: `status`, HTML, and none of `secrets` in it.
fn assert_page(reply: &Reply, status: u16, secrets: &[String], what: &str) {
    assert_eq!(reply.status, status, "{what}: {reply}");
    assert!(reply.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{what}: {reply}");
    let text = reply.text();
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "{what}: the page reveals {secret:?}: {reply}");
    }
    assert!(reply.header("x-backend").is_none(), "{what}: the page came from a backend: {reply}");
}

#[test]
fn unknown_names_get_404_and_a_stopped_backend_502() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let (user, server) = (lab.client(0), lab.client(1));
    let backend_ip = server.dhclient().obtain()?.ip;
    let backend = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, None)?;
    api.create_app(&app_by_ip("web", backend_ip))?;
    let secrets = [backend_ip.to_string(), format!(":{BACKEND_PORT}"), "10.20.0.".to_owned()];
    await_status(&get(user, GATEWAY, "http", "web", "/echo", api.cacert())?, 200, LIVE_DEADLINE)?;

    // A name that is no app: the DNS has no such name, and the proxy, asked anyway, 404.
    let reply = proximity_tests::dns::query(user, GATEWAY, &fqdn("nosuchapp"), "A").run()?;
    assert_eq!(reply.status, "NXDOMAIN", "{reply}");
    for host in [fqdn("nosuchapp"), "WEB.prox.local.example".to_owned(), "10.20.0.1".to_owned()] {
        let reply = curl(user, &format!("http://{host}/echo")).resolve(&host, 80, GATEWAY).run()?;
        assert_page(&reply, 404, &secrets, &format!("Host {host}"));
    }
    // Over HTTPS an unknown name gets no certificate at all: the handshake fails.
    let name = fqdn("nosuchapp");
    let attempt = curl(user, &format!("https://{name}/"))
        .resolve(&name, 443, GATEWAY)
        .cacert(api.cacert())
        .attempt()?;
    match attempt {
        Ok(reply) => panic!("https for an unknown name got a response: {reply}"),
        Err(failure) => println!("https://{name}/: no certificate ({failure})"),
    }
    // The app's own name, in another case and with the port, is still the app.
    let reply = curl(user, &format!("http://{GATEWAY}/echo")).header("Host: Web.Prox.Local:80").run()?;
    assert_eq!(reply.status, 200, "Host in another case with the port: {reply}");

    // The backend stops: 502, over both schemes.
    backend.stop();
    for scheme in ["http", "https"] {
        let request = get(user, GATEWAY, scheme, "web", "/echo", api.cacert())?;
        let (reply, _) = await_status(&request, 502, LIVE_DEADLINE)?;
        assert_page(&reply, 502, &secrets, &format!("{scheme}, backend stopped"));
    }
    Ok(())
}

#[test]
fn a_failing_health_check_gives_503_until_it_passes_again() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let (user, server) = (lab.client(0), lab.client(1));
    let backend_ip = server.dhclient().obtain()?.ip;
    let flag = server.dir().join("unhealthy");
    let _backend = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, Some(&flag))?;
    let app = json!({
        "name": "web",
        "backend": { "ip": backend_ip.to_string() },
        "port": BACKEND_PORT,
        "health_check": { "path": "/healthz", "interval": HEALTH_INTERVAL },
    });
    let shown = api.create_app(&app)?;
    assert_eq!(shown["health_check"]["path"], "/healthz", "{shown}");
    let request = get(user, GATEWAY, "http", "web", "/echo", api.cacert())?;
    await_status(&request, 200, LIVE_DEADLINE)?;

    std::fs::write(&flag, "")?;
    let started = Instant::now();
    let (reply, took) = await_status(&request, 503, HEALTH_FLIP_DEADLINE)?;
    println!("health check failing: 503 after {took:?} (interval {HEALTH_INTERVAL})");
    assert_page(&reply, 503, &[backend_ip.to_string()], "backend unhealthy");
    assert!(reply.header("retry-after").is_some(), "a 503 says when to retry: {reply}");
    let https = get(user, GATEWAY, "https", "web", "/echo", api.cacert())?;
    assert_eq!(https.run()?.status, 503, "https while unhealthy");

    std::fs::remove_file(&flag)?;
    let (_, took) = await_status(&request, 200, HEALTH_FLIP_DEADLINE)?;
    println!("health check passing again: 200 after {took:?} ({:?} in all)", started.elapsed());
    Ok(())
}

#[test]
fn a_backend_that_never_answers_gives_504() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    let config = start(&lab, |config| config.proxy.response_timeout = RESPONSE_TIMEOUT.into())?;
    let api = admin(&lab, &config)?;
    let (user, server) = (lab.client(0), lab.client(1));
    let backend_ip = server.dhclient().obtain()?.ip;
    let _backend = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, None)?;
    api.create_app(&app_by_ip("web", backend_ip))?;
    await_status(&get(user, GATEWAY, "http", "web", "/echo", api.cacert())?, 200, LIVE_DEADLINE)?;

    let request = get(user, GATEWAY, "http", "web", "/hang", api.cacert())?.timeout(Duration::from_secs(20));
    let started = Instant::now();
    let reply = request.run()?;
    let took = started.elapsed();
    assert_page(&reply, 504, &[backend_ip.to_string()], "backend never answers");
    assert!(
        took >= Duration::from_millis(1500) && took <= GATEWAY_TIMEOUT_WITHIN,
        "504 after {took:?} with response_timeout {RESPONSE_TIMEOUT}"
    );
    println!("504 after {took:?} (response_timeout {RESPONSE_TIMEOUT})");
    // The proxy is not stuck behind the hung request: the app still answers.
    assert_eq!(get(user, GATEWAY, "http", "web", "/echo", api.cacert())?.run()?.status, 200);
    Ok(())
}
