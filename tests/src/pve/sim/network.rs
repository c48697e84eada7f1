//! The node's network as `/nodes/{node}/network` shows and changes it. Proxmox edits
//! `/etc/network/interfaces.new` and applies it with `ifreload -a`; the sim keeps the pending
//! changes in memory and applies them with `ip`, in the namespace it runs in:
//! - GET lists the links `ip -j addr` shows (bridges as `bridge`, others as `eth` or `unknown`),
//!   plus the pending new ones (`active: 0`, `pending: 1`), and, as Proxmox does, the diff of the
//!   pending changes in `changes` beside `data`.
//! - POST adds a pending stanza (refused for a name that exists or is pending, as Proxmox's
//!   "interface already exists"); only bridges can be applied.
//! - DELETE marks an interface for removal (a pending new one is just dropped).
//! - PUT applies everything in a `srvreload` task: `ip link add <iface> type bridge`, its
//!   address, up; removals with `ip link del`. With nothing pending it does what Proxmox's
//!   `ifreload -a` of an unchanged file does: a task that changes nothing and ends `OK`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};

use super::error::ApiError;
use super::tasks::TaskLog;

/// A pending interface: its POST parameters (without `node`).
type Stanza = BTreeMap<String, String>;

#[derive(Debug, Default)]
struct Pending {
    added: BTreeMap<String, Stanza>,
    removed: BTreeSet<String>,
}

/// The node's network changes not applied yet, and the comments of applied interfaces (which
/// Proxmox keeps in `/etc/network/interfaces`; the kernel's links have none).
#[derive(Debug, Default)]
pub struct Network {
    pending: Mutex<Pending>,
    comments: Mutex<BTreeMap<String, String>>,
}

/// Runs `ip ARGS` and returns stdout; a failure's stderr is the error.
pub fn ip(args: &[&str]) -> Result<String, ApiError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| ApiError::internal(format!("cannot run ip: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::internal(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One link of `ip -j -d addr` as Proxmox lists an interface.
fn describe(link: &Value) -> Option<(String, Value)> {
    let name = link["ifname"].as_str()?.to_owned();
    if name == "lo" {
        return None;
    }
    let kind = match link["linkinfo"]["info_kind"].as_str() {
        Some("bridge") => "bridge",
        Some("vlan") => "vlan",
        Some("bond") => "bond",
        None => "eth",
        Some(_) => "unknown",
    };
    let mut entry = json!({ "iface": name, "type": kind, "active": 1, "autostart": 1,
                            "method": "manual", "method6": "manual", "priority": link["ifindex"] });
    let v4 = link["addr_info"].as_array().and_then(|a| a.iter().find(|a| a["family"] == "inet"));
    if let Some(addr) = v4 {
        let (local, len) = (addr["local"].as_str()?, addr["prefixlen"].as_u64()?);
        entry["method"] = json!("static");
        entry["cidr"] = json!(format!("{local}/{len}"));
        entry["address"] = json!(local);
        entry["families"] = json!(["inet"]);
    }
    if kind == "bridge" {
        entry["bridge_ports"] = json!("");
    }
    Some((name, entry))
}

impl Network {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn comments(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.comments.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The interfaces the kernel has now, by name, with the comments they were applied with.
    fn existing(&self) -> Result<BTreeMap<String, Value>, ApiError> {
        let out = ip(&["-j", "-d", "addr", "show"])?;
        let links: Vec<Value> = serde_json::from_str(&out)
            .map_err(|e| ApiError::internal(format!("cannot read ip's JSON: {e}")))?;
        let mut all: BTreeMap<String, Value> = links.iter().filter_map(describe).collect();
        for (name, comments) in self.comments().iter() {
            if let Some(entry) = all.get_mut(name) {
                entry["comments"] = json!(comments);
            }
        }
        Ok(all)
    }

    /// `GET /nodes/{node}/network` (`type` filters; `any_bridge` means bridges).
    pub fn list(&self, kind: Option<&str>) -> Result<Value, ApiError> {
        let pending = self.lock();
        let mut all = self.existing()?;
        for (name, stanza) in &pending.added {
            all.insert(name.clone(), pending_entry(name, stanza));
        }
        let wanted = |entry: &Value| match kind {
            None => true,
            Some("any_bridge" | "any_local_bridge") => entry["type"] == "bridge",
            Some(k) => entry["type"] == k,
        };
        Ok(Value::Array(all.into_values().filter(wanted).collect()))
    }

    /// `GET /nodes/{node}/network/{iface}`.
    pub fn get(&self, iface: &str) -> Result<Value, ApiError> {
        let pending = self.lock();
        if let Some(stanza) = pending.added.get(iface) {
            return Ok(pending_entry(iface, stanza));
        }
        self.existing()?.remove(iface).ok_or_else(|| ApiError::param("iface", "interface does not exist"))
    }

    /// `POST /nodes/{node}/network`.
    pub fn create(&self, params: &BTreeMap<String, String>) -> Result<(), ApiError> {
        let iface = params
            .get("iface")
            .ok_or_else(|| ApiError::param("iface", "property is missing and it is not optional"))?;
        let mut pending = self.lock();
        let exists = self.existing()?.contains_key(iface) && !pending.removed.contains(iface);
        if exists || pending.added.contains_key(iface) {
            return Err(ApiError::param("iface", "interface already exists"));
        }
        let mut stanza = params.clone();
        stanza.remove("node");
        pending.added.insert(iface.clone(), stanza);
        Ok(())
    }

    /// `DELETE /nodes/{node}/network/{iface}`.
    pub fn delete(&self, iface: &str) -> Result<(), ApiError> {
        let mut pending = self.lock();
        if pending.added.remove(iface).is_some() {
            return Ok(());
        }
        if !self.existing()?.contains_key(iface) {
            return Err(ApiError::param("iface", "interface does not exist"));
        }
        pending.removed.insert(iface.to_owned());
        Ok(())
    }

    /// The pending changes as Proxmox reports them beside `GET /nodes/{node}/network`'s data:
    /// a diff of `/etc/network/interfaces` against `interfaces.new`; `None` when nothing is
    /// pending.
    pub fn changes(&self) -> Option<String> {
        let pending = self.lock();
        if pending.added.is_empty() && pending.removed.is_empty() {
            return None;
        }
        let mut diff = String::from("--- /etc/network/interfaces\n+++ /etc/network/interfaces.new\n");
        for iface in &pending.removed {
            diff.push_str(&format!("-auto {iface}\n-iface {iface} inet manual\n"));
        }
        for (iface, stanza) in &pending.added {
            let method = if stanza.contains_key("cidr") || stanza.contains_key("address") {
                "static"
            } else {
                "manual"
            };
            diff.push_str(&format!("+auto {iface}\n+iface {iface} inet {method}\n"));
            for (key, value) in
                stanza.iter().filter(|(k, _)| !matches!(k.as_str(), "iface" | "type" | "autostart"))
            {
                diff.push_str(&format!("+\t{} {value}\n", key.replace('_', "-")));
            }
        }
        Some(diff)
    }

    /// Takes the pending changes for `PUT /nodes/{node}/network` (the caller applies them in a
    /// task with [`apply`]); they are no longer pending from here on, as the renamed file.
    pub fn take(&self) -> (Vec<(String, Stanza)>, Vec<String>) {
        let mut pending = self.lock();
        let taken = std::mem::take(&mut *pending);
        let mut comments = self.comments();
        for iface in &taken.removed {
            comments.remove(iface);
        }
        for (iface, stanza) in &taken.added {
            if let Some(text) = stanza.get("comments") {
                comments.insert(iface.clone(), text.clone());
            }
        }
        (taken.added.into_iter().collect(), taken.removed.into_iter().collect())
    }
}

fn pending_entry(name: &str, stanza: &Stanza) -> Value {
    let mut entry = json!({ "iface": name, "type": stanza.get("type").map_or("unknown", String::as_str),
                            "active": 0, "pending": 1 });
    for key in ["cidr", "address", "netmask", "bridge_ports", "comments", "autostart"] {
        if let Some(v) = stanza.get(key) {
            entry[key] = json!(v);
        }
    }
    entry
}

/// Applies taken changes (the `srvreload` task's work).
pub fn apply(added: &[(String, Stanza)], removed: &[String], log: &TaskLog) -> Result<(), ApiError> {
    for iface in removed {
        log.line(format!("removing {iface}"));
        ip(&["link", "del", iface])?;
    }
    for (iface, stanza) in added {
        if stanza.get("type").map(String::as_str) != Some("bridge") {
            return Err(ApiError::internal(format!("{iface}: pve-sim applies bridges only")));
        }
        log.line(format!("adding bridge {iface}"));
        ip(&["link", "add", iface, "type", "bridge"])?;
        if let Some(ports) = stanza.get("bridge_ports") {
            for port in ports.split([' ', ',']).filter(|p| !p.is_empty() && *p != "none") {
                ip(&["link", "set", port, "master", iface])?;
            }
        }
        let cidr = match (stanza.get("cidr"), stanza.get("address"), stanza.get("netmask")) {
            (Some(cidr), _, _) => Some(cidr.clone()),
            (None, Some(address), Some(mask)) => Some(format!("{address}/{}", prefix_len(mask)?)),
            (None, Some(address), None) => Some(format!("{address}/32")),
            _ => None,
        };
        if let Some(cidr) = cidr {
            ip(&["addr", "add", &cidr, "dev", iface])?;
        }
        if let Some(mtu) = stanza.get("mtu") {
            ip(&["link", "set", iface, "mtu", mtu])?;
        }
        if stanza.get("autostart").is_none_or(|a| a != "0") {
            ip(&["link", "set", iface, "up"])?;
        }
    }
    if added.is_empty() && removed.is_empty() {
        log.line("no pending changes: nothing to reload");
    }
    Ok(())
}

/// `255.255.255.0` -> 24.
fn prefix_len(mask: &str) -> Result<u32, ApiError> {
    let mask: std::net::Ipv4Addr = mask.parse().map_err(|_| ApiError::param("netmask", "invalid netmask"))?;
    let bits = u32::from(mask);
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(ApiError::param("netmask", "invalid netmask"));
    }
    Ok(bits.leading_ones())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_listed_as_proxmox_interfaces() -> anyhow::Result<()> {
        let links: Value = serde_json::from_str(
            r#"[{"ifindex":1,"ifname":"lo","addr_info":[]},
                {"ifindex":3,"ifname":"vmbr0","linkinfo":{"info_kind":"bridge"},
                 "addr_info":[{"family":"inet","local":"192.168.100.1","prefixlen":24}]}]"#,
        )?;
        let listed: Vec<_> = links.as_array().into_iter().flatten().filter_map(describe).collect();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1["type"], "bridge");
        assert_eq!(listed[0].1["cidr"], "192.168.100.1/24");
        assert_eq!(prefix_len("255.255.255.0")?, 24);
        assert!(prefix_len("255.0.255.0").is_err());
        Ok(())
    }
}
