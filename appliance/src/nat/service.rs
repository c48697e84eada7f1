//! The NAT service: puts the ruleset in force at start and again whenever the forwards or the
//! WAN address change; on failure it says why (`/v1/health` shows `nat: failed`, the log has the
//! cause chain) and tries again with backoff, since what was missing may come (nftables
//! installed, a capability granted, the WAN up). A failure never stops DHCP, DNS or the proxy.
//!
//! On stop the table stays in force: a restart replaces it atomically, while removing it would
//! cut the LAN's connections (and open the firewall) for the length of an upgrade.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use proximity_config::Config;
use tokio::sync::watch;
use tracing::{debug, error, info};

use super::apply;
use super::error::NatError;
use super::forwards::Forwards;
use super::nft::Nft;
use super::plan::Plan;
use super::ruleset;
use super::sysctl;
use crate::api::ServiceStates;
use crate::errors::chain;
use crate::shutdown::Stop;

/// The service's name in `/v1/health`.
pub const SERVICE: &str = "nat";
/// First wait before trying again after a failure; doubled each time up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between tries: a fixed system is noticed within a minute.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// What the service follows.
#[derive(Debug)]
pub struct Nat {
    pub config: Config,
    pub forwards: Arc<Forwards>,
    /// The WAN interface's address; a closed channel means it no longer changes.
    pub wan_address: watch::Receiver<Option<Ipv4Addr>>,
    pub states: Arc<ServiceStates>,
}

/// Keeps the ruleset in force until `stop`. Never fails: its errors are states and log lines.
pub async fn serve(nat: Nat, stop: Stop) -> std::io::Result<()> {
    let Nat { config, forwards, mut wan_address, states } = nat;
    let mut added = forwards.subscribe();
    let mut in_force: Option<Plan> = None;
    let mut retry = RETRY_FIRST;
    let mut wan_open = true;
    loop {
        added.borrow_and_update();
        let address = *wan_address.borrow_and_update();
        let plan = Plan::new(&config, &forwards.all(), address);
        let mut wait = None;
        if in_force.as_ref() != Some(&plan) {
            match put_in_force(&plan).await {
                Ok(rules) => {
                    info!(rules, forwards = plan.forwards.len(), wan_address = ?plan.wan_address, "nat: ruleset in force");
                    states.set(SERVICE, "running");
                    in_force = Some(plan);
                    retry = RETRY_FIRST;
                }
                Err(e) => {
                    error!(error = %chain(&e), retry_in = ?retry, "nat: ruleset not in force; dhcp, dns and the proxy go on");
                    states.set(SERVICE, "failed");
                    in_force = None;
                    wait = Some(retry);
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            // The sender lives in `forwards`, held here: this never ends.
            _ = added.changed() => {}
            changed = wan_address.changed(), if wan_open => wan_open = changed.is_ok(),
            () = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
        }
    }
    info!("nat stopped; the ruleset stays in force until the next start replaces it");
    Ok(())
}

/// Builds, applies and checks the ruleset of `plan`, then turns forwarding on (after the
/// firewall, so nothing is routed unfiltered). Returns the number of rules.
async fn put_in_force(plan: &Plan) -> Result<usize, NatError> {
    let nft = Nft::locate()?;
    let ruleset = ruleset::build(plan);
    let listing = apply::apply(&nft, &ruleset).await?;
    debug!(ruleset = %listing.render(), "nat: table inet proximity");
    sysctl::enable_ip_forward().await?;
    Ok(ruleset.rules().count())
}

/// With NAT off in the config, a table left by an earlier run with NAT on would still filter:
/// it is removed. Nothing to do without nft (then nobody made one).
pub async fn remove_table() {
    let Ok(nft) = Nft::locate() else {
        debug!("nat disabled and no nft: no table to remove");
        return;
    };
    match apply::remove(&nft).await {
        Ok(()) => info!("nat disabled: table inet proximity removed (if there was one)"),
        Err(e) => error!(error = %chain(&e), "nat disabled, but its table could not be removed"),
    }
}
