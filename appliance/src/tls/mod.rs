//! TLS for the proxy and the admin API: the appliance's local certificate authority (created at
//! first start, kept in the state directory), certificates issued from it on first use by name
//! (SNI), and the rustls server configurations built on them.
//!
//! - [`ca`]: the CA itself (`ca.crt`, `ca.key`), loaded or created, and the leaves it signs.
//! - [`certs`]: the cache of leaves by name behind a [`NamePolicy`], and the SNI resolver.
//! - [`error`]: [`TlsError`], worded for the operator.
//! - `files`: creating the CA files atomically, never replacing one.
//!
//! Every rustls object here is built on the ring provider explicitly, never on a process-wide
//! default, so nothing depends on which crate installed one first.
//!
//! The CA's name constraint permits DNS names under the appliance's domain only, and
//! [`Ca::issue`] refuses names outside it, so a certificate for another site is neither issued
//! nor, should the key leak and one be forged, accepted by clients that trust the CA.

pub mod ca;
pub mod certs;
pub mod error;
mod files;

use std::net::IpAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::{CryptoProvider, ring};
use rustls::server::ResolvesServerCert;
use rustls::sign::SingleCertAndKey;

pub use ca::Ca;
pub use certs::{Certificates, MAX_CACHED_CERTIFICATES, NamePolicy, SniResolver};
pub use error::TlsError;

/// ALPN protocols we offer, preferred first: HTTP/2, then HTTP/1.1 for older clients.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The one crypto provider of the appliance's TLS.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The server configuration of the reverse proxy: TLS 1.3 and 1.2, ALPN `h2` then `http/1.1`,
/// the certificate chosen by SNI through `certs` (no SNI, or a name the policy refuses: the
/// handshake fails).
pub fn proxy_server_config(certs: Arc<Certificates>) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(Arc::new(SniResolver::new(certs)))
}

/// The server configuration of the admin API: one certificate issued now from `ca` for
/// `dns_names` and `ips`, served whatever the client's SNI, and without one: the API is reached
/// by address (`https://10.20.0.1:9090`), and clients send no SNI for an address.
pub fn admin_server_config(
    ca: &Ca,
    dns_names: &[String],
    ips: &[IpAddr],
) -> Result<Arc<ServerConfig>, TlsError> {
    let key = ca.issue(dns_names, ips)?;
    server_config(Arc::new(SingleCertAndKey::from(key)))
}

fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
