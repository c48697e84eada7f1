//! The admin API's bearer token: read from its file, or created there at first start, or known
//! only by its SHA-256 (`admin.token_sha256`, a deployment's); compared in constant time. Also
//! the key of the CA proof (`ca_proof`), which is the token's SHA-256 in every case.
//!
//! The file is created like the CA key (`tls::files`): a temporary file made with mode 0600 from
//! the start, written and synced, hard-linked into place (a link, unlike `rename`, never replaces
//! a file someone else created meanwhile), then the directory synced. A file readable by group
//! or others is reported, not refused, as the CA key is: the operator may have a reason, and
//! refusing would keep the whole appliance (DHCP, DNS) from starting over a permission bit.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use proximity_config::AdminConfig;
use ring::digest;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

/// Shortest token accepted from a file: 32 characters (128 bits as hex) resist guessing.
pub const MIN_TOKEN_LEN: usize = 32;
/// Random bytes in a created token; written as twice as many hex digits.
pub const TOKEN_BYTES: usize = 32;
/// Mode of a created token file: its owner only.
const TOKEN_MODE: u32 = 0o600;
/// Mode of a created token directory.
const DIR_MODE: u32 = 0o700;
/// Permission bits that give group or others any access.
const GROUP_OR_OTHER: u32 = 0o077;

/// Why the token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the admin token file {}", .path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error(
        "the admin token in {} is {len} characters long; it must be at least {MIN_TOKEN_LEN} \
         (delete the file to have a new one created)",
        .path.display()
    )]
    TooShort { path: PathBuf, len: usize },

    #[error("the admin token file {} is not UTF-8 text", .path.display())]
    NotText { path: PathBuf },

    #[error("cannot create the admin token file {}", .path.display())]
    Create { path: PathBuf, source: io::Error },

    #[error("cannot draw random bytes for the admin token: {0}")]
    Random(getrandom::Error),
}

/// The secret clients present as `Authorization: Bearer <token>`. Its `Debug` hides it.
#[derive(Clone)]
pub struct Token {
    check: Check,
}

/// What a presented token is compared with.
#[derive(Clone)]
enum Check {
    /// The token itself (from its file, or given).
    Secret(Vec<u8>),
    /// Only its SHA-256: the presented token is hashed first.
    Sha256([u8; SHA256_BYTES]),
}

/// Bytes of a SHA-256 digest.
pub const SHA256_BYTES: usize = 32;

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token with this text (tests, embedding); no length check.
    pub fn new(secret: impl Into<String>) -> Self {
        Token { check: Check::Secret(secret.into().into_bytes()) }
    }

    /// A token known only by its SHA-256: the appliance never holds the secret.
    pub fn from_sha256(digest: [u8; SHA256_BYTES]) -> Self {
        Token { check: Check::Sha256(digest) }
    }

    /// The token `[admin]` asks for: `token_sha256` when set (no file is touched), else the
    /// token file, read or created ([`Token::load_or_create`]). Blocking file I/O.
    pub fn for_admin(admin: &AdminConfig) -> Result<Token, TokenError> {
        match admin.token_sha256 {
            Some(digest) => Ok(Token::from_sha256(digest)),
            None => Token::load_or_create(&admin.token_file),
        }
    }

    /// Reads the token in `path` (surrounding white space trimmed), or, when there is no such
    /// file, creates it with [`TOKEN_BYTES`] random bytes as hex. An existing file is never
    /// replaced, even a bad one: that is an error for the operator to look at.
    pub fn load_or_create(path: &Path) -> Result<Token, TokenError> {
        match fs::read(path) {
            Ok(bytes) => Token::parse(path, bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match Token::create(path) {
                Ok(token) => Ok(token),
                // Someone else created it meanwhile: theirs stands.
                Err(TokenError::Create { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                    let bytes = fs::read(path)
                        .map_err(|source| TokenError::Read { path: path.to_owned(), source })?;
                    Token::parse(path, bytes)
                }
                Err(e) => Err(e),
            },
            Err(source) => Err(TokenError::Read { path: path.to_owned(), source }),
        }
    }

    /// Whether `presented` is the token. The time taken does not depend on where the two differ
    /// (`subtle`'s byte comparison folds every byte into the result, no early exit); it does
    /// depend on whether the lengths are equal, and the length is no secret.
    /// Known only by its hash, the presented token is hashed and the digests compared: fixed
    /// length, so the time says nothing at all.
    pub fn matches(&self, presented: &[u8]) -> bool {
        match &self.check {
            Check::Secret(secret) => bool::from(secret.as_slice().ct_eq(presented)),
            Check::Sha256(digest) => bool::from(digest.as_slice().ct_eq(sha256(presented).as_slice())),
        }
    }

    /// The token's SHA-256: the HMAC key of the CA proof, which a client holding the token can
    /// compute and nobody else can.
    pub fn sha256(&self) -> [u8; SHA256_BYTES] {
        match &self.check {
            Check::Secret(secret) => sha256(secret),
            Check::Sha256(digest) => *digest,
        }
    }

    fn parse(path: &Path, bytes: Vec<u8>) -> Result<Token, TokenError> {
        let text = String::from_utf8(bytes).map_err(|_| TokenError::NotText { path: path.to_owned() })?;
        let secret = text.trim();
        if secret.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort { path: path.to_owned(), len: secret.len() });
        }
        warn_if_exposed(path);
        Ok(Token::new(secret))
    }

    fn create(path: &Path) -> Result<Token, TokenError> {
        let mut random = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut random).map_err(TokenError::Random)?;
        let secret: String = random.iter().map(|b| format!("{b:02x}")).collect();
        create_new(path, format!("{secret}\n").as_bytes())
            .map_err(|source| TokenError::Create { path: path.to_owned(), source })?;
        info!(path = %path.display(), "created the admin token");
        Ok(Token::new(secret))
    }
}

/// SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> [u8; SHA256_BYTES] {
    let mut out = [0; SHA256_BYTES];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// Warns when the token file at `path` can be read by anyone but its owner.
fn warn_if_exposed(path: &Path) {
    match fs::metadata(path) {
        Ok(meta) if meta.mode() & GROUP_OR_OTHER != 0 => warn!(
            path = %path.display(),
            mode = format_args!("{:o}", meta.mode() & 0o777),
            "the admin token file is readable by others than its owner; chmod 600 it"
        ),
        Ok(_) => {}
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot check the admin token file's permissions")
        }
    }
}

/// Creates `path` holding `contents`, mode 0600, atomically and without replacing anything;
/// creates its directory (0700) when missing.
fn create_new(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    let name = path.file_name().ok_or(io::ErrorKind::InvalidInput)?;
    let tmp = dir.join(format!(".{}.tmp-{}-{}", name.to_string_lossy(), std::process::id(), nanos()));
    let written = write_synced(&tmp, contents).and_then(|()| fs::hard_link(&tmp, path));
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            warn!(path = %tmp.display(), error = %e, "cannot remove a temporary token file; remove it by hand");
        }
        _ => {}
    }
    written?;
    File::open(dir)?.sync_all()
}

/// Writes a new file at `path`, mode 0600 from its creation on, and syncs it.
fn write_synced(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(TOKEN_MODE).open(path)?;
    // The umask can only have removed bits; set exactly what we want.
    file.set_permissions(Permissions::from_mode(TOKEN_MODE))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Sub-second part of the clock, to tell apart temporary files of one process.
fn nanos() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin.token");
        let first = Token::load_or_create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
        let text = fs::read_to_string(&path).unwrap();
        let secret = text.trim();
        assert_eq!(secret.len(), 2 * TOKEN_BYTES);
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(first.matches(secret.as_bytes()));
        let again = Token::load_or_create(&path).unwrap();
        assert!(again.matches(secret.as_bytes()));
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_short_token_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        fs::write(&path, "  short\n").unwrap();
        let err = Token::load_or_create(&path).unwrap_err();
        assert!(matches!(err, TokenError::TooShort { len: 5, .. }), "{err}");
        assert!(err.to_string().contains("admin.token"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "  short\n");
    }

    #[test]
    fn a_given_token_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let secret = "x".repeat(40);
        fs::write(&path, format!("\n{secret}  \n")).unwrap();
        let token = Token::load_or_create(&path).unwrap();
        assert!(token.matches(secret.as_bytes()));
        assert!(!token.matches(format!("{secret} ").as_bytes()));
        assert!(!token.matches(b""));
        assert!(!format!("{token:?}").contains('x'));
    }
}
