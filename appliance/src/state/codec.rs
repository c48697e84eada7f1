//! The on-disk schema: table definitions, the schema version (and the migration from older
//! ones), and how a lease, an app, a reservation or a port forward becomes key and value bytes
//! (and back).

use std::net::Ipv4Addr;
use std::path::Path;

use proximity_config::api::{ApiReservation, App};
use proximity_config::{MacAddr, PortForward, Protocol};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use tracing::info;

use super::error::StoreError;
use super::lease::Lease;
use super::store::Change;

/// The schema this build writes. Bump it when a table or an encoding changes incompatibly, and
/// teach [`check_schema`] and [`migrate`] the older versions it still reads.
/// - 1: `meta`, `leases`.
/// - 2: adds `apps` and `reservations`.
/// - 3: adds `forwards`.
pub(crate) const SCHEMA_VERSION: u64 = 3;

/// Small facts about the file itself; its presence is how we know the file is ours.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const SCHEMA_VERSION_KEY: &str = "schema_version";

/// Leases keyed by the address as a big-endian `u32`, so iteration runs in address order.
/// Values are the JSON of [`Lease`]: readable with any redb tool, and new optional fields
/// decode from old records without a migration.
pub(crate) const LEASES: TableDefinition<u32, &[u8]> = TableDefinition::new("leases");

/// Apps keyed by name (a lower-case DNS label); values are the JSON of [`App`], the same shape
/// the admin API takes and gives.
pub(crate) const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");

/// Reservations made through the admin API, keyed by MAC (`52:54:00:12:34:56`); values are the
/// JSON of [`ApiReservation`]. The config file's reservations are not stored: the file is theirs.
pub(crate) const RESERVATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("reservations");

/// Port forwards added through the admin API, keyed `tcp/2222` (a forward is known by its
/// protocol and port); values are the JSON of [`PortForward`]. The config file's are not stored.
pub(crate) const FORWARDS: TableDefinition<&str, &[u8]> = TableDefinition::new("forwards");

/// The key a forward of `protocol` `port` is stored under.
pub(crate) fn forward_key(protocol: Protocol, port: u16) -> String {
    format!("{protocol}/{port}")
}

/// A change ready for the writer thread: encoded by the caller, so a record that cannot be
/// encoded fails only its own commit and the writer does nothing but I/O.
#[derive(Debug)]
pub(crate) enum Op {
    PutLease { key: u32, value: Vec<u8> },
    DeleteLease { key: u32 },
    PutApp { name: String, value: Vec<u8> },
    DeleteApp { name: String },
    PutReservation { mac: String, value: Vec<u8> },
    DeleteReservation { mac: String },
    PutForward { key: String, value: Vec<u8> },
    DeleteForward { key: String },
}

pub(crate) fn encode(changes: Vec<Change>) -> Result<Vec<Op>, StoreError> {
    changes
        .into_iter()
        .map(|change| match change {
            Change::PutLease(lease) => serde_json::to_vec(&lease)
                .map(|value| Op::PutLease { key: u32::from(lease.ip), value })
                .map_err(|source| StoreError::EncodeLease { ip: lease.ip, source }),
            Change::DeleteLease(ip) => Ok(Op::DeleteLease { key: u32::from(ip) }),
            Change::PutApp(app) => serde_json::to_vec(&app)
                .map(|value| Op::PutApp { name: app.name.clone(), value })
                .map_err(|source| StoreError::EncodeApp { name: app.name.clone(), source }),
            Change::DeleteApp(name) => Ok(Op::DeleteApp { name }),
            Change::PutReservation(r) => serde_json::to_vec(&r)
                .map(|value| Op::PutReservation { mac: r.mac.to_string(), value })
                .map_err(|source| StoreError::EncodeReservation { mac: r.mac, source }),
            Change::DeleteReservation(mac) => Ok(Op::DeleteReservation { mac: mac.to_string() }),
            Change::PutForward(f) => serde_json::to_vec(&f)
                .map(|value| Op::PutForward { key: forward_key(f.protocol, f.port), value })
                .map_err(|source| StoreError::EncodeForward { forward: f, source }),
            Change::DeleteForward(protocol, port) => {
                Ok(Op::DeleteForward { key: forward_key(protocol, port) })
            }
        })
        .collect()
}

/// Decodes one stored app; like leases, the key is the authority on which app it is.
pub(crate) fn decode_app(path: &Path, key: &str, value: &[u8]) -> Result<App, StoreError> {
    let app: App = serde_json::from_slice(value).map_err(|source| StoreError::DecodeApp {
        path: path.to_owned(),
        name: key.to_owned(),
        source,
    })?;
    if app.name != key {
        return Err(StoreError::AppKeyMismatch {
            path: path.to_owned(),
            key: key.to_owned(),
            recorded: app.name,
        });
    }
    Ok(app)
}

/// Decodes one stored record. The key is the authority on which address a record is for: a
/// record whose body names another address is reported, not trusted.
pub(crate) fn decode(path: &Path, key: u32, value: &[u8]) -> Result<Lease, StoreError> {
    let ip = Ipv4Addr::from(key);
    let lease: Lease = serde_json::from_slice(value).map_err(|source| StoreError::DecodeLease {
        path: path.to_owned(),
        ip,
        source,
    })?;
    if lease.ip != ip {
        return Err(StoreError::LeaseKeyMismatch { path: path.to_owned(), key: ip, recorded: lease.ip });
    }
    Ok(lease)
}

/// Writes the tables and the version into a database that has just been created.
pub(crate) fn init_schema(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)?;
        txn.open_table(LEASES)?;
        txn.open_table(APPS)?;
        txn.open_table(RESERVATIONS)?;
        txn.open_table(FORWARDS)?;
    }
    txn.commit()?;
    Ok(())
}

/// Brings a store written by an older build up to [`SCHEMA_VERSION`] in one transaction (so a
/// crash leaves it at the old version or the new, never between). Only adds: an older build
/// then refuses the file (its version is newer) rather than misreading it.
pub(crate) fn migrate(db: &Database, path: &Path) -> Result<(), StoreError> {
    let found = schema_version(db, path)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    let write_err = |source: redb::Error| StoreError::Migrate { path: path.to_owned(), found, source };
    let txn = db.begin_write().map_err(|e| write_err(e.into()))?;
    {
        // 1 -> 2: the apps and reservations tables; 2 -> 3: the forwards table. Opening a table
        // that exists changes nothing, so one path serves every older version.
        txn.open_table(APPS).map_err(|e| write_err(e.into()))?;
        txn.open_table(RESERVATIONS).map_err(|e| write_err(e.into()))?;
        txn.open_table(FORWARDS).map_err(|e| write_err(e.into()))?;
        let mut meta = txn.open_table(META).map_err(|e| write_err(e.into()))?;
        meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION).map_err(|e| write_err(e.into()))?;
    }
    txn.commit().map_err(|e| write_err(e.into()))?;
    info!(path = %path.display(), from = found, to = SCHEMA_VERSION, "state store schema upgraded");
    Ok(())
}

/// Refuses a file that is a redb database but not one of ours, or one written by a newer
/// build: reading it with this build's assumptions could misread or, worse, rewrite it.
pub(crate) fn check_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
    let read_err = |source: redb::Error| StoreError::Read { path: path.to_owned(), source };
    let foreign = |reason: String| StoreError::Foreign { path: path.to_owned(), reason };
    let found = schema_version(db, path)?;
    if !(OLDEST_READABLE_SCHEMA..=SCHEMA_VERSION).contains(&found) {
        return Err(StoreError::SchemaVersion { path: path.to_owned(), found, supported: SCHEMA_VERSION });
    }
    let txn = db.begin_read().map_err(|e| read_err(e.into()))?;
    let tables = txn.open_table(LEASES).map(drop).and_then(|()| {
        // Version 1 has no apps table, version 2 no forwards table; `migrate` adds them.
        let v2 = || txn.open_table(APPS).map(drop).and_then(|()| txn.open_table(RESERVATIONS).map(drop));
        match found {
            1 => Ok(()),
            2 => v2(),
            _ => v2().and_then(|()| txn.open_table(FORWARDS).map(drop)),
        }
    });
    match tables {
        Ok(()) => Ok(()),
        Err(TableError::TableDoesNotExist(name)) => Err(foreign(format!("it has no `{name}` table"))),
        Err(e @ TableError::TableTypeMismatch { .. }) => Err(foreign(e.to_string())),
        Err(e) => Err(read_err(e.into())),
    }
}

/// The oldest schema this build opens (and migrates).
const OLDEST_READABLE_SCHEMA: u64 = 1;

/// The `schema_version` recorded in `meta`.
fn schema_version(db: &Database, path: &Path) -> Result<u64, StoreError> {
    let read_err = |source: redb::Error| StoreError::Read { path: path.to_owned(), source };
    let foreign = |reason: String| StoreError::Foreign { path: path.to_owned(), reason };
    let txn = db.begin_read().map_err(|e| read_err(e.into()))?;
    let meta = match txn.open_table(META) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Err(foreign("it has no `meta` table".into())),
        Err(e @ TableError::TableTypeMismatch { .. }) => return Err(foreign(e.to_string())),
        Err(e) => return Err(read_err(e.into())),
    };
    let found = meta
        .get(SCHEMA_VERSION_KEY)
        .map_err(|e| read_err(e.into()))?
        .map(|guard| guard.value())
        .ok_or_else(|| foreign(format!("its `meta` table has no `{SCHEMA_VERSION_KEY}`")))?;
    Ok(found)
}

/// Every app in name order; the first record that does not decode fails the whole read.
pub(crate) fn read_apps(db: &Database, path: &Path) -> Result<Vec<App>, StoreError> {
    let read_err = |source: redb::Error| StoreError::Read { path: path.to_owned(), source };
    let txn = db.begin_read().map_err(|e| read_err(e.into()))?;
    let table = txn.open_table(APPS).map_err(|e| read_err(e.into()))?;
    let mut apps = Vec::new();
    for entry in table.iter().map_err(|e| read_err(e.into()))? {
        let (key, value) = entry.map_err(|e| read_err(e.into()))?;
        apps.push(decode_app(path, key.value(), value.value())?);
    }
    Ok(apps)
}

/// Every API reservation in MAC order; a record that does not decode, or is stored under
/// another MAC, fails the whole read.
pub(crate) fn read_reservations(db: &Database, path: &Path) -> Result<Vec<ApiReservation>, StoreError> {
    let read_err = |source: redb::Error| StoreError::Read { path: path.to_owned(), source };
    let txn = db.begin_read().map_err(|e| read_err(e.into()))?;
    let table = txn.open_table(RESERVATIONS).map_err(|e| read_err(e.into()))?;
    let mut reservations = Vec::new();
    for entry in table.iter().map_err(|e| read_err(e.into()))? {
        let (key, value) = entry.map_err(|e| read_err(e.into()))?;
        let key = key.value();
        let bad = |reason: String| StoreError::DecodeReservation {
            path: path.to_owned(),
            mac: key.to_owned(),
            reason,
        };
        let r: ApiReservation = serde_json::from_slice(value.value()).map_err(|e| bad(e.to_string()))?;
        if key.parse::<MacAddr>().ok() != Some(r.mac) {
            return Err(bad(format!("the record is for {}", r.mac)));
        }
        reservations.push(r);
    }
    Ok(reservations)
}

/// Every API forward in (protocol, port) order; a record that does not decode, or is stored
/// under another protocol and port, fails the whole read.
pub(crate) fn read_forwards(db: &Database, path: &Path) -> Result<Vec<PortForward>, StoreError> {
    let read_err = |source: redb::Error| StoreError::Read { path: path.to_owned(), source };
    let txn = db.begin_read().map_err(|e| read_err(e.into()))?;
    let table = txn.open_table(FORWARDS).map_err(|e| read_err(e.into()))?;
    let mut forwards = Vec::new();
    for entry in table.iter().map_err(|e| read_err(e.into()))? {
        let (key, value) = entry.map_err(|e| read_err(e.into()))?;
        let key = key.value();
        let bad =
            |reason: String| StoreError::DecodeForward { path: path.to_owned(), key: key.to_owned(), reason };
        let f: PortForward = serde_json::from_slice(value.value()).map_err(|e| bad(e.to_string()))?;
        if forward_key(f.protocol, f.port) != key {
            return Err(bad(format!("the record is for {}/{}", f.protocol, f.port)));
        }
        forwards.push(f);
    }
    // Keys sort as text ("tcp/80" after "tcp/2222"); callers want port order.
    forwards.sort_by_key(|f| (f.protocol, f.port));
    Ok(forwards)
}

/// Every lease in address order; the first record that does not decode fails the whole read.
pub(crate) fn read_leases(db: &Database, path: &Path) -> Result<Vec<Lease>, StoreError> {
    let read_err = |source: redb::Error| StoreError::Read { path: path.to_owned(), source };
    let txn = db.begin_read().map_err(|e| read_err(e.into()))?;
    let table = txn.open_table(LEASES).map_err(|e| read_err(e.into()))?;
    let mut leases = Vec::new();
    for entry in table.iter().map_err(|e| read_err(e.into()))? {
        let (key, value) = entry.map_err(|e| read_err(e.into()))?;
        leases.push(decode(path, key.value(), value.value())?);
    }
    Ok(leases)
}
