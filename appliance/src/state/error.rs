//! What can go wrong with the store, each case naming the file (or record) it happened to.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

/// An error of the state store. Every variant that concerns the file names its path, so the
/// operator reading the log knows which file to inspect, restore or move aside: the store never
/// resets a file it cannot read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {}", .path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },

    #[error("cannot create state store {}", .path.display())]
    Create { path: PathBuf, source: redb::Error },

    #[error("cannot publish new state store {}", .path.display())]
    Publish { path: PathBuf, source: std::io::Error },

    #[error("state store {} is locked by another process (is another appliance running?)", .path.display())]
    Locked { path: PathBuf },

    #[error("state store {} is corrupt ({detail}); it was left untouched, restore or move it aside", .path.display())]
    Corrupt { path: PathBuf, detail: String },

    #[error("cannot start the writer thread of state store {}", .path.display())]
    SpawnWriter { path: PathBuf, source: std::io::Error },

    #[error("cannot open state store {}", .path.display())]
    Open { path: PathBuf, source: redb::Error },

    #[error("{} is not a Proximity state store: {reason}", .path.display())]
    Foreign { path: PathBuf, reason: String },

    #[error(
        "state store {} has schema version {found}, this build reads version {supported} \
         (was it written by a newer appliance?)",
        .path.display()
    )]
    SchemaVersion { path: PathBuf, found: u64, supported: u64 },

    #[error("cannot read state store {}", .path.display())]
    Read { path: PathBuf, source: redb::Error },

    #[error("state store {}: the lease record of {ip} cannot be decoded", .path.display())]
    DecodeLease { path: PathBuf, ip: Ipv4Addr, source: serde_json::Error },

    #[error("state store {}: the record stored under {key} is a lease of {recorded}", .path.display())]
    LeaseKeyMismatch { path: PathBuf, key: Ipv4Addr, recorded: Ipv4Addr },

    #[error("state store {}: the app record stored under {name:?} cannot be decoded", .path.display())]
    DecodeApp { path: PathBuf, name: String, source: serde_json::Error },

    #[error("state store {}: the record stored under app {key:?} is app {recorded:?}", .path.display())]
    AppKeyMismatch { path: PathBuf, key: String, recorded: String },

    #[error("cannot encode app {name:?}")]
    EncodeApp { name: String, source: serde_json::Error },

    #[error("state store {}: the reservation stored under {mac} cannot be read: {reason}", .path.display())]
    DecodeReservation { path: PathBuf, mac: String, reason: String },

    #[error("cannot encode the reservation of {mac}")]
    EncodeReservation { mac: proximity_config::MacAddr, source: serde_json::Error },

    #[error("state store {}: the forward stored under {key:?} cannot be read: {reason}", .path.display())]
    DecodeForward { path: PathBuf, key: String, reason: String },

    #[error("cannot encode the forward {forward}")]
    EncodeForward { forward: proximity_config::PortForward, source: serde_json::Error },

    #[error("cannot upgrade state store {} from schema version {found}", .path.display())]
    Migrate { path: PathBuf, found: u64, source: redb::Error },

    #[error("cannot encode the lease of {ip}")]
    EncodeLease { ip: Ipv4Addr, source: serde_json::Error },

    /// Shared by every caller of the failed batch, hence the `Arc`. The changes may or may not
    /// be on disk: a caller must treat them as not committed (no DHCPACK).
    #[error("commit to state store {} failed", .path.display())]
    Commit { path: PathBuf, source: Arc<redb::Error> },

    /// The batch found the file closed after an earlier failed commit and could not open it.
    #[error("state store {} could not be reopened after a failed commit", .path.display())]
    Reopen { path: PathBuf, source: Arc<StoreError> },

    /// A commit failed and the writer has not reopened the file yet; reads resume once it has.
    #[error("state store {} is being reopened after a failed commit", .path.display())]
    Reopening { path: PathBuf },

    #[error("state store {} is closed: its writer has stopped", .path.display())]
    WriterStopped { path: PathBuf },

    /// [`crate::state::Store::submit`] found the queue full (the disk is slower than requests
    /// arrive); nothing was queued.
    #[error("state store {} is busy: too many commits queued", .path.display())]
    Busy { path: PathBuf },
}
