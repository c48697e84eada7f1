//! Changes to existing containers: `PUT .../config` (synchronous, as in Proxmox), destroy
//! (`vzdestroy`: stops with `force`, removes the config, LXC's files and the volumes), and
//! `move_volume` to another container (Proxmox's reassign: the volume is renamed after its new
//! owner and moves from one config key to the other).

use std::collections::BTreeMap;

use super::Containers;
use super::conf::Property;
use super::create::random_hwaddr;
use crate::pve::sim::error::ApiError;
use crate::pve::sim::storage::Storage;
use crate::pve::sim::tasks::TaskLog;

/// Config keys a `PUT .../config` may not touch in the sim (volumes are allocated at create).
fn is_volume_key(key: &str) -> bool {
    key == "rootfs" || key.strip_prefix("mp").is_some_and(|n| n.parse::<u32>().is_ok())
}

impl Containers {
    /// Refuses when the config has a `lock` (a create or another operation in progress).
    pub fn check_lock(&self, vmid: u32) -> Result<(), ApiError> {
        match self.read(vmid)?.get("lock") {
            Some(lock) => Err(ApiError::internal(format!("CT {vmid} is locked ({lock})"))),
            None => Ok(()),
        }
    }

    /// `PUT /nodes/{node}/lxc/{vmid}/config`: sets the given options, deletes those in `delete`.
    pub fn update(&self, vmid: u32, params: &BTreeMap<String, String>) -> Result<(), ApiError> {
        let lock = self.lock(vmid);
        let _guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut config = self.read(vmid)?;
        self.check_lock(vmid)?;
        if let Some(digest) = params.get("digest") {
            if *digest != config.digest() {
                return Err(ApiError::internal(
                    "detected modified configuration - file changed by other user? Try again.",
                ));
            }
        }
        for (key, value) in params {
            match key.as_str() {
                "node" | "vmid" | "digest" | "delete" | "revert" => {}
                "description" => config.description = Some(value.clone()),
                k if is_volume_key(k) => {
                    return Err(ApiError::param(k, "pve-sim allocates volumes at create only"));
                }
                k if k.starts_with("net") => {
                    let mut net = Property::parse(value, None);
                    if net.get("hwaddr").is_none() {
                        net.set("hwaddr", &random_hwaddr()?);
                    }
                    config.keys.insert(k.to_owned(), net.render());
                }
                k => {
                    config.keys.insert(k.to_owned(), value.clone());
                }
            }
        }
        for key in params.get("delete").map(String::as_str).unwrap_or_default().split([',', ';', ' ']) {
            match key {
                "" => {}
                "description" => config.description = None,
                k if is_volume_key(k) => {
                    return Err(ApiError::param("delete", format!("pve-sim cannot delete {k}")));
                }
                k => {
                    config.keys.remove(k);
                }
            }
        }
        self.write(vmid, &config)
    }

    /// The synchronous check of a destroy: a running container needs `force`.
    pub fn check_destroy(&self, vmid: u32, force: bool) -> Result<(), ApiError> {
        self.read(vmid)?;
        self.check_lock(vmid)?;
        if !force && self.state(vmid).0 {
            return Err(ApiError::internal(format!("CT {vmid} is running - destroy failed")));
        }
        Ok(())
    }

    /// The `vzdestroy` task's work.
    pub fn destroy(
        &self,
        vmid: u32,
        force: bool,
        unreferenced: bool,
        storage: &Storage,
        log: &TaskLog,
    ) -> Result<(), ApiError> {
        let lock = self.lock(vmid);
        let _guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.check_destroy(vmid, force)?;
        if self.state(vmid).0 {
            log.line(format!("stopping CT {vmid} (force)"));
            self.stop(vmid)?;
        }
        let config = self.read(vmid)?;
        for (key, volid) in config.volumes() {
            log.line(format!("removing {key}: {volid}"));
            storage.free_volume(&volid)?;
        }
        if unreferenced {
            storage.free_all_of(vmid)?;
        }
        storage.tidy(vmid);
        let dir = self.lxc_dir(vmid);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| ApiError::internal(format!("cannot remove {}: {e}", dir.display())))?;
        }
        self.remove_config(vmid)?;
        log.line(format!("CT {vmid} destroyed"));
        Ok(())
    }

    /// The synchronous checks of a move to another container, as Proxmox refuses it: both
    /// exist and are unlocked, the source's key is a mount point with a volume, the source is
    /// stopped, the target key is free.
    pub fn check_move(&self, vmid: u32, key: &str, target: u32, target_key: &str) -> Result<(), ApiError> {
        let source = self.read(vmid)?;
        let dest = self.read(target)?;
        self.check_lock(vmid)?;
        self.check_lock(target)?;
        if vmid == target {
            return Err(ApiError::param(
                "target-vmid",
                "must differ from the source CT to reassign a volume",
            ));
        }
        if key == "rootfs" || target_key == "rootfs" {
            return Err(ApiError::internal("cannot move a rootfs to another container"));
        }
        if source.get(key).is_none() {
            return Err(ApiError::internal(format!("CT {vmid} has no volume '{key}'")));
        }
        if self.state(vmid).0 {
            return Err(ApiError::internal(format!("cannot move volume '{key}': CT {vmid} is running")));
        }
        if dest.get(target_key).is_some() {
            return Err(ApiError::internal(format!(
                "target volume key '{target_key}' is already in use in CT {target}"
            )));
        }
        Ok(())
    }

    /// The `move_volume` task's work for a move to another container.
    pub fn move_volume(
        &self,
        vmid: u32,
        key: &str,
        target: u32,
        target_key: &str,
        storage: &Storage,
        log: &TaskLog,
    ) -> Result<(), ApiError> {
        // Always lock the lower vmid first, so two opposite moves cannot deadlock.
        let (first, second) = (self.lock(vmid.min(target)), self.lock(vmid.max(target)));
        let _a = first.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _b = second.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.check_move(vmid, key, target, target_key)?;
        let mut source = self.read(vmid)?;
        let mut dest = self.read(target)?;
        let mut prop = Property::parse(source.get(key).unwrap_or_default(), Some("volume"));
        let volid =
            prop.get("volume").ok_or_else(|| ApiError::internal(format!("{key} has no volume")))?.to_owned();
        let new_volid = storage.rename_volume(&volid, target)?;
        log.line(format!(
            "moving volume '{volid}' of CT {vmid} ({key}) to CT {target} as '{new_volid}' ({target_key})"
        ));
        prop.set("volume", &new_volid);
        source.keys.remove(key);
        dest.keys.insert(target_key.to_owned(), prop.render());
        self.write(target, &dest)?;
        self.write(vmid, &source)?;
        storage.tidy(vmid);
        Ok(())
    }
}
