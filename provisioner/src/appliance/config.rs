//! The appliance config baked into the template: the defaults of DESIGN.md's network model
//! (LAN `10.20.0.1/24` on `eth1`, WAN by DHCP on `eth0`, state in `/var/lib/proximity`) plus
//! `admin.token_sha256`, checked with `proximity_config` before it is used.

use proximity_config::RawConfig;

use crate::deploy::spec::{LAN_ADDRESS, STATE_MOUNT};

/// Why no config could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot write the appliance config: {0}")]
    Serialize(String),
    #[error("the generated appliance config is invalid: {0}")]
    Invalid(String),
}

/// The config text for an appliance whose admin token hashes to `token_sha256` (`None`: the
/// appliance makes its own `admin.token` file, as for a template built without a deployment).
pub fn appliance_config(token_sha256: Option<&str>) -> Result<String, ConfigError> {
    let mut raw = RawConfig::default();
    raw.lan.interface = "eth1".into();
    raw.lan.address = LAN_ADDRESS.into();
    raw.wan.interface = "eth0".into();
    raw.wan.mode = "dhcp".into();
    raw.state.dir = STATE_MOUNT.into();
    raw.admin.token_sha256 = token_sha256.map(str::to_owned);
    let text = format!(
        "# Written by the `proximity` provisioner; rebuild the template to change it.\n{}",
        raw.to_toml().map_err(|e| ConfigError::Serialize(e.to_string()))?
    );
    proximity_config::from_toml_str(&text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn the_config_is_valid_and_carries_the_token_hash() -> anyhow::Result<()> {
        let text = appliance_config(Some(HASH))?;
        let config = proximity_config::from_toml_str(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(config.lan.interface, "eth1");
        assert_eq!(config.state.dir, std::path::PathBuf::from(STATE_MOUNT));
        let table: toml::Table = toml::from_str(&text)?;
        assert_eq!(table["admin"]["token_sha256"].as_str(), Some(HASH));
        assert_eq!(table["lan"]["address"].as_str(), Some(LAN_ADDRESS));
        assert_eq!(table["wan"]["mode"].as_str(), Some("dhcp"));
        // Same input, same text: the template stays byte-identical.
        assert_eq!(text, appliance_config(Some(HASH))?);
        Ok(())
    }

    #[test]
    fn without_a_token_the_appliance_makes_its_own() -> anyhow::Result<()> {
        let text = appliance_config(None)?;
        let table: toml::Table = toml::from_str(&text)?;
        assert!(table["admin"].get("token_sha256").is_none());
        Ok(())
    }
}
