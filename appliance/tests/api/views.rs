//! The read-only endpoints, the lease release, metrics, and the JSON 404 and 405.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use http::{Method, StatusCode};
use proximity_appliance::dhcp::server::unix_now;
use proximity_appliance::{dhcp, dns, proxy};
use serde_json::json;

use crate::support::{FakeLeases, Harness, app_body, lease};

#[tokio::test]
async fn health_is_degraded_while_an_enabled_service_is_not_running() {
    let h = Harness::start().await;
    let health = h.get("/v1/health").await.json();
    assert_eq!(health["status"], "ok");
    assert!(health["uptime_secs"].is_u64());
    h.state.services.set("dhcp", "running");
    h.state.services.set("proxy", "disabled");
    assert_eq!(h.get("/v1/health").await.json()["status"], "ok");
    h.state.services.set("dns", "failed");
    let health = h.get("/v1/health").await.json();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["services"], json!({"dhcp": "running", "dns": "failed", "proxy": "disabled"}));
    h.stop().await;
}

#[tokio::test]
async fn leases_listed_and_released() {
    let fake = Arc::new(FakeLeases::default());
    *fake.leases.lock().unwrap() = vec![lease(121, "printer"), lease(120, "laptop")];
    let leases = fake.clone();
    let h = Harness::start_with(move |s| s.leases = Some(leases)).await;
    h.state.directory.set_leases(&fake.leases.lock().unwrap().clone(), 1, unix_now());

    let listed = h.get("/v1/leases").await.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["ip"], "10.20.0.120");
    assert_eq!(listed[0]["mac"], "02:00:00:00:00:78");
    assert_eq!(listed[0]["hostname"], "laptop");
    assert_eq!(listed[0]["name"], "laptop");
    assert_eq!(listed[0]["state"], "active");
    assert!(listed[0]["ends"].as_u64().unwrap() > unix_now());

    assert_eq!(h.call(Method::DELETE, "/v1/leases/10.20.0.120", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(h.get("/v1/leases").await.json()[0]["state"], "released");
    let again = h.call(Method::DELETE, "/v1/leases/10.20.0.120", None).await;
    assert_eq!((again.status, again.error().0.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    for bad in ["10.20.0.300", "laptop", "fe80::1"] {
        let reply = h.call(Method::DELETE, &format!("/v1/leases/{bad}"), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        let (code, message) = reply.error();
        assert_eq!(code, "invalid_request");
        assert!(message.starts_with("ip: "), "{message}");
    }
    h.stop().await;

    // Without DHCP there are no leases.
    let h = Harness::start().await;
    assert_eq!(h.get("/v1/leases").await.json(), json!([]));
    assert_eq!(h.call(Method::DELETE, "/v1/leases/10.20.0.120", None).await.status, StatusCode::NOT_FOUND);
    h.stop().await;
}

#[tokio::test]
async fn reservations_come_from_the_config() {
    let h = Harness::start().await;
    assert_eq!(
        h.get("/v1/reservations").await.json(),
        json!([{"mac": "02:00:00:00:01:0a", "ip": "10.20.0.10", "name": "nas", "source": "config"}])
    );
    h.stop().await;
}

#[tokio::test]
async fn dns_records_show_what_the_zones_answer() {
    let h = Harness::start().await;
    h.state.directory.set_leases(&[lease(120, "laptop")], 1, unix_now());
    assert_eq!(
        h.call(Method::POST, "/v1/apps", Some(&app_body("web", 50))).await.status,
        StatusCode::CREATED
    );
    let records = h.get("/v1/dns/records").await.json();
    let records: Vec<(String, String, String, String, String)> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let f = |k: &str| r[k].as_str().unwrap().to_owned();
            (f("name"), f("type"), f("value"), f("view"), f("source"))
        })
        .collect();
    let has = |name: &str, kind: &str, value: &str, view: &str, source: &str| {
        let wanted = (name.into(), kind.into(), value.into(), view.into(), source.into());
        assert!(records.contains(&wanted), "{wanted:?} missing from {records:#?}");
    };
    has("prox.local", "NS", "ns.prox.local", "both", "appliance");
    has("0.20.10.in-addr.arpa", "NS", "ns.prox.local", "both", "appliance");
    has("ns.prox.local", "A", "10.20.0.1", "lan", "appliance");
    has("1.0.20.10.in-addr.arpa", "PTR", "ns.prox.local", "lan", "appliance");
    has("nas.prox.local", "A", "10.20.0.10", "lan", "reservation");
    has("10.0.20.10.in-addr.arpa", "PTR", "nas.prox.local", "lan", "reservation");
    has("laptop.prox.local", "A", "10.20.0.120", "lan", "lease");
    has("120.0.20.10.in-addr.arpa", "PTR", "laptop.prox.local", "lan", "lease");
    has("web.prox.local", "A", "10.20.0.1", "lan", "app");
    has("web.prox.local", "A", "the address the client asked", "wan", "app");
    let soa = records.iter().find(|r| r.0 == "prox.local" && r.1 == "SOA").expect("an SOA");
    let serial = h.state.directory.names().load().serial();
    assert!(soa.2.starts_with(&format!("ns.prox.local hostmaster.prox.local {serial} ")), "{soa:?}");
    let mut sorted = records.clone();
    sorted.sort_by(|a, b| (&a.0, &a.1, &a.3, &a.2).cmp(&(&b.0, &b.1, &b.3, &b.2)));
    assert_eq!(records, sorted);
    h.stop().await;
}

/// Every line of `/metrics` is a comment (`# HELP`/`# TYPE`) or `name{labels} number`, every
/// series' family is typed before it, and the figures are there.
#[tokio::test]
async fn metrics_parse_line_by_line() {
    let fake = Arc::new(FakeLeases::default());
    *fake.leases.lock().unwrap() = vec![lease(120, "laptop"), lease(10, "nas")];
    let h = Harness::start_with(move |s| {
        s.leases = Some(fake);
        s.dns_metrics = Some(Arc::new(dns::Metrics::default()));
        s.dhcp_metrics = Some(Arc::new(dhcp::Metrics::default()));
        s.proxy_metrics = Some(Arc::new(proxy::Metrics::default()));
    })
    .await;
    h.call(Method::POST, "/v1/apps", Some(&app_body("web", 50))).await;
    h.call(Method::POST, "/v1/apps", Some(&app_body("web", 50))).await;
    h.send(Method::GET, "/v1/apps", &[], Vec::new()).await;

    let reply = h.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = reply.text();
    let mut typed = HashSet::new();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_owned()), "typed twice: {line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let family = series.split('{').next().unwrap();
        assert!(family.starts_with("proximity_"), "{line}");
        assert!(family.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{line}");
        if let Some(labels) = series.strip_prefix(family).filter(|l| !l.is_empty()) {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
        }
        let base =
            ["_bucket", "_sum", "_count"].iter().find_map(|s| family.strip_suffix(s)).unwrap_or(family);
        assert!(typed.contains(family) || typed.contains(base), "untyped series {line}");
        samples.insert(series.to_owned(), value.to_owned());
    }
    let families: BTreeSet<&str> = samples.keys().map(|k| k.split('{').next().unwrap()).collect();
    for family in [
        "proximity_dns_replies_total",
        "proximity_dhcp_received_discover_total",
        "proximity_proxy_unknown_host_total",
    ] {
        assert!(families.contains(family), "{family} missing");
    }
    assert_eq!(samples["proximity_apps"], "1");
    // Two active leases; 151 in the pool, one of them bound.
    assert_eq!(samples["proximity_dhcp_leases_active"], "2");
    assert_eq!(samples["proximity_dhcp_leases_free"], "150");
    assert_eq!(samples["proximity_admin_requests_total{status=\"201\"}"], "1");
    assert_eq!(samples["proximity_admin_requests_total{status=\"409\"}"], "1");
    assert_eq!(samples["proximity_admin_requests_total{status=\"401\"}"], "1");
    h.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let h = Harness::start().await;
    for path in ["/v1/nothing", "/v1/apps/web/more", "/", "/v1/reservations/02:00:00:00:01:0a/more"] {
        let reply = h.get(path).await;
        assert_eq!((reply.status, reply.error().0.as_str()), (StatusCode::NOT_FOUND, "not_found"), "{path}");
    }
    for (method, path) in [
        (Method::PATCH, "/v1/apps/web"),
        (Method::DELETE, "/v1/apps"),
        (Method::PATCH, "/v1/reservations"),
        (Method::POST, "/metrics"),
        (Method::GET, "/v1/leases/10.20.0.5"),
    ] {
        let reply = h.call(method.clone(), path, None).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(reply.error().0, "method_not_allowed");
    }
    h.stop().await;
}
