//! DHCP clients of the lab (dhclient, udhcpc, dhcpcd), run inside a host's namespace as a user's
//! machine runs them, with scripts that configure the interface and record what the client was
//! given.

pub mod dhclient;
pub mod dhcpcd;
pub mod event;
pub mod script;
pub mod udhcpc;

pub use dhclient::Dhclient;
pub use dhcpcd::Dhcpcd;
pub use event::{Event, Lease};
pub use udhcpc::{Udhcpc, UdhcpcDaemon};
