//! `proximity down`: removes only what is ours (container, staging containers, our templates,
//! the bridge when its marker says ours, the local state file) and says what it removed.
//! Idempotent: with nothing there it says so and succeeds.

use anyhow::{Context, Result};

use super::container;
use super::context::Ctx;
use super::template::{self, TEMPLATE_PREFIX};
use crate::bridge::host::{HostBridge, interfaces_dir};
use crate::bridge::local;
use crate::bridge::{api as api_bridge, is_pve_iface};
use crate::errors::Refused;
use crate::pve::client::encode;

/// Runs `down`.
pub async fn down(ctx: &Ctx) -> Result<()> {
    let p = &ctx.progress;
    let mut removed: Vec<String> = Vec::new();

    if let Some(config) = container::config(ctx, ctx.vmid).await? {
        if !config.is_ours() {
            return Err(Refused(format!(
                "VMID {} is {:?} (tags: {}), not a Proximity container; nothing removed",
                ctx.vmid,
                config.hostname().unwrap_or("unnamed"),
                config.tags().unwrap_or("none")
            ))
            .into());
        }
        let step = p.step(format!("removing container {}", ctx.vmid));
        container::stop_if_running(ctx, ctx.vmid).await?;
        container::destroy(ctx, ctx.vmid).await?;
        step.done("done");
        removed.push(format!("container {}", ctx.vmid));
    }

    let listed = container::list(ctx).await?;
    for (vmid, _) in container::staging(ctx, &listed).await? {
        let step = p.step(format!("removing staging container {vmid}"));
        container::stop_if_running(ctx, vmid).await?;
        container::destroy(ctx, vmid).await?;
        step.done("done");
        removed.push(format!("staging container {vmid}"));
    }

    let prefix = format!("{}:vztmpl/{TEMPLATE_PREFIX}", ctx.template_storage);
    for volid in template::list(ctx).await?.into_iter().filter(|v| v.starts_with(&prefix)) {
        let step = p.step(format!("removing template {volid}"));
        let path =
            ctx.node_path(&format!("/storage/{}/content/{}", encode(&ctx.template_storage), encode(&volid)));
        let data = ctx.pve.delete(&path, &[]).await?;
        ctx.pve.wait_data(&ctx.node, &data, ctx.timeout).await?;
        step.done("done");
        removed.push(volid);
    }

    if is_pve_iface(&ctx.bridge) {
        if api_bridge::remove(&ctx.pve, &ctx.node, &ctx.bridge, ctx.timeout).await? {
            removed.push(format!("bridge {}", ctx.bridge));
        }
    } else if local::on_the_node(ctx.pve.host().0, ctx.pve.host().1).await? {
        let bridge = HostBridge::new(&ctx.bridge, &interfaces_dir());
        if bridge.remove().await.with_context(|| format!("removing bridge {}", ctx.bridge))? {
            removed.push(format!("bridge {} and {}", ctx.bridge, bridge.stanza_path.display()));
        }
    } else {
        eprintln!(
            "note: the host bridge {} is on the node, not on this machine: run `proximity down` on the node to \
             remove it",
            ctx.bridge
        );
    }

    if ctx.state.remove()? {
        removed.push(ctx.state.path().display().to_string());
    }

    if removed.is_empty() {
        println!("nothing to remove: no Proximity deployment for VMID {} on node {}", ctx.vmid, ctx.node);
    } else {
        println!("removed: {}", removed.join(", "));
    }
    Ok(())
}
