//! `/v1/reservations`: made through the API, stored, given to the names and the DHCP server;
//! every conflict refused with what holds it; the config's own left alone.

use std::net::Ipv4Addr;
use std::sync::Arc;

use http::{Method, StatusCode, header};
use serde_json::json;

use crate::support::{FakeLeases, Harness, app_body, lease};

fn body(mac: &str, ip: &str, name: Option<&str>) -> String {
    json!({"mac": mac, "ip": ip, "name": name}).to_string()
}

#[tokio::test]
async fn a_reservation_is_stored_named_and_given_to_the_dhcp_server() {
    let fake = Arc::new(FakeLeases::default());
    let leases = fake.clone();
    let h = Harness::start_with(move |s| s.leases = Some(leases)).await;
    let reply = h
        .call(
            Method::POST,
            "/v1/reservations",
            Some(&body("52:54:00:AA:00:01", "10.20.0.20", Some("Printer"))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.headers[header::LOCATION], "/v1/reservations/52:54:00:aa:00:01");
    assert_eq!(
        reply.json(),
        json!({"mac": "52:54:00:aa:00:01", "ip": "10.20.0.20", "name": "printer", "source": "api"})
    );

    let listed = h.get("/v1/reservations").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["source"], "config");
    assert_eq!(listed[1]["ip"], "10.20.0.20");
    // The name answers at once, and the DHCP server has the config's and the API's.
    let printer = h.state.directory.names().load().host("printer").map(|host| host.ip);
    assert_eq!(printer, Some(Ipv4Addr::new(10, 20, 0, 20)));
    let given: Vec<_> = fake.reservations.lock().unwrap().iter().map(|r| r.ip).collect();
    assert_eq!(given, [Ipv4Addr::new(10, 20, 0, 10), Ipv4Addr::new(10, 20, 0, 20)]);

    // Kept across a restart.
    let dir = h.stop().await;
    let h = Harness::start_in(dir, None, |_| {}).await;
    assert_eq!(h.get("/v1/reservations").await.json(), listed);
    assert!(h.state.directory.names().load().host("printer").is_some());

    // Deleted: gone from the list, the names and the DHCP server's set.
    let reply = h.call(Method::DELETE, "/v1/reservations/52-54-00-aa-00-01", None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert_eq!(h.get("/v1/reservations").await.json().as_array().unwrap().len(), 1);
    assert!(h.state.directory.names().load().host("printer").is_none());
    let reply = h.call(Method::DELETE, "/v1/reservations/52:54:00:aa:00:01", None).await;
    assert_eq!((reply.status, reply.error().0.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    h.stop().await;
}

#[tokio::test]
async fn conflicts_are_refused_with_what_holds_them() {
    let fake = Arc::new(FakeLeases::default());
    // 10.20.0.30 is leased (a static client from before) to another MAC.
    *fake.leases.lock().unwrap() = vec![lease(30, "old")];
    let leases = fake.clone();
    let h = Harness::start_with(move |s| s.leases = Some(leases)).await;
    assert_eq!(
        h.call(Method::POST, "/v1/apps", Some(&app_body("web", 50))).await.status,
        StatusCode::CREATED
    );
    let ok = h
        .call(Method::POST, "/v1/reservations", Some(&body("52:54:00:00:00:01", "10.20.0.20", Some("cam"))))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);

    for (request, status, code, field) in [
        // The config's reservation (02:00:00:00:01:0a at 10.20.0.10, named nas).
        (body("02:00:00:00:01:0a", "10.20.0.21", None), StatusCode::CONFLICT, "conflict", "mac:"),
        (body("52:54:00:00:00:02", "10.20.0.10", None), StatusCode::CONFLICT, "conflict", "ip:"),
        (body("52:54:00:00:00:02", "10.20.0.21", Some("nas")), StatusCode::CONFLICT, "name_taken", "name:"),
        // The API's own, and an app's name.
        (body("52:54:00:00:00:01", "10.20.0.21", None), StatusCode::CONFLICT, "conflict", "mac:"),
        (body("52:54:00:00:00:02", "10.20.0.21", Some("cam")), StatusCode::CONFLICT, "name_taken", "name:"),
        (body("52:54:00:00:00:02", "10.20.0.21", Some("web")), StatusCode::CONFLICT, "name_taken", "name:"),
        // Leased to another client.
        (body("52:54:00:00:00:02", "10.20.0.30", None), StatusCode::CONFLICT, "conflict", "ip:"),
        // Not where reservations go, not on the LAN, not an address, a multicast MAC, a bad name.
        (body("52:54:00:00:00:02", "10.20.0.150", None), StatusCode::BAD_REQUEST, "invalid_request", "ip:"),
        (body("52:54:00:00:00:02", "192.168.1.5", None), StatusCode::BAD_REQUEST, "invalid_request", "ip:"),
        (body("52:54:00:00:00:02", "10.20.0.1", None), StatusCode::BAD_REQUEST, "invalid_request", "ip:"),
        (body("01:00:5e:00:00:01", "10.20.0.21", None), StatusCode::BAD_REQUEST, "invalid_request", "mac:"),
        (
            body("52:54:00:00:00:02", "10.20.0.21", Some("no_way")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "name:",
        ),
    ] {
        let reply = h.call(Method::POST, "/v1/reservations", Some(&request)).await;
        let (got, message) = reply.error();
        assert_eq!((reply.status, got.as_str()), (status, code), "{request}: {message}");
        assert!(
            message.starts_with(field) || message.contains(&format!("; {field}")),
            "{request}: {message}"
        );
    }
    // An app may not take a reservation's name either.
    let reply = h.call(Method::POST, "/v1/apps", Some(&app_body("cam", 51))).await;
    assert_eq!((reply.status, reply.error().0.as_str()), (StatusCode::CONFLICT, "name_taken"));
    // Nothing of the refused ones stuck.
    assert_eq!(h.state.directory.api_reservations().len(), 1);
    assert_eq!(fake.reservations.lock().unwrap().len(), 2);

    // The config's reservation is the file's: not deleted here. A bad MAC is a 400.
    let reply = h.call(Method::DELETE, "/v1/reservations/02:00:00:00:01:0a", None).await;
    assert_eq!((reply.status, reply.error().0.as_str()), (StatusCode::CONFLICT, "conflict"));
    let reply = h.call(Method::DELETE, "/v1/reservations/not-a-mac", None).await;
    assert_eq!((reply.status, reply.error().0.as_str()), (StatusCode::BAD_REQUEST, "invalid_request"));
    h.stop().await;
}
