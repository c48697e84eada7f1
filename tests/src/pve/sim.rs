//! `pve-sim`, the Proxmox VE API **test double**: it serves the subset of the Proxmox VE REST API
//! that the `proximity` provisioner uses, so the end-to-end test runs the provisioner's real code
//! against something that behaves like a node. It is never Proxmox and must never stand in for it
//! outside tests.
//!
//! Like Proxmox it validates every request against the official API schema ([`super::schema`])
//! before anything else, authenticates API tokens, returns UPIDs for long operations and carries
//! them out in the background, and answers errors with Proxmox's status codes and bodies. The
//! work is done for real on the machine it runs on (inside the node namespace of
//! [`super::node::Node`]): bridges with `ip link`, templates stored in a directory, containers
//! with LXC (`lxc-start`, `lxc-stop`, `lxc-info`), their config generated as pve-container does.
//!
//! What it simplifies, on purpose: every storage is a directory storage and every container
//! volume a directory (`subvol-<vmid>-disk-<n>`, as on ZFS), whatever the storage is called;
//! volume sizes are recorded in the config, never enforced. One node, one user (the token's),
//! no permissions beyond "the token is right".
//!
//! # Layout
//! - [`server`]: the HTTPS listener (self-signed certificate, fingerprint), one handler per
//!   connection, the request log.
//! - [`auth`]: the `PVEAPIToken` header.
//! - [`request`]: query, form, JSON and multipart parameters of a request; [`multipart`] parses
//!   the uploads.
//! - [`routes`]: the validated request's path template to the handler.
//! - [`error`]: [`error::ApiError`], an error as Proxmox reports it.
//! - [`tasks`]: UPIDs, background work, task status and log.
//! - [`storage`]: `local` and `local-lvm`, templates and volumes under `--data`.
//! - [`network`]: bridges of the node, pending changes and their application.
//! - [`lxc`]: container configs, create, start/stop, destroy, move_volume, interfaces.

pub mod auth;
pub mod error;
pub mod lxc;
pub mod multipart;
pub mod network;
pub mod request;
pub mod routes;
pub mod server;
pub mod storage;
pub mod tasks;

use std::path::PathBuf;
use std::sync::Arc;

use crate::pve::schema::Schema;

pub use server::{Listener, ServerError};

/// What a sim serves and where it keeps its files.
#[derive(Debug, Clone)]
pub struct Options {
    /// The node's name (`{node}` in paths), also a name in its certificate.
    pub node: String,
    /// The one API token it accepts, `user@realm!tokenid=secret`.
    pub token: auth::Token,
    /// Everything it keeps: storages, container configs, the lxcpath.
    pub data: PathBuf,
}

/// The state of one sim, shared by every connection and task.
#[derive(Debug)]
pub struct Sim {
    pub options: Options,
    pub schema: Schema,
    pub tasks: Arc<tasks::Tasks>,
    pub storage: storage::Storage,
    pub network: network::Network,
    pub lxc: lxc::Containers,
}

impl Sim {
    /// A sim over `options.data` (created, and opened to the containers' root: see
    /// [`storage::Storage::open`]).
    pub fn new(options: Options, schema: Schema) -> Result<Arc<Sim>, error::ApiError> {
        let storage = storage::Storage::open(&options.data)?;
        let tasks = Arc::new(tasks::Tasks::new(&options.node));
        let lxc = lxc::Containers::open(&options.data, &options.node)?;
        Ok(Arc::new(Sim { network: network::Network::default(), tasks, storage, lxc, schema, options }))
    }

    /// The node's boot, as Proxmox's `pve-guests` service does it: every container with
    /// `onboot: 1` that is not running starts, in order of VMID, in one `startall` task; its
    /// UPID, or `None` when no container is marked.
    pub fn boot(self: &Arc<Self>) -> Option<String> {
        let marked =
            |id: &u32| self.lxc.read(*id).is_ok_and(|c| c.keys.get("onboot").is_some_and(|v| v == "1"));
        let onboot: Vec<u32> = self.lxc.vmids().into_iter().filter(marked).collect();
        if onboot.is_empty() {
            return None;
        }
        let sim = Arc::clone(self);
        Some(self.tasks.spawn("startall", "", "root@pam", move |log| {
            for id in onboot {
                if sim.lxc.state(id).0 {
                    continue;
                }
                log.line(format!("Starting CT {id}"));
                let lock = sim.lxc.lock(id);
                let _guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                sim.lxc.start(id, &sim.storage, log)?;
            }
            Ok(())
        }))
    }

    /// Stops (`lxc-stop -k`) every container this sim started: the sim's end is the node's.
    pub fn shutdown(&self) {
        self.lxc.kill_all();
    }
}
