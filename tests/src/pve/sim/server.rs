//! The sim's HTTPS side: a certificate like a node's (`pve-ssl.pem`, signed by a CA of its own
//! like `pve-root-ca.pem`, naming the node, 127.0.0.1 and the listen address), the accept loop
//! ([`serve`]), one HTTP/1.1 handler per connection, and the request log (one JSON line per
//! request: `{"method","path","status"}`).
//!
//! Order of checks per request, as Proxmox's API server has them: the path must name an API
//! method (501), the token must be right (401), the parameters must pass the schema (400), then
//! the handler runs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Sim;
use super::error::ApiError;
use super::request::{self, MAX_BODY, MAX_UPLOAD};
use super::routes;
use crate::pve::schema::Rejection;

/// Where every API path starts.
pub const API_BASE: &str = "/api2/json";
/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reading a request's header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot make the certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

/// The node's certificate and key, and the CA that signed it.
#[derive(Debug)]
pub struct Certificate {
    /// The node certificate's DER, whose SHA-256 is [`Certificate::fingerprint`].
    pub der: CertificateDer<'static>,
    /// The node certificate, then the CA, as PEM: what a client trusts (`--cacert`).
    pub pem: String,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Certificate {
    /// A CA (`Proximity pve-sim CA`) and a node certificate it signs for `node`, 127.0.0.1 and
    /// `listen`.
    pub fn generate(node: &str, listen: SocketAddr) -> Result<Certificate, ServerError> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "pve-sim test double CA (not Proxmox)");
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);
        let mut names = vec![node.to_owned(), "127.0.0.1".to_owned()];
        let ip = listen.ip().to_string();
        if !names.contains(&ip) && !listen.ip().is_unspecified() {
            names.push(ip);
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, node);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Certificate {
            der: cert.der().clone(),
            pem: format!("{}{}", cert.pem(), ca_cert.pem()),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// The certificate kept in `dir` (`pve-ssl.der`, `pve-ssl.key`, `pve-ssl.pem`), as a node
    /// keeps its `pve-ssl.pem` across reboots; made with [`Certificate::generate`] and kept
    /// there the first time.
    pub fn load_or_generate(dir: &Path, node: &str, listen: SocketAddr) -> Result<Certificate, ServerError> {
        let (der, key, pem) = (dir.join("pve-ssl.der"), dir.join("pve-ssl.key"), dir.join("pve-ssl.pem"));
        let io = |what: &Path| {
            let what = what.display().to_string();
            move |source| ServerError::Io { what, source }
        };
        if der.exists() {
            return Ok(Certificate {
                der: CertificateDer::from(std::fs::read(&der).map_err(io(&der))?),
                pem: std::fs::read_to_string(&pem).map_err(io(&pem))?,
                key: PrivatePkcs8KeyDer::from(std::fs::read(&key).map_err(io(&key))?),
            });
        }
        let certificate = Certificate::generate(node, listen)?;
        std::fs::write(&key, certificate.key.secret_pkcs8_der()).map_err(io(&key))?;
        std::fs::write(&pem, &certificate.pem).map_err(io(&pem))?;
        // Last: its presence says the other two are complete.
        std::fs::write(&der, certificate.der.as_ref()).map_err(io(&der))?;
        Ok(certificate)
    }

    /// SHA-256 of the DER, as `pvenode cert info` shows it: `AA:BB:...`.
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.der);
        digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
    }

    fn server_config(&self) -> Result<Arc<ServerConfig>, ServerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(vec![self.der.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The request log: one JSON line per request.
#[derive(Debug)]
pub struct RequestLog(Mutex<File>);

impl RequestLog {
    pub fn open(path: &Path) -> Result<RequestLog, ServerError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ServerError::Io { what: format!("cannot open {}", path.display()), source })?;
        Ok(RequestLog(Mutex::new(file)))
    }

    fn record(&self, method: &Method, path: &str, status: u16) {
        let line = json!({ "method": method.as_str(), "path": path, "status": status });
        let mut file = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = writeln!(file, "{line}") {
            tracing::warn!(error = %e, "cannot write the request log");
        }
    }
}

/// A bound socket with what it serves.
#[derive(Debug)]
pub struct Listener {
    pub socket: TcpListener,
    pub certificate: Certificate,
    pub log: RequestLog,
}

/// Serves `sim` on the listener until `shutdown`; one connection's failure is logged and never
/// stops the loop.
pub async fn serve(
    listener: Listener,
    sim: Arc<Sim>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let acceptor = TlsAcceptor::from(listener.certificate.server_config()?);
    let log = Arc::new(listener.log);
    let connections = TaskTracker::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => permit,
        };
        let Ok(permit) = permit else { break };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.socket.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let (acceptor, sim, log, shutdown) =
            (acceptor.clone(), Arc::clone(&sim), Arc::clone(&log), shutdown.clone());
        connections.spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let service = service_fn(move |req| {
                let (sim, log) = (Arc::clone(&sim), Arc::clone(&log));
                async move { Ok::<_, std::convert::Infallible>(handle(&sim, &log, req).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, connections.wait()).await;
    Ok(())
}

/// One request, logged with its status.
async fn handle(sim: &Arc<Sim>, log: &RequestLog, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = match answer(sim, req).await {
        Ok(data) => {
            let mut body = json!({ "data": data });
            // Proxmox puts the diff of the pending network changes next to the listing's data.
            if method == Method::GET && is_network_listing(&path) {
                if let Some(diff) = sim.network.changes() {
                    body["changes"] = json!(diff);
                }
            }
            reply(StatusCode::OK, None, body)
        }
        Err(e) => {
            tracing::info!(%method, %path, status = e.status, error = %e.message, "request failed");
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            reply(status, Some(&e.message), e.body())
        }
    };
    log.record(&method, &path, response.status().as_u16());
    response
}

async fn answer(sim: &Arc<Sim>, req: Request<Incoming>) -> Result<Value, ApiError> {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_owned();
    let full = parts.uri.path();
    // Still percent-encoded: the schema decodes each segment (and takes a volume id's `/`).
    let Some(path) = full.strip_prefix(API_BASE).filter(|p| p.starts_with('/')) else {
        return Err(rejection(Rejection::NotImplemented { method, path: full.to_owned() }));
    };
    let limit = if path.ends_with("/upload") { MAX_UPLOAD } else { MAX_BODY };
    let bytes = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| ApiError::new(413, format!("cannot read the request body: {e}")))?
        .to_bytes();
    let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let mut params = request::Params { pairs: request::query(parts.uri.query()), file: None };
    if matches!(parts.method, Method::POST | Method::PUT) {
        let body = request::body(content_type, &bytes)?;
        params.pairs.extend(body.pairs);
        params.file = body.file;
    }
    let checked = sim.schema.check(&method, path, &params.pairs);
    if let Err(rejected @ Rejection::NotImplemented { .. }) = &checked {
        return Err(rejection(rejected.clone()));
    }
    let header = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    sim.options.token.check(header)?;
    let checked = checked.map_err(rejection)?;
    let sim = Arc::clone(sim);
    // Handlers run commands (ip, lxc-info, tar); keep them off the reactor.
    tokio::task::spawn_blocking(move || routes::dispatch(&sim, &method, &checked, params.file))
        .await
        .map_err(|e| ApiError::internal(format!("handler failed: {e}")))?
}

/// `/api2/json/nodes/{node}/network` (not one interface's path).
fn is_network_listing(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    matches!(segments.as_slice(), ["", "api2", "json", "nodes", _, "network"])
}

fn rejection(r: Rejection) -> ApiError {
    let body = r.body();
    let errors = body.get("errors").and_then(Value::as_object).map(|map| {
        map.iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect()
    });
    ApiError { status: r.status(), message: r.message(), errors }
}

/// A response with Proxmox's shape: the message as the status line's reason, JSON body.
fn reply(status: StatusCode, reason: Option<&str>, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json;charset=UTF-8"));
    let reason = reason.map(|r| {
        r.lines().next().unwrap_or_default().replace(|c: char| !c.is_ascii() || c.is_ascii_control(), " ")
    });
    if let Some(phrase) = reason.and_then(|r| hyper::ext::ReasonPhrase::try_from(r.into_bytes()).ok()) {
        response.extensions_mut().insert(phrase);
    }
    response
}

#[cfg(test)]
mod tests;
