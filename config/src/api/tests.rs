//! The API's JSON: request → validated → canonical JSON, every problem with its path, and the
//! response shapes clients read.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_json::{Value, json};

use super::*;
use crate::types::MacAddr;

const DOMAIN: &str = "prox.local";

fn lan() -> Ipv4Net {
    "10.20.0.1/24".parse().unwrap()
}

fn raw(body: Value) -> RawApp {
    serde_json::from_value(body).unwrap()
}

fn validate(body: Value) -> Result<App, ConfigErrors> {
    App::validate(raw(body), &lan(), DOMAIN)
}

/// Every problem of an invalid request as `path: message`.
fn problems(body: Value) -> Vec<String> {
    validate(body).expect_err("invalid").iter().map(ToString::to_string).collect()
}

fn assert_reported(got: &[String], wants: &[&str]) {
    for want in wants {
        assert!(got.iter().any(|g| g.starts_with(want)), "missing {want:?} in {got:#?}");
    }
}

#[test]
fn a_request_becomes_the_canonical_app() {
    let app = validate(json!({
        "name": "Web",
        "backend": {"mac": "BC:24:11:00:00:05"},
        "port": 8080,
        "health_check": {"path": "/healthz", "interval": "90s"},
    }))
    .unwrap();
    assert_eq!(app.name, "web");
    assert_eq!(app.backend, Backend::Mac(MacAddr([0xbc, 0x24, 0x11, 0, 0, 5])));
    assert_eq!(app.health_check.as_ref().unwrap().interval, Duration::from_secs(90));
    assert_eq!(
        serde_json::to_value(&app).unwrap(),
        json!({
            "name": "web",
            "backend": {"mac": "bc:24:11:00:00:05"},
            "port": 8080,
            "health_check": {"path": "/healthz", "interval": "1m 30s"},
        })
    );
    assert_eq!(app.host(DOMAIN), "web.prox.local");
    assert_eq!(app.urls("prox.local."), ["http://web.prox.local/", "https://web.prox.local/"]);
}

#[test]
fn each_backend_kind_has_its_json_form() {
    for (backend, want) in [
        (json!({"ip": "10.20.0.5"}), Backend::Ip(Ipv4Addr::new(10, 20, 0, 5))),
        (json!({"mac": "bc:24:11:00:00:05"}), Backend::Mac(MacAddr([0xbc, 0x24, 0x11, 0, 0, 5]))),
        (json!({"hostname": "Nas"}), Backend::Hostname("nas".into())),
    ] {
        let app = validate(json!({"name": "web", "backend": backend.clone(), "port": 80})).unwrap();
        assert_eq!(app.backend, want);
        let lower = serde_json::to_value(&want).unwrap();
        assert_eq!(lower, serde_json::from_str::<Value>(&backend.to_string().to_lowercase()).unwrap());
        assert_eq!(serde_json::from_value::<Backend>(lower).unwrap(), want);
    }
}

#[test]
fn the_health_check_interval_defaults_to_10s() {
    let app = validate(
        json!({"name": "web", "backend": {"ip": "10.20.0.5"}, "port": 80, "health_check": {"path": "/"}}),
    )
    .unwrap();
    assert_eq!(app.health_check.unwrap().interval, DEFAULT_HEALTH_INTERVAL);
    let stored: HealthCheck = serde_json::from_value(json!({"path": "/"})).unwrap();
    assert_eq!(stored.interval, Duration::from_secs(10));
    let app = validate(json!({"name": "web", "backend": {"ip": "10.20.0.5"}, "port": 80})).unwrap();
    assert_eq!(serde_json::to_value(&app).unwrap()["health_check"], Value::Null);
}

#[test]
fn what_get_returns_can_be_put_back() {
    let app = validate(json!({
        "name": "web",
        "backend": {"hostname": "web-1"},
        "port": 3000,
        "health_check": {"path": "/ok", "interval": "1m"},
    }))
    .unwrap();
    // The stored form.
    let again = validate(serde_json::to_value(&app).unwrap()).unwrap();
    assert_eq!(again, app);
    // The view, with its read-only fields.
    let view = AppView::new(&app, DOMAIN, None);
    let body = serde_json::to_value(&view).unwrap();
    assert_eq!(body["urls"], json!(["http://web.prox.local/", "https://web.prox.local/"]));
    assert_eq!(body["live"], json!(false));
    assert_eq!(validate(body).unwrap(), app);
    assert_eq!(view.app(), app);
    // The request a client builds from a stored app.
    let request = serde_json::to_value(RawApp::from(&app)).unwrap();
    assert_eq!(request, serde_json::to_value(&app).unwrap());
    assert_eq!(validate(request).unwrap(), app);
}

#[test]
fn unknown_fields_are_refused() {
    for body in [
        json!({"name": "web", "backend": {"ip": "10.20.0.5"}, "port": 80, "prot": 81}),
        json!({"name": "web", "backend": {"ip": "10.20.0.5", "weight": 2}, "port": 80}),
        json!({
            "name": "web", "backend": {"ip": "10.20.0.5"}, "port": 80,
            "health_check": {"path": "/", "every": "1s"},
        }),
    ] {
        let e = serde_json::from_value::<RawApp>(body).expect_err("unknown field");
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
    let e = serde_json::from_value::<ReservationRequest>(json!({"mac": "x", "ip": "y", "host": "z"}))
        .expect_err("unknown field");
    assert!(e.to_string().contains("unknown field `host`"), "{e}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let got = problems(json!({
        "name": "web_1",
        "backend": {"ip": "10.30.0.5", "mac": "01:00:5e:00:00:01", "hostname": "-x"},
        "port": 70000,
        "health_check": {"path": "healthz", "interval": "0.5s"},
    }));
    assert_eq!(
        got,
        [
            "name: \"web_1\" is not a valid DNS label: \"web_1\" may only hold letters, digits and '-', \
             and may not start or end with '-'",
            "backend: gives ip and mac and hostname; give exactly one",
            "backend.ip: 10.30.0.5 is outside the LAN 10.20.0.0/24",
            "backend.mac: 01:00:5e:00:00:01 is a multicast address; give the host's own hardware address",
            "backend.hostname: \"-x\" is not a valid DNS label: \"-x\" may only hold letters, digits and \
             '-', and may not start or end with '-'",
            "port: 70000 is out of range 1-65535",
            "health_check.path: \"healthz\" must start with '/'",
            "health_check.interval: \"0.5s\" must be between 1s and 1h",
        ]
    );
}

#[test]
fn missing_fields_are_problems_too() {
    let got = problems(json!({}));
    assert_eq!(
        got,
        [
            "name: is missing",
            "backend: gives none of ip, mac and hostname; give exactly one",
            "port: is missing; give the backend's TCP port (1-65535)",
        ]
    );
}

#[test]
fn names_are_checked() {
    let ok = |name: &str| validate(json!({"name": name, "backend": {"ip": "10.20.0.5"}, "port": 80}));
    assert_eq!(ok("Web-1").unwrap().name, "web-1");
    let e = ok("NS").unwrap_err().to_string();
    assert!(e.contains("name: \"ns\" is the appliance's own name server"), "{e}");
    let e = ok(&"a".repeat(64)).unwrap_err().to_string();
    assert!(e.contains("is longer than 63 characters"), "{e}");
    let long_domain = format!("{}.{}.{}.{}", "d".repeat(63), "d".repeat(63), "d".repeat(63), "d".repeat(60));
    let r = App::validate(
        raw(json!({"name": "web", "backend": {"ip": "10.20.0.5"}, "port": 80})),
        &lan(),
        &long_domain,
    );
    assert!(r.unwrap_err().to_string().contains("name: web.ddd"), "name too long under the domain");
    for bad in ["a.b", "", "-web", "we b"] {
        assert!(ok(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn backend_addresses_must_be_hosts_on_the_lan() {
    let ip = |ip: &str| problems(json!({"name": "web", "backend": {"ip": ip}, "port": 80}));
    assert_eq!(ip("10.20.0.1"), ["backend.ip: 10.20.0.1 is the appliance itself (the LAN gateway)"]);
    assert_eq!(ip("10.20.0.0"), ["backend.ip: 10.20.0.0 is the network address of the LAN 10.20.0.0/24"]);
    assert_eq!(
        ip("10.20.0.255"),
        ["backend.ip: 10.20.0.255 is the broadcast address of the LAN 10.20.0.0/24"]
    );
    assert_eq!(ip("web"), ["backend.ip: \"web\" is not an IPv4 address"]);
    assert_eq!(ip("fd00::1"), ["backend.ip: \"fd00::1\" is not an IPv4 address"]);
    let mac = |mac: &str| problems(json!({"name": "web", "backend": {"mac": mac}, "port": 80}));
    assert_reported(&mac("bc:24:11"), &["backend.mac: \"bc:24:11\" is not a MAC address"]);
    assert_reported(&mac("ff:ff:ff:ff:ff:ff"), &["backend.mac: ff:ff:ff:ff:ff:ff is a multicast address"]);
    assert_reported(&mac("00:00:00:00:00:00"), &["backend.mac: 00:00:00:00:00:00 is not a host's"]);
    let host = |h: &str| problems(json!({"name": "web", "backend": {"hostname": h}, "port": 80}));
    assert_eq!(
        host("nas.prox.local"),
        ["backend.hostname: \"nas.prox.local\": give the host label alone (\"nas\")"]
    );
    assert_reported(&host("ns"), &["backend.hostname: \"ns\" is the appliance's own name server"]);
    assert_reported(&host(""), &["backend.hostname: is missing"]);
}

#[test]
fn ports_are_integers_in_range() {
    let port = |port: Value| problems(json!({"name": "web", "backend": {"ip": "10.20.0.5"}, "port": port}));
    assert_eq!(port(json!(0)), ["port: 0 is out of range 1-65535"]);
    assert_eq!(port(json!(-1)), ["port: -1 is out of range 1-65535"]);
    assert_eq!(port(json!(u64::MAX)), [format!("port: {} is out of range 1-65535", u64::MAX)]);
    assert_eq!(port(json!(80.5)), ["port: 80.5 is not an integer"]);
    assert_eq!(port(json!("80")), ["port: \"80\" is not an integer"]);
    assert_eq!(port(Value::Null), ["port: is missing; give the backend's TCP port (1-65535)"]);
    let app = validate(json!({"name": "web", "backend": {"ip": "10.20.0.5"}, "port": 65535})).unwrap();
    assert_eq!(app.port, 65535);
}

#[test]
fn health_checks_are_checked() {
    let hc = |hc: Value| {
        problems(json!({"name": "web", "backend": {"ip": "10.20.0.5"}, "port": 80, "health_check": hc}))
    };
    assert_eq!(
        hc(json!({"path": "/a b"})),
        ["health_check.path: \"/a b\" may not contain spaces or control characters"]
    );
    assert_eq!(
        hc(json!({"path": "/a\u{7}"})),
        ["health_check.path: \"/a\\u{7}\" may not contain spaces or control characters"]
    );
    assert_eq!(hc(json!({})), ["health_check.path: \"\" must start with '/'"]);
    assert_reported(
        &hc(json!({"path": format!("/{}", "a".repeat(1024))})),
        &["health_check.path: is longer than 1024"],
    );
    assert_eq!(
        hc(json!({"path": "/", "interval": "500ms"})),
        ["health_check.interval: \"500ms\" must be between 1s and 1h"]
    );
    assert_eq!(
        hc(json!({"path": "/", "interval": "2h"})),
        ["health_check.interval: \"2h\" must be between 1s and 1h"]
    );
    assert_reported(
        &hc(json!({"path": "/", "interval": "often"})),
        &["health_check.interval: \"often\" is not a duration"],
    );
}

#[test]
fn reservations_are_checked_against_the_lan() {
    let ok = ApiReservation::validate(
        serde_json::from_value(json!({"mac": "52:54:00:00:00:0A", "ip": "10.20.0.10", "name": "NAS"}))
            .unwrap(),
        &lan(),
    )
    .unwrap();
    assert_eq!(
        ok,
        ApiReservation {
            mac: MacAddr([0x52, 0x54, 0, 0, 0, 0x0a]),
            ip: Ipv4Addr::new(10, 20, 0, 10),
            name: Some("nas".into())
        }
    );
    assert_eq!(
        serde_json::to_value(&ok).unwrap(),
        json!({"mac": "52:54:00:00:00:0a", "ip": "10.20.0.10", "name": "nas"})
    );
    let back = ApiReservation::validate(ReservationRequest::from(&ok), &lan()).unwrap();
    assert_eq!(back, ok);
    assert_eq!(crate::Reservation::from(ok).name.as_deref(), Some("nas"));

    let request: ReservationRequest =
        serde_json::from_value(json!({"mac": "01:00:00:00:00:01", "ip": "10.20.0.1", "name": "ns"})).unwrap();
    let got: Vec<String> =
        ApiReservation::validate(request, &lan()).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "mac: 01:00:00:00:00:01 is a multicast address; give the host's own hardware address",
            "ip: 10.20.0.1 is the appliance itself (the LAN gateway)",
            "name: \"ns\" is the appliance's own name server; choose another name",
        ]
    );
    let request: ReservationRequest =
        serde_json::from_value(json!({"ip": "10.21.0.3", "name": "a_b"})).unwrap();
    let got: Vec<String> =
        ApiReservation::validate(request, &lan()).unwrap_err().iter().map(ToString::to_string).collect();
    assert_reported(
        &got,
        &[
            "mac: \"\" is not a MAC address",
            "ip: 10.21.0.3 is outside the LAN 10.20.0.0/24",
            "name: \"a_b\" is not a valid host name",
        ],
    );
}

#[test]
fn views_have_their_documented_shape() {
    let app = validate(json!({"name": "web", "backend": {"mac": "bc:24:11:00:00:05"}, "port": 80})).unwrap();
    let view = AppView::new(&app, DOMAIN, Some(Ipv4Addr::new(10, 20, 0, 104)));
    assert_eq!(
        serde_json::to_value(&view).unwrap(),
        json!({
            "name": "web", "backend": {"mac": "bc:24:11:00:00:05"}, "port": 80, "health_check": null,
            "urls": ["http://web.prox.local/", "https://web.prox.local/"],
            "backend_address": "10.20.0.104", "live": true,
        })
    );
    let lease = LeaseView {
        ip: Ipv4Addr::new(10, 20, 0, 104),
        mac: MacAddr([0xbc, 0x24, 0x11, 0, 0, 5]),
        hostname: Some("Web_1".into()),
        name: Some("web-1".into()),
        state: "active".into(),
        starts: 1_800_000_000,
        ends: 1_800_043_200,
    };
    assert_eq!(
        serde_json::to_value(&lease).unwrap(),
        json!({"ip": "10.20.0.104", "mac": "bc:24:11:00:00:05", "hostname": "Web_1", "name": "web-1",
               "state": "active", "starts": 1_800_000_000u64, "ends": 1_800_043_200u64})
    );
    let reservation = ReservationView {
        mac: MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        ip: Ipv4Addr::new(10, 20, 0, 10),
        name: None,
        source: "config".into(),
    };
    assert_eq!(
        serde_json::to_value(&reservation).unwrap(),
        json!({"mac": "52:54:00:12:34:56", "ip": "10.20.0.10", "name": null, "source": "config"})
    );
    let record = DnsRecordView {
        name: "web.prox.local".into(),
        r#type: "A".into(),
        value: "10.20.0.1".into(),
        view: "lan".into(),
        source: "app".into(),
    };
    let body = serde_json::to_value(&record).unwrap();
    assert_eq!(
        body,
        json!({"name": "web.prox.local", "type": "A", "value": "10.20.0.1", "view": "lan", "source": "app"})
    );
    assert_eq!(serde_json::from_value::<DnsRecordView>(body).unwrap(), record);
    let health = HealthView {
        status: "ok".into(),
        version: "0.1.0".into(),
        uptime_secs: 12,
        services: BTreeMap::from([("dhcp".into(), "running".into()), ("dns".into(), "running".into())]),
    };
    assert_eq!(
        serde_json::to_value(&health).unwrap(),
        json!({
            "status": "ok", "version": "0.1.0", "uptime_secs": 12,
            "services": {"dhcp": "running", "dns": "running"},
        })
    );
}

#[test]
fn errors_have_one_shape() {
    assert_eq!(
        serde_json::to_value(ErrorBody::new("not_found", "no app named web")).unwrap(),
        json!({"error": {"code": "not_found", "message": "no app named web"}})
    );
    let e = validate(json!({"name": "web", "backend": {}, "port": 0})).unwrap_err();
    let body = ErrorBody::invalid(&e);
    assert_eq!(body.error.code, "invalid_request");
    assert_eq!(
        body.error.message,
        "backend: gives none of ip, mac and hostname; give exactly one; port: 0 is out of range 1-65535"
    );
}
