//! Host mode: the bridge made on the node itself (the provisioner runs there as root), with
//! rtnetlink, and persisted as an ifupdown2 stanza in `<interfaces dir>/<name>` carrying the
//! marker. The stanza is written before the link is made, so a link without our stanza is
//! someone else's and is never removed.

use std::io;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use rtnetlink::{LinkBridge, LinkUnspec};

use super::MARKER;

/// Where stanzas go unless `PROXIMITY_INTERFACES_DIR` says otherwise.
pub const DEFAULT_INTERFACES_DIR: &str = "/etc/network/interfaces.d";
/// The environment variable naming the interfaces directory (tests point it at a temp dir).
pub const INTERFACES_DIR_ENV: &str = "PROXIMITY_INTERFACES_DIR";
/// errno of "no such device".
const ENODEV: i32 = 19;

/// Why the host bridge could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum HostBridgeError {
    #[error(
        "the bridge {0} cannot be made through the Proxmox API (its name is not a pve-iface), so `proximity` \
         must run as root on the node itself to create it; or pass --bridge vmbrN to use an API-managed bridge"
    )]
    NotRoot(String),
    #[error(
        "the bridge {bridge} cannot be made through the Proxmox API (its name is not a pve-iface), so it is made \
         on the node itself, but this machine is not the node at {host} (none of its addresses is the API's). \
         Run `proximity` on the node, or pass --bridge vmbrN to use an API-managed bridge"
    )]
    NotOnNode { bridge: String, host: String },
    #[error("cannot open a netlink socket")]
    Netlink(#[source] io::Error),
    #[error("netlink: cannot {1} {0}: {2}")]
    Request(String, &'static str, String),
    #[error("cannot {what} {}", .path.display())]
    File { path: PathBuf, what: &'static str, source: io::Error },
}

/// The interfaces directory from the environment.
pub fn interfaces_dir() -> PathBuf {
    std::env::var_os(INTERFACES_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_INTERFACES_DIR), PathBuf::from)
}

/// The stanza for bridge `name`.
pub fn stanza(name: &str) -> String {
    format!(
        "# {MARKER}: the app LAN bridge of the Proximity appliance; `proximity down` removes it\n\
         auto {name}\niface {name} inet manual\n  bridge-ports none\n  bridge-stp off\n  bridge-fd 0\n"
    )
}

/// A host bridge and its stanza file.
#[derive(Debug, Clone)]
pub struct HostBridge {
    pub name: String,
    pub stanza_path: PathBuf,
}

/// What [`HostBridge::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ensured {
    pub stanza_written: bool,
    pub link_created: bool,
    pub link_set_up: bool,
}

impl HostBridge {
    pub fn new(name: &str, dir: &Path) -> Self {
        HostBridge { name: name.to_owned(), stanza_path: dir.join(name) }
    }

    /// Whether the stanza file exists and carries the marker.
    pub fn stanza_is_ours(&self) -> Result<Option<bool>, HostBridgeError> {
        match std::fs::read_to_string(&self.stanza_path) {
            Ok(text) => Ok(Some(text.contains(MARKER))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(HostBridgeError::File { path: self.stanza_path.clone(), what: "read", source: e }),
        }
    }

    /// Makes sure the bridge exists and is up, and that it is persisted if it is ours.
    pub async fn ensure(&self) -> Result<Ensured, HostBridgeError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(HostBridgeError::NotRoot(self.name.clone()));
        }
        let netlink = Netlink::open()?;
        let existing = netlink.link(&self.name).await?;
        let mut done = Ensured { stanza_written: false, link_created: false, link_set_up: false };
        // A link without a stanza was made by someone else: used, never persisted or removed by us.
        let foreign = existing.is_some() && self.stanza_is_ours()?.is_none();
        if !foreign {
            let want = stanza(&self.name);
            let have = std::fs::read_to_string(&self.stanza_path).ok();
            if have.as_deref() != Some(want.as_str()) {
                if have.as_ref().is_some_and(|h| !h.contains(MARKER)) {
                    // The user's own stanza for this name: keep it.
                } else {
                    write_atomic(&self.stanza_path, &want)?;
                    done.stanza_written = true;
                }
            }
        }
        match existing {
            None => {
                let message = LinkBridge::new(&self.name).up().build();
                netlink.handle.link().add(message).execute().await.map_err(|e| self.request("create", e))?;
                done.link_created = true;
            }
            Some((index, up)) if !up => {
                let message = LinkUnspec::new_with_index(index).up().build();
                netlink.handle.link().set(message).execute().await.map_err(|e| self.request("set up", e))?;
                done.link_set_up = true;
            }
            Some(_) => {}
        }
        Ok(done)
    }

    /// Removes the link and the stanza if the stanza marks them ours; `false` when nothing was ours.
    pub async fn remove(&self) -> Result<bool, HostBridgeError> {
        if self.stanza_is_ours()? != Some(true) {
            return Ok(false);
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(HostBridgeError::NotRoot(self.name.clone()));
        }
        let netlink = Netlink::open()?;
        if let Some((index, _)) = netlink.link(&self.name).await? {
            netlink.handle.link().del(index).execute().await.map_err(|e| self.request("delete", e))?;
        }
        std::fs::remove_file(&self.stanza_path).map_err(|e| HostBridgeError::File {
            path: self.stanza_path.clone(),
            what: "remove",
            source: e,
        })?;
        Ok(true)
    }

    fn request(&self, what: &'static str, e: rtnetlink::Error) -> HostBridgeError {
        HostBridgeError::Request(self.name.clone(), what, e.to_string())
    }
}

/// A request-only rtnetlink connection; its task ends with it.
struct Netlink {
    handle: rtnetlink::Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Netlink {
    fn open() -> Result<Netlink, HostBridgeError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(HostBridgeError::Netlink)?;
        Ok(Netlink { handle, task: tokio::spawn(connection) })
    }

    /// The index and up flag of the link `name`; `None` when there is none.
    async fn link(&self, name: &str) -> Result<Option<(u32, bool)>, HostBridgeError> {
        let mut links = self.handle.link().get().match_name(name.to_owned()).execute();
        match links.try_next().await {
            Ok(Some(m)) => Ok(Some((
                m.header.index,
                m.header.flags.contains(rtnetlink::packet_route::link::LinkFlags::Up),
            ))),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(m)) if m.code.map(|c| c.get().abs()) == Some(ENODEV) => {
                Ok(None)
            }
            Err(e) => Err(HostBridgeError::Request(name.to_owned(), "read", e.to_string())),
        }
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), HostBridgeError> {
    let err = |e| HostBridgeError::File { path: path.to_owned(), what: "write", source: e };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension(format!("proximity-{}.tmp", std::process::id()));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stanza_is_the_agreed_one() {
        let text = stanza("proximity-lan");
        assert!(text.starts_with(&format!("# {MARKER}")));
        assert!(text.ends_with(
            "auto proximity-lan\niface proximity-lan inet manual\n  bridge-ports none\n  bridge-stp off\n  bridge-fd 0\n"
        ));
    }

    #[tokio::test]
    async fn a_foreign_stanza_is_not_ours() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let bridge = HostBridge::new("proximity-lan", dir.path());
        assert_eq!(bridge.stanza_is_ours()?, None);
        std::fs::write(&bridge.stanza_path, "auto proximity-lan\n")?;
        assert_eq!(bridge.stanza_is_ours()?, Some(false));
        // Not ours: remove leaves it, whoever runs it.
        assert!(!bridge.remove().await?);
        assert!(bridge.stanza_path.exists());
        std::fs::write(&bridge.stanza_path, stanza("proximity-lan"))?;
        assert_eq!(bridge.stanza_is_ours()?, Some(true));
        Ok(())
    }
}
