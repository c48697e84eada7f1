//! Leaf certificates by name: issued from the CA on first use for the names a [`NamePolicy`]
//! allows, cached, renewed before they expire; and [`SniResolver`], which hands them to rustls
//! by the client's SNI.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{debug, warn};

use super::Ca;
use super::ca::{Leaf, is_under, normalise_name};

/// Most certificates kept at once. Only names the policy allows are issued, so this is far above
/// any real set of apps; it bounds memory if the policy ever allows too much.
pub const MAX_CACHED_CERTIFICATES: usize = 4096;
/// A cached certificate this close to its expiry is replaced at its next use, long before any
/// client could see it expired.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Which names get a certificate. The proxy answers "is this a registered app's host name".
///
/// Asked on every handshake with a lower-cased, valid DNS name under the CA's domain, so a name
/// that stops being allowed stops being served at once, cached or not.
pub trait NamePolicy: Send + Sync + fmt::Debug {
    /// Whether `name` may have a certificate.
    fn allows(&self, name: &str) -> bool;
}

/// Issued certificates by lower-cased DNS name.
pub struct Certificates {
    ca: Arc<Ca>,
    policy: Arc<dyn NamePolicy>,
    /// Held while a certificate is issued, so concurrent handshakes for a new name issue it once.
    /// Issuance takes 60-100 µs in a release build (about 140 µs in debug; `issuance_is_fast`), only
    /// for a new or renewed name, and hits hold the lock for a map lookup, so one lock serves any
    /// handshake rate the proxy will see.
    cache: Mutex<Cache>,
    /// At most this many entries: [`MAX_CACHED_CERTIFICATES`] but in tests.
    limit: usize,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Entry>,
    /// Counts lookups; an entry's `last_used` is the count at its latest use.
    clock: u64,
}

struct Entry {
    leaf: Leaf,
    last_used: u64,
}

impl Certificates {
    /// Issues from `ca`, for the names `policy` allows.
    pub fn new(ca: Arc<Ca>, policy: Arc<dyn NamePolicy>) -> Self {
        Self::with_limit(ca, policy, MAX_CACHED_CERTIFICATES)
    }

    fn with_limit(ca: Arc<Ca>, policy: Arc<dyn NamePolicy>, limit: usize) -> Self {
        Certificates { ca, policy, cache: Mutex::new(Cache::default()), limit: limit.max(1) }
    }

    /// The CA the certificates come from.
    pub fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }

    /// The certificate for `name` (any case), issued now if there is none or it expires within
    /// [`RENEW_BEFORE`]. `None` when `name` is not a valid DNS name, is outside the CA's domain,
    /// is refused by the policy, or cannot be issued (logged).
    pub fn for_name(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let Some(name) = normalise_name(name) else {
            debug!(name = ?name, "no certificate for an invalid DNS name");
            return None;
        };
        if !is_under(&name, self.ca.domain()) || !self.policy.allows(&name) {
            debug!(%name, "no certificate for a name that is not an app's");
            return None;
        }
        let now = SystemTime::now();
        // The map is whole after any panic (each change is one insert or remove), so a poisoned
        // lock is still good to use.
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.clock += 1;
        let tick = cache.clock;
        if let Some(entry) = cache.entries.get_mut(&name) {
            entry.last_used = tick;
            if !expires_soon(&entry.leaf, now) {
                return Some(entry.leaf.key.clone());
            }
        }
        match self.ca.issue_leaf(std::slice::from_ref(&name), &[]) {
            Ok(leaf) => {
                let key = leaf.key.clone();
                if !cache.entries.contains_key(&name) && cache.entries.len() >= self.limit {
                    cache.evict_least_recent();
                }
                cache.entries.insert(name, Entry { leaf, last_used: tick });
                Some(key)
            }
            Err(e) => {
                warn!(%name, error = %e, "cannot issue a certificate");
                // A failed renewal keeps serving the old certificate while it is valid.
                let old = cache.entries.get(&name).filter(|entry| entry.leaf.not_after > now);
                old.map(|entry| entry.leaf.key.clone())
            }
        }
    }
}

impl Cache {
    /// Drops the entry used longest ago: the name most likely gone (a removed app). A scan, but
    /// only when a new name arrives with the cache full.
    fn evict_least_recent(&mut self) {
        let oldest =
            self.entries.iter().min_by_key(|(_, entry)| entry.last_used).map(|(name, _)| name.clone());
        if let Some(name) = oldest {
            debug!(%name, "certificate cache full; dropping the least recently used");
            self.entries.remove(&name);
        }
    }
}

fn expires_soon(leaf: &Leaf, now: SystemTime) -> bool {
    leaf.not_after.duration_since(now).map_or(true, |left| left < RENEW_BEFORE)
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("domain", &self.ca.domain())
            .field("policy", &self.policy)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Picks the proxy's certificate by the client's SNI. No SNI, or a name without certificate:
/// no certificate, and rustls fails the handshake.
#[derive(Debug)]
pub struct SniResolver {
    certs: Arc<Certificates>,
}

impl SniResolver {
    /// Resolves through `certs`.
    pub fn new(certs: Arc<Certificates>) -> Self {
        SniResolver { certs }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match client_hello.server_name() {
            Some(name) => self.certs.for_name(name),
            None => {
                debug!("tls client sent no server name; no certificate");
                None
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::sync::Barrier;
    use std::time::Instant;

    use super::*;

    /// Allows the names listed.
    #[derive(Debug)]
    pub(crate) struct Only(pub(crate) &'static [&'static str]);

    impl NamePolicy for Only {
        fn allows(&self, name: &str) -> bool {
            self.0.contains(&name)
        }
    }

    /// Allows every name.
    #[derive(Debug)]
    pub(crate) struct Anything;

    impl NamePolicy for Anything {
        fn allows(&self, _: &str) -> bool {
            true
        }
    }

    /// A CA for `prox.local` in a temporary directory (kept alive by the caller).
    pub(crate) fn ca() -> (tempfile::TempDir, Arc<Ca>) {
        let dir = tempfile::tempdir().unwrap();
        let ca = Arc::new(Ca::load_or_create(dir.path(), "prox.local").unwrap());
        (dir, ca)
    }

    #[test]
    fn same_certificate_for_the_same_name_in_any_case() {
        let (_dir, ca) = ca();
        let certs = Certificates::new(ca, Arc::new(Only(&["app.prox.local"])));
        let first = certs.for_name("app.prox.local").unwrap();
        assert!(Arc::ptr_eq(&first, &certs.for_name("app.prox.local").unwrap()));
        assert!(Arc::ptr_eq(&first, &certs.for_name("APP.Prox.Local").unwrap()));
    }

    #[test]
    fn no_certificate_for_refused_invalid_or_foreign_names() {
        let (_dir, ca) = ca();
        let certs = Certificates::new(ca.clone(), Arc::new(Only(&["app.prox.local"])));
        assert!(certs.for_name("other.prox.local").is_none());
        assert!(certs.for_name("").is_none());
        assert!(certs.for_name("app.prox.local.").is_none());
        assert!(certs.for_name("127.0.0.1").is_none());
        // Even a policy that says yes to everything gets nothing outside the CA's domain.
        let open = Certificates::new(ca, Arc::new(Anything));
        assert!(open.for_name("evil.example.com").is_none());
        assert!(open.for_name("x.prox.local").is_some());
    }

    #[test]
    fn renewed_when_close_to_expiry() {
        let (_dir, ca) = ca();
        let certs = Certificates::new(ca, Arc::new(Only(&["app.prox.local"])));
        let first = certs.for_name("app.prox.local").unwrap();
        let soon = SystemTime::now() + RENEW_BEFORE - Duration::from_secs(60);
        certs.cache.lock().unwrap().entries.get_mut("app.prox.local").unwrap().leaf.not_after = soon;
        let renewed = certs.for_name("app.prox.local").unwrap();
        assert!(!Arc::ptr_eq(&first, &renewed));
        assert!(Arc::ptr_eq(&renewed, &certs.for_name("app.prox.local").unwrap()));
    }

    #[test]
    fn full_cache_drops_the_least_recently_used() {
        let (_dir, ca) = ca();
        let policy = Arc::new(Only(&["a.prox.local", "b.prox.local", "c.prox.local"]));
        let certs = Certificates::with_limit(ca, policy, 2);
        let a = certs.for_name("a.prox.local").unwrap();
        let b = certs.for_name("b.prox.local").unwrap();
        certs.for_name("a.prox.local").unwrap();
        let c = certs.for_name("c.prox.local").unwrap();
        assert_eq!(certs.cache.lock().unwrap().entries.len(), 2);
        assert!(Arc::ptr_eq(&a, &certs.for_name("a.prox.local").unwrap()));
        assert!(Arc::ptr_eq(&c, &certs.for_name("c.prox.local").unwrap()));
        // b was dropped, so it is issued anew.
        assert!(!Arc::ptr_eq(&b, &certs.for_name("b.prox.local").unwrap()));
    }

    #[test]
    fn concurrent_first_handshakes_share_one_certificate() {
        const THREADS: usize = 16;
        let (_dir, ca) = ca();
        let certs = Certificates::new(ca, Arc::new(Only(&["app.prox.local"])));
        let start = Barrier::new(THREADS);
        let keys: Vec<_> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        certs.for_name("app.prox.local").unwrap()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|key| Arc::ptr_eq(key, &keys[0])));
    }

    /// Measures issuance, the time a handshake for a new name waits (and holds the cache lock).
    /// Run with `--nocapture` to see the figure; the bound only catches a pathology (say, RSA
    /// keys), since debug builds of ring are several times slower than release.
    #[test]
    fn issuance_is_fast() {
        const ROUNDS: u32 = 50;
        let (_dir, ca) = ca();
        let started = Instant::now();
        for n in 0..ROUNDS {
            ca.issue(&[format!("app{n}.prox.local")], &[]).unwrap();
        }
        let each = started.elapsed() / ROUNDS;
        eprintln!("issuing one leaf certificate took {each:?} on average over {ROUNDS}");
        assert!(each < Duration::from_millis(50), "{each:?}");
    }
}
