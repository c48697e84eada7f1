//! What can go wrong with the CA files and certificate issuance, worded for the operator: each
//! error about a file names it and says what to do.

use std::io;
use std::path::PathBuf;

/// A TLS setup or issuance failure.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading, creating or publishing one of the CA files failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `ca.crt` is there, `ca.key` is not: we will not make a new key behind the old certificate.
    #[error(
        "{cert} exists but {key} is missing: restore {key}, or remove {cert} to create a new CA \
         (clients must then trust the new one)"
    )]
    CaKeyMissing { cert: PathBuf, key: PathBuf },
    /// `ca.key` is there, `ca.crt` is not.
    #[error(
        "{key} exists but {cert} is missing: restore {cert}, or remove {key} to create a new CA \
         (clients must then trust the new one)"
    )]
    CaCertMissing { cert: PathBuf, key: PathBuf },
    /// A CA file exists but cannot be used as it is; it is left untouched.
    #[error(
        "{path} is unusable ({reason}): restore it from a backup, or remove ca.crt and ca.key to \
         create a new CA (clients must then trust the new one)"
    )]
    CaFileInvalid { path: PathBuf, reason: String },
    /// Both files parse but the key is not the certificate's.
    #[error(
        "{key} is not the key of {cert}: restore the matching pair, or remove both to create a new \
         CA (clients must then trust the new one)"
    )]
    CaKeyMismatch { cert: PathBuf, key: PathBuf },
    /// The CA on disk was made for another domain: its name constraint forbids names under
    /// `domain`, so every certificate it issued would be rejected by clients.
    #[error(
        "{cert} only permits names outside {domain} (it was created for another domain): remove \
         ca.crt and ca.key to create a new CA for {domain} (clients must then trust the new one)"
    )]
    CaWrongDomain { cert: PathBuf, domain: String },
    /// The domain given to the CA is not a DNS name.
    #[error("{0:?} is not a valid DNS domain")]
    InvalidDomain(String),
    /// A name asked for in a certificate is not a valid DNS host name.
    #[error("{0:?} is not a valid DNS host name")]
    InvalidName(String),
    /// A name asked for in a certificate is outside the CA's domain; clients would reject the
    /// certificate because of the CA's name constraint, so it is not issued.
    #[error("{name} is not under {domain}, the only domain this CA may issue for")]
    OutsideDomain { name: String, domain: String },
    /// A certificate was asked for with neither a DNS name nor an IP address.
    #[error("a certificate needs at least one DNS name or IP address")]
    NoNames,
    /// rcgen failed to generate a key or sign a certificate.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused a key or configuration.
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}
