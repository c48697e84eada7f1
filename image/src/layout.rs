//! The template's tree, decided once and used twice (the tarball, an unpacked directory): every
//! path with its kind, mode and content, owners always 0:0. Checking the inputs happens here, so
//! both outputs refuse the same things.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::ImageError;
use crate::{APPLIANCE, CONFIG, INIT, Inputs, NFT, PROTOCOLS, STATE_DIR, elf, libraries};

/// Mode of directories, executables (the appliance, `nft`, the loader) and other files.
pub(crate) const DIR_MODE: u32 = 0o755;
pub(crate) const EXEC_MODE: u32 = 0o755;
pub(crate) const FILE_MODE: u32 = 0o644;
/// `/tmp`: world-writable with the sticky bit, as everywhere.
const TMP_MODE: u32 = 0o1777;
/// The state directory holds the CA key and the store: root only.
const STATE_MODE: u32 = 0o700;
/// Empty directories every container gets: mount points for LXC (`/dev` is its tmpfs, `/proc`
/// and `/sys` its `lxc.mount.auto`), `/run` and `/tmp` for whatever expects them.
const EMPTY_DIRS: [(&str, u32); 5] =
    [("/dev", DIR_MODE), ("/proc", DIR_MODE), ("/sys", DIR_MODE), ("/run", DIR_MODE), ("/tmp", TMP_MODE)];

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// Made here (the config, `/etc/protocols`).
    Text(Vec<u8>),
    /// A file on this machine, read when written out (symlinks followed).
    Host(PathBuf),
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Dir { mode: u32 },
    File { content: Content, mode: u32 },
    Symlink { target: String },
}

/// Paths relative to the rootfs (`sbin/init`, no leading `/`), in byte order, which puts every
/// directory before what it holds.
pub(crate) type Tree = BTreeMap<String, Node>;

/// Checks `inputs` and lays out the template's tree.
pub(crate) fn tree(inputs: &Inputs) -> Result<Tree, ImageError> {
    check_version(&inputs.version)?;
    let config = proximity_config::from_toml_str(&inputs.config).map_err(ImageError::Config)?;
    if config.state.dir != Path::new(STATE_DIR) {
        return Err(ImageError::StateDir {
            found: config.state.dir.display().to_string(),
            expected: STATE_DIR,
        });
    }
    let appliance = &inputs.appliance;
    std::fs::File::open(appliance)
        .map_err(|source| ImageError::ApplianceUnreadable { path: appliance.clone(), source })?;
    let executable = elf::check(appliance).map_err(|e| match e {
        elf::ElfError::Io(source) => ImageError::ApplianceUnreadable { path: appliance.clone(), source },
        elf::ElfError::Invalid(reason) => ImageError::NotAnExecutable { path: appliance.clone(), reason },
    })?;
    let nft = Path::new(NFT);
    if !nft.is_file() {
        return Err(ImageError::NftMissing { path: nft.to_owned() });
    }

    let mut tree = Tree::new();
    add(&mut tree, APPLIANCE, Node::File { content: Content::Host(appliance.clone()), mode: EXEC_MODE });
    // Relative, so it points at the appliance wherever the rootfs is looked at from.
    let target =
        Path::new(APPLIANCE).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    add(&mut tree, INIT, Node::Symlink { target });
    add(
        &mut tree,
        CONFIG,
        Node::File { content: Content::Text(inputs.config.clone().into_bytes()), mode: FILE_MODE },
    );
    // nft resolves protocol names (`meta l4proto icmp`) through libc: without the file it
    // refuses the ruleset ("Could not resolve protocol name").
    add(
        &mut tree,
        "/etc/protocols",
        Node::File { content: Content::Text(PROTOCOLS.as_bytes().to_vec()), mode: FILE_MODE },
    );
    add(&mut tree, NFT, Node::File { content: Content::Host(nft.to_owned()), mode: EXEC_MODE });
    let mut programs = vec![nft.to_owned()];
    if executable.interp.is_some() {
        programs.push(appliance.clone());
    }
    for program in programs {
        let libraries = libraries::of(&program)
            .map_err(|reason| ImageError::Libraries { program: program.clone(), reason })?;
        for library in libraries {
            let mode = if library.loader { EXEC_MODE } else { FILE_MODE };
            let path = library.path.to_string_lossy().into_owned();
            add(&mut tree, &path, Node::File { content: Content::Host(library.path), mode });
        }
    }
    for (dir, mode) in EMPTY_DIRS.into_iter().chain([(STATE_DIR, STATE_MODE)]) {
        add(&mut tree, dir, Node::Dir { mode });
    }
    Ok(tree)
}

/// Adds `node` at the absolute path `path`, and its parent directories where missing.
fn add(tree: &mut Tree, path: &str, node: Node) {
    let relative = path.trim_start_matches('/');
    let mut parent = Path::new(relative).parent();
    while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
        tree.entry(dir.to_string_lossy().into_owned()).or_insert(Node::Dir { mode: DIR_MODE });
        parent = dir.parent();
    }
    tree.insert(relative.to_owned(), node);
}

/// The version goes into the file name, between `_` separators.
fn check_version(version: &str) -> Result<(), ImageError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-');
    match !version.is_empty() && version.chars().all(allowed) {
        true => Ok(()),
        false => Err(ImageError::Version(version.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_are_added_once() {
        let mut tree = Tree::new();
        add(&mut tree, "/var/lib/proximity", Node::Dir { mode: STATE_MODE });
        add(&mut tree, "/lib64/ld.so", Node::File { content: Content::Text(vec![]), mode: EXEC_MODE });
        add(&mut tree, "/lib/x/libc.so", Node::File { content: Content::Text(vec![]), mode: FILE_MODE });
        let paths: Vec<&str> = tree.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            ["lib", "lib/x", "lib/x/libc.so", "lib64", "lib64/ld.so", "var", "var/lib", "var/lib/proximity"]
        );
        assert_eq!(tree["var/lib/proximity"], Node::Dir { mode: STATE_MODE });
    }

    #[test]
    fn versions_fit_in_a_file_name() {
        assert!(check_version("0.1.0").is_ok());
        assert!(check_version("1.2.3-rc1+g1234").is_ok());
        for bad in ["", "1_2", "1/2", "a b"] {
            assert!(matches!(check_version(bad), Err(ImageError::Version(_))), "{bad:?}");
        }
    }
}
