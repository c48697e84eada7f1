//! One HTTPS exchange per call: TCP connect, TLS, HTTP/1.1 request, whole response read (up to a
//! size limit), all under one deadline. The provisioner makes a few dozen calls per run, so
//! connection reuse would buy nothing but state.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest response body read; Proxmox answers and the appliance's lists are far smaller.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// How long a TCP connect and TLS handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body: in memory or streamed from a file.
pub type Body = BoxBody<Bytes, io::Error>;

/// An in-memory body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// Why an exchange failed before a response was read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {0}")]
    Connect(String, #[source] io::Error),
    #[error("TLS handshake with {0} failed")]
    Tls(String, #[source] io::Error),
    #[error("{0} is not a valid TLS server name")]
    ServerName(String),
    #[error("HTTP exchange with {0} failed")]
    Http(String, #[source] hyper::Error),
    #[error("reading the answer of {0} failed: {1}")]
    Body(String, String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
}

impl HttpError {
    /// Whether the server could not be reached at all (as opposed to a broken exchange).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, HttpError::Connect(..) | HttpError::Timeout(..))
    }
}

/// A response, body read whole.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    /// The status line's reason phrase when the server sent a non-standard one (Proxmox puts its
    /// error message there).
    pub reason: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Where requests go: a host and port, the TLS settings, and the name the certificate must carry.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: Arc<ClientConfig>,
    /// The name checked against the certificate (may differ from `host`, e.g. the appliance's
    /// certificate names `ns.prox.local` while it is reached by address).
    pub server_name: String,
}

impl Endpoint {
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Sends `request` (its URI holds the path and query only) and reads the response, all within
    /// `timeout`.
    pub async fn send(&self, request: Request<Body>, timeout: Duration) -> Result<Response, HttpError> {
        let authority = self.authority();
        tokio::time::timeout(timeout, self.exchange(request, &authority))
            .await
            .map_err(|_| HttpError::Timeout(authority.clone(), timeout))?
    }

    async fn exchange(&self, mut request: Request<Body>, authority: &str) -> Result<Response, HttpError> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), self.port)))
            .await
            .map_err(|_| HttpError::Timeout(authority.to_owned(), CONNECT_TIMEOUT))?
            .map_err(|e| HttpError::Connect(authority.to_owned(), e))?;
        let name = ServerName::try_from(self.server_name.clone())
            .map_err(|_| HttpError::ServerName(self.server_name.clone()))?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| HttpError::Tls(authority.to_owned(), e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| HttpError::Http(authority.to_owned(), e))?;
        // The connection task ends when the exchange is done or the future is dropped with it.
        let driver = tokio::spawn(connection);
        if let Ok(value) = http::HeaderValue::from_str(authority) {
            request.headers_mut().insert(http::header::HOST, value);
        }
        let result = async {
            let response =
                sender.send_request(request).await.map_err(|e| HttpError::Http(authority.to_owned(), e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| HttpError::Body(authority.to_owned(), e.to_string()))?
                .to_bytes();
            let reason = parts
                .extensions
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
            Ok(Response { status: parts.status, reason, headers: parts.headers, body })
        }
        .await;
        driver.abort();
        result
    }
}
