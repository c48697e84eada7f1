//! The admin API with curl, as a user or the provisioner drives it: the token (and the few open
//! endpoints), a precise 4xx naming the field for every bad input with nothing left behind, an
//! app by MAC that goes live with its client's lease and follows it to a new address, PUT that
//! is idempotent, DELETE that takes the name and the route away, and apps that outlive a restart
//! and a kill -9.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use proximity_tests::http::admin::{CA_PROOF_HEADER, TOKEN_FILE, ca_proof, error_of};
use proximity_tests::http::{Admin, Backend};
use proximity_tests::{GATEWAY, Lab};
use serde_json::{Value, json};

use crate::web::{
    BACKEND_PORT, LAB_BACKEND, LIVE_DEADLINE, admin, app_by_ip, await_status, echo_of, fqdn, get, start,
};

/// A LAN address for apps whose backend is never asked.
const SOME_LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 50);

/// The names of the apps the API lists.
fn app_names(api: &Admin) -> Result<Vec<String>> {
    let reply = api.call("GET", "/v1/apps", None)?;
    ensure!(reply.status == 200, "GET /v1/apps: {reply}");
    let apps = reply.json()?;
    let list = apps.as_array().with_context(|| format!("GET /v1/apps is no list: {reply}"))?;
    Ok(list.iter().filter_map(|a| a["name"].as_str().map(str::to_owned)).collect())
}

#[test]
fn the_api_wants_its_token_except_for_health_the_ca_and_the_description() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let token_file = std::path::Path::new(&config.state.dir).join(TOKEN_FILE);
    let mode = std::fs::metadata(&token_file)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", token_file.display());

    let health = api.anonymous("GET", "/v1/health").run()?;
    assert_eq!(health.status, 200, "{health}");
    assert!(health.json()?["version"].is_string(), "{health}");
    for open in ["/v1/ca.crt", "/v1/openapi.json"] {
        let reply = api.anonymous("GET", open).run()?;
        assert_eq!(reply.status, 200, "{open} without a token: {reply}");
    }

    let closed =
        ["/v1/apps", "/v1/apps/web", "/v1/leases", "/v1/reservations", "/v1/dns/records", "/metrics"];
    let basic = format!("Authorization: Basic {}", api.token());
    let wrong: [Option<&str>; 4] =
        [None, Some("Authorization: Bearer not-the-token"), Some("Authorization: Bearer "), Some(&basic)];
    for path in closed.iter().chain(&["/v1/no-such-endpoint"]) {
        for header in &wrong {
            let mut request = api.anonymous("GET", path);
            if let Some(header) = *header {
                request = request.header(header);
            }
            let reply = request.run()?;
            let what = format!("GET {path} with {header:?}");
            assert_eq!(reply.status, 401, "{what}: {reply}");
            assert_eq!(error_of(&reply)?.0, "unauthorized", "{what}: {reply}");
            assert!(
                reply.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")),
                "{what}: {reply}"
            );
        }
    }
    // A write with a wrong token changes nothing (curl's default, HTTP/2 over TLS).
    let reply = api
        .anonymous("POST", "/v1/apps")
        .header("Authorization: Bearer not-the-token")
        .json(&app_by_ip("web", SOME_LAN_HOST).to_string())
        .run()?;
    assert_eq!(reply.status, 401, "{reply}");
    // With the token, everything answers.
    for path in closed.iter().filter(|p| **p != "/v1/apps/web") {
        let reply = api.call("GET", path, None)?;
        assert_eq!(reply.status, 200, "GET {path} with the token: {reply}");
    }
    assert!(app_names(&api)?.is_empty(), "the unauthorised POST created an app");
    let leases = api.call("GET", "/v1/leases", None)?.json()?;
    let mine = lab.client(0).ipv4_addrs()?[0].0.to_string();
    assert!(
        leases.as_array().is_some_and(|l| l.iter().any(|lease| lease["ip"] == mine.as_str())),
        "the API lists no lease of {mine}: {leases}"
    );
    let metrics = api.call("GET", "/metrics", None)?.text();
    assert!(metrics.contains("proximity_"), "no proximity_ metric in /metrics:\n{metrics}");
    Ok(())
}

/// A deployment's token, known to the appliance only by its hash (`admin.token_sha256`, as the
/// provisioner writes it): that token gets in, others do not, no token file appears in the state
/// directory, and the CA comes with a proof that checks out with the token and with no other.
#[test]
fn a_token_given_by_its_hash_gets_in_and_proves_the_ca() -> Result<()> {
    let token = "deployment-token-0123456789abcdef0123456789abcdef";
    let hash: String = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let lab = Lab::builder().clients(1).build()?;
    let config = start(&lab, |c| c.admin.token_sha256 = Some(hash.clone()))?;
    // Checks the CA's proof against the token before trusting the CA.
    let api = Admin::connect_with_token(lab.client(0), GATEWAY, token)?;
    assert!(app_names(&api)?.is_empty());
    for wrong in [format!("Bearer {hash}"), format!("Bearer {token}x"), "Bearer not-the-token".to_owned()] {
        let reply = api.anonymous("GET", "/v1/apps").header(&format!("Authorization: {wrong}")).run()?;
        assert_eq!(reply.status, 401, "{wrong}: {reply}");
    }
    let ca = api.anonymous("GET", "/v1/ca.crt").run()?;
    let proof = ca.header(CA_PROOF_HEADER).context("no proof")?;
    assert_eq!(proof, ca_proof(token, &ca.body));
    assert_ne!(proof, ca_proof("another-token-0123456789abcdef0123456789abcdef", &ca.body));
    let token_file = std::path::Path::new(&config.state.dir).join(TOKEN_FILE);
    assert!(!token_file.exists(), "{} was created", token_file.display());
    Ok(())
}

#[test]
fn bad_input_gets_a_4xx_naming_the_field_and_changes_nothing() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    api.create_app(&app_by_ip("web", SOME_LAN_HOST))?;
    let good = |name: &str| app_by_ip(name, SOME_LAN_HOST);
    let with = |name: &str, key: &str, value: Value| {
        let mut app = good(name);
        app[key] = value;
        app.to_string()
    };
    let huge = format!("{{\"name\": \"big\", \"pad\": \"{}\"}}", "x".repeat(100 * 1024));
    // (what, body, status, code, the field paths the message must name)
    let cases: Vec<(&str, String, u16, &str, Vec<&str>)> = vec![
        ("invalid DNS label", with("bad_name!", "port", json!(8080)), 400, "invalid_request", vec!["name"]),
        ("name too long", good(&"a".repeat(64)).to_string(), 400, "invalid_request", vec!["name"]),
        ("name taken", good("web").to_string(), 409, "name_taken", vec!["name"]),
        ("name taken, other case", good("WEB").to_string(), 409, "name_taken", vec!["name"]),
        ("port out of range", with("p1", "port", json!(70000)), 400, "invalid_request", vec!["port"]),
        ("port zero", with("p2", "port", json!(0)), 400, "invalid_request", vec!["port"]),
        ("port as text", with("p3", "port", json!("80")), 400, "invalid_request", vec!["port"]),
        (
            "backend outside the LAN",
            with("o1", "backend", json!({"ip": "10.30.0.5"})),
            400,
            "invalid_request",
            vec!["backend.ip"],
        ),
        (
            "backend is the gateway",
            with("o2", "backend", json!({"ip": "10.20.0.1"})),
            400,
            "invalid_request",
            vec!["backend.ip"],
        ),
        (
            "malformed MAC",
            with("m1", "backend", json!({"mac": "02:00:zz:00:00:01"})),
            400,
            "invalid_request",
            vec!["backend.mac"],
        ),
        (
            "two backends",
            with("m2", "backend", json!({"ip": SOME_LAN_HOST.to_string(), "mac": "02:00:00:00:00:01"})),
            400,
            "invalid_request",
            vec!["backend"],
        ),
        (
            "every problem at once",
            json!({"name": "-x-", "backend": {"ip": "1.2.3.4"}, "port": -1}).to_string(),
            400,
            "invalid_request",
            vec!["name", "backend.ip", "port"],
        ),
        ("malformed JSON", "{\"name\": \"j1\", \"backend\": ".to_owned(), 400, "invalid_json", vec![]),
        ("body too large", huge, 413, "body_too_large", vec![]),
    ];
    let mut failures = Vec::new();
    for (what, body, status, code, fields) in &cases {
        let reply = api.request("POST", "/v1/apps").json(body).run()?;
        let seen = error_of(&reply).unwrap_or_default();
        let named = fields.iter().all(|f| seen.1.contains(&format!("{f}:")));
        if reply.status != *status || seen.0 != *code || !named {
            failures.push(format!("{what}: expected {status} {code} naming {fields:?}, got {reply}"));
        } else {
            println!("{what}: {status} {code}: {}", seen.1);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing half-done: only the one good app exists, in the API, the DNS and the proxy.
    assert_eq!(app_names(&api)?, ["web"]);
    let user = lab.client(0);
    for label in ["p1", "o1", "m1", "j1", "big"] {
        let reply = proximity_tests::dns::query(user, GATEWAY, &fqdn(label), "A").run()?;
        assert_eq!(reply.status, "NXDOMAIN", "{label} after a refused request: {reply}");
        let host = fqdn(label);
        let page = proximity_tests::http::curl(user, &format!("http://{host}/"))
            .resolve(&host, 80, GATEWAY)
            .run()?;
        assert_eq!(page.status, 404, "{host} after a refused request: {page}");
    }
    Ok(())
}

#[test]
fn an_app_by_mac_goes_live_with_its_lease_and_follows_a_new_address() -> Result<()> {
    let lab = Lab::builder().clients(3).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let (user, server, squatter) = (lab.client(0), lab.client(1), lab.client(2));
    let app = json!({ "name": "web", "backend": { "mac": server.mac().to_string() }, "port": BACKEND_PORT });
    let shown = api.create_app(&app)?;
    assert_eq!(
        (&shown["live"], &shown["backend_address"]),
        (&json!(false), &Value::Null),
        "before any lease: {shown}"
    );
    let _backend = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, None)?;
    let request = get(user, GATEWAY, "http", "web", "/echo", api.cacert())?;
    // Without a lease the app is registered but not live. The proxy answers its 404 page then
    // (a 502/503 would say more; reported), so only "not the app" is asserted.
    let before = request.run()?;
    assert!(before.status >= 400 && before.header("x-backend").is_none(), "no lease yet, yet: {before}");
    println!("app by MAC without a lease: {} {:?}", before.status, before.header("content-type"));

    let first = server.dhclient().obtain()?.ip;
    let leased = Instant::now();
    let (reply, _) = await_status(&request, 200, LIVE_DEADLINE)?;
    println!("app by MAC: lease to first 200 in {:?}", leased.elapsed());
    assert_eq!(echo_of(&reply, "web")?["local"], format!("{first}:{BACKEND_PORT}"), "{reply}");
    assert_eq!(api.app("web")?.context("web vanished")?["backend_address"], json!(first.to_string()));

    // The client's address changes: its lease is revoked by the admin, another client takes
    // the address, and the client comes back with a new one.
    server.dhclient().stop()?;
    let revoked = api.call("DELETE", &format!("/v1/leases/{first}"), None)?;
    assert!((200..300).contains(&revoked.status), "DELETE /v1/leases/{first}: {revoked}");
    let taken = squatter.udhcpc().requested(first).obtain()?;
    ensure!(
        taken.ip == first,
        "the squatter asked for {first} and got {}: the test needs that address",
        taken.ip
    );
    let second = server.dhclient().obtain()?.ip;
    assert_ne!(second, first, "the client kept its revoked address");
    let moved = Instant::now();
    let found = proximity_tests::wait::until(LIVE_DEADLINE, "web to be served from the new address", || {
        let reply = request.run()?;
        Ok((reply.status == 200 && reply.json()?["local"] == format!("{second}:{BACKEND_PORT}").as_str())
            .then_some(reply))
    });
    found.with_context(|| format!("api says: {:?}", api.app("web")))?;
    println!("app by MAC: new lease to first 200 at {second} in {:?}", moved.elapsed());
    assert_eq!(api.app("web")?.context("web vanished")?["backend_address"], json!(second.to_string()));
    Ok(())
}

#[test]
fn put_is_idempotent_and_delete_takes_the_name_and_route_away() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let (user, server) = (lab.client(0), lab.client(1));
    let backend_ip = server.dhclient().obtain()?.ip;
    let _backend = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, None)?;
    let app = app_by_ip("web", backend_ip);

    let created = api.call("PUT", "/v1/apps/web", Some(&app))?;
    assert_eq!(created.status, 201, "first PUT creates: {created}");
    for _ in 0..2 {
        let again = api.call("PUT", "/v1/apps/web", Some(&app))?;
        assert_eq!(again.status, 200, "PUT of the same app: {again}");
        assert_eq!(again.json()?, created.json()?, "PUT of the same app changed it");
    }
    // What GET shows can be PUT back as it is.
    let shown = api.app("web")?.context("no web after PUT")?;
    assert_eq!(api.call("PUT", "/v1/apps/web", Some(&shown))?.status, 200);
    let mismatch = api.call("PUT", "/v1/apps/other", Some(&app))?;
    assert_eq!((mismatch.status, error_of(&mismatch)?.0.as_str()), (400, "invalid_request"), "{mismatch}");
    assert_eq!(app_names(&api)?, ["web"]);
    let request = get(user, GATEWAY, "http", "web", "/echo", api.cacert())?;
    await_status(&request, 200, LIVE_DEADLINE)?;

    // A PUT that changes the port changes the route; putting it back restores it.
    let mut moved = app.clone();
    moved["port"] = json!(BACKEND_PORT + 1);
    assert_eq!(api.call("PUT", "/v1/apps/web", Some(&moved))?.status, 200);
    await_status(&request, 502, LIVE_DEADLINE)?;
    assert_eq!(api.call("PUT", "/v1/apps/web", Some(&app))?.status, 200);
    await_status(&request, 200, LIVE_DEADLINE)?;

    api.delete_app("web")?;
    let deleted = Instant::now();
    let ask = proximity_tests::dns::query(user, GATEWAY, &fqdn("web"), "A");
    let (reply, _) = ask.until(LIVE_DEADLINE, "web to leave the DNS", |r| r.status == "NXDOMAIN")?;
    assert!(reply.answer.is_empty(), "{reply}");
    let page =
        proximity_tests::http::curl(user, "http://web.prox.local/echo").resolve(&fqdn("web"), 80, GATEWAY);
    await_status(&page, 404, LIVE_DEADLINE)?;
    println!("DELETE to NXDOMAIN and 404 in {:?}", deleted.elapsed());
    let again = api.call("DELETE", "/v1/apps/web", None)?;
    assert_eq!((again.status, error_of(&again)?.0.as_str()), (404, "not_found"), "{again}");
    assert!(api.app("web")?.is_none());
    Ok(())
}

#[test]
fn apps_survive_a_restart_and_a_kill_9() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let (user, server) = (lab.client(0), lab.client(1));
    // By MAC before the lease: registered after it, the app would not go live (see
    // `an_app_by_mac_registered_after_a_nameless_lease_is_live`).
    api.create_app(
        &json!({ "name": "bymac", "backend": { "mac": server.mac().to_string() }, "port": BACKEND_PORT }),
    )?;
    let backend_ip = server.dhclient().obtain()?.ip;
    let _backend = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, None)?;
    api.create_app(&app_by_ip("web", backend_ip))?;
    api.create_app(&json!({
        "name": "checked",
        "backend": { "ip": backend_ip.to_string() },
        "port": BACKEND_PORT,
        "health_check": { "path": "/healthz", "interval": "2s" },
    }))?;
    await_status(&get(user, GATEWAY, "http", "bymac", "/echo", api.cacert())?, 200, LIVE_DEADLINE)?;
    let before = api.call("GET", "/v1/apps", None)?.json()?;
    let live: Vec<&Value> = before.as_array().into_iter().flatten().map(|a| &a["live"]).collect();
    assert_eq!(live, [&json!(true); 3], "every app is live before the restart: {before}");

    for ending in ["SIGTERM", "SIGKILL"] {
        if ending == "SIGTERM" {
            let status = lab.appliance().restart()?;
            assert!(status.success(), "SIGTERM should stop the appliance cleanly, got {status}");
        } else {
            lab.appliance().kill9()?;
            lab.appliance().start_again()?;
        }
        api.wait_ready()?;
        let after = api.call("GET", "/v1/apps", None)?.json()?;
        assert_eq!(after, before, "apps after a {ending} restart");
        for label in ["web", "bymac", "checked"] {
            for scheme in ["http", "https"] {
                let request = get(user, GATEWAY, scheme, label, "/echo", api.cacert())?;
                let (reply, _) = await_status(&request, 200, LIVE_DEADLINE)
                    .with_context(|| format!("{scheme}://{label} after {ending}"))?;
                echo_of(&reply, "web")?;
            }
        }
    }
    Ok(())
}

/// Answers the API gives before reading a request's body (401 for a wrong token, 413 for a body
/// over the limit) must reach a client on HTTP/2, which curl uses by default over TLS. Before the
/// API read (and dropped) a refused body before answering, the stream was reset and curl said
/// only "(92) Stream error in the HTTP/2 framing layer".
#[test]
fn early_answers_reach_http2_clients() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let body = app_by_ip("web", SOME_LAN_HOST).to_string();
    let reply =
        api.anonymous("POST", "/v1/apps").http2().header("Authorization: Bearer wrong").json(&body).run()?;
    assert_eq!((reply.status, error_of(&reply)?.0.as_str()), (401, "unauthorized"), "{reply}");
    let huge = format!("{{\"name\": \"big\", \"pad\": \"{}\"}}", "x".repeat(100 * 1024));
    let reply = api.request("POST", "/v1/apps").http2().json(&huge).run()?;
    assert_eq!((reply.status, error_of(&reply)?.0.as_str()), (413, "body_too_large"), "{reply}");
    Ok(())
}

/// An app by MAC registered after its client already holds a lease without a host name (what
/// dhclient gets by default) must be live at once. Today it stays `backend_address: null` and
/// the proxy answered 404 until the appliance restarted: `Directory::touches` skips lease changes
/// of nameless clients no app follows yet, so the directory never learned the lease (it now reads
/// the DHCP server's leases when apps change).
#[test]
fn an_app_by_mac_registered_after_a_nameless_lease_is_live() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let (user, server) = (lab.client(0), lab.client(1));
    let ip = server.dhclient().obtain()?.ip;
    let _backend = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, None)?;
    let shown = api.create_app(
        &json!({ "name": "web", "backend": { "mac": server.mac().to_string() }, "port": BACKEND_PORT }),
    )?;
    assert_eq!(shown["backend_address"], json!(ip.to_string()), "{shown}");
    let (reply, _) =
        await_status(&get(user, GATEWAY, "http", "web", "/echo", api.cacert())?, 200, LIVE_DEADLINE)?;
    echo_of(&reply, "web")?;
    Ok(())
}
