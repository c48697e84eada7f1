//! The database file: created whole or not at all, and opened only when intact and ours.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use redb::{Builder, Database, DatabaseError, StorageError};
use tracing::{info, warn};

use super::codec;
use super::error::StoreError;

/// The store's file name inside the state directory.
pub(crate) const FILE_NAME: &str = "proximity.redb";

/// redb's page cache limit. A full /24 of leases is a few hundred KiB; redb's default (1 GiB)
/// is sized for servers, not for a container with a small memory limit.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Creates the directory and, if there is no file yet, a new initialised store; returns the
/// file's path. An existing file (even an empty one) is never created over.
pub(crate) fn prepare(dir: &Path) -> Result<PathBuf, StoreError> {
    fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.to_owned(), source })?;
    let path = dir.join(FILE_NAME);
    // `symlink_metadata`, so that a dangling symlink counts as present and fails to open rather
    // than being created through.
    match fs::symlink_metadata(&path) {
        Ok(_) => Ok(path),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            create(&path)?;
            Ok(path)
        }
        Err(e) => Err(StoreError::Open { path, source: e.into() }),
    }
}

/// Builds the new store under a private name and publishes it with `link`, which (unlike
/// `rename`) never replaces a file another process published meanwhile. So `proximity.redb`
/// is either absent or a complete store with its schema: an empty or partial file under that
/// name is damage, reported as such, never mistaken for "new".
fn create(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let staging = dir.join(format!(".{FILE_NAME}.{}.new", std::process::id()));
    let publish_err = |source| StoreError::Publish { path: path.to_owned(), source };
    let create_err = |source: redb::Error| StoreError::Create { path: staging.clone(), source };

    // Only a crashed earlier creation by a process with our pid can have left this name.
    match fs::remove_file(&staging) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(publish_err(e)),
    }
    let db = Builder::new().create(&staging).map_err(|e| create_err(e.into()))?;
    codec::init_schema(&db).map_err(create_err)?;
    db.close().map_err(|e| create_err(e.into()))?;

    let linked = fs::hard_link(&staging, path);
    if let Err(e) = fs::remove_file(&staging) {
        warn!(path = %staging.display(), error = %e, "cannot remove staging file of new state store");
    }
    match linked {
        Ok(()) => info!(path = %path.display(), "created state store"),
        // Another process published its store first: open that one.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(publish_err(e)),
    }
    // The new name must survive a crash as surely as the data behind it.
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(publish_err)
}

/// Opens an existing store with a full integrity check: redb trusts a cleanly closed file
/// without one and may panic on a file damaged outside redb, whereas the check reports it. The
/// check reads the whole file, which for a lease table is milliseconds.
pub(crate) fn open(path: &Path) -> Result<Database, StoreError> {
    let db = Builder::new()
        .set_check_integrity_on_open(true)
        .set_cache_size(CACHE_BYTES)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    codec::check_schema(&db, path)?;
    codec::migrate(&db, path)?;
    Ok(db)
}

fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    let path = path.to_owned();
    match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path },
        DatabaseError::Storage(StorageError::Corrupted(detail)) => StoreError::Corrupt { path, detail },
        // How redb reports a header that is not redb's (wrong magic) or a file cut short.
        DatabaseError::Storage(StorageError::Io(e))
            if matches!(e.kind(), ErrorKind::InvalidData | ErrorKind::UnexpectedEof) =>
        {
            StoreError::Corrupt { path, detail: e.to_string() }
        }
        other => StoreError::Open { path, source: other.into() },
    }
}
