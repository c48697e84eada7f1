//! `proximity status`: the container's state, its template, whether it matches what `up` would
//! deploy now, the WAN address and the appliance's health; `--json` for scripts.

use anyhow::Result;
use serde::Serialize;

use super::container;
use super::context::Ctx;
use super::spec::Spec;
use super::template;
use crate::appliance::admin::Admin;

/// What `status --json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    pub node: String,
    pub vmid: u32,
    /// `absent`, `not-ours`, or Proxmox's status (`running`, `stopped`).
    pub container: String,
    pub template: Option<String>,
    /// Whether the container matches this build (`None`: unknown, e.g. no appliance binary here).
    pub spec_match: Option<bool>,
    pub wan_address: Option<String>,
    /// The appliance's `/v1/health` status, or why it could not be read.
    pub health: Option<String>,
}

/// Runs `status`.
pub async fn status(ctx: &Ctx, json: bool) -> Result<()> {
    let mut report = Report {
        node: ctx.node.clone(),
        vmid: ctx.vmid,
        container: "absent".into(),
        template: None,
        spec_match: None,
        wan_address: None,
        health: None,
    };
    if let Some(config) = container::config(ctx, ctx.vmid).await? {
        if !config.is_ours() {
            report.container = "not-ours".into();
        } else {
            report.container = container::status(ctx, ctx.vmid).await?;
            report.template = config.template().map(str::to_owned);
            report.spec_match = expected_digest(ctx).await.map(|d| config.spec_digest() == Some(d.as_str()));
            let wan = container::wan_address(ctx).await.ok().flatten();
            report.wan_address = wan.map(|a| a.to_string());
            let state = ctx.state.load()?;
            report.health = match (wan, state) {
                (Some(wan), Some(state)) => match state.ca_pem.as_deref() {
                    Some(ca) => Some(match Admin::new(wan, ca, &state.admin_token)?.health().await {
                        Ok(h) => h.status,
                        Err(e) => format!("unreachable: {}", crate::errors::describe(&e)),
                    }),
                    None => Some("unknown (CA not pinned yet; run `proximity up`)".into()),
                },
                (None, _) => None,
                (Some(_), None) => Some("unknown (no local state file; run `proximity up`)".into()),
            };
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("container {} on {}: {}", report.vmid, report.node, report.container);
        if let Some(t) = &report.template {
            println!("  template     {t}");
        }
        match report.spec_match {
            Some(true) => println!("  up to date   yes"),
            Some(false) => println!("  up to date   no (`proximity up` upgrades it)"),
            None if report.container != "absent" && report.container != "not-ours" => {
                println!("  up to date   unknown (no appliance binary or state here)")
            }
            None => {}
        }
        if let Some(w) = &report.wan_address {
            println!("  WAN address  {w}");
        }
        if let Some(h) = &report.health {
            println!("  health       {h}");
        }
    }
    Ok(())
}

/// The spec digest `up` would deploy now; `None` when it cannot be known here.
async fn expected_digest(ctx: &Ctx) -> Option<String> {
    let state = ctx.state.load().ok()??;
    let appliance = template::appliance_path(ctx.appliance.as_deref()).ok()?;
    let built = template::build(&appliance, &state, &template::cache_dir().ok()?).await.ok()?;
    let spec = Spec {
        vmid: ctx.vmid,
        template: template::volid(&ctx.template_storage, &built),
        storage: ctx.storage.clone(),
        wan_bridge: ctx.wan_bridge.clone(),
        lan_bridge: ctx.bridge.clone(),
    };
    Some(spec.digest())
}
