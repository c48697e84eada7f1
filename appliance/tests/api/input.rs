//! Bad input: each is refused with its code and a message naming the field, and changes nothing.

use http::{Method, StatusCode};

use crate::support::{Harness, MAX_BODY, TOKEN, app_body};

/// Sends `body` to POST /v1/apps and expects a 400 `invalid_request` naming every field given.
async fn refused(h: &Harness, body: &str, fields: &[&str]) -> String {
    let reply = h.call(Method::POST, "/v1/apps", Some(body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.text());
    let (code, message) = reply.error();
    assert_eq!(code, "invalid_request", "{body}: {message}");
    for field in fields {
        assert!(message.contains(&format!("{field}: ")), "{body}: {message:?} does not name {field}");
    }
    message
}

#[tokio::test]
async fn every_bad_field_is_named() {
    let h = Harness::start().await;
    let serial = h.state.directory.names().load().serial();
    let with = |name: &str, backend: &str, port: &str| {
        format!(r#"{{"name": "{name}", "backend": {backend}, "port": {port}}}"#)
    };
    let ip = r#"{"ip": "10.20.0.50"}"#;
    refused(&h, &with("-web", ip, "80"), &["name"]).await;
    refused(&h, &with("we b", ip, "80"), &["name"]).await;
    refused(&h, &with("", ip, "80"), &["name"]).await;
    let m = refused(&h, &with("ns", ip, "80"), &["name"]).await;
    assert!(m.contains("name server"), "{m}");
    refused(&h, &with("web", ip, "0"), &["port"]).await;
    let m = refused(&h, &with("web", ip, "70000"), &["port"]).await;
    assert!(m.contains("70000"), "{m}");
    refused(&h, &with("web", ip, "\"80\""), &["port"]).await;
    refused(&h, r#"{"name": "web", "backend": {"ip": "10.20.0.50"}}"#, &["port"]).await;
    let m = refused(&h, &with("web", r#"{"ip": "10.30.0.5"}"#, "80"), &["backend.ip"]).await;
    assert!(m.contains("outside the LAN"), "{m}");
    let m = refused(&h, &with("web", r#"{"ip": "10.20.0.1"}"#, "80"), &["backend.ip"]).await;
    assert!(m.contains("gateway"), "{m}");
    refused(&h, &with("web", r#"{"mac": "02:00:00:zz:00:01"}"#, "80"), &["backend.mac"]).await;
    refused(&h, &with("web", r#"{"ip": "10.20.0.50", "mac": "02:00:00:00:00:01"}"#, "80"), &["backend"])
        .await;
    refused(&h, &with("web", "{}", "80"), &["backend"]).await;
    // Every problem at once.
    refused(&h, &with("-x", r#"{"ip": "10.30.0.5"}"#, "0"), &["name", "backend.ip", "port"]).await;
    // Valid JSON of the wrong shape names the field too.
    refused(&h, &with("web", r#"{"ip": 5}"#, "80"), &["backend.ip"]).await;
    let m = refused(&h, r#"{"name": "web", "colour": "red"}"#, &[]).await;
    assert!(m.contains("unknown field `colour`"), "{m}");

    assert!(h.state.directory.apps().is_empty());
    assert_eq!(h.state.directory.names().load().serial(), serial);
    h.stop().await;
}

#[tokio::test]
async fn put_names_must_agree() {
    let h = Harness::start().await;
    let reply = h.call(Method::PUT, "/v1/apps/web", Some(&app_body("api", 50))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let (code, message) = reply.error();
    assert_eq!(code, "invalid_request");
    assert!(message.starts_with("name: "), "{message}");
    assert!(message.contains("\"api\"") && message.contains("\"web\""), "{message}");
    assert!(h.state.directory.apps().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn malformed_json_says_where_and_nothing_else() {
    let h = Harness::start().await;
    let reply = h.call(Method::POST, "/v1/apps", Some("{\"name\": \"web\",\n  \"port\": 80,,}")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.error(),
        ("invalid_json".into(), "the body is not valid JSON (line 2, column 14)".into())
    );
    let reply = h.call(Method::POST, "/v1/apps", Some("")).await;
    assert_eq!(reply.error().0, "invalid_json");
    h.stop().await;
}

#[tokio::test]
async fn bodies_too_large_and_not_json() {
    let h = Harness::start().await;
    let auth = ("authorization", format!("Bearer {TOKEN}"));
    let mut big = app_body("web", 50).into_bytes();
    big.extend(std::iter::repeat_n(b' ', MAX_BODY));
    let reply = h.send(Method::POST, "/v1/apps", std::slice::from_ref(&auth), big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error().0, "body_too_large");

    for content_type in ["text/plain", "application/xml"] {
        let headers = [auth.clone(), ("content-type", content_type.to_owned())];
        let reply = h.send(Method::POST, "/v1/apps", &headers, app_body("web", 50).into_bytes()).await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        assert_eq!(reply.error().0, "unsupported_media_type");
    }
    assert!(h.state.directory.apps().is_empty());

    // No Content-Type at all is fine, and so is the form type `curl -d` sends by default.
    let reply =
        h.send(Method::POST, "/v1/apps", std::slice::from_ref(&auth), app_body("web", 50).into_bytes()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let headers = [auth.clone(), ("content-type", "application/x-www-form-urlencoded".to_owned())];
    let reply = h.send(Method::POST, "/v1/apps", &headers, app_body("curl", 51).into_bytes()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "curl -d: {}", reply.text());
    // JSON with parameters is JSON.
    let headers = [auth, ("content-type", "application/json; charset=utf-8".to_owned())];
    let reply = h.send(Method::POST, "/v1/apps", &headers, app_body("api", 51).into_bytes()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    h.stop().await;
}
