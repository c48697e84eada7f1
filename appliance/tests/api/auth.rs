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

/// Lowercase hex of SHA-256(`bytes`), as `sha256sum` prints it.
fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The proof a client holding `token` expects for `body`, computed here from the contract
/// (HMAC-SHA256, key = the raw SHA-256 of the token), not with the appliance's code.
fn expected_proof(token: &str, body: &[u8]) -> String {
    let key = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_ref()), body);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `[admin] token_sha256`: the token whose hash it is gets in, any other does not, and no token
/// file is created (nor would one be read).
#[tokio::test]
async fn a_token_known_by_its_hash_lets_in_only_that_token_and_makes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[admin]\ntoken_sha256 = \"{}\"\n[state]\ndir = \"{}\"\n",
        sha256_hex(TOKEN.as_bytes()),
        dir.path().display()
    );
    let config = proximity_config::from_toml_str(&text).unwrap();
    let token = Token::for_admin(&config.admin).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a token file was created");

    let h = Harness::start_with(|s| s.token = token.clone()).await;
    let reply =
        h.send(Method::GET, "/v1/apps", &[("authorization", format!("Bearer {TOKEN}"))], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let other = sha256_hex(TOKEN.as_bytes());
    for wrong in [format!("Bearer {TOKEN}x"), format!("Bearer {other}"), "Bearer ".to_owned()] {
        let reply = h.send(Method::GET, "/v1/apps", &[("authorization", wrong.clone())], Vec::new()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{wrong}");
    }
    h.stop().await;
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a token file was created");

    // A file there is not read either: its token does not get in.
    let file = dir.path().join("admin.token");
    std::fs::write(&file, "f".repeat(64)).unwrap();
    let token = Token::for_admin(&config.admin).unwrap();
    assert!(token.matches(TOKEN.as_bytes()));
    assert!(!token.matches("f".repeat(64).as_bytes()));
}

/// `/v1/ca.crt` carries `proximity-ca-proof`, which checks out with the token (file token or
/// hash alike) and not with another.
#[tokio::test]
async fn the_ca_comes_with_a_proof_only_the_token_holder_can_check() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let hashed = {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, TOKEN.as_bytes()).as_ref());
        Token::from_sha256(digest)
    };
    for token in [Token::new(TOKEN), hashed] {
        let h = Harness::start_with(|s| {
            s.ca_pem = Some(pem.into());
            s.token = token;
        })
        .await;
        let ca = h.send(Method::GET, "/v1/ca.crt", &[], Vec::new()).await;
        assert_eq!(ca.status, StatusCode::OK);
        assert_eq!(ca.text(), pem);
        let proof = ca.headers["proximity-ca-proof"].to_str().unwrap().to_owned();
        assert_eq!(proof, expected_proof(TOKEN, pem.as_bytes()));
        assert_ne!(proof, expected_proof("another-token-of-enough-length-000000", pem.as_bytes()));
        assert_ne!(proof, expected_proof(TOKEN, format!("{pem}\n").as_bytes()), "the proof covers the body");
        h.stop().await;
    }
}
