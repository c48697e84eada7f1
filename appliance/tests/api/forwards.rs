//! `/v1/forwards`: added through the API, stored, published to NAT (which follows the watch
//! channel); every bad input answered naming its field; a port already forwarded or served by
//! the appliance itself refused; the config file's forward listed but left alone.

use http::{Method, StatusCode, header};
use serde_json::json;

use crate::support::Harness;

fn body(protocol: &str, port: u32, to: &str) -> String {
    json!({"protocol": protocol, "port": port, "to": to}).to_string()
}

#[tokio::test]
async fn a_forward_is_stored_published_and_removed() {
    let h = Harness::start().await;
    let mut nat = h.state.forwards.subscribe();
    let reply = h.call(Method::POST, "/v1/forwards", Some(&body("UDP", 51820, "10.20.0.7:51820"))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.headers[header::LOCATION], "/v1/forwards/udp/51820");
    assert_eq!(
        reply.json(),
        json!({"protocol": "udp", "port": 51820, "to": "10.20.0.7:51820", "source": "api"})
    );
    // NAT was told, with the whole list.
    assert!(nat.has_changed().unwrap());
    assert_eq!(nat.borrow_and_update().len(), 1);

    let listed = h.get("/v1/forwards").await.json();
    assert_eq!(
        listed,
        json!([
            {"protocol": "tcp", "port": 2222, "to": "10.20.0.50:22", "source": "config"},
            {"protocol": "udp", "port": 51820, "to": "10.20.0.7:51820", "source": "api"},
        ])
    );

    // Kept across a restart.
    let dir = h.stop().await;
    let h = Harness::start_in(dir, None, |_| {}).await;
    assert_eq!(h.get("/v1/forwards").await.json(), listed);

    let mut nat = h.state.forwards.subscribe();
    let reply = h.call(Method::DELETE, "/v1/forwards/udp/51820", None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert!(nat.has_changed().unwrap());
    assert!(nat.borrow_and_update().is_empty());
    assert_eq!(h.get("/v1/forwards").await.json().as_array().unwrap().len(), 1);
    let reply = h.call(Method::DELETE, "/v1/forwards/udp/51820", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    assert_eq!(reply.error(), ("not_found".into(), "no forward of udp port 51820".into()));
    h.stop().await;
}

#[tokio::test]
async fn every_bad_input_is_named() {
    let h = Harness::start().await;
    let cases = [
        (body("icmp", 22, "10.20.0.5:22"), "protocol: \"icmp\" is not a protocol; use \"tcp\" or \"udp\""),
        (body("tcp", 70000, "10.20.0.5:22"), "port: 70000 is not a port (1 to 65535)"),
        (body("tcp", 0, "10.20.0.5:22"), "port: 0 is not a port (1 to 65535)"),
        (body("tcp", 2200, "10.30.0.5:22"), "to: 10.30.0.5 is outside the LAN 10.20.0.0/24"),
        (body("tcp", 2200, "10.20.0.1:22"), "to: 10.20.0.1 is the appliance itself"),
        (
            body("tcp", 2200, "10.20.0.5"),
            "to: \"10.20.0.5\" is not a LAN address:port like \"10.20.0.50:22\"",
        ),
        (
            body("tcp", 443, "10.20.0.5:443"),
            "port: tcp port 443 is the appliance's own proxy (proxy.https_listen); choose another port",
        ),
        (
            body("udp", 53, "10.20.0.5:53"),
            "port: udp port 53 is the appliance's own DNS server (dns.listen); choose another port",
        ),
        (
            body("udp", 68, "10.20.0.5:68"),
            "port: udp port 68 is the appliance's own DHCP client (wan.mode = \"dhcp\"); choose another port",
        ),
        (json!({"protocol": "tcp", "port": "ssh", "to": "10.20.0.5:22"}).to_string(), "port: invalid type"),
        (
            json!({"protocol": "tcp", "port": 22, "to": "10.20.0.5:22", "x": 1}).to_string(),
            "x: unknown field `x`",
        ),
    ];
    for (request, expected) in cases {
        let reply = h.call(Method::POST, "/v1/forwards", Some(&request)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{request}: {}", reply.text());
        let (code, message) = reply.error();
        assert_eq!(code, "invalid_request", "{request}");
        assert!(message.starts_with(expected), "{request}: {message}");
    }
    // All three fields wrong at once: all three named.
    let reply = h.call(Method::POST, "/v1/forwards", Some(&body("sctp", 0, "nowhere"))).await;
    let message = reply.error().1;
    assert!(["protocol: ", "; port: ", "; to: "].iter().all(|f| message.contains(f)), "{message}");

    for (path, expected) in [
        ("/v1/forwards/gre/22", "protocol: "),
        ("/v1/forwards/tcp/0", "port: \"0\" is not a port"),
        ("/v1/forwards/tcp/http", "port: \"http\" is not a port"),
    ] {
        let reply = h.call(Method::DELETE, path, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {}", reply.text());
        assert!(reply.error().1.starts_with(expected), "{path}: {}", reply.text());
    }
    assert!(h.state.forwards.added().is_empty(), "nothing refused was kept");
    h.stop().await;
}

#[tokio::test]
async fn a_port_forwarded_already_is_refused_and_the_configs_stays() {
    let h = Harness::start().await;
    let reply = h.call(Method::POST, "/v1/forwards", Some(&body("tcp", 2222, "10.20.0.9:22"))).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
    assert_eq!(
        reply.error(),
        ("conflict".into(), "port: tcp port 2222 is already forwarded to 10.20.0.50:22 (the config)".into())
    );
    // The same port over UDP is another forward.
    let reply = h.call(Method::POST, "/v1/forwards", Some(&body("udp", 2222, "10.20.0.9:22"))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let reply = h.call(Method::POST, "/v1/forwards", Some(&body("udp", 2222, "10.20.0.8:22"))).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
    assert!(reply.error().1.ends_with("(the admin api)"), "{}", reply.text());

    let reply = h.call(Method::DELETE, "/v1/forwards/tcp/2222", None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
    assert!(reply.error().1.contains("is in the config file"), "{}", reply.text());
    assert_eq!(h.get("/v1/forwards").await.json().as_array().unwrap().len(), 2);
    h.stop().await;
}
