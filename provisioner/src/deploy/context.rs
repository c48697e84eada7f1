//! What every Proxmox command needs, made from the flags: the API client (URL, token, TLS trust
//! checked before any request), the node, the VMID, the storages and bridges, the state file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::Global;
use crate::net::fingerprint::Fingerprint;
use crate::net::http::Endpoint;
use crate::net::tls::{Trust, client_config};
use crate::progress::Progress;
use crate::pve::ApiToken;
use crate::pve::client::{Pve, parse_url};
use crate::state::{StateFile, default_path};

/// The message when no trust was given.
pub const NO_TRUST: &str = "no way to verify the Proxmox node's certificate: pass --fingerprint (PROXMOX_FINGERPRINT) \
     with the SHA-256 fingerprint of the node's certificate, as printed by `pvenode cert info` on the node \
     (or shown in the GUI under node → System → Certificates → View Certificate), or --ca-file \
     (PROXMOX_CA_FILE) with the CA that signed it. Verification is never turned off.";

/// A deployment's settings and connection.
#[derive(Debug)]
pub struct Ctx {
    pub pve: Pve,
    pub node: String,
    pub vmid: u32,
    pub storage: String,
    pub template_storage: String,
    pub bridge: String,
    pub wan_bridge: String,
    pub appliance: Option<PathBuf>,
    pub timeout: Duration,
    pub state: StateFile,
    pub progress: Progress,
}

impl Ctx {
    /// Checks the connection flags and sets up the client (no request made yet).
    pub fn from_flags(global: &Global) -> Result<Ctx> {
        let url = global
            .url
            .as_deref()
            .ok_or_else(|| anyhow!("no Proxmox URL: pass --url or set PROXMOX_URL (https://<node>:8006)"))?;
        let (host, port) = parse_url(url)?;
        let token: ApiToken = global
            .token
            .as_deref()
            .ok_or_else(|| {
                anyhow!("no API token: pass --token or set PROXMOX_TOKEN (user@realm!tokenid=secret)")
            })?
            .parse()?;
        let node = global.node.clone().ok_or_else(|| {
            anyhow!("no node: pass --node or set PROXMOX_NODE (the node's name as in the GUI)")
        })?;
        if !(100..=999_999_999).contains(&global.vmid) {
            bail!("--vmid {} is outside Proxmox's range 100-999999999", global.vmid);
        }
        let trust = match (&global.ca_file, &global.fingerprint) {
            (Some(path), _) => Trust::ca_file(path)?,
            (None, Some(text)) => Trust::Pinned(text.parse::<Fingerprint>()?),
            (None, None) => bail!(NO_TRUST),
        };
        let endpoint = Endpoint { server_name: host.clone(), host, port, tls: client_config(&trust)? };
        let state = StateFile::new(default_path(&node, global.vmid).context("locating the state file")?);
        Ok(Ctx {
            pve: Pve::new(endpoint, token),
            node,
            vmid: global.vmid,
            storage: global.storage.clone(),
            template_storage: global.template_storage.clone(),
            bridge: global.bridge.clone(),
            wan_bridge: global.wan_bridge.clone(),
            appliance: global.appliance.clone(),
            timeout: global.timeout,
            state,
            progress: Progress::new(global.quiet),
        })
    }

    /// `/nodes/{node}` with the rest appended.
    pub fn node_path(&self, rest: &str) -> String {
        format!("/nodes/{}{rest}", crate::pve::client::encode(&self.node))
    }
}
