//! Container calls: list, config, status, create, start, stop, destroy, move a volume, and the
//! WAN address from `interfaces`. Each waits for its task.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::context::Ctx;
use super::spec::{self, STAGING_KEY, STAGING_TAG, TAG};
use crate::errors::TimedOut;
use crate::pve::client::is_missing_config;

/// Time between two polls of a container's state or addresses.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A container as `GET /nodes/{node}/lxc` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Listed {
    pub vmid: u32,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub tags: Option<String>,
}

/// A container's config (`GET .../config`), the fields used.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub raw: Map<String, Value>,
}

impl Config {
    fn text(&self, key: &str) -> Option<&str> {
        self.raw.get(key).and_then(Value::as_str)
    }
    pub fn tags(&self) -> Option<&str> {
        self.text("tags")
    }
    pub fn description(&self) -> &str {
        self.text("description").unwrap_or("")
    }
    pub fn hostname(&self) -> Option<&str> {
        self.text("hostname")
    }
    pub fn has_mp0(&self) -> bool {
        self.raw.contains_key("mp0")
    }
    pub fn is_ours(&self) -> bool {
        spec::has_tag(self.tags(), TAG)
    }
    pub fn spec_digest(&self) -> Option<&str> {
        spec::description_value(self.description(), spec::SPEC_KEY)
    }
    pub fn template(&self) -> Option<&str> {
        spec::description_value(self.description(), spec::TEMPLATE_KEY)
    }
    /// The VMID a staging container serves.
    pub fn staging_for(&self) -> Option<u32> {
        if !spec::has_tag(self.tags(), STAGING_TAG) {
            return None;
        }
        spec::description_value(self.description(), STAGING_KEY)?.parse().ok()
    }
}

fn lxc(ctx: &Ctx, vmid: u32, rest: &str) -> String {
    ctx.node_path(&format!("/lxc/{vmid}{rest}"))
}

pub async fn list(ctx: &Ctx) -> Result<Vec<Listed>> {
    Ok(ctx.pve.get(&ctx.node_path("/lxc"), &[]).await?)
}

/// The config of `vmid`; `None` when there is no such container.
pub async fn config(ctx: &Ctx, vmid: u32) -> Result<Option<Config>> {
    match ctx.pve.get::<Map<String, Value>>(&lxc(ctx, vmid, "/config"), &[]).await {
        Ok(raw) => Ok(Some(Config { raw })),
        Err(e) if is_missing_config(&e) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading the config of container {vmid}")),
    }
}

/// `running`, `stopped`...
pub async fn status(ctx: &Ctx, vmid: u32) -> Result<String> {
    #[derive(Deserialize)]
    struct Current {
        status: String,
    }
    let current: Current = ctx.pve.get(&lxc(ctx, vmid, "/status/current"), &[]).await?;
    Ok(current.status)
}

/// The staging containers serving `ctx.vmid` (their VMIDs), found by tag then description.
pub async fn staging(ctx: &Ctx, listed: &[Listed]) -> Result<Vec<(u32, Config)>> {
    let mut found = Vec::new();
    for ct in listed.iter().filter(|c| spec::has_tag(c.tags.as_deref(), STAGING_TAG)) {
        if let Some(config) = config(ctx, ct.vmid).await? {
            if config.staging_for() == Some(ctx.vmid) {
                found.push((ct.vmid, config));
            }
        }
    }
    Ok(found)
}

pub async fn create(ctx: &Ctx, params: &[(&str, String)]) -> Result<()> {
    let data = ctx.pve.post(&ctx.node_path("/lxc"), params).await?;
    ctx.pve.wait_data(&ctx.node, &data, ctx.timeout).await?;
    Ok(())
}

pub async fn start(ctx: &Ctx, vmid: u32) -> Result<()> {
    let data = ctx.pve.post(&lxc(ctx, vmid, "/status/start"), &[]).await?;
    ctx.pve.wait_data(&ctx.node, &data, ctx.timeout).await?;
    Ok(())
}

/// Stops `vmid` if it runs; `true` when it was stopped now.
pub async fn stop_if_running(ctx: &Ctx, vmid: u32) -> Result<bool> {
    if status(ctx, vmid).await? != "running" {
        return Ok(false);
    }
    let data = ctx.pve.post(&lxc(ctx, vmid, "/status/stop"), &[]).await?;
    ctx.pve.wait_data(&ctx.node, &data, ctx.timeout).await?;
    Ok(true)
}

/// Destroys `vmid` with its volumes.
pub async fn destroy(ctx: &Ctx, vmid: u32) -> Result<()> {
    let params = [("purge", "1".to_owned()), ("destroy-unreferenced-disks", "1".to_owned())];
    let data = ctx.pve.delete(&lxc(ctx, vmid, ""), &params).await?;
    ctx.pve.wait_data(&ctx.node, &data, ctx.timeout).await?;
    Ok(())
}

/// Moves `from`'s `mp0` to `to` as its `mp0`.
pub async fn move_state(ctx: &Ctx, from: u32, to: u32) -> Result<()> {
    let params =
        [("volume", "mp0".to_owned()), ("target-vmid", to.to_string()), ("target-volume", "mp0".to_owned())];
    let data = ctx.pve.post(&lxc(ctx, from, "/move_volume"), &params).await?;
    ctx.pve.wait_data(&ctx.node, &data, ctx.timeout).await?;
    Ok(())
}

/// The next free VMID.
pub async fn next_id(ctx: &Ctx) -> Result<u32> {
    let value: Value = ctx.pve.get("/cluster/nextid", &[]).await?;
    // Proxmox answers a string ("101"); accept a number too.
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .and_then(|v| u32::try_from(v).ok())
        .with_context(|| format!("GET /cluster/nextid answered {value}"))
}

#[derive(Debug, Deserialize)]
struct Iface {
    name: String,
    #[serde(default)]
    inet: Option<String>,
}

/// `eth0`'s IPv4 address in an `interfaces` answer (`inet` is `a.b.c.d/len`).
pub fn wan_address_of(ifaces: &Value) -> Option<Ipv4Addr> {
    let ifaces: Vec<Iface> = serde_json::from_value(ifaces.clone()).ok()?;
    let inet = ifaces.into_iter().find(|i| i.name == "eth0")?.inet?;
    inet.split('/').next()?.parse().ok()
}

/// The WAN address now, if the container reports one.
pub async fn wan_address(ctx: &Ctx) -> Result<Option<Ipv4Addr>> {
    let value: Value = ctx.pve.get(&lxc(ctx, ctx.vmid, "/interfaces"), &[]).await?;
    Ok(wan_address_of(&value))
}

/// Polls until the container reports a WAN address; fails at once when it stopped (its init
/// exited), rather than waiting out the deadline.
pub async fn wait_wan_address(ctx: &Ctx) -> Result<Ipv4Addr> {
    let deadline = Instant::now() + ctx.timeout;
    loop {
        // Right after start the container may not answer `interfaces` yet; that is not an error.
        if let Ok(Some(address)) = wan_address(ctx).await {
            return Ok(address);
        }
        if status(ctx, ctx.vmid).await? == "stopped" {
            anyhow::bail!(
                "container {0} stopped after it was started: the appliance exited. On the node, \
                 `pct start {0} --debug` shows why",
                ctx.vmid
            );
        }
        if Instant::now() >= deadline {
            return Err(TimedOut {
                what: format!(
                    "container {} got no WAN address on eth0 (is there DHCP on {}?)",
                    ctx.vmid, ctx.wan_bridge
                ),
                secs: ctx.timeout.as_secs(),
            }
            .into());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_wan_address() {
        let answer = serde_json::json!([
            {"name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "ip-addresses": []},
            {"name": "eth1", "hwaddr": "bc:24:11:00:00:02", "hardware-address": "bc:24:11:00:00:02", "inet": "10.20.0.1/24", "ip-addresses": []},
            {"name": "eth0", "hwaddr": "bc:24:11:00:00:01", "hardware-address": "bc:24:11:00:00:01", "inet": "192.0.2.50/24", "ip-addresses": []}
        ]);
        assert_eq!(wan_address_of(&answer), Some(Ipv4Addr::new(192, 0, 2, 50)));
        let no_address = serde_json::json!([{"name": "eth0", "hwaddr": "x", "ip-addresses": []}]);
        assert_eq!(wan_address_of(&no_address), None);
    }

    #[test]
    fn reads_ownership_from_config() {
        let s = super::spec::Spec {
            vmid: 100,
            template: "local:vztmpl/proximity-appliance_0.1.0-0123456789ab_amd64.tar.zst".into(),
            storage: "local-lvm".into(),
            wan_bridge: "vmbr0".into(),
            lan_bridge: "proximity-lan".into(),
        };
        let ours = Config {
            raw: serde_json::json!({"tags": "proximity", "description": s.description(), "mp0": "local-lvm:vm-100-disk-1,mp=/var/lib/proximity"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        assert!(ours.is_ours() && ours.has_mp0());
        assert_eq!(ours.spec_digest(), Some(s.digest().as_str()));
        assert_eq!(ours.staging_for(), None);
        let staging_params: Map<String, Value> =
            s.staging_params(105).into_iter().map(|(k, v)| (k.to_owned(), Value::from(v))).collect();
        let staging = Config { raw: staging_params };
        assert_eq!(staging.staging_for(), Some(100));
        let foreign = Config {
            raw: serde_json::json!({"hostname": "db", "tags": "prod"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        assert!(!foreign.is_ours());
    }
}
