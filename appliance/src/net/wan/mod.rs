//! The WAN side: one task owns the WAN interface's address, by the config's mode, and
//! publishes what it is on a [`WanWatch`] for the services that depend on it (NAT's masquerade
//! and forwards, DNS's upstreams, the admin certificate).
//!
//! - [`state`]: [`WanState`] and the [`WanWatch`] channels.
//! - [`follow`]: `host` (only follow the interface) and `static` (configure it, then follow).
//! - `dhcp` mode is [`crate::net::dhcp_client`].

pub mod follow;
pub mod state;

use std::path::PathBuf;

use ipnet::Ipv4Net;
use proximity_config::{WanConfig, WanMode};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub use follow::Fixed;
pub use state::{WanState, WanWatch};

use super::dhcp_client;
use super::netlink::Netlink;

/// The host name the DHCP client gives the WAN's server, shown in its lease list.
pub const DHCP_HOSTNAME: &str = "proximity";

/// What the WAN task needs besides the `[wan]` section.
#[derive(Debug, Clone)]
pub struct WanSetup {
    pub config: WanConfig,
    /// The state directory (the DHCP client's lease file).
    pub state_dir: PathBuf,
    /// The LAN subnet, which a WAN lease must not overlap.
    pub lan: Option<Ipv4Net>,
}

/// Publishes what the WAN interface carries now, before the services start, so those that follow
/// the WAN (NAT) begin with the address a restart left in place rather than with none and a
/// change a moment later. The WAN task corrects it within milliseconds where it differs (a
/// saved lease the server refuses, a static address not yet set); DHCP's DNS servers come with
/// the lease's confirmation.
pub async fn prime(config: &WanConfig, wan: &WanWatch) {
    let prefer = match config.mode {
        WanMode::Static { address, .. } => Some(address),
        WanMode::Dhcp | WanMode::Host => None,
    };
    let read = async {
        let netlink = Netlink::open()?;
        match netlink.link(&config.interface).await? {
            Some(link) => follow::read_state(&netlink, &link, prefer).await.map(Some),
            None => Ok(None),
        }
    };
    match read.await {
        Ok(Some(state)) => {
            wan.publish(state);
        }
        Ok(None) => {}
        // The WAN task reads again, and says so if it still cannot.
        Err(e) => debug!(interface = %config.interface, error = %e, "cannot read the wan interface at start"),
    }
}

/// Owns the WAN interface's address until `stop`, publishing its state on `wan`. Never fails:
/// whatever goes wrong (a missing interface, no DHCP server) is logged and tried again.
pub async fn serve(setup: WanSetup, wan: WanWatch, stop: CancellationToken) -> std::io::Result<()> {
    let interface = setup.config.interface.clone();
    info!(%interface, mode = setup.config.mode.as_str(), "wan task started");
    match setup.config.mode {
        WanMode::Host => follow::follow(&interface, None, &wan, &stop).await,
        WanMode::Static { address, gateway } => {
            follow::follow(&interface, Some(Fixed { address, gateway }), &wan, &stop).await;
        }
        WanMode::Dhcp => {
            let settings = dhcp_client::Settings {
                interface,
                state_dir: setup.state_dir,
                lan: setup.lan,
                hostname: Some(DHCP_HOSTNAME.to_owned()),
            };
            dhcp_client::run(settings, &wan, &stop).await;
        }
    }
    Ok(())
}
