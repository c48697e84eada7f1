//! HTTPS: HTTP/2 over TLS by ALPN (a self-signed certificate made here), HTTP/1.1 over TLS,
//! h2c by prior knowledge, and the configuration error of https listeners without TLS.

use std::sync::Arc;

use http::{Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use proximity_appliance::proxy::{self, Limits, Metrics, Routes};
use proximity_appliance::shutdown::Stop;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::support::*;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config for `a.prox.local` offering h2 and http/1.1, and the certificate to trust.
fn tls_pair() -> (Arc<rustls::ServerConfig>, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["a.prox.local".to_string()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (Arc::new(config), cert)
}

/// A proxy with TLS routing `a.prox.local` to `backend`, and the certificate to trust.
async fn https_proxy(backend: &Backend) -> (Proxy, CertificateDer<'static>) {
    let (tls, cert) = tls_pair();
    let proxy = Proxy::start_with(
        table([("a.prox.local", route("a", &[backend.addr]))]),
        Limits::default(),
        Some(tls),
    )
    .await;
    (proxy, cert)
}

async fn connect_tls(
    addr: std::net::SocketAddr,
    trust: &CertificateDer<'static>,
    alpn: &[u8],
) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("a.prox.local").unwrap();
    TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
}

#[tokio::test]
async fn http2_over_tls_with_alpn() {
    let backend = Backend::echoing().await;
    let (proxy, cert) = https_proxy(&backend).await;
    let stream = connect_tls(proxy.https.unwrap(), &cert, b"h2").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);

    // Several streams at once on the one connection.
    let mut requests = Vec::new();
    for i in 0..8 {
        let mut sender = sender.clone();
        requests.push(tokio::spawn(async move {
            let request = Request::get(format!("https://A.prox.local/stream/{i}")).body(empty()).unwrap();
            Reply::read(sender.send_request(request).await.unwrap()).await
        }));
    }
    for (i, request) in requests.into_iter().enumerate() {
        let reply = request.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        let seen = reply.text();
        // The backend gets HTTP/1.1 with the client's :authority as Host.
        assert!(seen.starts_with(&format!("GET /stream/{i} HTTP/1.1\n")), "{seen}");
        assert_eq!(seen_header(&seen, "host"), Some("A.prox.local"));
        assert_eq!(seen_header(&seen, "x-forwarded-proto"), Some("https"));
        assert_eq!(seen_header(&seen, "x-forwarded-host"), Some("A.prox.local"));
    }
    // h2 responses carry no connection-specific headers (hyper would refuse to send them).
    let mut sender = sender.clone();
    let response =
        sender.send_request(Request::get("https://a.prox.local/").body(empty()).unwrap()).await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
}

#[tokio::test]
async fn http1_over_tls() {
    let backend = Backend::echoing().await;
    let (proxy, cert) = https_proxy(&backend).await;
    let stream = connect_tls(proxy.https.unwrap(), &cert, b"http/1.1").await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let request = Request::get("/").header("host", "a.prox.local").body(empty()).unwrap();
    let reply = Reply::read(sender.send_request(request).await.unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(seen_header(&reply.text(), "x-forwarded-proto"), Some("https"));
}

#[tokio::test]
async fn h2c_by_prior_knowledge_on_plain_http() {
    let backend = Backend::saying("over h2c").await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[backend.addr]))])).await;
    let tcp = TcpStream::connect(proxy.http).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let request = Request::get("http://a.prox.local/").body(empty()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    let reply = Reply::read(response).await;
    assert_eq!((reply.status, reply.text().as_str()), (StatusCode::OK, "over h2c"));
}

#[tokio::test]
async fn a_failed_handshake_does_not_stop_the_server() {
    let backend = Backend::saying("fine").await;
    let (proxy, cert) = https_proxy(&backend).await;
    // Plain HTTP on the TLS port.
    let garbage = send_garbage(proxy.https.unwrap()).await;
    assert!(garbage.is_empty() || !garbage.starts_with(b"HTTP"));
    let stream = connect_tls(proxy.https.unwrap(), &cert, b"http/1.1").await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let request = Request::get("/").header("host", "a.prox.local").body(empty()).unwrap();
    assert_eq!(Reply::read(sender.send_request(request).await.unwrap()).await.text(), "fine");
}

async fn send_garbage(addr: std::net::SocketAddr) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a.prox.local\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out)).await.unwrap();
    out
}

#[tokio::test]
async fn https_listeners_without_tls_are_refused_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = proxy::serve(
        vec![],
        vec![listener],
        None,
        Arc::new(Routes::new(table([]))),
        Arc::new(Metrics::default()),
        Limits::default(),
        Stop::manual(),
    )
    .await;
    assert_eq!(served.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}
