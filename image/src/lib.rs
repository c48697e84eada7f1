//! Placeholder for the template builder (`proximity-image`), with the agreed API only; every call
//! fails with "placeholder". The real crate replaces this file at merge.

use std::path::{Path, PathBuf};

/// What goes into a template.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The appliance binary.
    pub appliance: PathBuf,
    /// The appliance config (TOML text), installed as `/etc/proximity.toml`.
    pub config: String,
    /// The appliance version, part of the file name.
    pub version: String,
}

/// A built template.
#[derive(Debug, Clone)]
pub struct Template {
    pub path: PathBuf,
    pub file_name: String,
    pub sha256: String,
    pub size: u64,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("placeholder")]
    Placeholder,
}

/// Builds the template into the directory `out`.
pub fn build(_inputs: &Inputs, _out: &Path) -> Result<Template, ImageError> {
    Err(ImageError::Placeholder)
}

/// Writes the template's root file system into `dir`.
pub fn write_rootfs(_inputs: &Inputs, _dir: &Path) -> Result<(), ImageError> {
    Err(ImageError::Placeholder)
}
