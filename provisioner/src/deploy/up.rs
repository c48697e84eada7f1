//! `proximity up`: DESIGN.md's provisioner flow. Version check, bridge, token and template,
//! container reconciled step by step ([`plan`]), start, WAN address, CA proof and pin, health,
//! DNS probe. Says "no change" when it made no mutating call.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::container::{self, Config};
use super::context::Ctx;
use super::plan::{self, Action, Seen};
use super::spec::Spec;
use super::template;
use crate::appliance::admin::{Admin, AdminError, fetch_proven_ca};
use crate::appliance::dns_probe;
use crate::bridge::host::{HostBridge, HostBridgeError, interfaces_dir};
use crate::bridge::local;
use crate::bridge::{api as api_bridge, is_pve_iface};
use crate::errors::{Refused, TimedOut};
use crate::state::State;

/// Most reconcile steps one run takes (an upgrade takes six).
const MAX_STEPS: usize = 12;
/// Time between two tries of the appliance's API or DNS.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
struct Version {
    version: String,
    #[serde(default)]
    release: Option<String>,
}

/// Runs `up`.
pub async fn up(ctx: &Ctx) -> Result<()> {
    let p = &ctx.progress;
    let step = p.step("connecting to Proxmox");
    let version: Version = ctx.pve.get("/version", &[]).await.context("GET /version")?;
    step.done(&format!("Proxmox VE {}", version.release.as_deref().unwrap_or(&version.version)));

    // Refuse a foreign VMID before changing anything (the reconcile checks again).
    let existing = container::config(ctx, ctx.vmid).await?;
    if let Some(config) = &existing {
        if !config.is_ours() {
            let refusal = plan::next(ctx.vmid, "", Some(&seen(ctx.vmid, config)), &[]);
            if let Action::Refuse(why) = refusal {
                return Err(Refused(why).into());
            }
        }
    }
    // Ours, but deployed with a token this machine does not have: a new token would mean a new
    // template, and the "upgrade" would lock the other machine out of its own appliance.
    if existing.is_some() && ctx.state.load()?.is_none() {
        return Err(Refused(format!(
            "container {vmid} on node {node} is a Proximity deployment made from another machine or user, whose \
             admin token is in its {path}; copy that file here (mode 0600) and run again, or run `proximity down` \
             to remove the deployment (its apps and leases go with it) and start anew",
            vmid = ctx.vmid,
            node = ctx.node,
            path = ctx.state.path().display()
        ))
        .into());
    }

    let mut changes = 0;
    changes += ensure_bridge(ctx).await?;

    let mut state = match ctx.state.load()? {
        Some(state) => state,
        None => {
            let state = State::generate()?;
            ctx.state.save(&state)?;
            p.note(&format!("new admin token kept in {}", ctx.state.path().display()));
            state
        }
    };

    let step = p.step("building the template");
    let appliance = template::appliance_path(ctx.appliance.as_deref())?;
    let built = template::build(&appliance, &state, &template::cache_dir()?).await?;
    step.done(&format!("{} ({} bytes, sha256 {})", built.file_name, built.size, built.sha256));
    let volid = template::volid(&ctx.template_storage, &built);
    let step = p.step(format!("uploading the template to {}", ctx.template_storage));
    let uploaded = template::ensure_uploaded(ctx, &built).await?;
    step.done(if uploaded { "done" } else { "already there" });

    let spec = Spec {
        vmid: ctx.vmid,
        template: volid,
        storage: ctx.storage.clone(),
        wan_bridge: ctx.wan_bridge.clone(),
        lan_bridge: ctx.bridge.clone(),
    };
    let fresh_state = reconcile(ctx, &spec).await?;
    if fresh_state && state.ca_pem.take().is_some() {
        // A new state volume means a new CA: forget the old pin.
        ctx.state.save(&state)?;
    }

    if container::status(ctx, ctx.vmid).await? != "running" {
        let step = p.step(format!("starting container {}", ctx.vmid));
        container::start(ctx, ctx.vmid).await?;
        step.done("done");
    }

    let step = p.step("waiting for the WAN address");
    let wan = container::wait_wan_address(ctx).await?;
    step.done(&wan.to_string());

    let admin = check_appliance(ctx, &mut state, wan).await?;
    changes += ctx.pve.mutations();
    print_summary(ctx, &admin, wan, changes);
    Ok(())
}

/// Makes the LAN bridge; the number of changes made.
async fn ensure_bridge(ctx: &Ctx) -> Result<usize> {
    let p = &ctx.progress;
    if is_pve_iface(&ctx.bridge) {
        let step = p.step(format!("bridge {} (Proxmox network API)", ctx.bridge));
        // The API calls are counted by the client.
        let changed = api_bridge::ensure(&ctx.pve, &ctx.node, &ctx.bridge, ctx.timeout).await?;
        step.done(if changed { "created and applied" } else { "no change" });
        return Ok(0);
    }
    let (host, port) = ctx.pve.host();
    if !local::on_the_node(host, port).await? {
        let why = HostBridgeError::NotOnNode { bridge: ctx.bridge.clone(), host: host.to_owned() };
        return Err(Refused(why.to_string()).into());
    }
    let step = p.step(format!("bridge {} (on this host)", ctx.bridge));
    let bridge = HostBridge::new(&ctx.bridge, &interfaces_dir());
    let done = bridge.ensure().await?;
    let changed = [done.stanza_written, done.link_created, done.link_set_up].iter().filter(|b| **b).count();
    step.done(if changed == 0 { "no change" } else { "done" });
    Ok(changed)
}

fn seen(vmid: u32, config: &Config) -> Seen {
    let label = format!(
        "{:?} (tags: {})",
        config.hostname().unwrap_or("unnamed"),
        config.tags().filter(|t| !t.is_empty()).unwrap_or("none")
    );
    Seen {
        vmid,
        ours: config.is_ours(),
        spec: config.spec_digest().map(str::to_owned),
        has_state: config.has_mp0(),
        label,
    }
}

/// Brings the container to `spec`; `true` when it was created with a new state volume.
async fn reconcile(ctx: &Ctx, spec: &Spec) -> Result<bool> {
    let p = &ctx.progress;
    let want = spec.digest();
    let mut fresh = false;
    for _ in 0..MAX_STEPS {
        let listed = container::list(ctx).await?;
        let main = match listed.iter().any(|c| c.vmid == ctx.vmid) {
            true => container::config(ctx, ctx.vmid).await?.map(|c| seen(ctx.vmid, &c)),
            false => None,
        };
        let staging: Vec<Seen> =
            container::staging(ctx, &listed).await?.iter().map(|(vmid, c)| seen(*vmid, c)).collect();
        match plan::next(ctx.vmid, &want, main.as_ref(), &staging) {
            Action::Done => {
                if ctx.pve.mutations() == 0 {
                    p.note(&format!("container {} matches this build", ctx.vmid));
                }
                return Ok(fresh);
            }
            Action::Refuse(why) => return Err(Refused(why).into()),
            Action::Create { with_state } => {
                let step = p.step(format!("creating container {}", ctx.vmid));
                container::create(ctx, &spec.create_params(with_state)).await?;
                step.done("done");
                fresh |= with_state;
            }
            Action::CreateStaging => {
                let vmid = container::next_id(ctx).await?;
                let step = p.step(format!("upgrade: creating staging container {vmid}"));
                container::create(ctx, &spec.staging_params(vmid)).await?;
                step.done("done");
            }
            Action::MoveState { from, to } => {
                let step = p.step(format!("upgrade: moving the state volume from {from} to {to}"));
                container::stop_if_running(ctx, from).await?;
                container::move_state(ctx, from, to).await?;
                step.done("done");
            }
            Action::Destroy(vmid) => {
                let step = p.step(format!("upgrade: removing container {vmid}"));
                container::stop_if_running(ctx, vmid).await?;
                container::destroy(ctx, vmid).await?;
                step.done("done");
            }
        }
    }
    bail!("container {} did not settle after {MAX_STEPS} steps; run `proximity up` again", ctx.vmid)
}

/// Pins the CA (first contact, proven), checks health and DNS; the admin client.
async fn check_appliance(ctx: &Ctx, state: &mut State, wan: Ipv4Addr) -> Result<Admin> {
    let p = &ctx.progress;
    let deadline = Instant::now() + ctx.timeout;
    let ca = match &state.ca_pem {
        Some(ca) => ca.clone(),
        None => {
            let step = p.step("fetching and proving the appliance's CA");
            let ca = retry(deadline, ctx.timeout, "the appliance's admin API to answer /v1/ca.crt", || {
                fetch_proven_ca(wan, &state.admin_token)
            })
            .await?;
            step.done("pinned");
            ca
        }
    };
    state.ca_pem = Some(ca.clone());
    state.wan_address = Some(wan);
    ctx.state.save(state)?;

    let admin = Admin::new(wan, &ca, &state.admin_token)?;
    let step = p.step("checking the appliance's health");
    let health = retry(deadline, ctx.timeout, "the appliance's /v1/health", || admin.health()).await?;
    let failed: Vec<String> = health
        .services
        .iter()
        .filter(|(_, s)| s.as_str() == "failed")
        .map(|(n, s)| format!("{n}: {s}"))
        .collect();
    step.done(&if failed.is_empty() {
        format!("{} (version {})", health.status, health.version)
    } else {
        format!("{} ({})", health.status, failed.join(", "))
    });

    let step = p.step("probing DNS on the WAN address");
    loop {
        match dns_probe::probe(wan).await {
            Ok(addresses) => {
                step.done(&format!("{} → {addresses:?}", dns_probe::PROBE_NAME));
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
            Err(e) => {
                let what = format!(
                    "DNS on {wan}:53 did not answer {} ({})",
                    dns_probe::PROBE_NAME,
                    crate::errors::describe(&e)
                );
                return Err(TimedOut { what, secs: ctx.timeout.as_secs() }.into());
            }
        }
    }
    Ok(admin)
}

/// Calls `f` until it succeeds or `deadline`; a proof failure is final at once.
async fn retry<T, F, Fut>(deadline: Instant, timeout: Duration, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AdminError>>,
{
    loop {
        match f().await {
            Ok(value) => return Ok(value),
            Err(e @ (AdminError::Proof(_) | AdminError::Unauthorized)) => return Err(e.into()),
            Err(e) if Instant::now() >= deadline => {
                return Err(TimedOut {
                    what: format!("waiting for {what} (last error: {})", crate::errors::describe(&e)),
                    secs: timeout.as_secs(),
                }
                .into());
            }
            Err(_) => tokio::time::sleep(RETRY_INTERVAL).await,
        }
    }
}

fn print_summary(ctx: &Ctx, admin: &Admin, wan: Ipv4Addr, changes: usize) {
    println!("Proximity is up: container {} on node {}", ctx.vmid, ctx.node);
    println!("  WAN address  {wan}");
    println!("  admin API    {} (token in {})", admin.url(), ctx.state.path().display());
    println!(
        "  apps         http://<app>.prox.local and https://<app>.prox.local (add one: proximity apps add NAME --ip ...)"
    );
    println!("               from your workstation: resolve prox.local with DNS server {wan}");
    println!("  LAN          bridge {}, gateway 10.20.0.1/24", ctx.bridge);
    if changes == 0 {
        println!("no change");
    }
}
