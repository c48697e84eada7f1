//! The admin API's certificate: one leaf from the CA for the appliance's name and every address
//! it is reached by, served whatever the client's SNI (clients send none for an address), and
//! issued again when those addresses change (a new WAN address from DHCP) and swapped in under
//! the running TLS server: new handshakes get the new certificate, open connections keep theirs.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{Ca, TlsError};

/// The admin API's certificate and what it names.
pub struct AdminCertificate {
    ca: Arc<Ca>,
    dns_names: Vec<String>,
    current: ArcSwap<Issued>,
}

struct Issued {
    /// Sorted and without duplicates, so two lists of the same addresses compare equal.
    ips: Vec<IpAddr>,
    key: Arc<CertifiedKey>,
}

impl AdminCertificate {
    /// Issues the first certificate, for `dns_names` and `ips`.
    pub fn new(ca: Arc<Ca>, dns_names: Vec<String>, ips: &[IpAddr]) -> Result<AdminCertificate, TlsError> {
        let ips = normalise(ips);
        let key = ca.issue(&dns_names, &ips)?;
        Ok(AdminCertificate { ca, dns_names, current: ArcSwap::from_pointee(Issued { ips, key }) })
    }

    /// The addresses the certificate in use names.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.current.load().ips.clone()
    }

    /// The certificate in use.
    pub fn key(&self) -> Arc<CertifiedKey> {
        self.current.load().key.clone()
    }

    /// Issues a certificate for `ips` (and the same names) unless the one in use names exactly
    /// them; `true` when it did. On an error the old one stays in use.
    pub fn reissue(&self, ips: &[IpAddr]) -> Result<bool, TlsError> {
        let ips = normalise(ips);
        if self.current.load().ips == ips {
            return Ok(false);
        }
        let key = self.ca.issue(&self.dns_names, &ips)?;
        self.current.store(Arc::new(Issued { ips, key }));
        Ok(true)
    }
}

fn normalise(ips: &[IpAddr]) -> Vec<IpAddr> {
    let mut ips = ips.to_vec();
    ips.sort();
    ips.dedup();
    ips
}

impl ResolvesServerCert for AdminCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }
}

impl fmt::Debug for AdminCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminCertificate")
            .field("dns_names", &self.dns_names)
            .field("ips", &self.current.load().ips)
            .finish_non_exhaustive()
    }
}
