//! The template as Proxmox and the provisioner see it: the file's name and bytes, and what is
//! in it (read back with the `tar` crate through zstd).
//!
//! The "appliance" here is `/usr/sbin/nft` (a small dynamically linked x86_64 executable), so
//! builds are quick and the dynamic-binary path (its libraries carried along) is exercised; the
//! release static appliance is measured in `size`.

mod build;
mod inputs;
mod listing;
mod size;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use proximity_image::Inputs;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Inputs that build: nft as the binary, the repository's example config.
fn inputs() -> Inputs {
    Inputs {
        appliance: PathBuf::from(proximity_image::NFT),
        config: proximity_config::EXAMPLE_TOML.to_owned(),
        version: "0.1.0".to_owned(),
    }
}

/// One entry of a template as the tar reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    user: String,
    group: String,
    mtime: u64,
    link: Option<String>,
    data: Vec<u8>,
}

/// Every entry of the template at `path`, by path (no leading `/` or `./`), in archive order.
fn read_template(path: &Path) -> Result<Vec<(String, Entry)>, Box<dyn std::error::Error>> {
    let decoder = zstd::stream::read::Decoder::new(std::fs::File::open(path)?)?;
    let mut archive = tar::Archive::new(decoder);
    let mut entries = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header().clone();
        let name = entry.path()?.to_string_lossy().trim_start_matches("./").trim_end_matches('/').to_owned();
        let link = entry.link_name()?.map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        entries.push((
            name,
            Entry {
                kind: header.entry_type(),
                mode: header.mode()?,
                uid: header.uid()?,
                gid: header.gid()?,
                user: header.username().ok().flatten().unwrap_or_default().to_owned(),
                group: header.groupname().ok().flatten().unwrap_or_default().to_owned(),
                mtime: header.mtime()?,
                link,
                data,
            },
        ));
    }
    Ok(entries)
}

/// The entries by path.
fn by_path(entries: &[(String, Entry)]) -> BTreeMap<String, Entry> {
    entries.iter().cloned().collect()
}
