//! The provisioner's local state per deployment (`<config dir>/proximity/<node>-<vmid>.json`,
//! mode 0600): the appliance's admin token, its CA once pinned, its last WAN address. Written
//! atomically (a 0600 temporary file in the same directory, fsync, rename), so a crash leaves the
//! old file or the new one, never a torn one.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::net::fingerprint::hex;

/// Mode of the state file: it holds a secret.
pub const FILE_MODE: u32 = 0o600;
/// Mode of a directory the provisioner creates for it.
pub const DIR_MODE: u32 = 0o700;
/// Random bytes in an admin token (written as hex).
pub const TOKEN_BYTES: usize = 32;

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {}", .0.display())]
    Read(PathBuf, #[source] io::Error),
    #[error("{} is not a Proximity state file: {reason}", .path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("cannot write {}", .0.display())]
    Write(PathBuf, #[source] io::Error),
    #[error("cannot remove {}", .0.display())]
    Remove(PathBuf, #[source] io::Error),
    #[error("cannot draw random bytes for the admin token: {0}")]
    Random(String),
    #[error("neither XDG_CONFIG_HOME nor HOME is set; cannot place the state file")]
    NoHome,
}

/// What the provisioner keeps about one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The appliance's admin bearer token; the template holds only its SHA-256. Kept across
    /// upgrades, since the appliance's config (and so the template) is derived from it.
    pub admin_token: String,
    /// The appliance's CA (PEM), pinned at first contact after checking its proof.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// The appliance's WAN address last seen.
    #[serde(default)]
    pub wan_address: Option<Ipv4Addr>,
}

impl State {
    /// A new state with a fresh random token.
    pub fn generate() -> Result<State, StateError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| StateError::Random(e.to_string()))?;
        Ok(State { admin_token: hex(&bytes), ca_pem: None, wan_address: None })
    }

    /// SHA-256 of the token as lower-case hex (the appliance's `admin.token_sha256`).
    pub fn token_sha256(&self) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, self.admin_token.as_bytes()).as_ref())
    }
}

/// `${XDG_CONFIG_HOME:-$HOME/.config}/proximity/<node>-<vmid>.json`.
pub fn default_path(node: &str, vmid: u32) -> Result<PathBuf, StateError> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty()).ok_or(StateError::NoHome)?)
            .join(".config"),
    };
    Ok(base.join("proximity").join(format!("{node}-{vmid}.json")))
}

/// The state file at one path.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: PathBuf) -> Self {
        StateFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state; `None` when there is no file.
    pub fn load(&self) -> Result<Option<State>, StateError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StateError::Read(self.path.clone(), e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::Parse { path: self.path.clone(), reason: e.to_string() })
    }

    /// Replaces the file with `state`, atomically, mode 0600.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let err = |e| StateError::Write(self.path.clone(), e);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).map_err(err)?;
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(state).map_err(|e| err(io::Error::other(e)))?;
        let write = || -> io::Result<()> {
            let _ = fs::remove_file(&tmp);
            let mut file = OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            err(e)
        })
    }

    /// Removes the file; `false` when there was none.
    pub fn remove(&self) -> Result<bool, StateError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StateError::Remove(self.path.clone(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn saves_atomically_with_mode_0600() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = StateFile::new(dir.path().join("sub/pve-100.json"));
        assert_eq!(file.load()?, None);
        let mut state = State::generate()?;
        assert_eq!(state.admin_token.len(), 2 * TOKEN_BYTES);
        file.save(&state)?;
        assert_eq!(fs::metadata(file.path())?.permissions().mode() & 0o777, FILE_MODE);
        assert_eq!(fs::metadata(dir.path().join("sub"))?.permissions().mode() & 0o777, DIR_MODE);
        state.wan_address = Some(Ipv4Addr::new(192, 0, 2, 7));
        state.ca_pem = Some("-----BEGIN CERTIFICATE-----\n".into());
        file.save(&state)?;
        assert_eq!(file.load()?, Some(state));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path().join("sub"))?.count(), 1);
        assert!(file.remove()?);
        assert!(!file.remove()?);
        Ok(())
    }

    #[test]
    fn a_broken_file_is_an_error_not_a_new_token() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("pve-100.json");
        fs::write(&path, "{not json")?;
        assert!(matches!(StateFile::new(path).load(), Err(StateError::Parse { .. })));
        Ok(())
    }

    #[test]
    fn tokens_are_random_and_hashed() -> Result<(), StateError> {
        let (a, b) = (State::generate()?, State::generate()?);
        assert_ne!(a.admin_token, b.admin_token);
        let known = State { admin_token: "abc".into(), ca_pem: None, wan_address: None };
        assert_eq!(known.token_sha256(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        Ok(())
    }
}
