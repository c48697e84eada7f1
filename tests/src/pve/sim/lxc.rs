//! Containers as pve-container manages them, carried out with LXC: configs in
//! `--data/pve/lxc/<vmid>.conf` (Proxmox's `/etc/pve/lxc/`), LXC's own config and state in a
//! private lxcpath `--data/lxc/<vmid>/`, volumes from [`super::storage`].
//!
//! Every `lxc-*` command runs in the namespace the sim runs in: LXC's command socket is an
//! abstract unix socket, which belongs to a network namespace (see [`crate::lxc`]).
//!
//! - [`conf`]: the config file format and property strings.
//! - [`create`]: `POST /nodes/{node}/lxc`: volumes, the template unpacked with shifted owners,
//!   hwaddrs.
//! - [`runtime`]: the LXC config pve-container would generate, start, stop, status, interfaces.
//! - [`ops`]: config updates, destroy, move_volume.

pub mod conf;
pub mod create;
pub mod ops;
pub mod runtime;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use self::conf::Config;
use super::error::{ApiError, IoContext};

/// Where LXC keeps a lock directory per lxcpath (`<this><lxcpath>/...`), left behind by
/// `lxc-destroy` and `lxc-stop`.
const LXC_LOCK_DIR: &str = "/run/lxc/lock";

/// The containers of one sim.
#[derive(Debug)]
pub struct Containers {
    node: String,
    conf_dir: PathBuf,
    lxcpath: PathBuf,
    /// One lock per vmid: config changes and long operations on a container take turns, as
    /// pve-container's config lock makes them.
    locks: Mutex<HashMap<u32, Arc<Mutex<()>>>>,
    /// Containers this sim started, stopped with it.
    started: Mutex<BTreeSet<u32>>,
}

impl Containers {
    pub fn open(data: &Path, node: &str) -> Result<Containers, ApiError> {
        let conf_dir = data.join("pve/lxc");
        let lxcpath = data.join("lxc");
        for dir in [&conf_dir, &lxcpath] {
            std::fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(Containers {
            node: node.to_owned(),
            conf_dir,
            lxcpath,
            locks: Mutex::new(HashMap::new()),
            started: Mutex::new(BTreeSet::new()),
        })
    }

    /// The container's lock (hold the returned guard's mutex while changing it).
    pub fn lock(&self, vmid: u32) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(vmid).or_default())
    }

    fn conf_path(&self, vmid: u32) -> PathBuf {
        self.conf_dir.join(format!("{vmid}.conf"))
    }

    pub fn exists(&self, vmid: u32) -> bool {
        self.conf_path(vmid).is_file()
    }

    /// The config, or Proxmox's error for a container that does not exist.
    pub fn read(&self, vmid: u32) -> Result<Config, ApiError> {
        match std::fs::read_to_string(self.conf_path(vmid)) {
            Ok(text) => Ok(Config::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::internal(format!(
                "Configuration file 'nodes/{}/lxc/{vmid}.conf' does not exist",
                self.node
            ))),
            Err(e) => Err(ApiError::internal(format!("cannot read the config of CT {vmid}: {e}"))),
        }
    }

    /// Writes the config (whole, by rename).
    pub fn write(&self, vmid: u32, config: &Config) -> Result<(), ApiError> {
        let path = self.conf_path(vmid);
        let tmp = self.conf_dir.join(format!(".{vmid}.conf.tmp"));
        std::fs::write(&tmp, config.render()).ctx(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).ctx(|| format!("cannot write {}", path.display()))
    }

    /// Creates the config only if there is none: the reservation of `vmid`.
    pub fn create_config(&self, vmid: u32, config: &Config) -> Result<(), ApiError> {
        let path = self.conf_path(vmid);
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path);
        match file {
            Ok(_) => self.write(vmid, config),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(ApiError::internal(format!("CT {vmid} already exists on node '{}'", self.node)))
            }
            Err(e) => Err(ApiError::internal(format!("cannot create {}: {e}", path.display()))),
        }
    }

    pub fn remove_config(&self, vmid: u32) -> Result<(), ApiError> {
        std::fs::remove_file(self.conf_path(vmid)).ctx(|| format!("cannot remove the config of CT {vmid}"))
    }

    /// Every vmid with a config.
    pub fn vmids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = std::fs::read_dir(&self.conf_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.strip_suffix(".conf")?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    /// `GET /cluster/nextid`: the lowest free id from 100, or a check of `wanted`.
    pub fn next_id(&self, wanted: Option<u32>) -> Result<u32, ApiError> {
        if let Some(vmid) = wanted {
            return match self.exists(vmid) {
                true => Err(ApiError::param("vmid", format!("VM {vmid} already exists"))),
                false => Ok(vmid),
            };
        }
        let taken = self.vmids();
        (100..1_000_000_000).find(|id| !taken.contains(id)).ok_or_else(|| ApiError::internal("no free vmid"))
    }

    /// `lxc-TOOL -P <lxcpath> -n <vmid>`.
    pub fn lxc(&self, tool: &str, vmid: u32) -> Command {
        let mut cmd = Command::new(format!("lxc-{tool}"));
        cmd.arg("-P").arg(&self.lxcpath).arg("-n").arg(vmid.to_string()).stdin(Stdio::null());
        cmd
    }

    /// LXC's directory of the container (its generated config, logs).
    pub fn lxc_dir(&self, vmid: u32) -> PathBuf {
        self.lxcpath.join(vmid.to_string())
    }

    fn started(&self) -> MutexGuard<'_, BTreeSet<u32>> {
        self.started.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `lxc-stop -k` for every container this sim started; removes LXC's lock directory.
    pub fn kill_all(&self) {
        let started = std::mem::take(&mut *self.started());
        for vmid in started {
            let _ = self.lxc("stop", vmid).arg("-k").stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_dir_all(
            Path::new(LXC_LOCK_DIR).join(self.lxcpath.strip_prefix("/").unwrap_or(&self.lxcpath)),
        );
    }
}
