//! The server around the router: TLS with HTTP/2 from the local CA, mutations racing, stopping.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use proximity_appliance::tls::{self, Ca};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::{Harness, PATIENCE, TOKEN, app_body};

/// A client that trusts only `ca`'s certificate and offers h2.
fn client(ca: &Ca) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.certificate_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The API over TLS from a CA made in a temporary directory, reached by address with HTTP/2;
/// the CA certificate it serves (openly) is the one the client trusts.
#[tokio::test]
async fn https_with_http2_from_the_local_ca() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(ca_dir.path(), "prox.local").unwrap();
    let server_config = tls::admin_server_config(&ca, &[], &["127.0.0.1".parse().unwrap()]).unwrap();
    let pem = ca.certificate_pem().to_owned();
    let h =
        Harness::start_in(tempfile::tempdir().unwrap(), Some(server_config), |s| s.ca_pem = Some(pem)).await;

    let exchange = async {
        let tcp = TcpStream::connect(h.addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let stream = TlsConnector::from(client(&ca)).connect(name, tcp).await.unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
        let driver = tokio::spawn(conn);
        let mut send = async |method: Method, path: &str, token: bool, body: String| {
            let mut request = Request::builder().method(method).uri(format!("https://127.0.0.1{path}"));
            if token {
                request = request.header("authorization", format!("Bearer {TOKEN}"));
            }
            let response =
                sender.send_request(request.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
            let status = response.status();
            (status, response.into_body().collect().await.unwrap().to_bytes())
        };
        let (status, body) = send(Method::GET, "/v1/health", false, String::new()).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        let (status, body) = send(Method::GET, "/v1/ca.crt", false, String::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, ca.certificate_pem().as_bytes());
        assert_eq!(send(Method::GET, "/v1/apps", false, String::new()).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(send(Method::POST, "/v1/apps", true, app_body("web", 50)).await.0, StatusCode::CREATED);
        let (status, body) = send(Method::GET, "/v1/apps/web", true, String::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(String::from_utf8_lossy(&body).contains("https://web.prox.local/"));
        driver.abort();
    };
    tokio::time::timeout(PATIENCE, exchange).await.expect("in time");
    h.stop().await;
}

/// Mutations serialise: of many POSTs of one name at once, exactly one creates it.
#[tokio::test]
async fn racing_creates_of_one_name() {
    let h = Arc::new(Harness::start().await);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..16u8 {
        let h = h.clone();
        tasks.spawn(
            async move { h.call(Method::POST, "/v1/apps", Some(&app_body("web", 50 + n))).await.status },
        );
    }
    let statuses: Vec<StatusCode> = tasks.join_all().await;
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 15, "{statuses:?}");
    // What the API shows is what the store holds.
    let shown = h.get("/v1/apps/web").await.json();
    let stored = h.state.store.apps().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(shown["backend"]["ip"], stored[0].backend_ip_text());
    let h = Arc::into_inner(h).unwrap();
    h.stop().await;
}

/// A graceful stop returns Ok promptly, and nothing is served after it.
#[tokio::test]
async fn stops_gracefully() {
    let h = Harness::start().await;
    assert_eq!(h.get("/v1/health").await.status, StatusCode::OK);
    // An idle keep-alive connection does not hold the stop up.
    let idle = TcpStream::connect(h.addr).await.unwrap();
    let addr = h.addr;
    let started = std::time::Instant::now();
    h.stop().await;
    println!("graceful stop with an idle connection open: {:?}", started.elapsed());
    drop(idle);
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting after the stop");
}

trait BackendText {
    fn backend_ip_text(&self) -> String;
}

impl BackendText for proximity_config::api::App {
    fn backend_ip_text(&self) -> String {
        match &self.backend {
            proximity_config::api::Backend::Ip(ip) => ip.to_string(),
            other => format!("{other:?}"),
        }
    }
}
