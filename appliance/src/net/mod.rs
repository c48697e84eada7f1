//! The appliance's interfaces over rtnetlink: the LAN made ready at start.
//!
//! - [`lan`]: the LAN interface up with the gateway address, before the DHCP server binds.
//! - [`interface`], [`route`]: an address and the default route, each set idempotently.
//! - [`netlink`]: the rtnetlink connection and the requests and notifications we use.
//! - [`error`]: [`NetError`], naming the interface and what was refused.

pub mod error;
pub mod interface;
pub mod lan;
pub mod netlink;
pub mod route;

pub use error::NetError;
