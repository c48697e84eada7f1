//! TLS client settings: trust in a Proxmox node (a CA file, or exactly one pinned leaf certificate
//! by its SHA-256), and in the appliance (its own CA once pinned; on first contact any certificate,
//! the CA then being proven by the token, see `appliance::proof`). Handshake signatures are always
//! checked: a pin replaces the chain check, never the proof of key possession.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::fingerprint::Fingerprint;

/// Why no TLS settings could be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA file {}", .0.display())]
    ReadCa(PathBuf, #[source] std::io::Error),
    #[error("{0} holds no PEM certificate")]
    NoCertificate(String),
    #[error("{0}: {1}")]
    BadCertificate(String, String),
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// How a server's certificate is trusted.
#[derive(Debug, Clone)]
pub enum Trust {
    /// A chain to one of these PEM CA certificates, for the name connected to.
    CaPem { source: String, pem: String },
    /// Exactly this leaf certificate, whatever its name or issuer.
    Pinned(Fingerprint),
    /// Any certificate (the handshake signature is still checked). Only for the appliance's
    /// `/v1/ca.crt` on first contact, whose body is authenticated by its proof header instead.
    FirstContact,
}

impl Trust {
    /// Trust in the CA certificates of the PEM file at `path`.
    pub fn ca_file(path: &Path) -> Result<Trust, TlsError> {
        let pem = std::fs::read_to_string(path).map_err(|e| TlsError::ReadCa(path.to_owned(), e))?;
        Ok(Trust::CaPem { source: path.display().to_string(), pem })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client settings for `trust`.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let config = match trust {
        Trust::CaPem { source, pem } => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| TlsError::BadCertificate(source.clone(), e.to_string()))?;
                roots.add(cert).map_err(|e| TlsError::BadCertificate(source.clone(), e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCertificate(source.clone()));
            }
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::BadCertificate(source.clone(), e.to_string()))?;
            builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
        }
        Trust::Pinned(fingerprint) => {
            let verifier = LeafVerifier {
                pin: Some(*fingerprint),
                algorithms: provider.signature_verification_algorithms,
            };
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        }
        Trust::FirstContact => {
            let verifier = LeafVerifier { pin: None, algorithms: provider.signature_verification_algorithms };
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// Accepts the leaf whose SHA-256 is `pin` (or any leaf when `pin` is `None`), and checks that the
/// server holds its key.
#[derive(Debug)]
struct LeafVerifier {
    pin: Option<Fingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LeafVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            Some(pin) if Fingerprint::of(end_entity) != pin => Err(rustls::Error::General(format!(
                "the server's certificate has fingerprint {}, not the pinned {pin}",
                Fingerprint::of(end_entity)
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
