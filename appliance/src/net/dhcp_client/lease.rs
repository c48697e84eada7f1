//! The WAN lease: what the server gave and when each of its timers falls due, and the file in
//! the state directory it is kept in so a restarted (or replaced) appliance asks for the same
//! address again (INIT-REBOOT) instead of starting over.
//!
//! A JSON file of its own rather than a table of the store: it is the appliance's own client
//! state, like dhclient's lease file, written a few times per lease period, and it is read
//! before any of the store's users start. It also keeps the client identifier, so the server
//! knows us again even on a new interface whose MAC differs (a replaced container).

use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The lease file's name in the state directory.
pub const LEASE_FILE: &str = "wan-dhcp.json";

/// A lease we hold (or held).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Net,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Who gave it: renewals go there.
    pub server: Ipv4Addr,
    pub lease_time: Duration,
    pub t1: Duration,
    pub t2: Duration,
    /// When the lease started, on the monotonic clock that drives the timers.
    pub acquired: Instant,
    /// The same moment on the wall clock (seconds since the epoch), for the file: a monotonic
    /// instant means nothing to the next process.
    pub acquired_unix: u64,
}

impl Lease {
    pub fn renew_at(&self) -> Instant {
        self.acquired + self.t1
    }

    pub fn rebind_at(&self) -> Instant {
        self.acquired + self.t2
    }

    pub fn expires_at(&self) -> Instant {
        self.acquired + self.lease_time
    }

    /// Whether it is still valid at wall-clock time `now_unix`.
    pub fn is_valid_at(&self, now_unix: u64) -> bool {
        self.acquired_unix.saturating_add(self.lease_time.as_secs()) > now_unix
    }
}

/// The file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    /// The client identifier we present (option 61), as hex bytes (`01:52:54:00:12:34:56`).
    #[serde(with = "hex_bytes")]
    pub client_id: Vec<u8>,
    pub lease: Option<SavedLease>,
}

/// A lease as written to the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedLease {
    pub address: Ipv4Net,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub server: Ipv4Addr,
    pub lease_secs: u64,
    pub t1_secs: u64,
    pub t2_secs: u64,
    pub acquired_unix: u64,
}

impl SavedLease {
    pub fn of(lease: &Lease) -> SavedLease {
        SavedLease {
            address: lease.address,
            router: lease.router,
            dns: lease.dns.clone(),
            server: lease.server,
            lease_secs: lease.lease_time.as_secs(),
            t1_secs: lease.t1.as_secs(),
            t2_secs: lease.t2.as_secs(),
            acquired_unix: lease.acquired_unix,
        }
    }

    /// The lease on this process's monotonic clock: `now` is `now_unix` on the wall clock. A
    /// lease from the future (the clock was set back) counts as acquired now.
    pub fn restore(&self, now: Instant, now_unix: u64) -> Lease {
        let age = Duration::from_secs(now_unix.saturating_sub(self.acquired_unix));
        let acquired = now.checked_sub(age).unwrap_or(now);
        let lease_time = Duration::from_secs(self.lease_secs);
        let t2 = Duration::from_secs(self.t2_secs).min(lease_time);
        Lease {
            address: self.address,
            router: self.router,
            dns: self.dns.clone(),
            server: self.server,
            lease_time,
            t1: Duration::from_secs(self.t1_secs).min(t2),
            t2,
            acquired,
            acquired_unix: self.acquired_unix.min(now_unix),
        }
    }

    /// Whether the lease has time left at `now_unix`.
    pub fn valid_at(&self, now_unix: u64) -> bool {
        self.acquired_unix.saturating_add(self.lease_secs) > now_unix
    }
}

/// Why the lease file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LeaseFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a lease file: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The lease file of one state directory.
#[derive(Debug, Clone)]
pub struct LeaseFile {
    path: PathBuf,
}

impl LeaseFile {
    pub fn in_dir(dir: &Path) -> LeaseFile {
        LeaseFile { path: dir.join(LEASE_FILE) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the file holds; `None` when there is no file yet.
    pub fn load(&self) -> Result<Option<Saved>, LeaseFileError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LeaseFileError::Read { path: self.path.clone(), source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| LeaseFileError::Parse { path: self.path.clone(), source })
    }

    /// Replaces the file with `saved`, atomically: written beside it, synced, renamed over it.
    /// A crash leaves the old file or the new one, never half of one.
    pub fn store(&self, saved: &Saved) -> Result<(), LeaseFileError> {
        let write_err = |source| LeaseFileError::Write { path: self.path.clone(), source };
        let text = serde_json::to_vec_pretty(saved).map_err(|e| write_err(io::Error::other(e)))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(write_err)?;
        let staging = dir.join(format!(".{LEASE_FILE}.new"));
        let mut file = fs::File::create(&staging).map_err(write_err)?;
        file.write_all(&text).and_then(|()| file.sync_all()).map_err(write_err)?;
        fs::rename(&staging, &self.path).map_err(write_err)?;
        // The rename is durable once the directory is synced; losing it only costs a DISCOVER.
        if let Ok(dir) = fs::File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// Bytes as colon-separated hex, as MAC addresses and client identifiers are written.
mod hex_bytes {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text.join(":"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(Vec::new());
        }
        text.split(':')
            .map(|byte| {
                u8::from_str_radix(byte, 16)
                    .map_err(|_| D::Error::custom(format!("{byte:?} is not a hex byte")))
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lease(now: Instant) -> Lease {
        Lease {
            address: "192.0.2.50/24".parse().unwrap(),
            router: Some(Ipv4Addr::new(192, 0, 2, 1)),
            dns: vec![Ipv4Addr::new(192, 0, 2, 53)],
            server: Ipv4Addr::new(192, 0, 2, 1),
            lease_time: Duration::from_secs(3600),
            t1: Duration::from_secs(1800),
            t2: Duration::from_secs(3150),
            acquired: now,
            acquired_unix: 1_000_000,
        }
    }

    #[test]
    fn a_stored_lease_comes_back_with_its_age() {
        let dir = tempfile::tempdir().unwrap();
        let file = LeaseFile::in_dir(dir.path());
        assert_eq!(file.load().unwrap(), None);
        let now = Instant::now();
        let saved = Saved { client_id: vec![1, 2, 0, 0, 0, 0, 7], lease: Some(SavedLease::of(&lease(now))) };
        file.store(&saved).unwrap();
        let loaded = file.load().unwrap().unwrap();
        assert_eq!(loaded, saved);
        assert!(fs::read_to_string(file.path()).unwrap().contains("\"01:02:00:00:00:00:07\""));

        // Read back 100 s later by another process: 100 s old, every timer 100 s nearer.
        let later = now + Duration::from_secs(5000);
        let restored = loaded.lease.unwrap().restore(later, 1_000_100);
        assert_eq!(restored.acquired, later - Duration::from_secs(100));
        assert_eq!(restored.expires_at(), later + Duration::from_secs(3500));
        assert!(restored.is_valid_at(1_003_599));
        assert!(!restored.is_valid_at(1_003_600));
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = LeaseFile::in_dir(dir.path());
        fs::write(file.path(), "{ not json").unwrap();
        let err = file.load().unwrap_err();
        assert!(err.to_string().contains(LEASE_FILE), "{err}");
    }
}
