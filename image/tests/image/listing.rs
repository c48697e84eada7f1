//! What is in the template, read back: the paths, owners, modes and mtime, the init symlink,
//! the config, and the unpacked rootfs matching the archive.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use proximity_image::elf;
use tar::EntryType;

use crate::{Entry, TestResult, by_path, inputs, read_template};

/// Paths every template has, whatever the machine's libraries.
const FIXED: [&str; 16] = [
    "dev",
    "etc",
    "etc/protocols",
    "etc/proximity.toml",
    "proc",
    "run",
    "sbin",
    "sbin/init",
    "sbin/proximity-appliance",
    "sys",
    "tmp",
    "usr",
    "usr/sbin",
    "usr/sbin/nft",
    "var",
    "var/lib",
];

#[test]
fn the_listing_has_the_layout_with_fixed_metadata() -> TestResult {
    let dir = tempfile::tempdir()?;
    let template = proximity_image::build(&inputs(), dir.path())?;
    let entries = read_template(&template.path)?;
    let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    assert_eq!(paths, sorted, "entries are sorted");
    let set: BTreeSet<&str> = paths.iter().copied().collect();
    assert_eq!(set.len(), paths.len(), "no path twice");
    for fixed in FIXED.iter().chain(&["var/lib/proximity"]) {
        assert!(set.contains(fixed), "{fixed} is missing from {paths:#?}");
    }
    // Everything else is a library of nft (the "appliance" here is nft too) or its directory.
    let loader = elf::check(std::path::Path::new(proximity_image::NFT))?.interp.ok_or("nft is static?")?;
    let loader = loader.to_string_lossy().trim_start_matches('/').to_owned();
    assert!(set.contains(loader.as_str()), "the loader {loader} is missing");
    for path in &paths {
        if FIXED.contains(path) || *path == "var/lib/proximity" {
            continue;
        }
        assert!(path.starts_with("lib") || path.starts_with("usr/lib"), "unexpected {path}");
    }
    assert!(paths.iter().any(|p| p.contains("libnftables.so")), "nft's library is missing");

    let map = by_path(&entries);
    for (path, entry) in &map {
        assert_eq!((entry.uid, entry.gid), (0, 0), "{path}");
        assert_eq!((entry.user.as_str(), entry.group.as_str()), ("root", "root"), "{path}");
        assert_eq!(entry.mtime, proximity_image::DEFAULT_MTIME, "{path}");
    }
    let init = &map["sbin/init"];
    assert_eq!(init.kind, EntryType::Symlink);
    assert_eq!(init.link.as_deref(), Some("proximity-appliance"));
    let mode = |path: &str| map[path].mode & 0o7777;
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(mode("var/lib/proximity"), 0o700);
    assert_eq!(mode("sbin/proximity-appliance"), 0o755);
    assert_eq!(mode("usr/sbin/nft"), 0o755);
    assert_eq!(mode(&loader), 0o755);
    assert_eq!(mode("etc/proximity.toml"), 0o644);
    for dir in ["dev", "proc", "sys", "run", "tmp", "var/lib/proximity"] {
        assert_eq!(map[dir].kind, EntryType::Directory, "{dir}");
    }
    assert_eq!(map["etc/proximity.toml"].data, proximity_config::EXAMPLE_TOML.as_bytes());
    assert_eq!(map["sbin/proximity-appliance"].data, std::fs::read(proximity_image::NFT)?);
    assert_eq!(map["etc/protocols"].data, proximity_image::PROTOCOLS.as_bytes());
    Ok(())
}

#[test]
fn the_unpacked_rootfs_is_the_archive() -> TestResult {
    let dir = tempfile::tempdir()?;
    let template = proximity_image::build(&inputs(), dir.path())?;
    let map = by_path(&read_template(&template.path)?);
    let rootfs = dir.path().join("rootfs");
    proximity_image::write_rootfs(&inputs(), &rootfs)?;
    assert_tree_is(&rootfs, &map, euid())
}

/// GNU tar, as pve-container unpacks a template (`--zstd`, `-p`, `--numeric-owner`), reads it
/// without a warning and gives the same tree; owned by 0:0 when root unpacks it.
#[test]
fn gnu_tar_unpacks_it_as_proxmox_does() -> TestResult {
    let dir = tempfile::tempdir()?;
    let template = proximity_image::build(&inputs(), dir.path())?;
    let map = by_path(&read_template(&template.path)?);
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs)?;
    let out = Command::new("tar")
        .args(["--zstd", "-xpf"])
        .arg(&template.path)
        .args(["--numeric-owner", "-C"])
        .arg(&rootfs)
        .output()?;
    assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "tar warned: {}", String::from_utf8_lossy(&out.stderr));
    // Root (as in CI) gets the archive's 0:0; anyone else owns what they unpack.
    assert_tree_is(&rootfs, &map, euid())
}

/// Asserts the directory `root` holds exactly the archive's entries in `map`: kinds, contents,
/// link targets, modes, and the owner `uid` (and group 0 when that is root).
fn assert_tree_is(root: &Path, map: &BTreeMap<String, Entry>, uid: u32) -> TestResult {
    let mut found = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            let name = entry.path().strip_prefix(root)?.to_string_lossy().into_owned();
            let want = map.get(&name).ok_or_else(|| format!("{name} is not in the archive"))?;
            if meta.is_dir() {
                assert_eq!(want.kind, EntryType::Directory, "{name}");
                stack.push(entry.path());
            } else if meta.file_type().is_symlink() {
                assert_eq!(want.kind, EntryType::Symlink, "{name}");
                assert_eq!(
                    std::fs::read_link(entry.path())?.to_string_lossy(),
                    want.link.as_deref().unwrap_or("")
                );
            } else {
                assert_eq!(want.kind, EntryType::Regular, "{name}");
                assert_eq!(std::fs::read(entry.path())?, want.data, "{name}");
            }
            if !meta.file_type().is_symlink() {
                assert_eq!(meta.permissions().mode() & 0o7777, want.mode & 0o7777, "{name}");
            }
            assert_eq!(meta.uid(), uid, "{name}");
            if uid == 0 {
                assert_eq!(meta.gid(), 0, "{name}");
            }
            found.insert(name);
        }
    }
    let archived: BTreeSet<String> = map.keys().cloned().collect();
    assert_eq!(found, archived);
    Ok(())
}

/// The effective uid, read from /proc (no libc binding needed).
fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:").map(str::to_owned)))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|u| u.parse().ok()))
        .unwrap_or(u32::MAX)
}
