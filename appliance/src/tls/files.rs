//! The CA's files on disk: read as they are, published whole or not at all, never replaced, the
//! key never readable by others, not even for a moment.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::warn;

use super::TlsError;

/// Permission bits that give group or others any access: a key file with any of them set is
/// reported (not refused: the operator may have a reason, and refusing would stop every service).
const GROUP_OR_OTHER: u32 = 0o077;

/// The contents of `path` as text, or `None` when there is no such file.
pub(super) fn read_existing(path: &Path) -> Result<Option<String>, TlsError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TlsError::Io { path: path.to_owned(), source }),
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| TlsError::CaFileInvalid { path: path.to_owned(), reason: "not PEM text".into() })
}

/// Warns when the private key at `path` can be read by anyone but its owner.
pub(super) fn warn_if_exposed(path: &Path) {
    match fs::metadata(path) {
        Ok(meta) if meta.mode() & GROUP_OR_OTHER != 0 => warn!(
            path = %path.display(),
            mode = format_args!("{:o}", meta.mode() & 0o777),
            "the CA key is readable by others than its owner; chmod 600 it"
        ),
        Ok(_) => {}
        Err(e) => warn!(path = %path.display(), error = %e, "cannot check the CA key's permissions"),
    }
}

/// Creates `path` holding `contents` with permission bits `mode`, atomically: the bytes go to a
/// temporary file in the same directory, created with `mode` from the start and synced, which is
/// then hard-linked as `path` and the directory synced. A crash leaves either no `path` or the
/// whole file. The link, unlike `rename`, fails when `path` already exists (say, another instance
/// racing us), so an existing CA file is never replaced.
pub(super) fn create_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let io_error = |source| TlsError::Io { path: path.to_owned(), source };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| io_error(io::ErrorKind::InvalidInput.into()))?;
    let tmp = dir.join(format!(".{}.tmp-{}-{}", name.to_string_lossy(), process::id(), nanos()));
    let written = write_synced(&tmp, contents, mode).and_then(|()| fs::hard_link(&tmp, path));
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            warn!(path = %tmp.display(), error = %e, "cannot remove a temporary CA file; remove it by hand");
        }
        _ => {}
    }
    written.map_err(io_error)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| TlsError::Io { path: dir.to_owned(), source })
}

/// Writes a new file at `path` with exactly `mode` and syncs it.
fn write_synced(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    // `mode` at creation, so the file is never more open than asked; the umask can only have
    // removed bits, so they are set once more on the open file.
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Sub-second part of the clock, to tell apart temporary files of one process.
fn nanos() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}
