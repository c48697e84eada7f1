//! Why a template could not be built: each input problem says what to do about it.

use std::io;
use std::path::PathBuf;

use proximity_config::ConfigErrors;

/// A failed [`build`](crate::build) or [`write_rootfs`](crate::write_rootfs).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read the appliance binary {}", .path.display())]
    ApplianceUnreadable { path: PathBuf, source: io::Error },

    #[error("the appliance binary {} is not an x86_64 ELF executable: {reason}", .path.display())]
    NotAnExecutable { path: PathBuf, reason: String },

    #[error("{} not found on this machine; the appliance drives it for NAT (apt-get install nftables)", .path.display())]
    NftMissing { path: PathBuf },

    #[error("cannot list the shared libraries of {} with `ldd`: {reason}", .program.display())]
    Libraries { program: PathBuf, reason: String },

    #[error("the config is invalid: {0}")]
    Config(ConfigErrors),

    #[error(
        "state.dir is {found:?}; the template keeps the state in {expected} (the mount point mp0, kept across upgrades)"
    )]
    StateDir { found: String, expected: &'static str },

    #[error(
        "the version {0:?} cannot be part of a file name: use letters, digits, '.', '+', '~' and '-' only"
    )]
    Version(String),

    #[error("cannot read {}", .path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("cannot write {}", .path.display())]
    Write { path: PathBuf, source: io::Error },
}
