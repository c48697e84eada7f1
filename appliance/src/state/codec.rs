//! The on-disk schema: table definitions, the schema version, and how a lease becomes a
//! key and value bytes (and back).

use std::net::Ipv4Addr;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use super::error::StoreError;
use super::lease::Lease;
use super::store::Change;

/// The schema this build writes. Bump it when a table or an encoding changes incompatibly, and
/// teach [`check_schema`] to migrate the older versions it still reads.
pub(crate) const SCHEMA_VERSION: u64 = 1;

/// Small facts about the file itself; its presence is how we know the file is ours.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const SCHEMA_VERSION_KEY: &str = "schema_version";

/// Leases keyed by the address as a big-endian `u32`, so iteration runs in address order.
/// Values are the JSON of [`Lease`]: readable with any redb tool, and new optional fields
/// decode from old records without a migration.
pub(crate) const LEASES: TableDefinition<u32, &[u8]> = TableDefinition::new("leases");

/// A change ready for the writer thread: encoded by the caller, so a record that cannot be
/// encoded fails only its own commit and the writer does nothing but I/O.
#[derive(Debug)]
pub(crate) enum Op {
    Put { key: u32, value: Vec<u8> },
    Delete { key: u32 },
}

pub(crate) fn encode(changes: Vec<Change>) -> Result<Vec<Op>, StoreError> {
    changes
        .into_iter()
        .map(|change| match change {
            Change::PutLease(lease) => serde_json::to_vec(&lease)
                .map(|value| Op::Put { key: u32::from(lease.ip), value })
                .map_err(|source| StoreError::EncodeLease { ip: lease.ip, source }),
            Change::DeleteLease(ip) => Ok(Op::Delete { key: u32::from(ip) }),
        })
        .collect()
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
    }
    txn.commit()?;
    Ok(())
}

/// Refuses a file that is a redb database but not one of ours, or one written by a newer
/// build: reading it with this build's assumptions could misread or, worse, rewrite it.
pub(crate) fn check_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
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
    if found != SCHEMA_VERSION {
        return Err(StoreError::SchemaVersion { path: path.to_owned(), found, supported: SCHEMA_VERSION });
    }
    match txn.open_table(LEASES) {
        Ok(_) => Ok(()),
        Err(TableError::TableDoesNotExist(_)) => Err(foreign("it has no `leases` table".into())),
        Err(e @ TableError::TableTypeMismatch { .. }) => Err(foreign(e.to_string())),
        Err(e) => Err(read_err(e.into())),
    }
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
