//! TLS for the proxy and the admin API: the appliance's local certificate authority (created at
//! first start, kept in the state directory), certificates issued from it on first use by name
//! (SNI), and the rustls server configurations built on them.
//!
//! - [`ca`]: the CA itself (`ca.crt`, `ca.key`), loaded or created, and the leaves it signs.
//! - [`admin`]: the admin API's certificate, issued again when the appliance's addresses change.
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

pub mod admin;
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

pub use admin::AdminCertificate;
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

/// The server configuration of the admin API serving `certificate`, whichever one it holds at
/// each handshake (it is issued again when the WAN address changes).
pub fn admin_server_config_following(
    certificate: Arc<AdminCertificate>,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(certificate)
}

fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io;
    use std::time::Duration;

    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;

    /// Longest a test handshake may take before the test fails rather than hangs.
    const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

    use certs::tests::{Anything, Only, ca};

    /// A client that trusts only `ca`, offering h2 and http/1.1 like a browser.
    fn client(ca: &Ca, versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.certificate_der().clone()).unwrap();
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// One handshake over TCP on 127.0.0.1: the client's outcome (the negotiated ALPN protocol
    /// and TLS version) and the server's.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
        name: &str,
    ) -> (io::Result<(Vec<u8>, rustls::ProtocolVersion)>, io::Result<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_side = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = TlsAcceptor::from(server).accept(tcp).await?;
            tls.shutdown().await
        });
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let client_side = async {
            let tcp = TcpStream::connect(addr).await?;
            let mut tls = TlsConnector::from(client).connect(name, tcp).await?;
            let session = tls.get_ref().1;
            let alpn = session.alpn_protocol().unwrap_or_default().to_vec();
            let version = session.protocol_version().unwrap();
            // Until the server's close_notify, so it never writes to a closed socket.
            tls.read_to_end(&mut Vec::new()).await?;
            Ok((alpn, version))
        };
        let client_result = tokio::time::timeout(HANDSHAKE_LIMIT, client_side).await.unwrap();
        let server_result = tokio::time::timeout(HANDSHAKE_LIMIT, server_side).await.unwrap().unwrap();
        (client_result, server_result)
    }

    /// The rustls error inside an I/O error from a handshake.
    fn tls_error(err: &io::Error) -> &rustls::Error {
        err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()).unwrap()
    }

    fn proxy(ca: &Arc<Ca>, policy: Arc<dyn NamePolicy>) -> Arc<ServerConfig> {
        proxy_server_config(Arc::new(Certificates::new(ca.clone(), policy))).unwrap()
    }

    #[tokio::test]
    async fn proxy_serves_an_allowed_name_with_h2() {
        let (_dir, ca) = ca();
        let server = proxy(&ca, Arc::new(Only(&["app.prox.local"])));
        let (client, server) =
            handshake(server, client(&ca, &[&rustls::version::TLS13]), "app.prox.local").await;
        let (alpn, version) = client.unwrap();
        server.unwrap();
        assert_eq!(alpn, b"h2");
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);
    }

    #[tokio::test]
    async fn proxy_speaks_tls12_too() {
        let (_dir, ca) = ca();
        let server = proxy(&ca, Arc::new(Only(&["app.prox.local"])));
        let (client, server) =
            handshake(server, client(&ca, &[&rustls::version::TLS12]), "app.prox.local").await;
        let (alpn, version) = client.unwrap();
        server.unwrap();
        assert_eq!(alpn, b"h2");
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
    }

    #[tokio::test]
    async fn proxy_refuses_a_name_the_policy_refuses() {
        let (_dir, ca) = ca();
        let server = proxy(&ca, Arc::new(Only(&["app.prox.local"])));
        let (client, server) = handshake(server, client(&ca, rustls::ALL_VERSIONS), "other.prox.local").await;
        assert!(client.is_err());
        assert!(server.is_err());
    }

    #[tokio::test]
    async fn proxy_refuses_a_client_without_sni() {
        let (_dir, ca) = ca();
        let server = proxy(&ca, Arc::new(Anything));
        // Clients send no SNI for an address.
        let (client, server) = handshake(server, client(&ca, rustls::ALL_VERSIONS), "127.0.0.1").await;
        assert!(client.is_err());
        assert!(server.is_err());
    }

    /// Names outside the domain are refused twice: the cache does not issue them even when the
    /// policy says yes, and a certificate forged with the CA key is rejected by clients because
    /// of the CA's name constraint.
    #[tokio::test]
    async fn names_outside_the_domain_are_refused_by_us_and_by_clients() {
        let (_dir, ca) = ca();
        let server = proxy(&ca, Arc::new(Anything));
        let (client_result, server_result) =
            handshake(server, client(&ca, rustls::ALL_VERSIONS), "evil.example.com").await;
        assert!(client_result.is_err());
        assert!(server_result.is_err());

        let forged = ca.sign_leaf(&["evil.example.com".into()], &[]).unwrap();
        let server = server_config(Arc::new(SingleCertAndKey::from(forged.key))).unwrap();
        let (client_result, _) =
            handshake(server, client(&ca, rustls::ALL_VERSIONS), "evil.example.com").await;
        let err = client_result.unwrap_err();
        let rustls::Error::InvalidCertificate(cert_error) = tls_error(&err) else { panic!("{err}") };
        assert!(format!("{cert_error:?}").contains("NameConstraintViolation"), "{cert_error:?}");
    }

    #[tokio::test]
    async fn the_admin_certificate_is_issued_again_for_a_new_address() {
        let (_dir, ca) = ca();
        let (old, new): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "192.0.2.7".parse().unwrap());
        let certificate =
            Arc::new(AdminCertificate::new(ca.clone(), vec!["ns.prox.local".into()], &[old]).unwrap());
        let server = admin_server_config_following(certificate.clone()).unwrap();
        let (client_result, _) =
            handshake(server.clone(), client(&ca, rustls::ALL_VERSIONS), "192.0.2.7").await;
        assert!(client_result.is_err(), "the new address is not named yet");

        assert!(certificate.reissue(&[new, old]).unwrap());
        assert!(!certificate.reissue(&[old, new, old]).unwrap(), "the same addresses: nothing issued");
        assert_eq!(certificate.ips(), [old, new]);
        for name in ["192.0.2.7", "127.0.0.1", "ns.prox.local"] {
            let (client_result, server_result) =
                handshake(server.clone(), client(&ca, rustls::ALL_VERSIONS), name).await;
            client_result.unwrap();
            server_result.unwrap();
        }
        assert!(certificate.reissue(&[new]).unwrap());
        let (client_result, _) = handshake(server, client(&ca, rustls::ALL_VERSIONS), "127.0.0.1").await;
        assert!(client_result.is_err(), "an address gone is no longer named");
    }

    #[tokio::test]
    async fn admin_is_served_by_address_without_sni() {
        let (_dir, ca) = ca();
        let names = ["proximity.prox.local".to_owned()];
        let ips = ["127.0.0.1".parse().unwrap()];
        let server = admin_server_config(&ca, &names, &ips).unwrap();
        for name in ["127.0.0.1", "proximity.prox.local"] {
            let (client, server) = handshake(server.clone(), client(&ca, rustls::ALL_VERSIONS), name).await;
            assert_eq!(client.unwrap().0, b"h2", "{name}");
            server.unwrap();
        }
        // Any SNI gets the admin certificate; a client asking for another name rejects it.
        let (client, _) = handshake(server, client(&ca, rustls::ALL_VERSIONS), "app.prox.local").await;
        let err = client.unwrap_err();
        assert!(
            matches!(
                tls_error(&err),
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })
            ),
            "{err}"
        );
    }
}
