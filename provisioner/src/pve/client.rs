//! The Proxmox VE API client: token auth, form-encoded parameters, `{"data": ...}` answers, errors
//! mapped to [`PveError`], and a count of mutating calls (so `up` can say "no change").

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Method, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{PveError, privilege_for};
use super::token::ApiToken;
use crate::net::http::{Body, Endpoint, Response, full};

/// How long one API call may take (uploads get their own, longer limit).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Where the JSON API lives under the node's URL.
pub const API_BASE: &str = "/api2/json";

/// Why a `--url` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Proxmox URL: give https://<host>[:8006]")]
pub struct UrlError(pub String);

/// `https://host[:port][/api2/json]` → host and port (8006 by default).
pub fn parse_url(url: &str) -> Result<(String, u16), UrlError> {
    let err = || UrlError(url.to_owned());
    let uri: http::Uri = url.trim().parse().map_err(|_| err())?;
    if uri.scheme_str() != Some("https") {
        return Err(err());
    }
    let path = uri.path().trim_end_matches('/');
    if !(path.is_empty() || path == API_BASE) {
        return Err(err());
    }
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(err)?;
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), uri.port_u16().unwrap_or(8006)))
}

/// Percent-encodes `text` for a path segment or a form value (RFC 3986 unreserved kept).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `a=1&b=2`, values encoded.
pub fn form(params: &[(&str, String)]) -> String {
    params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// A connection to one node's API.
#[derive(Debug)]
pub struct Pve {
    endpoint: Endpoint,
    token: ApiToken,
    mutations: AtomicUsize,
}

impl Pve {
    pub fn new(endpoint: Endpoint, token: ApiToken) -> Self {
        Pve { endpoint, token, mutations: AtomicUsize::new(0) }
    }

    /// The API's host (as given in the URL) and port.
    pub fn host(&self) -> (&str, u16) {
        (&self.endpoint.host, self.endpoint.port)
    }

    /// How many POST/PUT/DELETE calls were made.
    pub fn mutations(&self) -> usize {
        self.mutations.load(Ordering::Relaxed)
    }

    /// `GET path?query`, the `data` member decoded.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, PveError> {
        let envelope = self.get_envelope(path, query).await?;
        decode("GET", path, envelope.get("data").cloned().unwrap_or(Value::Null))
    }

    /// `GET path?query`, the whole answer (Proxmox puts some things next to `data`, e.g. the
    /// pending network `changes`).
    pub async fn get_envelope(&self, path: &str, query: &[(&str, String)]) -> Result<Value, PveError> {
        let uri = if query.is_empty() { path.to_owned() } else { format!("{path}?{}", form(query)) };
        self.call(Method::GET, path, &uri, None).await
    }

    /// `POST path` with form parameters; the `data` member (a UPID for long operations).
    pub async fn post(&self, path: &str, params: &[(&str, String)]) -> Result<Value, PveError> {
        self.mutate(Method::POST, path, params).await
    }

    /// `PUT path` with form parameters.
    pub async fn put(&self, path: &str, params: &[(&str, String)]) -> Result<Value, PveError> {
        self.mutate(Method::PUT, path, params).await
    }

    /// `DELETE path?params`.
    pub async fn delete(&self, path: &str, params: &[(&str, String)]) -> Result<Value, PveError> {
        self.mutations.fetch_add(1, Ordering::Relaxed);
        let uri = if params.is_empty() { path.to_owned() } else { format!("{path}?{}", form(params)) };
        let envelope = self.call(Method::DELETE, path, &uri, None).await?;
        Ok(envelope.get("data").cloned().unwrap_or(Value::Null))
    }

    async fn mutate(&self, method: Method, path: &str, params: &[(&str, String)]) -> Result<Value, PveError> {
        self.mutations.fetch_add(1, Ordering::Relaxed);
        let body = form(params);
        let envelope =
            self.call(method, path, path, Some(("application/x-www-form-urlencoded", full(body)))).await?;
        Ok(envelope.get("data").cloned().unwrap_or(Value::Null))
    }

    /// Sends a prepared body (the template upload) and returns the `data` member.
    pub async fn post_body(
        &self,
        path: &str,
        content_type: &str,
        body: Body,
        len: u64,
        timeout: Duration,
    ) -> Result<Value, PveError> {
        self.mutations.fetch_add(1, Ordering::Relaxed);
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{API_BASE}{path}"))
            .header(http::header::AUTHORIZATION, self.token.header_value())
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, len)
            .body(body)
            .map_err(|e| decode_error("POST", path, e.to_string()))?;
        let response = self.endpoint.send(request, timeout).await?;
        let envelope = self.check("POST", path, response)?;
        Ok(envelope.get("data").cloned().unwrap_or(Value::Null))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        uri: &str,
        body: Option<(&str, Body)>,
    ) -> Result<Value, PveError> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("{API_BASE}{uri}"))
            .header(http::header::AUTHORIZATION, self.token.header_value())
            .header(http::header::ACCEPT, "application/json");
        let body = match body {
            Some((content_type, body)) => {
                builder = builder.header(http::header::CONTENT_TYPE, content_type);
                body
            }
            None => full(""),
        };
        let request = builder.body(body).map_err(|e| decode_error(method.as_str(), path, e.to_string()))?;
        let response = self.endpoint.send(request, CALL_TIMEOUT).await?;
        self.check(method.as_str(), path, response)
    }

    /// Maps a response to its JSON, or to the error it says.
    fn check(&self, method: &str, path: &str, response: Response) -> Result<Value, PveError> {
        let json: Option<Value> = serde_json::from_slice(&response.body).ok();
        let status = response.status.as_u16();
        if response.status.is_success() {
            return json.ok_or_else(|| decode_error(method, path, "the body is not JSON".to_owned()));
        }
        let message = json
            .as_ref()
            .and_then(|j| j.get("message"))
            .and_then(Value::as_str)
            .map(|m| m.trim().to_owned())
            .or_else(|| response.reason.clone())
            .unwrap_or_else(|| String::from_utf8_lossy(&response.body).trim().chars().take(500).collect());
        let (method, path) = (method.to_owned(), path.to_owned());
        let errors: BTreeMap<String, String> = json
            .as_ref()
            .and_then(|j| j.get("errors"))
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                    .collect()
            })
            .unwrap_or_default();
        Err(match status {
            401 => PveError::Unauthorized { token: self.token.id(), method, path },
            403 => PveError::Forbidden {
                token: self.token.id(),
                privilege: privilege_for(&method, &path),
                method,
                path,
                message,
            },
            400 => PveError::BadRequest { method, path, message, errors },
            501 => PveError::NotImplemented { method, path, message },
            _ => PveError::Server { method, path, status, message, errors },
        })
    }
}

fn decode_error(method: &str, path: &str, reason: String) -> PveError {
    PveError::Decode { method: method.to_owned(), path: path.to_owned(), reason }
}

/// Decodes a `data` member.
pub fn decode<T: DeserializeOwned>(method: &str, path: &str, data: Value) -> Result<T, PveError> {
    serde_json::from_value(data).map_err(|e| decode_error(method, path, e.to_string()))
}

/// Whether `error` is Proxmox's "no such container" (a config GET of a missing VMID answers 500
/// `Configuration file 'nodes/<node>/lxc/<vmid>.conf' does not exist`).
pub fn is_missing_config(error: &PveError) -> bool {
    matches!(error, PveError::Server { status: 500, message, .. } if message.contains("does not exist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_node_urls() {
        assert_eq!(parse_url("https://pve.lan:8006"), Ok(("pve.lan".to_owned(), 8006)));
        assert_eq!(parse_url("https://10.0.0.2/api2/json/"), Ok(("10.0.0.2".to_owned(), 8006)));
        assert_eq!(parse_url("https://[fd00::2]:9443"), Ok(("fd00::2".to_owned(), 9443)));
        assert!(parse_url("http://pve:8006").is_err());
        assert!(parse_url("https://pve:8006/other").is_err());
        assert!(parse_url("pve").is_err());
    }

    #[test]
    fn encodes_volids_and_property_strings() {
        assert_eq!(encode("local:vztmpl/a_1.tar.zst"), "local%3Avztmpl%2Fa_1.tar.zst");
        assert_eq!(
            form(&[("net0", "name=eth0,bridge=vmbr0,ip=dhcp".to_owned()), ("tags", "a;b".to_owned())]),
            "net0=name%3Deth0%2Cbridge%3Dvmbr0%2Cip%3Ddhcp&tags=a%3Bb"
        );
    }
}
