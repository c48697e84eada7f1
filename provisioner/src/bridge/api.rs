//! API mode: a `vmbrN` bridge made through `POST /nodes/{node}/network` and applied with
//! `PUT /nodes/{node}/network` (ifreload, a task). Proxmox applies *all* pending changes at once,
//! so the provisioner refuses while changes it did not make are pending. Proxmox returns them as
//! the diff in `changes`, next to `data` (not in the schema, which only describes `data`); an
//! interface flagged `pending` (as the test double marks them) counts too.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::MARKER;
use crate::pve::PveError;
use crate::pve::client::{Pve, encode};

/// Why the API bridge was not touched.
#[derive(Debug, thiserror::Error)]
pub enum ApiBridgeError {
    #[error(transparent)]
    Pve(#[from] PveError),
    #[error(
        "node {node} has pending network changes that Proximity did not make; applying the bridge would \
         apply them too. Review them in the GUI (node → System → Network) and apply or revert them, then run again"
    )]
    PendingChanges { node: String },
    #[error("{iface} on node {node} exists and is a {kind}, not a bridge; choose another --bridge")]
    NotABridge { node: String, iface: String, kind: String },
}

/// An interface as `GET /nodes/{node}/network` lists it (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct Iface {
    pub iface: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub comments: Option<String>,
    #[serde(default, deserialize_with = "bool_or_int")]
    pub active: bool,
    /// A change to this interface is not applied yet.
    #[serde(default, deserialize_with = "bool_or_int")]
    pub pending: bool,
}

fn bool_or_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
        _ => false,
    })
}

/// The node's interfaces and whether changes are pending.
pub async fn list(pve: &Pve, node: &str) -> Result<(Vec<Iface>, bool), PveError> {
    let path = format!("/nodes/{}/network", encode(node));
    let envelope = pve.get_envelope(&path, &[]).await?;
    let pending = pending_changes(&envelope);
    let ifaces =
        crate::pve::client::decode("GET", &path, envelope.get("data").cloned().unwrap_or(Value::Null))?;
    Ok((ifaces, pending))
}

/// Whether a network listing reports pending changes (a non-empty `changes` diff).
pub fn pending_changes(envelope: &Value) -> bool {
    envelope.get("changes").and_then(Value::as_str).is_some_and(|c| !c.trim().is_empty())
}

/// Whether `iface` was made by Proximity.
pub fn is_ours(iface: &Iface) -> bool {
    iface.comments.as_deref().is_some_and(|c| c.contains(MARKER))
}

/// Makes sure bridge `name` exists and is applied; `true` when something was changed.
pub async fn ensure(pve: &Pve, node: &str, name: &str, timeout: Duration) -> Result<bool, ApiBridgeError> {
    let (ifaces, pending) = list(pve, node).await?;
    let others_pending = ifaces.iter().any(|i| i.pending && i.iface != name);
    match ifaces.iter().find(|i| i.iface == name) {
        Some(i) if i.kind != "bridge" && i.kind != "OVSBridge" => Err(ApiBridgeError::NotABridge {
            node: node.to_owned(),
            iface: name.to_owned(),
            kind: i.kind.clone(),
        }),
        // Our own bridge, made by a run that stopped before applying: apply it now.
        Some(i) if pending && is_ours(i) && !i.active => {
            if others_pending {
                return Err(ApiBridgeError::PendingChanges { node: node.to_owned() });
            }
            apply(pve, node, timeout).await?;
            Ok(true)
        }
        Some(_) => Ok(false),
        None if pending || others_pending => Err(ApiBridgeError::PendingChanges { node: node.to_owned() }),
        None => {
            let path = format!("/nodes/{}/network", encode(node));
            pve.post(
                &path,
                &[
                    ("iface", name.to_owned()),
                    ("type", "bridge".to_owned()),
                    ("autostart", "1".to_owned()),
                    ("comments", format!("{MARKER}: the app LAN bridge of the Proximity appliance")),
                ],
            )
            .await?;
            apply(pve, node, timeout).await?;
            Ok(true)
        }
    }
}

/// Removes bridge `name` if it is ours; `true` when it was removed.
pub async fn remove(pve: &Pve, node: &str, name: &str, timeout: Duration) -> Result<bool, ApiBridgeError> {
    let (ifaces, pending) = list(pve, node).await?;
    let Some(iface) = ifaces.iter().find(|i| i.iface == name) else { return Ok(false) };
    if !is_ours(iface) {
        return Ok(false);
    }
    if pending || ifaces.iter().any(|i| i.pending) {
        return Err(ApiBridgeError::PendingChanges { node: node.to_owned() });
    }
    pve.delete(&format!("/nodes/{}/network/{}", encode(node), encode(name)), &[]).await?;
    apply(pve, node, timeout).await?;
    Ok(true)
}

async fn apply(pve: &Pve, node: &str, timeout: Duration) -> Result<(), PveError> {
    let data = pve.put(&format!("/nodes/{}/network", encode(node)), &[]).await?;
    pve.wait_data(node, &data, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pending_changes_and_ownership() -> anyhow::Result<()> {
        let listing = serde_json::json!({
            "data": [
                {"iface": "vmbr0", "type": "bridge", "active": 1, "comments": "uplink\n"},
                {"iface": "vmbr9", "type": "bridge", "comments": "managed by proximity: the app LAN\n"},
                {"iface": "vmbr5", "type": "bridge", "active": 0, "pending": 1}
            ],
            "changes": "--- /etc/network/interfaces\n+++ /etc/network/interfaces.new\n+auto vmbr9\n"
        });
        assert!(pending_changes(&listing));
        assert!(!pending_changes(&serde_json::json!({"data": []})));
        assert!(!pending_changes(&serde_json::json!({"data": [], "changes": ""})));
        let ifaces: Vec<Iface> = serde_json::from_value(listing["data"].clone())?;
        assert!(ifaces[0].active && !is_ours(&ifaces[0]));
        assert!(!ifaces[1].active && is_ours(&ifaces[1]));
        assert!(ifaces[2].pending && !ifaces[0].pending);
        Ok(())
    }
}
