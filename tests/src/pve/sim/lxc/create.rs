//! `POST /nodes/{node}/lxc`, as pve-container creates a container: at once, the checks and the
//! config reserved with `lock: create`; then in the `vzcreate` task, volumes allocated for
//! `rootfs` and `mp[n]` (`<storage>:<size in GiB>`), the template unpacked into them with every
//! owner shifted by 100000 for `unprivileged=1` (what its restore does through
//! `lxc-usernsexec`), a `hwaddr` generated for each `net[n]` without one and stored back, and
//! the final config written. A failure removes what the task made, config included.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::Containers;
use super::conf::{Config, Property};
use crate::lxc::{ID_BASE, ID_COUNT};
use crate::pve::sim::error::{ApiError, IoContext};
use crate::pve::sim::storage::Storage;
use crate::pve::sim::tasks::TaskLog;

/// Parameters of the create call that are instructions, not config.
const NOT_CONFIG: &[&str] = &[
    "node",
    "vmid",
    "ostemplate",
    "storage",
    "password",
    "ssh-public-keys",
    "start",
    "unique",
    "restore",
    "force",
    "pool",
    "ignore-unpack-errors",
    "bwlimit",
];
/// Proxmox's rootfs when none is given: 4 GiB on `storage` (default `local`).
const DEFAULT_ROOTFS_GIB: &str = "4";

/// What the create task needs.
#[derive(Debug)]
pub struct Create {
    pub vmid: u32,
    template: PathBuf,
    params: BTreeMap<String, String>,
}

fn vmid_of(params: &BTreeMap<String, String>) -> Result<u32, ApiError> {
    params
        .get("vmid")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::param("vmid", "property is missing and it is not optional"))
}

/// A random locally administered unicast MAC, as Proxmox gives a NIC without one.
pub fn random_hwaddr() -> Result<String, ApiError> {
    let mut mac = [0u8; 6];
    getrandom::fill(&mut mac).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    mac[0] = (mac[0] & 0xfc) | 0x02;
    Ok(mac.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
}

impl Containers {
    /// The synchronous part: checks, then the config reserved (`lock: create`).
    pub fn begin_create(
        &self,
        params: &BTreeMap<String, String>,
        storage: &Storage,
    ) -> Result<Create, ApiError> {
        let vmid = vmid_of(params)?;
        let ostemplate = params
            .get("ostemplate")
            .ok_or_else(|| ApiError::param("ostemplate", "property is missing and it is not optional"))?;
        let template = storage.template_path(ostemplate)?;
        if !template.to_string_lossy().ends_with(".tar.zst") {
            return Err(ApiError::param("ostemplate", "pve-sim unpacks .tar.zst templates only"));
        }
        let reserved =
            Config { description: None, keys: BTreeMap::from([("lock".to_owned(), "create".to_owned())]) };
        self.create_config(vmid, &reserved)?;
        Ok(Create { vmid, template, params: params.clone() })
    }

    /// The `vzcreate` task's work.
    pub fn finish_create(&self, create: Create, storage: &Storage, log: &TaskLog) -> Result<(), ApiError> {
        let lock = self.lock(create.vmid);
        let _guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut allocated = Vec::new();
        let result = self.build(&create, storage, log, &mut allocated);
        if result.is_err() {
            for volid in &allocated {
                let _ = storage.free_volume(volid);
            }
            storage.tidy(create.vmid);
            let _ = self.remove_config(create.vmid);
        }
        result
    }

    fn build(
        &self,
        create: &Create,
        storage: &Storage,
        log: &TaskLog,
        allocated: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let vmid = create.vmid;
        let params = &create.params;
        let unprivileged = params.get("unprivileged").map(String::as_str) == Some("1");
        let mut config = Config::default();
        for (key, value) in params {
            if !NOT_CONFIG.contains(&key.as_str()) {
                config.keys.insert(key.clone(), value.clone());
            }
        }
        config.description = config.keys.remove("description");
        let default_storage = params.get("storage").map_or("local", String::as_str);
        config
            .keys
            .entry("rootfs".to_owned())
            .or_insert_with(|| format!("{default_storage}:{DEFAULT_ROOTFS_GIB}"));

        // Volumes: rootfs first, then the mount points.
        let mut keys = vec!["rootfs".to_owned()];
        keys.extend(config.mount_points());
        let mut dirs: Vec<(Option<String>, PathBuf)> = Vec::new();
        for key in keys {
            let mut prop = Property::parse(config.get(&key).unwrap_or_default(), Some("volume"));
            let spec = prop.get("volume").unwrap_or_default().to_owned();
            let (store, size) =
                spec.split_once(':').filter(|(_, size)| size.parse::<f64>().is_ok()).ok_or_else(|| {
                    ApiError::param(&key, "pve-sim allocates new volumes only (<storage>:<size in GiB>)")
                })?;
            let (volid, dir) = storage.alloc_subvol(store, vmid)?;
            allocated.push(volid.clone());
            log.line(format!("allocated {key}: {volid} ({size} GiB, not enforced)"));
            prop.set("volume", &volid);
            prop.set("size", &format!("{size}G"));
            config.keys.insert(key.clone(), prop.render());
            dirs.push((prop.get("mp").map(str::to_owned), dir));
        }
        let rootfs =
            dirs.first().map(|(_, dir)| dir.clone()).ok_or_else(|| ApiError::internal("no rootfs"))?;
        log.line(format!("extracting archive '{}'", create.template.display()));
        let shift = if unprivileged { ID_BASE } else { 0 };
        let count = extract(&create.template, &rootfs, shift)?;
        log.line(format!("Total bytes read: {count}"));
        for (mp, dir) in dirs.iter().skip(1) {
            if let Some(mp) = mp {
                move_into_volume(&rootfs, mp, dir, shift)?;
            }
        }
        for (_, key) in config.nets() {
            let mut net = Property::parse(config.get(&key).unwrap_or_default(), None);
            if net.get("hwaddr").is_none() {
                net.set("hwaddr", &random_hwaddr()?);
                config.keys.insert(key, net.render());
            }
        }
        config.keys.entry("hostname".to_owned()).or_insert_with(|| format!("CT{vmid}"));
        self.write(vmid, &config)
    }
}

/// The on-disk path of an archive member below `root` (only normal components: `unpack_in`
/// refuses the others).
fn member_path(root: &Path, member: &Path) -> PathBuf {
    let mut path = root.to_path_buf();
    for component in member.components() {
        if let Component::Normal(part) = component {
            path.push(part);
        }
    }
    path
}

/// Unpacks the tar.zst `template` into `root`, every owner shifted by `shift`; returns the
/// bytes read.
pub fn extract(template: &Path, root: &Path, shift: u32) -> Result<u64, ApiError> {
    let file = File::open(template).ctx(|| format!("cannot open {}", template.display()))?;
    let decoder = zstd::Decoder::new(file).ctx(|| "cannot start zstd".to_owned())?;
    let mut archive = tar::Archive::new(decoder);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(false);
    archive.set_overwrite(true);
    let mut total = 0;
    let bad = |e: std::io::Error| ApiError::internal(format!("cannot unpack {}: {e}", template.display()));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let header = entry.header();
        let (uid, gid, mode) =
            (header.uid().map_err(bad)?, header.gid().map_err(bad)?, header.mode().map_err(bad)?);
        let is_symlink = header.entry_type().is_symlink();
        total += header.size().unwrap_or(0);
        let member = entry.path().map_err(bad)?.into_owned();
        if uid >= u64::from(ID_COUNT) || gid >= u64::from(ID_COUNT) {
            return Err(ApiError::internal(format!(
                "{}: owner {uid}:{gid} is outside the id map",
                member.display()
            )));
        }
        if !entry.unpack_in(root).map_err(bad)? {
            continue;
        }
        let path = member_path(root, &member);
        let (uid, gid) = (u32::try_from(uid).unwrap_or(0) + shift, u32::try_from(gid).unwrap_or(0) + shift);
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
            .ctx(|| format!("cannot chown {}", path.display()))?;
        if !is_symlink {
            // chown clears set-id bits; the archive's mode is the truth.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))?;
        }
    }
    Ok(total)
}

/// Moves what the template put at mount point `mp` into its volume `dir` (Proxmox unpacks with
/// the mount points mounted) and gives the volume's root the mount point's owner and mode.
fn move_into_volume(rootfs: &Path, mp: &str, dir: &Path, shift: u32) -> Result<(), ApiError> {
    let at = member_path(rootfs, Path::new(mp));
    let (uid, gid, mode) = match std::fs::metadata(&at) {
        Ok(meta) => {
            use std::os::unix::fs::MetadataExt;
            (meta.uid(), meta.gid(), meta.mode() & 0o7777)
        }
        Err(_) => (shift, shift, 0o755),
    };
    if at.is_dir() {
        for entry in std::fs::read_dir(&at)?.flatten() {
            std::fs::rename(entry.path(), dir.join(entry.file_name()))
                .ctx(|| format!("cannot move {} into its volume", entry.path().display()))?;
        }
    }
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn template(dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join("t.tar.zst");
        let encoder = zstd::Encoder::new(File::create(&path)?, 3)?;
        let mut builder = tar::Builder::new(encoder);
        let mut add = |name: &str,
                       kind: tar::EntryType,
                       mode: u32,
                       data: &[u8],
                       link: Option<&str>|
         -> anyhow::Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(data.len() as u64);
            if let Some(link) = link {
                h.set_link_name(link)?;
            }
            builder.append_data(&mut h, name, data)?;
            Ok(())
        };
        add("./", tar::EntryType::Directory, 0o755, b"", None)?;
        add("sbin/", tar::EntryType::Directory, 0o755, b"", None)?;
        add("sbin/proximity-appliance", tar::EntryType::Regular, 0o755, b"ELF", None)?;
        add("sbin/init", tar::EntryType::Symlink, 0o777, b"", Some("proximity-appliance"))?;
        add("var/lib/proximity/", tar::EntryType::Directory, 0o700, b"", None)?;
        builder.into_inner()?.finish()?;
        Ok(path)
    }

    #[test]
    fn a_template_unpacks_with_shifted_owners() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("root");
        std::fs::create_dir(&root)?;
        extract(&template(dir.path())?, &root, ID_BASE)?;
        let meta = std::fs::metadata(root.join("sbin/proximity-appliance"))?;
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (ID_BASE, ID_BASE, 0o755));
        assert_eq!(std::fs::read_link(root.join("sbin/init"))?, Path::new("proximity-appliance"));
        assert_eq!(std::fs::symlink_metadata(root.join("sbin/init"))?.uid(), ID_BASE);
        assert_eq!(std::fs::metadata(&root)?.uid(), ID_BASE);
        let volume = dir.path().join("vol");
        std::fs::create_dir(&volume)?;
        move_into_volume(&root, "/var/lib/proximity", &volume, ID_BASE)?;
        let meta = std::fs::metadata(&volume)?;
        assert_eq!((meta.uid(), meta.mode() & 0o777), (ID_BASE, 0o700));
        Ok(())
    }

    #[test]
    fn hwaddrs_are_locally_administered_unicast() -> Result<(), ApiError> {
        let mac = random_hwaddr()?;
        let first = u8::from_str_radix(&mac[..2], 16).unwrap_or(1);
        assert_eq!(first & 0x03, 0x02, "{mac}");
        assert_eq!(mac.len(), 17);
        Ok(())
    }
}
