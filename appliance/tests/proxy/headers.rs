//! What the backend is told and what the client gets back: `X-Forwarded-*`, Host, hop-by-hop
//! headers removed both ways, request targets in absolute form.

use http::{Request, StatusCode};

use crate::support::*;

#[tokio::test]
async fn backend_sees_forwarded_headers_and_the_clients_host() {
    let backend = Backend::echoing().await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[backend.addr]))])).await;
    let request = Request::get("/path?q=1")
        .header("host", "A.prox.local:8080")
        .header("x-forwarded-for", "192.0.2.7")
        .header("x-forwarded-proto", "gopher")
        .header("x-forwarded-host", "evil.example")
        .body(empty())
        .unwrap();
    let reply = send_h1(proxy.http, request).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = reply.text();
    assert!(seen.starts_with("GET /path?q=1 HTTP/1.1\n"), "{seen}");
    assert_eq!(seen_header(&seen, "host"), Some("A.prox.local:8080"));
    assert_eq!(seen_header(&seen, "x-forwarded-for"), Some("192.0.2.7, 127.0.0.1"));
    assert_eq!(seen_header(&seen, "x-forwarded-proto"), Some("http"));
    assert_eq!(seen_header(&seen, "x-forwarded-host"), Some("A.prox.local:8080"));
    assert_eq!(seen_header(&seen, "via"), None);
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let backend = Backend::start(|request| async move {
        let mut response = text(StatusCode::OK, describe(&request));
        let headers = response.headers_mut();
        headers.insert("connection", "x-backend-private".parse().unwrap());
        headers.insert("x-backend-private", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=9".parse().unwrap());
        headers.insert("proxy-authenticate", "Basic realm=x".parse().unwrap());
        headers.insert("proxy-connection", "keep-alive".parse().unwrap());
        headers.insert("trailer", "x-checksum".parse().unwrap());
        headers.insert("upgrade", "foo/1".parse().unwrap());
        headers.insert("x-backend-public", "yes".parse().unwrap());
        response
    })
    .await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[backend.addr]))])).await;
    let request = Request::get("/")
        .header("host", "a.prox.local")
        .header("connection", "keep-alive, X-Client-Private")
        .header("x-client-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("trailer", "x-sum")
        .header("proxy-authorization", "Basic dXNlcjpwYXNz")
        .header("proxy-connection", "keep-alive")
        .header("upgrade", "h2c")
        .header("x-client-public", "yes")
        .body(empty())
        .unwrap();
    let reply = send_h1(proxy.http, request).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = reply.text();
    for gone in [
        "connection",
        "x-client-private",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert_eq!(seen_header(&seen, gone), None, "backend saw {gone}: {seen}");
    }
    assert_eq!(seen_header(&seen, "x-client-public"), Some("yes"));
    for gone in [
        "connection",
        "x-backend-private",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "trailer",
        "upgrade",
    ] {
        assert!(!reply.headers.contains_key(gone), "client got {gone}: {:?}", reply.headers);
    }
    assert_eq!(reply.headers["x-backend-public"], "yes");
}

#[tokio::test]
async fn absolute_form_targets_route_by_their_authority_and_reach_the_backend_in_origin_form() {
    let backend = Backend::echoing().await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[backend.addr]))])).await;
    let request =
        Request::get("http://a.prox.local/x/y?z").header("host", "other.prox.local").body(empty()).unwrap();
    let reply = send_h1(proxy.http, request).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = reply.text();
    assert!(seen.starts_with("GET /x/y?z HTTP/1.1\n"), "{seen}");
    assert_eq!(seen_header(&seen, "host"), Some("a.prox.local"));
}

#[tokio::test]
async fn request_without_a_host_is_a_404() {
    let backend = Backend::echoing().await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[backend.addr]))])).await;
    let mut request = Request::get("/").body(empty()).unwrap();
    *request.version_mut() = http::Version::HTTP_10;
    let reply = send_h1(proxy.http, request).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(backend.accepted(), 0);
}
