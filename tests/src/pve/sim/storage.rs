//! The node's storages, as directories under `--data/storage/<id>/`: `local` (a dir storage:
//! templates in `template/cache/` as Proxmox keeps them, container volumes) and `local-lvm`
//! (container and VM volumes). Every container volume is a directory
//! `images/<vmid>/subvol-<vmid>-disk-<n>` with the volume id `<storage>:subvol-<vmid>-disk-<n>`,
//! whichever storage it is on (on Proxmox only ZFS has subvols; LVM-thin would have block
//! devices). Sizes are recorded by the caller in the config, never enforced.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde_json::{Value, json};

use super::error::{ApiError, IoContext};

/// The storages: id, type, content types.
pub const STORAGES: &[(&str, &str, &[&str])] =
    &[("local", "dir", &["vztmpl", "rootdir"]), ("local-lvm", "lvmthin", &["rootdir", "images"])];
/// Template file endings Proxmox accepts for `vztmpl`, and the `format` it lists them with.
const TEMPLATE_FORMATS: &[(&str, &str)] =
    &[(".tar.zst", "tzst"), (".tar.gz", "tgz"), (".tar.xz", "txz"), (".tar.bz2", "tbz2")];

/// The storages of one sim.
#[derive(Debug)]
pub struct Storage {
    root: PathBuf,
}

/// A volume id split: storage and name.
fn split_volid(volid: &str) -> Result<(&str, &str), ApiError> {
    volid.split_once(':').ok_or_else(|| ApiError::internal(format!("unable to parse volume ID '{volid}'")))
}

fn content_of(storage: &str) -> Result<&'static [&'static str], ApiError> {
    STORAGES
        .iter()
        .find(|(id, _, _)| *id == storage)
        .map(|(_, _, content)| *content)
        .ok_or_else(|| ApiError::internal(format!("storage '{storage}' does not exist")))
}

impl Storage {
    /// Creates the storage directories under `data`. `data` is opened to everyone for
    /// traversal (0711) because the containers' root (uid 100000) must pass through it to reach
    /// its rootfs, as on Proxmox.
    pub fn open(data: &Path) -> Result<Storage, ApiError> {
        let root = data.join("storage");
        for (id, _, _) in STORAGES {
            std::fs::create_dir_all(root.join(id).join("images"))
                .ctx(|| format!("cannot create storage {id}"))?;
        }
        std::fs::create_dir_all(root.join("local/template/cache"))
            .ctx(|| "cannot create local".to_owned())?;
        for dir in [data.to_path_buf(), root.clone()]
            .into_iter()
            .chain(STORAGES.iter().flat_map(|(id, _, _)| [root.join(id), root.join(id).join("images")]))
        {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
                .ctx(|| format!("cannot open {} to the containers", dir.display()))?;
        }
        Ok(Storage { root })
    }

    /// `GET /nodes/{node}/storage`.
    pub fn list(&self) -> Value {
        let entries: Vec<Value> = STORAGES
            .iter()
            .map(|(id, kind, content)| {
                json!({ "storage": id, "type": kind, "content": content.join(","), "active": 1,
                        "enabled": 1, "shared": 0 })
            })
            .collect();
        Value::Array(entries)
    }

    fn cache_dir(&self, storage: &str) -> PathBuf {
        self.root.join(storage).join("template/cache")
    }

    fn images_dir(&self, storage: &str, vmid: u32) -> PathBuf {
        self.root.join(storage).join("images").join(vmid.to_string())
    }

    /// `GET .../storage/{storage}/content`, optionally of one content type and one vmid.
    pub fn content(
        &self,
        storage: &str,
        content: Option<&str>,
        vmid: Option<u32>,
    ) -> Result<Value, ApiError> {
        let types = content_of(storage)?;
        let mut out = Vec::new();
        let wanted = |c: &str| types.contains(&c) && content.is_none_or(|w| w == c);
        if wanted("vztmpl") && vmid.is_none() {
            for (name, path) in list_dir(&self.cache_dir(storage))? {
                let Some((_, format)) = TEMPLATE_FORMATS.iter().find(|(ext, _)| name.ends_with(ext)) else {
                    continue;
                };
                let meta = std::fs::metadata(&path)?;
                let ctime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                out.push(json!({ "volid": format!("{storage}:vztmpl/{name}"), "content": "vztmpl",
                                 "format": format, "size": meta.len(), "ctime": ctime }));
            }
        }
        if wanted("rootdir") || wanted("images") {
            for (dir, _) in list_dir(&self.root.join(storage).join("images"))? {
                let Ok(owner) = dir.parse::<u32>() else { continue };
                if vmid.is_some_and(|v| v != owner) {
                    continue;
                }
                for (name, _) in list_dir(&self.images_dir(storage, owner))? {
                    out.push(json!({ "volid": format!("{storage}:{name}"), "content": "rootdir",
                                     "format": "subvol", "vmid": owner, "size": 0 }));
                }
            }
        }
        Ok(Value::Array(out))
    }

    /// Checks an upload's storage, content type and file name before its body is kept, as
    /// Proxmox does.
    pub fn check_upload(&self, storage: &str, content: &str, filename: &str) -> Result<(), ApiError> {
        let types = content_of(storage)?;
        if !types.contains(&content) {
            return Err(ApiError::param(
                "content",
                format!("storage '{storage}' does not support '{content}' content"),
            ));
        }
        if content != "vztmpl" {
            return Err(ApiError::param("content", "pve-sim takes vztmpl uploads only"));
        }
        if !TEMPLATE_FORMATS.iter().any(|(ext, _)| filename.ends_with(ext)) {
            return Err(ApiError::param("filename", "wrong file extension"));
        }
        if filename.contains('/') || filename.starts_with('.') {
            return Err(ApiError::param("filename", "invalid file name"));
        }
        Ok(())
    }

    /// Where an upload is written before its task checks and moves it.
    pub fn upload_tmp(&self, storage: &str, filename: &str) -> PathBuf {
        self.cache_dir(storage).join(format!(".upload-{}-{filename}", std::process::id()))
    }

    /// The upload task's work: the checksum (if given) against the file, then the file into the
    /// cache under its name.
    pub fn finish_upload(
        &self,
        storage: &str,
        filename: &str,
        tmp: &Path,
        checksum: Option<(&str, &str)>,
        log: &super::tasks::TaskLog,
    ) -> Result<String, ApiError> {
        let result = (|| {
            if let Some((algorithm, expected)) = checksum {
                let data = std::fs::read(tmp)?;
                let got = digest(algorithm, &data)?;
                log.line(format!("calculated checksum: {got}"));
                if !got.eq_ignore_ascii_case(expected) {
                    return Err(ApiError::internal(format!(
                        "checksum mismatch: got '{got}' != expect '{expected}'"
                    )));
                }
            }
            let target = self.cache_dir(storage).join(filename);
            log.line(format!("target file: {}", target.display()));
            std::fs::rename(tmp, &target)
                .ctx(|| format!("cannot move the upload to {}", target.display()))?;
            Ok(format!("{storage}:vztmpl/{filename}"))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(tmp);
        }
        result
    }

    /// The file of a template volume `storage:vztmpl/name`.
    pub fn template_path(&self, volid: &str) -> Result<PathBuf, ApiError> {
        let (storage, name) = split_volid(volid)?;
        let missing = || ApiError::internal(format!("volume '{volid}' does not exist"));
        let file = name.strip_prefix("vztmpl/").filter(|f| !f.contains('/')).ok_or_else(missing)?;
        content_of(storage)?.contains(&"vztmpl").then_some(()).ok_or_else(missing)?;
        let path = self.cache_dir(storage).join(file);
        if path.is_file() { Ok(path) } else { Err(missing()) }
    }

    /// `DELETE .../content/{volume}` for a template (`volume` as a volid or as `vztmpl/name`).
    pub fn delete_template(&self, storage: &str, volume: &str) -> Result<(), ApiError> {
        let volid = if volume.contains(':') { volume.to_owned() } else { format!("{storage}:{volume}") };
        let path = self.template_path(&volid)?;
        std::fs::remove_file(&path).ctx(|| format!("cannot remove {}", path.display()))
    }

    /// A new (empty) subvol for `vmid` on `storage`; its volume id and directory.
    pub fn alloc_subvol(&self, storage: &str, vmid: u32) -> Result<(String, PathBuf), ApiError> {
        if !content_of(storage)?.contains(&"rootdir") {
            return Err(ApiError::internal(format!(
                "storage '{storage}' does not support container directories"
            )));
        }
        let dir = self.images_dir(storage, vmid);
        std::fs::create_dir_all(&dir).ctx(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
        let name = self.free_name(storage, vmid)?;
        let path = dir.join(&name);
        std::fs::create_dir(&path).ctx(|| format!("cannot create {}", path.display()))?;
        Ok((format!("{storage}:{name}"), path))
    }

    /// The first `subvol-<vmid>-disk-<n>` not taken on `storage`.
    fn free_name(&self, storage: &str, vmid: u32) -> Result<String, ApiError> {
        let dir = self.images_dir(storage, vmid);
        (0..1000).map(|n| format!("subvol-{vmid}-disk-{n}")).find(|name| !dir.join(name).exists()).ok_or_else(
            || {
                ApiError::internal(format!(
                    "unable to allocate an image name for ID {vmid} in storage '{storage}'"
                ))
            },
        )
    }

    /// The directory of volume `volid`, and the vmid that owns it.
    pub fn volume_path(&self, volid: &str) -> Result<(PathBuf, u32), ApiError> {
        let (storage, name) = split_volid(volid)?;
        content_of(storage)?;
        let vmid = name
            .strip_prefix("subvol-")
            .and_then(|rest| rest.split_once("-disk-"))
            .and_then(|(vmid, n)| n.parse::<u32>().ok().and(vmid.parse().ok()))
            .ok_or_else(|| ApiError::internal(format!("unable to parse volume name '{name}'")))?;
        Ok((self.images_dir(storage, vmid).join(name), vmid))
    }

    /// Gives volume `volid` to `target` (Proxmox's `rename_volume`): the next free name of the
    /// target on the same storage; returns the new volume id.
    pub fn rename_volume(&self, volid: &str, target: u32) -> Result<String, ApiError> {
        let (storage, _) = split_volid(volid)?;
        let (from, _) = self.volume_path(volid)?;
        let dir = self.images_dir(storage, target);
        std::fs::create_dir_all(&dir).ctx(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
        let name = self.free_name(storage, target)?;
        std::fs::rename(&from, dir.join(&name)).ctx(|| format!("cannot rename {}", from.display()))?;
        Ok(format!("{storage}:{name}"))
    }

    /// Removes volume `volid` (a directory tree).
    pub fn free_volume(&self, volid: &str) -> Result<(), ApiError> {
        let (path, _) = self.volume_path(volid)?;
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ApiError::internal(format!("cannot remove {}: {e}", path.display())))
            }
            _ => Ok(()),
        }
    }

    /// Removes every volume of `vmid` on every storage (`destroy-unreferenced-disks`), and the
    /// emptied `images/<vmid>` directories.
    pub fn free_all_of(&self, vmid: u32) -> Result<(), ApiError> {
        for (id, _, _) in STORAGES {
            let dir = self.images_dir(id, vmid);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ApiError::internal(format!("cannot remove {}: {e}", dir.display())));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes `images/<vmid>` directories left empty.
    pub fn tidy(&self, vmid: u32) {
        for (id, _, _) in STORAGES {
            let _ = std::fs::remove_dir(self.images_dir(id, vmid));
        }
    }
}

/// Names and paths in `dir`, sorted; a missing dir is empty.
fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, ApiError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ApiError::internal(format!("cannot list {}: {e}", dir.display()))),
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    out.sort();
    Ok(out)
}

/// The hex digest of `data` with one of the upload's checksum algorithms.
fn digest(algorithm: &str, data: &[u8]) -> Result<String, ApiError> {
    let alg = match algorithm {
        "sha256" => &ring::digest::SHA256,
        "sha384" => &ring::digest::SHA384,
        "sha512" => &ring::digest::SHA512,
        "sha1" => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        other => {
            return Err(ApiError::param("checksum-algorithm", format!("pve-sim cannot compute {other}")));
        }
    };
    Ok(ring::digest::digest(alg, data).as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_allocated_renamed_and_freed() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = Storage::open(dir.path())?;
        let (a, path_a) = storage.alloc_subvol("local-lvm", 100)?;
        let (b, _) = storage.alloc_subvol("local-lvm", 100)?;
        assert_eq!((a.as_str(), b.as_str()), ("local-lvm:subvol-100-disk-0", "local-lvm:subvol-100-disk-1"));
        std::fs::write(path_a.join("leases"), "x")?;
        let moved = storage.rename_volume(&a, 101)?;
        assert_eq!(moved, "local-lvm:subvol-101-disk-0");
        assert_eq!(std::fs::read_to_string(storage.volume_path(&moved)?.0.join("leases"))?, "x");
        let listed = storage.content("local-lvm", Some("rootdir"), Some(101))?;
        assert_eq!(listed[0]["volid"], "local-lvm:subvol-101-disk-0");
        storage.free_volume(&moved)?;
        storage.free_all_of(100)?;
        assert_eq!(storage.content("local-lvm", None, None)?, json!([]));
        assert!(storage.alloc_subvol("nope", 100).is_err());
        assert!(storage.check_upload("local", "vztmpl", "x.iso").is_err());
        assert!(storage.check_upload("local-lvm", "vztmpl", "x.tar.zst").is_err());
        assert!(storage.template_path("local:vztmpl/missing.tar.zst").is_err());
        Ok(())
    }

    #[test]
    fn checksums_are_hex() -> Result<(), ApiError> {
        assert_eq!(
            digest("sha256", b"")?,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        Ok(())
    }
}
