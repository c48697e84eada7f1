//! The appliance's local certificate authority: created once in the state directory, loaded at
//! every start, and the leaf certificates it signs for the proxy and the admin API.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, GeneralSubtree,
    IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;
use tracing::info;

use super::{TlsError, files};

/// The CA certificate's file in the state directory (PEM), what clients are told to trust.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA private key's file in the state directory (PEM, PKCS#8).
pub const CA_KEY_FILE: &str = "ca.key";
/// The certificate is public: anyone on the host may read it to hand it to clients.
const CA_CERT_MODE: u32 = 0o644;
/// Whoever reads the key can impersonate every app under the domain.
const CA_KEY_MODE: u32 = 0o600;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a new CA is valid. Long, because replacing it means every client must trust the new
/// one by hand.
pub const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 60 * 60);
/// The total validity of a leaf certificate: 397 days is the most browsers accept (Apple and the
/// CA/Browser Forum cap public certificates there, and some clients apply it to every chain).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(397 * 24 * 60 * 60);
/// Certificates start this much before they are made, so clients whose clock is a little behind
/// ours accept them.
const CLOCK_SKEW: Duration = DAY;

/// The CA subject's organization.
const CA_ORGANIZATION: &str = "Proximity";
/// The CA's common name, before its short id.
const CA_NAME: &str = "Proximity local CA";
/// Bytes of the key identifier shown in the CA's name, so two appliances' CAs can be told apart
/// in a trust store.
const CA_ID_BYTES: usize = 4;
/// The address of the leaf issued to check a CA at start; any address does.
const SELF_TEST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// The local certificate authority. Its certificate carries a name constraint: it can only vouch
/// for DNS names under its domain, so its key, if it leaked, could not impersonate other sites.
pub struct Ca {
    /// The domain of the name constraint; names outside it are refused before signing.
    domain: String,
    /// `ca.crt` as read from disk, served as it is to clients that download it.
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// Turns leaf keys into rustls signing keys (ring, never a process-wide default).
    provider: Arc<CryptoProvider>,
}

/// A leaf certificate and key, and when it expires (for the cache to renew it).
#[derive(Debug)]
pub(super) struct Leaf {
    pub(super) key: Arc<CertifiedKey>,
    pub(super) not_after: SystemTime,
}

impl Ca {
    /// Loads the CA from `<dir>/ca.crt` and `<dir>/ca.key`, or creates both when neither exists.
    ///
    /// Any other state (one file missing, a file that does not parse, a key that is not the
    /// certificate's, a CA made for another domain) is an error naming the file, and the files
    /// are left exactly as they are: a new CA means every client must trust it anew, so that is
    /// the operator's decision, never ours. Blocking file I/O: call it at start-up.
    pub fn load_or_create(dir: &Path, domain: &str) -> Result<Ca, TlsError> {
        let domain = normalise_name(domain).ok_or_else(|| TlsError::InvalidDomain(domain.to_owned()))?;
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert = files::read_existing(&cert_path)?;
        let key = files::read_existing(&key_path)?;
        let ca = match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => Self::load(domain, cert_pem, &cert_path, &key_pem, &key_path)?,
            (None, None) => Self::create(domain, &cert_path, &key_path)?,
            (Some(_), None) => return Err(TlsError::CaKeyMissing { cert: cert_path, key: key_path }),
            (None, Some(_)) => return Err(TlsError::CaCertMissing { cert: cert_path, key: key_path }),
        };
        Ok(ca)
    }

    fn load(
        domain: String,
        cert_pem: String,
        cert_path: &Path,
        key_pem: &str,
        key_path: &Path,
    ) -> Result<Ca, TlsError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| invalid(cert_path, format!("no PEM certificate: {e}")))?;
        let parsed = ParsedCertificate::try_from(&cert_der)
            .map_err(|e| invalid(cert_path, format!("not an X.509 certificate: {e}")))?;
        let key_der = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) {
            Ok(key @ PrivateKeyDer::Pkcs8(_)) => key,
            Ok(_) => return Err(invalid(key_path, "not a PKCS#8 key (PEM \"PRIVATE KEY\")".into())),
            Err(e) => return Err(invalid(key_path, format!("no PEM private key: {e}"))),
        };
        let key = KeyPair::try_from(&key_der).map_err(|e| invalid(key_path, format!("unusable key: {e}")))?;
        if key.subject_public_key_info() != parsed.subject_public_key_info().as_ref() {
            return Err(TlsError::CaKeyMismatch { cert: cert_path.to_owned(), key: key_path.to_owned() });
        }
        files::warn_if_exposed(key_path);
        // The issuer's name is rebuilt from the key (see `ca_params`); the self-check proves it
        // is byte for byte the certificate's subject, or leaves would not chain.
        let issuer = Issuer::new(ca_params(&key, &domain, SystemTime::now()), key);
        let ca = Ca { domain, cert_pem, cert_der, issuer, provider: super::provider() };
        ca.check(cert_path)?;
        info!(path = %cert_path.display(), domain = %ca.domain, "loaded the local CA");
        Ok(ca)
    }

    fn create(domain: String, cert_path: &Path, key_path: &Path) -> Result<Ca, TlsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let params = ca_params(&key, &domain, SystemTime::now());
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        let ca = Ca {
            domain,
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            provider: super::provider(),
        };
        // Checked before anything is written, so a CA we could not use never reaches the disk.
        ca.check(cert_path)?;
        // The key first: a crash between the two leaves a key without certificate, which
        // `load_or_create` reports rather than silently replacing.
        files::create_new(key_path, key_pem.as_bytes(), CA_KEY_MODE)?;
        files::create_new(cert_path, ca.cert_pem.as_bytes(), CA_CERT_MODE)?;
        info!(
            path = %cert_path.display(),
            domain = %ca.domain,
            "created the local CA; clients must trust it"
        );
        Ok(ca)
    }

    /// The CA certificate in PEM, byte for byte as in `ca.crt`, for clients to download.
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate in DER, the last link of every chain we serve.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The domain this CA may issue for: names equal to it or under it.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Issues a server certificate for `dns_names` and `ips`, with a fresh key, valid for
    /// [`LEAF_VALIDITY`] from a day ago; its chain is `[leaf, ca]`. The first DNS name (or, with
    /// none, the first IP) is the subject's common name.
    ///
    /// DNS names outside the CA's domain are refused ([`TlsError::OutsideDomain`]): clients
    /// would reject them anyway because of the CA's name constraint. IP addresses are not
    /// constrained.
    pub fn issue(&self, dns_names: &[String], ips: &[IpAddr]) -> Result<Arc<CertifiedKey>, TlsError> {
        self.issue_leaf(dns_names, ips).map(|leaf| leaf.key)
    }

    /// [`Ca::issue`], with the expiry the cache needs.
    pub(super) fn issue_leaf(&self, dns_names: &[String], ips: &[IpAddr]) -> Result<Leaf, TlsError> {
        let names = dns_names
            .iter()
            .map(|name| {
                let normal = normalise_name(name).ok_or_else(|| TlsError::InvalidName(name.clone()))?;
                match is_under(&normal, &self.domain) {
                    true => Ok(normal),
                    false => Err(TlsError::OutsideDomain { name: normal, domain: self.domain.clone() }),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.sign_leaf(&names, ips)
    }

    /// Signs a leaf for names already checked (or, in the self-check and tests, deliberately not).
    pub(super) fn sign_leaf(&self, dns_names: &[String], ips: &[IpAddr]) -> Result<Leaf, TlsError> {
        let common_name = match (dns_names.first(), ips.first()) {
            (Some(name), _) => name.clone(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => return Err(TlsError::NoNames),
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.subject_alt_names = dns_names
            .iter()
            .map(|name| Ok(SanType::DnsName(name.clone().try_into()?)))
            .chain(ips.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
            .collect::<Result<_, rcgen::Error>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let not_before = SystemTime::now() - CLOCK_SKEW;
        let not_after = not_before + LEAF_VALIDITY;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params.signed_by(&key, &self.issuer)?;
        let signing_key = self.provider.key_provider.load_private_key(PrivateKeyDer::from(key))?;
        let chain = vec![cert.der().clone(), self.cert_der.clone()];
        Ok(Leaf { key: Arc::new(CertifiedKey::new(chain, signing_key)), not_after })
    }

    /// Proves the CA works as clients will use it: a leaf it signs verifies against `ca.crt`
    /// alone (key, issuer name and signature agree), and its name constraint permits the domain.
    fn check(&self, cert_path: &Path) -> Result<(), TlsError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .map_err(|e| invalid(cert_path, format!("not a CA certificate: {e}")))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| invalid(cert_path, format!("not a CA certificate: {e}")))?;
        let verify = |leaf: &Leaf, name: &ServerName<'_>| {
            let end_entity = leaf.key.end_entity_cert()?;
            verifier.verify_server_cert(end_entity, &[], name, &[], UnixTime::now()).map(|_| ())
        };

        let by_ip = self.sign_leaf(&[], &[SELF_TEST_IP])?;
        verify(&by_ip, &ServerName::from(SELF_TEST_IP)).map_err(|e| {
            invalid(
                cert_path,
                format!("certificates signed with its key do not verify ({e}); not made by Proximity?"),
            )
        })?;
        let name = DnsName::try_from(self.domain.clone())
            .map_err(|_| TlsError::InvalidDomain(self.domain.clone()))?;
        let by_name = self.sign_leaf(std::slice::from_ref(&self.domain), &[])?;
        verify(&by_name, &ServerName::DnsName(name))
            .map_err(|_| TlsError::CaWrongDomain { cert: cert_path.to_owned(), domain: self.domain.clone() })
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Issuer`'s Debug leaves the key out.
        f.debug_struct("Ca")
            .field("domain", &self.domain)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The CA certificate's parameters for `key`. The name's short id is the start of the key's
/// identifier: random (the key is), and derived again from the key at each load, since rcgen
/// without its X.509 parser cannot read a name back from a certificate.
fn ca_params(key: &KeyPair, domain: &str, now: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let id: String =
        params.key_identifier(key).iter().take(CA_ID_BYTES).map(|b| format!("{b:02x}")).collect();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, CA_ORGANIZATION);
    params.distinguished_name.push(DnType::CommonName, format!("{CA_NAME} {id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // Only DNS names under `domain`. No IP subtree is listed, and RFC 5280 applies constraints
    // per name type, so IP SANs stay unconstrained: the admin API is reached by address.
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName(domain.to_owned())],
        excluded_subtrees: Vec::new(),
    });
    let not_before = now - CLOCK_SKEW;
    params.not_before = not_before.into();
    params.not_after = (not_before + CA_VALIDITY).into();
    params
}

/// `name` lower-cased if it is a DNS host name we can put in a certificate: valid syntax, no
/// wildcard, no trailing dot, not an IP address.
pub(super) fn normalise_name(name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    let valid = !name.ends_with('.') && DnsName::try_from(name.as_str()).is_ok();
    valid.then_some(name)
}

/// Whether `name` is `domain` or a name under it (both normalised).
pub(super) fn is_under(name: &str, domain: &str) -> bool {
    match name.strip_suffix(domain) {
        Some("") => true,
        Some(prefix) => prefix.ends_with('.'),
        None => false,
    }
}

fn invalid(path: &Path, reason: String) -> TlsError {
    TlsError::CaFileInvalid { path: PathBuf::from(path), reason }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const DOMAIN: &str = "prox.local";

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn created_once_then_reloaded_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let created = Ca::load_or_create(dir.path(), DOMAIN).unwrap();
        let on_disk = fs::read_to_string(dir.path().join(CA_CERT_FILE)).unwrap();
        let key_on_disk = fs::read(dir.path().join(CA_KEY_FILE)).unwrap();
        assert_eq!(created.certificate_pem(), on_disk);
        assert!(on_disk.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(String::from_utf8_lossy(&key_on_disk).starts_with("-----BEGIN PRIVATE KEY-----"));
        // Nothing else is left behind (no temporary files).
        assert_eq!(file_names(dir.path()), [CA_CERT_FILE, CA_KEY_FILE]);

        let loaded = Ca::load_or_create(dir.path(), DOMAIN).unwrap();
        assert_eq!(loaded.certificate_pem(), created.certificate_pem());
        assert_eq!(loaded.certificate_der(), created.certificate_der());
        assert_eq!(fs::read(dir.path().join(CA_KEY_FILE)).unwrap(), key_on_disk);
        // The reloaded CA signs leaves that chain to the same certificate.
        let leaf = loaded.issue(&["app.prox.local".into()], &[]).unwrap();
        assert_eq!(&leaf.cert[1], created.certificate_der());
    }

    #[test]
    fn key_is_private_and_certificate_public() {
        let dir = tempfile::tempdir().unwrap();
        Ca::load_or_create(dir.path(), DOMAIN).unwrap();
        assert_eq!(mode(&dir.path().join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.path().join(CA_CERT_FILE)), 0o644);
    }

    #[test]
    fn missing_key_is_an_error_and_the_certificate_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        Ca::load_or_create(dir.path(), DOMAIN).unwrap();
        let cert_path = dir.path().join(CA_CERT_FILE);
        let cert = fs::read(&cert_path).unwrap();
        fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();

        let err = Ca::load_or_create(dir.path(), DOMAIN).unwrap_err();
        assert!(matches!(err, TlsError::CaKeyMissing { .. }), "{err}");
        assert!(err.to_string().contains(&*dir.path().join(CA_KEY_FILE).to_string_lossy()), "{err}");
        assert_eq!(fs::read(&cert_path).unwrap(), cert);
        assert_eq!(file_names(dir.path()), [CA_CERT_FILE]);
    }

    #[test]
    fn missing_certificate_is_an_error_and_the_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        Ca::load_or_create(dir.path(), DOMAIN).unwrap();
        let key_path = dir.path().join(CA_KEY_FILE);
        let key = fs::read(&key_path).unwrap();
        fs::remove_file(dir.path().join(CA_CERT_FILE)).unwrap();

        let err = Ca::load_or_create(dir.path(), DOMAIN).unwrap_err();
        assert!(matches!(err, TlsError::CaCertMissing { .. }), "{err}");
        assert!(err.to_string().contains("ca.crt is missing"), "{err}");
        assert_eq!(fs::read(&key_path).unwrap(), key);
        assert_eq!(mode(&key_path), 0o600);
        assert_eq!(file_names(dir.path()), [CA_KEY_FILE]);
    }

    #[test]
    fn corrupt_certificate_is_an_error_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        Ca::load_or_create(dir.path(), DOMAIN).unwrap();
        let cert_path = dir.path().join(CA_CERT_FILE);
        let key = fs::read(dir.path().join(CA_KEY_FILE)).unwrap();
        for corrupt in
            [&b"not a certificate\n"[..], b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
        {
            fs::write(&cert_path, corrupt).unwrap();
            let err = Ca::load_or_create(dir.path(), DOMAIN).unwrap_err();
            assert!(matches!(&err, TlsError::CaFileInvalid { path, .. } if *path == cert_path), "{err}");
            assert_eq!(fs::read(&cert_path).unwrap(), corrupt);
            assert_eq!(fs::read(dir.path().join(CA_KEY_FILE)).unwrap(), key);
        }
    }

    #[test]
    fn corrupt_key_is_an_error_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        Ca::load_or_create(dir.path(), DOMAIN).unwrap();
        let key_path = dir.path().join(CA_KEY_FILE);
        fs::write(&key_path, b"\xff\xfe binary junk").unwrap();
        let err = Ca::load_or_create(dir.path(), DOMAIN).unwrap_err();
        assert!(matches!(&err, TlsError::CaFileInvalid { path, .. } if *path == key_path), "{err}");
        assert_eq!(fs::read(&key_path).unwrap(), b"\xff\xfe binary junk");
    }

    #[test]
    fn key_of_another_ca_is_a_mismatch() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        Ca::load_or_create(one.path(), DOMAIN).unwrap();
        Ca::load_or_create(two.path(), DOMAIN).unwrap();
        let key_path = one.path().join(CA_KEY_FILE);
        let other_key = fs::read(two.path().join(CA_KEY_FILE)).unwrap();
        fs::remove_file(&key_path).unwrap();
        fs::write(&key_path, &other_key).unwrap();
        let cert = fs::read(one.path().join(CA_CERT_FILE)).unwrap();

        let err = Ca::load_or_create(one.path(), DOMAIN).unwrap_err();
        assert!(matches!(err, TlsError::CaKeyMismatch { .. }), "{err}");
        assert_eq!(fs::read(one.path().join(CA_CERT_FILE)).unwrap(), cert);
        assert_eq!(fs::read(&key_path).unwrap(), other_key);
    }

    #[test]
    fn a_ca_made_for_another_domain_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Ca::load_or_create(dir.path(), DOMAIN).unwrap();
        let err = Ca::load_or_create(dir.path(), "lab.example").unwrap_err();
        assert!(matches!(err, TlsError::CaWrongDomain { .. }), "{err}");
        // The same domain in another case is the same domain.
        Ca::load_or_create(dir.path(), "Prox.Local").unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let err = Ca::load_or_create(&missing, DOMAIN).unwrap_err();
        assert!(matches!(err, TlsError::Io { .. }), "{err}");
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn issue_refuses_names_it_cannot_vouch_for() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path(), DOMAIN).unwrap();
        let outside = ca.issue(&["evil.example.com".into()], &[]).unwrap_err();
        assert!(matches!(outside, TlsError::OutsideDomain { .. }), "{outside}");
        // A suffix that is not a label boundary is outside too.
        let lookalike = ca.issue(&["notprox.local".into()], &[]).unwrap_err();
        assert!(matches!(lookalike, TlsError::OutsideDomain { .. }), "{lookalike}");
        for bad in ["*.prox.local", "a b.prox.local", "app.prox.local.", ""] {
            let err = ca.issue(&[bad.into()], &[]).unwrap_err();
            assert!(matches!(err, TlsError::InvalidName(_)), "{bad}: {err}");
        }
        assert!(matches!(ca.issue(&[], &[]), Err(TlsError::NoNames)));
        assert!(matches!(Ca::load_or_create(dir.path(), "10.0.0.1"), Err(TlsError::InvalidDomain(_))));
    }

    #[test]
    fn leaf_chain_is_leaf_then_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path(), DOMAIN).unwrap();
        let ip: IpAddr = "10.20.0.1".parse().unwrap();
        let leaf = ca.issue(&["App.Prox.Local".into(), DOMAIN.into()], &[ip]).unwrap();
        assert_eq!(leaf.cert.len(), 2);
        assert_eq!(&leaf.cert[1], ca.certificate_der());
        leaf.keys_match().unwrap();
        let end_entity = ParsedCertificate::try_from(&leaf.cert[0]).unwrap();
        assert_ne!(
            end_entity.subject_public_key_info(),
            ParsedCertificate::try_from(&leaf.cert[1]).unwrap().subject_public_key_info()
        );
    }

    #[test]
    fn names_under_the_domain() {
        assert!(is_under("prox.local", "prox.local"));
        assert!(is_under("a.b.prox.local", "prox.local"));
        assert!(!is_under("aprox.local", "prox.local"));
        assert!(!is_under("local", "prox.local"));
        assert_eq!(normalise_name("APP.Prox.local").as_deref(), Some("app.prox.local"));
        assert_eq!(normalise_name("10.0.0.1"), None);
    }
}
