//! The appliance's interfaces over rtnetlink: the LAN made ready at start, and the WAN's
//! address owned and followed while running.
//!
//! - [`lan`]: the LAN interface up with the gateway address, before the DHCP server binds.
//! - [`wan`]: the WAN task (`host`, `static`, `dhcp` modes) and the [`WanWatch`] it publishes
//!   [`WanState`] on; NAT takes [`WanWatch::address`], DNS and the admin certificate
//!   [`WanWatch::subscribe`].
//! - [`dhcp_client`]: the WAN's own DHCP client (dhcproto), with its lease file.
//! - [`interface`], [`route`]: an address and the default route, each set idempotently.
//! - [`netlink`]: the rtnetlink connection and the requests and notifications we use.
//! - [`error`]: [`NetError`], naming the interface and what was refused.

pub mod dhcp_client;
pub mod error;
pub mod interface;
pub mod lan;
pub mod netlink;
pub mod route;
pub mod wan;
mod watch;

pub use error::NetError;
pub use wan::{WanSetup, WanState, WanWatch};
