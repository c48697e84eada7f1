//! Transport: HTTPS exchanges, TLS trust (CA file, pinned fingerprint), fingerprints.

pub mod fingerprint;
pub mod http;
pub mod tls;
