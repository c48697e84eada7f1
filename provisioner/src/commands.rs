//! The commands that talk to the appliance (`apps`, `leases`) and `image build`. The admin API
//! is reached at the WAN address in the state file, trusted through the pinned CA; when it does
//! not answer there, the address is read again from Proxmox (`.../interfaces`).

use anyhow::{Context, Result, anyhow};
use proximity_config::api::{RawApp, RawBackend};

use crate::appliance::admin::{Admin, AdminError};
use crate::cli::{AppAdd, Global};
use crate::deploy::container;
use crate::deploy::context::Ctx;
use crate::deploy::template;
use crate::state::{State, StateFile, default_path};

/// The state file for the flags' node and VMID, loaded.
fn load_state(global: &Global) -> Result<(StateFile, State)> {
    let node = global.node.as_deref().ok_or_else(|| anyhow!("no node: pass --node or set PROXMOX_NODE"))?;
    let file = StateFile::new(default_path(node, global.vmid)?);
    let state = file.load()?.ok_or_else(|| {
        anyhow!(
            "no deployment known for VMID {} on node {node} ({} is missing): run `proximity up` first",
            global.vmid,
            file.path().display()
        )
    })?;
    Ok((file, state))
}

/// Calls the admin API with `f`, refreshing the WAN address from Proxmox once when unreachable.
async fn with_admin<T, F, Fut>(global: &Global, f: F) -> Result<T>
where
    F: Fn(Admin) -> Fut,
    Fut: std::future::Future<Output = Result<T, AdminError>>,
{
    let (file, mut state) = load_state(global)?;
    let ca = state
        .ca_pem
        .clone()
        .ok_or_else(|| anyhow!("the appliance's CA is not pinned yet: run `proximity up`"))?;
    let first = match state.wan_address {
        Some(wan) => match f(Admin::new(wan, &ca, &state.admin_token)?).await {
            Err(e) if e.is_unreachable() => Some(e),
            other => return other.context("calling the appliance's admin API"),
        },
        None => None,
    };
    let ctx = Ctx::from_flags(global).with_context(|| match &first {
        Some(e) => format!(
            "the appliance did not answer ({}); reading its address from Proxmox needs the connection flags",
            crate::errors::describe(e)
        ),
        None => "reading the appliance's address from Proxmox".to_owned(),
    })?;
    let wan = container::wan_address(&ctx)
        .await?
        .ok_or_else(|| anyhow!("container {} reports no WAN address (is it running?)", ctx.vmid))?;
    state.wan_address = Some(wan);
    file.save(&state)?;
    f(Admin::new(wan, &ca, &state.admin_token)?).await.context("calling the appliance's admin API")
}

pub async fn apps_add(global: &Global, add: &AppAdd) -> Result<()> {
    let app = RawApp {
        name: add.name.clone(),
        backend: RawBackend { ip: add.ip.clone(), mac: add.mac.clone(), hostname: add.hostname.clone() },
        port: add.port.into(),
        health_check: None,
    };
    let view = with_admin(global, |admin| {
        let app = app.clone();
        async move { admin.add_app(&app).await }
    })
    .await?;
    println!("added {}: {}", view.name, view.urls.join(" "));
    Ok(())
}

pub async fn apps_list(global: &Global, json: bool) -> Result<()> {
    let apps = with_admin(global, |admin| async move { admin.apps().await }).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&apps)?);
        return Ok(());
    }
    if apps.is_empty() {
        println!("no apps");
    }
    for app in apps {
        let backend = match &app.backend {
            proximity_config::api::Backend::Ip(ip) => ip.to_string(),
            proximity_config::api::Backend::Mac(mac) => format!("mac {mac}"),
            proximity_config::api::Backend::Hostname(h) => format!("host {h}"),
        };
        let at = app.backend_address.map(|a| format!(" ({a})")).unwrap_or_default();
        let live = if app.live { "" } else { " [no backend address]" };
        println!("{:<20} {backend}:{}{at}{live}  {}", app.name, app.port, app.urls.join(" "));
    }
    Ok(())
}

pub async fn apps_rm(global: &Global, name: &str) -> Result<()> {
    with_admin(global, |admin| async move { admin.remove_app(name).await }).await?;
    println!("removed {name}");
    Ok(())
}

pub async fn leases(global: &Global, json: bool) -> Result<()> {
    let leases = with_admin(global, |admin| async move { admin.leases().await }).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&leases)?);
        return Ok(());
    }
    if leases.is_empty() {
        println!("no leases");
    }
    for l in leases {
        println!("{:<15} {}  {:<9} {}", l.ip, l.mac, l.state, l.hostname.as_deref().unwrap_or("-"));
    }
    Ok(())
}

/// `image build`: with a known deployment (node flag and state file) the template `up` would
/// deploy; else one whose appliance makes its own admin token.
pub async fn image_build(global: &Global, out: Option<&std::path::Path>) -> Result<()> {
    let appliance = template::appliance_path(global.appliance.as_deref())?;
    let hash = load_state(global).ok().map(|(_, state)| state.token_sha256());
    let out = match out {
        Some(out) => out.to_owned(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    let built = template::build_with(&appliance, hash.as_deref(), &out).await?;
    println!("{}", built.path.display());
    println!("file    {}", built.file_name);
    println!("size    {} bytes", built.size);
    println!("sha256  {}", built.sha256);
    Ok(())
}
