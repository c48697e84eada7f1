//! Who gets in: the token on every endpoint but health, the CA certificate and the OpenAPI
//! document; the token file itself.

use std::os::unix::fs::MetadataExt;

use http::{Method, StatusCode};
use proximity_appliance::api::Token;

use crate::support::{Harness, TOKEN, app_body};

#[tokio::test]
async fn no_token_wrong_token_right_token() {
    let h = Harness::start().await;
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong".to_owned())],
        vec![("authorization", format!("Bearer {TOKEN}x"))],
        vec![("authorization", format!("Basic {TOKEN}"))],
        vec![("authorization", TOKEN.to_owned())],
    ] {
        for (method, path) in
            [(Method::GET, "/v1/apps"), (Method::GET, "/metrics"), (Method::GET, "/v1/nope")]
        {
            let reply = h.send(method.clone(), path, &headers, Vec::new()).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path} {headers:?}");
            assert_eq!(reply.headers["www-authenticate"], "Bearer");
            // Never which part was wrong.
            assert_eq!(reply.error(), ("unauthorized".into(), "a valid bearer token is required".into()));
        }
        // A mutation without the token changes nothing, even with a valid body.
        let reply = h.send(Method::POST, "/v1/apps", &headers, app_body("web", 50).into_bytes()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert!(h.state.directory.apps().is_empty());
    assert_eq!(h.get("/v1/apps").await.status, StatusCode::OK);
    // The scheme is case-insensitive (RFC 7235).
    let reply =
        h.send(Method::GET, "/v1/apps", &[("authorization", format!("bearer {TOKEN}"))], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::OK);
    h.stop().await;
}

#[tokio::test]
async fn health_openapi_and_ca_need_no_token() {
    let h = Harness::start_with(|s| s.ca_pem = Some("-----BEGIN CERTIFICATE-----\nMII\n".into())).await;
    let health = h.send(Method::GET, "/v1/health", &[], Vec::new()).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["version"], env!("CARGO_PKG_VERSION"));
    let ca = h.send(Method::GET, "/v1/ca.crt", &[], Vec::new()).await;
    assert_eq!(ca.status, StatusCode::OK);
    assert_eq!(ca.headers["content-type"], "application/x-pem-file");
    assert!(ca.text().starts_with("-----BEGIN CERTIFICATE-----"));
    let openapi = h.send(Method::GET, "/v1/openapi.json", &[], Vec::new()).await;
    assert_eq!(openapi.status, StatusCode::OK);
    assert_eq!(openapi.json()["openapi"], "3.1.0");
    h.stop().await;

    let h = Harness::start().await;
    let ca = h.send(Method::GET, "/v1/ca.crt", &[], Vec::new()).await;
    assert_eq!((ca.status, ca.error().0.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    h.stop().await;
}

/// The token file is created 0600 at first start and the same token is used at the next.
#[tokio::test]
async fn the_token_file_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/admin.token");
    let token = Token::load_or_create(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    let secret = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    assert_eq!(secret.len(), 64);
    assert!(token.matches(secret.as_bytes()));

    let again = Token::load_or_create(&path).unwrap();
    assert!(again.matches(secret.as_bytes()));
    let h = Harness::start_with(|s| s.token = again).await;
    let reply =
        h.send(Method::GET, "/v1/apps", &[("authorization", format!("Bearer {secret}"))], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply =
        h.send(Method::GET, "/v1/apps", &[("authorization", format!("Bearer {TOKEN}"))], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    h.stop().await;
}
