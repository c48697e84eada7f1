//! The appliance's configuration: the TOML file a user edits, and the validated form the daemon runs on.
//!
//! # Layout
//! - [`raw`]: the file as written (serde, `deny_unknown_fields`, documented defaults equal to the
//!   network model in DESIGN.md). The provisioner builds and serialises these.
//! - [`validate`]: turns a [`raw::RawConfig`] into a [`Config`] that cannot be invalid, reporting every
//!   problem at once with its field path.
//! - [`forward`]: port forwards, one type for the file, the admin API and the store.
//! - [`types`]: small value types shared by both sides (MAC addresses, address ranges, DNS labels).
//! - [`api`]: the admin API's JSON (apps, leases, reservations, DNS records, errors): request
//!   types validated like the file, and the views the API answers with.
//!
//! Parsing is pure: nothing here touches the network, the file system or the environment, so a
//! config can be checked offline (`proximity-appliance --validate`, the provisioner).

pub mod api;
pub mod forward;
pub mod raw;
pub mod types;
pub mod validate;

pub use forward::{PortForward, Protocol};
pub use raw::RawConfig;
pub use types::{Ipv4Range, MacAddr};
pub use validate::{
    AdminConfig, Config, ConfigErrors, DhcpConfig, DnsConfig, FieldError, LanConfig, NatConfig, ProxyConfig,
    Reservation, ServedPort, StateConfig, WanConfig, WanMode,
};

/// The example configuration shipped in the repository, every key documented.
pub const EXAMPLE_TOML: &str = include_str!("../proximity.example.toml");

/// Parses and validates a TOML document.
///
/// A syntax error or an unknown key is reported alone (the document cannot be read further);
/// otherwise every semantic problem is reported together.
pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigErrors::parse(&e))?;
    Config::try_from(raw)
}
