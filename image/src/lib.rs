//! The Proximity LXC template: a minimal rootfs whose init is the appliance, packed reproducibly
//! as `proximity-appliance_<version>-<sha12>_amd64.tar.zst`.
//!
//! # What goes in, and why
//! - `/sbin/proximity-appliance`: the appliance binary; `/sbin/init` a symlink to it, so the
//!   container's default entrypoint (Proxmox starts `/sbin/init`, with no arguments) runs it.
//! - `/etc/proximity.toml`: the config, which the appliance reads by default. Its `state.dir`
//!   must be `/var/lib/proximity`, the mount point `mp0` that an upgrade keeps.
//! - `/usr/sbin/nft` with its shared libraries and the dynamic loader, at their paths on the
//!   build machine: NAT drives `nft`. `/etc/protocols`, since nft resolves `icmp`, `tcp`... by
//!   name through libc. When the appliance binary is dynamically linked, its libraries too
//!   (a static one needs none). Libraries are listed with `ldd`.
//! - Empty `/dev`, `/proc`, `/sys` (LXC mounts them), `/run`, `/tmp` (1777), and
//!   `/var/lib/proximity` (0700: the CA key, the store, the token).
//!
//! Nothing else: no shell, no package manager, no users (Proxmox's `ostype=unmanaged` leaves the
//! rootfs alone). Every entry is owned 0:0, has one mtime (`SOURCE_DATE_EPOCH`, else a
//! constant) and a mode from a fixed table, entries are sorted, and zstd runs single-threaded
//! at a fixed level: the same inputs give the same bytes, and the name carries the first 12 hex
//! digits of their sha256, so two builds are told apart by name.
//!
//! Size: the appliance is nearly all of it. The static `release` build carries line tables
//! (about 3/4 of its bytes) and gives a template of about 16 MB; the `template` profile (the
//! same code without debug info) stays under the 10 MB target.
//!
//! # Layout
//! - `layout` (private): checks the inputs and decides the tree.
//! - [`elf`]: is the appliance an x86_64 executable, static or dynamic.
//! - `libraries` (private): what `ldd` says a program loads.
//! - `tarball` (private): the tree as a deterministic `.tar.zst`, hashed, renamed into place.
//! - `rootfs` (private): the tree as a directory.
//! - [`ImageError`]: why a build failed.

pub mod elf;
mod error;
mod layout;
mod libraries;
mod rootfs;
mod tarball;

use std::path::{Path, PathBuf};

pub use error::ImageError;
pub use tarball::{DEFAULT_MTIME, SOURCE_DATE_EPOCH, ZSTD_LEVEL};

/// The appliance binary in the rootfs.
pub const APPLIANCE: &str = "/sbin/proximity-appliance";
/// The container's default init, a symlink to [`APPLIANCE`].
pub const INIT: &str = "/sbin/init";
/// The config in the rootfs: the appliance's default `--config`.
pub const CONFIG: &str = "/etc/proximity.toml";
/// The state directory, Proxmox mount point `mp0`; the config's `state.dir` must be this.
pub const STATE_DIR: &str = "/var/lib/proximity";
/// `nft` in the rootfs, at its path on the build machine.
pub const NFT: &str = "/usr/sbin/nft";
/// `/etc/protocols`: the protocols the appliance's ruleset names, as netbase has them.
pub const PROTOCOLS: &str = "icmp\t1\tICMP\ntcp\t6\tTCP\nudp\t17\tUDP\nipv6-icmp\t58\tIPv6-ICMP\n";
/// How many hex digits of the sha256 the file name carries.
pub const SHA_IN_NAME: usize = 12;

/// What a template is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// The appliance binary. Best the static build of the `template` profile (no libraries to
    /// carry, no debug info): `RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile
    /// template -p proximity-appliance --target x86_64-unknown-linux-gnu`.
    pub appliance: PathBuf,
    /// The config, TOML text, written as `/etc/proximity.toml` byte for byte.
    pub config: String,
    /// The appliance's version, the `<version>` of the file name.
    pub version: String,
}

/// A built template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// `out/<file_name>`.
    pub path: PathBuf,
    /// `proximity-appliance_<version>-<sha12>_amd64.tar.zst`: what Proxmox's `vztmpl` storage
    /// lists, so a node that has it needs no upload.
    pub file_name: String,
    /// Lowercase hex sha256 of the file's bytes (Proxmox's upload `checksum`).
    pub sha256: String,
    /// The file's size in bytes.
    pub size: u64,
}

/// Builds the template from `inputs` into the directory `out` (which must exist); a file of the
/// same name there is replaced (it has the same bytes).
pub fn build(inputs: &Inputs, out: &Path) -> Result<Template, ImageError> {
    let tree = layout::tree(inputs)?;
    tarball::write(&tree, &inputs.version, out)
}

/// Writes the same tree as [`build`] packs into the directory `dir` (created if missing, else
/// empty), owned by the caller (root: 0:0); an unprivileged container's caller shifts owners.
pub fn write_rootfs(inputs: &Inputs, dir: &Path) -> Result<(), ImageError> {
    let tree = layout::tree(inputs)?;
    rootfs::write(&tree, dir)
}

/// The template's file name for `version` and the file's sha256 (lowercase hex).
pub fn file_name(version: &str, sha256: &str) -> String {
    let short = sha256.get(..SHA_IN_NAME).unwrap_or(sha256);
    format!("proximity-appliance_{version}-{short}_amd64.tar.zst")
}
