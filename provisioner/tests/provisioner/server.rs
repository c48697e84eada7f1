//! A TLS HTTP/1.1 server on `127.0.0.1:0` for the client tests: answers each request with what a
//! handler returns and records what it got (method, URI, headers, body).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// An answer: status, headers, body.
pub(crate) type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

/// A certificate chain for `localhost` and `ns.prox.local`: a CA and a leaf.
#[derive(Debug)]
pub(crate) struct Certs {
    pub ca_pem: String,
    pub leaf_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

pub(crate) fn certs() -> anyhow::Result<Certs> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "ns.prox.local".to_owned()])?
        .signed_by(&key, &issuer)?;
    Ok(Certs { ca_pem: ca.pem(), leaf_der: leaf.der().to_vec(), key_der: key.serialize_der() })
}

/// A running server; it stops when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub(crate) fn requests(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Serves with `certs`, answering with `handler`.
pub(crate) async fn serve<H>(certs: &Certs, handler: H) -> anyhow::Result<Server>
where
    H: Fn(&Seen) -> Answer + Send + Sync + 'static,
{
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(certs.leaf_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certs.key_der.clone())),
            )?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let record = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, handler, record) = (acceptor.clone(), handler.clone(), record.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let (handler, record) = (handler.clone(), record.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let seen = Seen {
                            method: parts.method.to_string(),
                            uri: parts.uri.to_string(),
                            headers: parts.headers,
                            body,
                        };
                        let (status, headers, body) = handler(&seen);
                        if let Ok(mut list) = record.lock() {
                            list.push(seen);
                        }
                        let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
                        *response.status_mut() = http::StatusCode::from_u16(status)
                            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                        for (name, value) in headers {
                            if let Ok(value) = http::HeaderValue::from_str(&value) {
                                response.headers_mut().insert(name, value);
                            }
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(Server { addr, seen, task })
}

/// A JSON answer.
pub(crate) fn json(status: u16, value: serde_json::Value) -> Answer {
    (status, vec![("content-type", "application/json".to_owned())], value.to_string().into_bytes())
}
