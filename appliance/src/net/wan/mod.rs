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
use tracing::info;

pub use follow::Fixed;
pub use state::{WanState, WanWatch};

use super::dhcp_client;

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
