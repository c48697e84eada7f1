//! The appliance's admin API (`https://<wan>:9090`), as the provisioner uses it: the CA fetched
//! and proven on first contact, then every call verified against that pinned CA, with the bearer
//! token. Errors keep the appliance's `{"error": {...}}` message.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::{Method, Request, StatusCode};
use proximity_config::api::{AppView, ErrorBody, HealthView, LeaseView, RawApp};
use serde::de::DeserializeOwned;

use super::proof::{self, ProofError};
use crate::net::http::{Endpoint, HttpError, full};
use crate::net::tls::{TlsError, Trust, client_config};

/// The admin API's port.
pub const ADMIN_PORT: u16 = 9090;
/// The name on the admin API's certificate (it also names the appliance's addresses, but the WAN
/// address may change; this name does not).
pub const ADMIN_NAME: &str = "ns.prox.local";
/// How long one admin call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A failed admin API call.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(
        "the appliance refused the admin token (401): the token in the state file is not this appliance's"
    )]
    Unauthorized,
    #[error("the appliance answered {status}: {message}")]
    Api { status: StatusCode, code: String, message: String },
    #[error("unexpected answer from the appliance: {0}")]
    Decode(String),
}

impl AdminError {
    /// Whether the appliance could not be reached (the WAN address may have changed).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, AdminError::Http(e) if e.is_unreachable())
    }
}

/// Fetches the appliance's CA (PEM) at `wan` on first contact and checks its proof with `token`.
pub async fn fetch_proven_ca(wan: Ipv4Addr, token: &str) -> Result<String, AdminError> {
    fetch_proven_ca_at(SocketAddr::from((wan, ADMIN_PORT)), token).await
}

/// [`fetch_proven_ca`] from an admin API at `addr`.
pub async fn fetch_proven_ca_at(addr: SocketAddr, token: &str) -> Result<String, AdminError> {
    let endpoint = Endpoint {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: client_config(&Trust::FirstContact)?,
        server_name: ADMIN_NAME.to_owned(),
    };
    let request = Request::get("/v1/ca.crt").body(full("")).map_err(|e| AdminError::Decode(e.to_string()))?;
    let response = endpoint.send(request, CALL_TIMEOUT).await?;
    if !response.status.is_success() {
        return Err(AdminError::Api {
            status: response.status,
            code: String::new(),
            message: "GET /v1/ca.crt failed".to_owned(),
        });
    }
    let header = response.headers.get(proof::HEADER).and_then(|v| v.to_str().ok());
    proof::verify(token, &response.body, header)?;
    String::from_utf8(response.body.to_vec()).map_err(|_| AdminError::Decode("the CA is not PEM text".into()))
}

/// A client of one appliance's admin API.
#[derive(Debug, Clone)]
pub struct Admin {
    endpoint: Endpoint,
    token: String,
}

impl Admin {
    /// The API at `wan`, trusted through the pinned `ca_pem`.
    pub fn new(wan: Ipv4Addr, ca_pem: &str, token: &str) -> Result<Admin, AdminError> {
        Admin::at(SocketAddr::from((wan, ADMIN_PORT)), ca_pem, token)
    }

    /// The API at `addr`.
    pub fn at(addr: SocketAddr, ca_pem: &str, token: &str) -> Result<Admin, AdminError> {
        let trust = Trust::CaPem { source: "the pinned appliance CA".into(), pem: ca_pem.to_owned() };
        Ok(Admin {
            endpoint: Endpoint {
                host: addr.ip().to_string(),
                port: addr.port(),
                tls: client_config(&trust)?,
                server_name: ADMIN_NAME.to_owned(),
            },
            token: token.to_owned(),
        })
    }

    /// `https://<wan>:9090/`, for people.
    pub fn url(&self) -> String {
        format!("https://{}:{}/", self.endpoint.host, self.endpoint.port)
    }

    pub async fn health(&self) -> Result<HealthView, AdminError> {
        self.call(Method::GET, "/v1/health", None).await
    }

    pub async fn apps(&self) -> Result<Vec<AppView>, AdminError> {
        self.call(Method::GET, "/v1/apps", None).await
    }

    pub async fn add_app(&self, app: &RawApp) -> Result<AppView, AdminError> {
        let body = serde_json::to_vec(app).map_err(|e| AdminError::Decode(e.to_string()))?;
        self.call(Method::POST, "/v1/apps", Some(body)).await
    }

    pub async fn remove_app(&self, name: &str) -> Result<(), AdminError> {
        let path = format!("/v1/apps/{}", crate::pve::client::encode(name));
        self.call::<serde_json::Value>(Method::DELETE, &path, None).await.map(drop)
    }

    pub async fn leases(&self) -> Result<Vec<LeaseView>, AdminError> {
        self.call(Method::GET, "/v1/leases", None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, AdminError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(http::header::ACCEPT, "application/json");
        if body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request =
            builder.body(full(body.unwrap_or_default())).map_err(|e| AdminError::Decode(e.to_string()))?;
        let response = self.endpoint.send(request, CALL_TIMEOUT).await?;
        if response.status == StatusCode::UNAUTHORIZED {
            return Err(AdminError::Unauthorized);
        }
        if !response.status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&response.body) {
                Ok(e) => (e.error.code, e.error.message),
                Err(_) => {
                    (String::new(), String::from_utf8_lossy(&response.body).chars().take(300).collect())
                }
            };
            return Err(AdminError::Api { status: response.status, code, message });
        }
        let body = if response.body.is_empty() { &b"null"[..] } else { &response.body[..] };
        serde_json::from_slice(body).map_err(|e| AdminError::Decode(e.to_string()))
    }
}
